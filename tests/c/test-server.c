/*
** test-server.c: the HTTP/1.1 server driven by raw uv_tcp clients (and the
** real curl binary) on the same loop.  Responses come either from inside
** the request callback or later, from a corio_timer, to show that answers
** are asynchronous.
**
** `test-server --bench-serve PORT [--async]` serves "hello world\n" until
** killed, for wrk.
*/
#include <llhttp.h>
#include <malloc.h>
#include <signal.h>
#include <sys/socket.h>

#include "task.h"

/*
** {==================================================================
** A raw HTTP client on the loop
** ===================================================================
*/

#define MAXR 8

typedef struct client client;
typedef void (*client_fn)(client *cl);

struct client {
  uv_tcp_t tcp;
  uv_connect_t creq;
  llhttp_t parser;
  char *raw; /* everything received */
  size_t raw_len, raw_cap;
  int nresp, status[MAXR];
  char body[MAXR][256];
  size_t body_len[MAXR];
  size_t body_total[MAXR]; /* untruncated */
  int connect_status, eof, read_err, parse_err, closed;
  uint64_t t_start, t_end; /* loop time at start, at close */
  uv_shutdown_t sreq;
  int shut; /* our FIN is out */
  /* set by the test before client_start: */
  int want;            /* close after this many responses; 0: wait for EOF */
  unsigned head_mask;  /* bit i: response i answers a HEAD (no body) */
  int no_read;         /* do not read until client_read_start */
  int shut_after_send; /* shutdown(SHUT_WR) once the first data is out */
  client_fn on_response, on_closed;
};

typedef struct {
  uv_write_t w;
  char data[];
} client_write;

/* State shared by the callbacks of the running test. */
static struct {
  corio_rt *rt;
  corio_server *srv;
  int clients_open;
  int close_server_when_done; /* close the server when clients_open hits 0 */
  int server_closed;
  int nreq;
  int respond_ret[8];
  int nrespond_ret;
  char remotes[8][64];
} T;

static void on_server_closed(corio_server *s, void *ud) {
  (void)s;
  (void)ud;
  T.server_closed++;
}

static int cp_headers_complete(llhttp_t *p) {
  client *cl = p->data;
  if (cl->nresp < MAXR) cl->status[cl->nresp] = (int)p->status_code;
  return cl->nresp < 32 && ((cl->head_mask >> cl->nresp) & 1);
}

static int cp_body(llhttp_t *p, const char *at, size_t len) {
  client *cl = p->data;
  if (cl->nresp < MAXR) {
    size_t *n = &cl->body_len[cl->nresp];
    cl->body_total[cl->nresp] += len;
    size_t room = sizeof cl->body[0] - 1 - *n;
    if (len > room) len = room;
    memcpy(cl->body[cl->nresp] + *n, at, len);
    *n += len;
    cl->body[cl->nresp][*n] = '\0';
  }
  return 0;
}

static void client_close(client *cl);

static int cp_message_complete(llhttp_t *p) {
  client *cl = p->data;
  cl->nresp++;
  if (cl->on_response) cl->on_response(cl);
  if (cl->want > 0 && cl->nresp >= cl->want) client_close(cl);
  return 0;
}

static const llhttp_settings_t client_settings = {
    .on_headers_complete = cp_headers_complete,
    .on_body = cp_body,
    .on_message_complete = cp_message_complete,
};

static void client_closed_cb(uv_handle_t *h) {
  client *cl = h->data;
  cl->closed = 1;
  cl->t_end = uv_now(corio_rt_loop(T.rt));
  if (cl->on_closed) cl->on_closed(cl);
  if (--T.clients_open == 0 && T.close_server_when_done && T.srv != NULL &&
      !T.server_closed)
    ASSERT_OK(corio_server_close(T.srv, 0, on_server_closed, NULL));
}

static void client_close(client *cl) {
  if (!uv_is_closing((uv_handle_t *)&cl->tcp))
    uv_close((uv_handle_t *)&cl->tcp, client_closed_cb);
}

/* Close with RST instead of FIN (SO_LINGER 0): the client is gone. */
static void client_reset(client *cl) {
  if (!uv_is_closing((uv_handle_t *)&cl->tcp))
    ASSERT_OK(uv_tcp_close_reset(&cl->tcp, client_closed_cb));
}

static void client_shut(uv_shutdown_t *r, int status) {
  client *cl = r->handle->data;
  ASSERT_OK(status);
  cl->shut = 1;
}

/* Half-close: FIN after what was written, reading goes on. */
static void client_shutdown(client *cl) {
  ASSERT_OK(uv_shutdown(&cl->sreq, (uv_stream_t *)&cl->tcp, client_shut));
}

static void client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  client *cl = h->data;
  (void)hint;
  if (cl->raw_cap - cl->raw_len < 65536) {
    cl->raw_cap = cl->raw_cap * 2 + 65536;
    cl->raw = realloc(cl->raw, cl->raw_cap + 1);
    ASSERT_NOT_NULL(cl->raw);
  }
  *buf = uv_buf_init(cl->raw + cl->raw_len, 65536);
}

static void client_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  client *cl = st->data;
  (void)buf;
  if (n > 0) {
    llhttp_errno_t e =
        llhttp_execute(&cl->parser, cl->raw + cl->raw_len, (size_t)n);
    cl->raw_len += (size_t)n;
    cl->raw[cl->raw_len] = '\0';
    if (e != HPE_OK && !cl->parse_err) cl->parse_err = (int)e;
  } else if (n < 0) {
    if (n == UV_EOF)
      cl->eof = 1;
    else
      cl->read_err = (int)n;
    client_close(cl);
  }
}

static void client_written(uv_write_t *w, int status) {
  (void)status; /* a write to a closed peer fails: the test checks reads */
  free(w);
}

static void client_send(client *cl, const char *data, size_t len) {
  client_write *cw;
  uv_buf_t b;
  if (cl->closed || uv_is_closing((uv_handle_t *)&cl->tcp)) return;
  cw = malloc(sizeof *cw + len);
  ASSERT_NOT_NULL(cw);
  memcpy(cw->data, data, len);
  b = uv_buf_init(cw->data, (unsigned)len);
  if (uv_write(&cw->w, (uv_stream_t *)&cl->tcp, &b, 1, client_written) != 0)
    free(cw);
}

static void client_sends(client *cl, const char *s) {
  client_send(cl, s, strlen(s));
}

/* The first request, sent as soon as the connection is up. */
typedef struct {
  client *cl;
  char *data;
  size_t len;
} pending_send;

static void client_connected(uv_connect_t *r, int status) {
  client *cl = r->handle->data;
  pending_send *ps = r->data;
  cl->connect_status = status;
  if (status < 0) {
    client_close(cl);
  } else {
    if (!cl->no_read)
      ASSERT_OK(
          uv_read_start((uv_stream_t *)&cl->tcp, client_alloc, client_read));
    if (ps->len > 0) client_send(cl, ps->data, ps->len);
    if (cl->shut_after_send) client_shutdown(cl);
  }
  free(ps->data);
  free(ps);
}

/* Connect `cl` to 127.0.0.1:port and send `data` (may be NULL). */
static void client_start(client *cl, int port, const char *data, size_t len) {
  struct sockaddr_in addr;
  pending_send *ps = calloc(1, sizeof *ps);
  ASSERT_NOT_NULL(ps);
  memset(cl, 0, offsetof(client, want));
  ps->data = malloc(len + 1);
  memcpy(ps->data, data ? data : "", len);
  ps->len = len;
  cl->tcp.data = cl;
  cl->creq.data = ps;
  llhttp_init(&cl->parser, HTTP_RESPONSE, &client_settings);
  cl->parser.data = cl;
  cl->t_start = uv_now(corio_rt_loop(T.rt));
  ASSERT_OK(uv_ip4_addr("127.0.0.1", port, &addr));
  ASSERT_OK(uv_tcp_init(corio_rt_loop(T.rt), &cl->tcp));
  if (cl->no_read) {
    /* a small fixed window, so that the server's write really blocks */
    int fd = socket(AF_INET, SOCK_STREAM, 0), sz = 4096;
    ASSERT(fd >= 0);
    ASSERT_OK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz));
    ASSERT_OK(uv_tcp_open(&cl->tcp, fd));
  }
  ASSERT_OK(uv_tcp_connect(&cl->creq, &cl->tcp, (struct sockaddr *)&addr,
                           client_connected));
  T.clients_open++;
}

static void client_start_s(client *cl, int port, const char *s) {
  client_start(cl, port, s, s ? strlen(s) : 0);
}

static void client_free(client *cl) {
  free(cl->raw);
  cl->raw = NULL;
}

/* }================================================================== */

/*
** {==================================================================
** The server side
** ===================================================================
*/

static int starts(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void record(int r) {
  if (T.nrespond_ret < 8) T.respond_ret[T.nrespond_ret++] = r;
}

static void respond_str(corio_server_req *req, int status, const char *body) {
  static const corio_server_header h[] = {
      {"Content-Type", 12, "text/plain", 10},
  };
  record(corio_server_respond(req, status, h, 1, body, strlen(body)));
}

/* Answer from a timer: "late <path>?<query>". */
static void late(corio_timer *tm, void *ud) {
  corio_server_req *req = ud;
  char body[128];
  (void)tm;
  if (starts(corio_server_req_path(req, NULL), "/echo")) {
    size_t len;
    const char *b = corio_server_req_body(req, &len);
    record(corio_server_respond(req, 200, NULL, 0, b, len));
    return;
  }
  snprintf(body, sizeof body, "late %s?%s", corio_server_req_path(req, NULL),
           corio_server_req_query(req, NULL));
  respond_str(req, 200, body);
}

/*
** Routes: /delay/N answers after N ms; /echo echoes the body; /echo-late
** does it from a timer; /sum answers the body's length and hash;
** /badheader answers with a CR/LF in a header; anything else gets
** "hello world\n" at once.
*/
static void handler(corio_server *s, corio_server_req *req, void *ud) {
  const char *path = corio_server_req_path(req, NULL);
  (void)ud;
  ASSERT(s == T.srv);
  ASSERT(corio_server_req_server(req) == s);
  ASSERT(corio_server_req_get_data(req) == NULL);
  if (T.nreq < 8)
    snprintf(T.remotes[T.nreq], sizeof T.remotes[0], "%s",
             corio_server_req_remote(req));
  T.nreq++;
  if (starts(path, "/delay/")) {
    ASSERT_NOT_NULL(
        corio_timer_start(T.rt, strtoull(path + 7, NULL, 10), late, req));
  } else if (strcmp(path, "/echo-late") == 0) {
    ASSERT_NOT_NULL(corio_timer_start(T.rt, 20, late, req));
  } else if (strcmp(path, "/echo") == 0) {
    size_t len;
    const char *b = corio_server_req_body(req, &len);
    int r = corio_server_respond(req, 200, NULL, 0, b, len);
    ASSERT_OK(r);
  } else if (starts(path, "/big/")) {
    size_t n = strtoull(path + 5, NULL, 10);
    char *big = malloc(n);
    ASSERT_NOT_NULL(big);
    memset(big, 'x', n);
    record(corio_server_respond(req, 200, NULL, 0, big, n));
    free(big);
  } else if (strcmp(path, "/sum") == 0) {
    /* the body's length and FNV-1a hash */
    size_t len, i;
    const char *b = corio_server_req_body(req, &len);
    uint32_t h = 2166136261u;
    char out[64];
    for (i = 0; i < len; i++) h = (h ^ (unsigned char)b[i]) * 16777619u;
    snprintf(out, sizeof out, "%zu %08x", len, (unsigned)h);
    respond_str(req, 200, out);
  } else if (strcmp(path, "/badheader") == 0) {
    corio_server_header h = {"X-Bad", 5, "a\r\nSet-Cookie: x", 16};
    ASSERT_EQ(corio_server_respond(req, 200, &h, 1, "no", 2), CORIO_EINVAL);
  } else {
    respond_str(req, 200, "hello world\n");
  }
}

static corio_server *start_server(const corio_server_opts *o) {
  memset(&T, 0, sizeof T);
  T.rt = corio_rt_new(NULL);
  ASSERT_NOT_NULL(T.rt);
  ASSERT_OK(corio_server_listen(T.rt, o, handler, NULL, &T.srv));
  ASSERT(corio_server_port(T.srv) > 0);
  T.close_server_when_done = 1;
  return T.srv;
}

static void run_and_free(void) {
  ASSERT_OK(corio_rt_run(T.rt, UV_RUN_DEFAULT));
  ASSERT_EQ(T.server_closed, 1);
  RT_FREE_CLEAN(T.rt);
}

/* }================================================================== */

TEST_IMPL(simple_get) {
  client cl = {0};
  int port = corio_server_port(start_server(NULL));
  cl.want = 1;
  cl.on_response = cl.on_closed = NULL;
  client_start_s(&cl, port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  run_and_free();
  ASSERT_EQ(cl.connect_status, 0);
  ASSERT_EQ(cl.nresp, 1);
  ASSERT_EQ(cl.status[0], 200);
  ASSERT_STR_EQ(cl.body[0], "hello world\n");
  ASSERT(starts(cl.raw, "HTTP/1.1 200 OK\r\n"));
  ASSERT(strstr(cl.raw, "\r\nContent-Length: 12\r\n") != NULL);
  ASSERT(strstr(cl.raw, "\r\nContent-Type: text/plain\r\n") != NULL);
  ASSERT(strstr(cl.raw, "\r\nDate: ") != NULL);
  ASSERT(strstr(cl.raw, "Connection: close") == NULL);
  ASSERT_EQ(T.nreq, 1);
  ASSERT_OK(T.respond_ret[0]);
  client_free(&cl);
}

static void next_request(client *cl) {
  char req[64];
  if (cl->nresp >= 3) return;
  snprintf(req, sizeof req, "GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n",
           cl->nresp + 1);
  client_sends(cl, req);
}

TEST_IMPL(keep_alive_sequential) {
  client cl = {0};
  int port = corio_server_port(start_server(NULL));
  cl.want = 3;
  cl.on_response = next_request;
  cl.on_closed = NULL;
  client_start_s(&cl, port, "GET /r0 HTTP/1.1\r\nHost: x\r\n\r\n");
  run_and_free();
  ASSERT_EQ(cl.nresp, 3);
  ASSERT_EQ(T.nreq, 3);
  /* one connection: the same client port every time */
  ASSERT_STR_EQ(T.remotes[0], T.remotes[1]);
  ASSERT_STR_EQ(T.remotes[1], T.remotes[2]);
  ASSERT(starts(T.remotes[0], "127.0.0.1:"));
  ASSERT(!cl.eof); /* the client closed first */
  client_free(&cl);
}

TEST_IMPL(pipelined_in_order) {
  client cl = {0};
  int port = corio_server_port(start_server(NULL));
  cl.want = 4;
  cl.on_response = cl.on_closed = NULL;
  /* the slowest first: answers must still come back in request order */
  client_start_s(
      &cl, port,
      "GET /delay/60?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /now?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo-late HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nn=3"
      "GET /delay/5?n=4 HTTP/1.1\r\nHost: x\r\n\r\n");
  run_and_free();
  ASSERT_EQ(cl.nresp, 4);
  ASSERT_STR_EQ(cl.body[0], "late /delay/60?n=1");
  ASSERT_STR_EQ(cl.body[1], "hello world\n");
  ASSERT_STR_EQ(cl.body[2], "n=3");
  ASSERT_STR_EQ(cl.body[3], "late /delay/5?n=4");
  client_free(&cl);
}

TEST_IMPL(post_content_length) {
  client cl = {0};
  int port = corio_server_port(start_server(NULL));
  cl.want = 2;
  cl.on_response = cl.on_closed = NULL;
  client_start_s(
      &cl, port,
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
      "hello body"
      "POST /echo-late HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  run_and_free();
  ASSERT_EQ(cl.nresp, 2);
  ASSERT_STR_EQ(cl.body[0], "hello body");
  ASSERT_EQ(cl.body_len[1], 0);
  client_free(&cl);
}

/* Send the rest of a request in pieces, one per turn of a timer. */
typedef struct {
  client *cl;
  const char *const *parts;
  int i;
  uint64_t every_ms;
} dripper;

static void drip(corio_timer *tm, void *ud) {
  dripper *d = ud;
  (void)tm;
  if (d->cl->closed || d->parts[d->i] == NULL) return;
  client_sends(d->cl, d->parts[d->i++]);
  if (d->parts[d->i] != NULL)
    ASSERT_NOT_NULL(corio_timer_start(T.rt, d->every_ms, drip, d));
}

TEST_IMPL(post_chunked) {
  static const char *const parts[] = {"6\r\n world\r\n",
                                      "0\r\nX-Trailer: 1\r\n\r\n", NULL};
  client cl = {0};
  dripper d = {&cl, parts, 0, 10};
  int port = corio_server_port(start_server(NULL));
  cl.want = 1;
  cl.on_response = cl.on_closed = NULL;
  client_start_s(&cl, port,
                 "POST /echo-late HTTP/1.1\r\nHost: x\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 20, drip, &d));
  run_and_free();
  ASSERT_EQ(cl.nresp, 1);
  ASSERT_EQ(cl.status[0], 200);
  ASSERT_STR_EQ(cl.body[0], "hello world");
  client_free(&cl);
}

/* A single exchange that must end in `status` and the server's FIN. */
static void expect_error(const corio_server_opts *o, const char *data,
                         size_t len, int status) {
  client cl = {0};
  int port = corio_server_port(start_server(o));
  cl.want = 0; /* wait for EOF */
  cl.on_response = cl.on_closed = NULL;
  client_start(&cl, port, data, len);
  run_and_free();
  ASSERT_EQ(cl.nresp, 1);
  ASSERT_EQ(cl.status[0], status);
  ASSERT(strstr(cl.raw, "\r\nConnection: close\r\n") != NULL);
  ASSERT(cl.eof);
  ASSERT_EQ(T.nreq, 0);
  client_free(&cl);
}

TEST_IMPL(bad_request_line) {
  const char *req = "GARBAGE / WHAT\r\n\r\n";
  expect_error(NULL, req, strlen(req), 400);
}

/* RFC 9112 3.2.2 and RFC 9110 4.2: an absolute-form target must be an
   http(s) URL with a host, and without userinfo. */
TEST_IMPL(absolute_form_refused) {
  static const char *const targets[] = {
      "http://x:abc/", "http://x:99999/", "http:///x/",   "http://",
      "http://u:p@x/", "ftp://x/",        "http://[::1/",
  };
  char req[128];
  size_t i;
  for (i = 0; i < sizeof targets / sizeof targets[0]; i++) {
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
                       targets[i]);
    expect_error(NULL, req, (size_t)len, 400);
  }
}

/* fuzz_server_parse: llhttp reports an empty target span here, before
   the request buffer exists (UBSan: zero offset on a null pointer) */
TEST_IMPL(empty_target_span) {
  const char *req = "CONNECT \nexe1.\r1e.xampcel.otes";
  expect_error(NULL, req, strlen(req), 400);
}

TEST_IMPL(header_too_large) {
  size_t n = 20 * 1024;
  char *req = malloc(n + 64);
  int len = sprintf(req, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(req + len, 'a', n);
  strcpy(req + len + n, "\r\n\r\n");
  expect_error(NULL, req, strlen(req), 431);
  free(req);
}

/*
** A head of `pad` bytes more than "GET /t HTTP/1.1\r\nHost: x\r\nX-Big:
** \r\n\r\n": `fill` bytes in the X-Big value, which max_header_bytes counts
** (20 + pad), or spaces before a one-byte value, which only the bytes on
** the wire count (fill ' ': the head's length).
*/
static char *big_head(size_t pad, char fill, size_t *len) {
  static const char pre[] = "GET /t HTTP/1.1\r\nHost: x\r\nX-Big: ";
  char *req = malloc(sizeof pre + pad + 8);
  size_t n = sizeof pre - 1;
  ASSERT_NOT_NULL(req);
  memcpy(req, pre, n);
  memset(req + n, fill, pad);
  n += pad;
  if (fill == ' ') req[n - 1] = 'v'; /* the value after the whitespace */
  memcpy(req + n, "\r\n\r\n", 4);
  *len = n + 4;
  return req;
}

/* A single exchange that must end in a 200, the connection kept. */
static void expect_ok(const corio_server_opts *o, const char *data,
                      size_t len) {
  client cl = {0};
  int port = corio_server_port(start_server(o));
  cl.want = 1;
  cl.on_response = cl.on_closed = NULL;
  client_start(&cl, port, data, len);
  run_and_free();
  ASSERT_EQ(cl.nresp, 1);
  ASSERT_EQ(cl.status[0], 200);
  ASSERT_EQ(T.nreq, 1);
  client_free(&cl);
}

/* Send the head big_head makes; expect a 200 (ok) or a 431. */
static void try_head(const corio_server_opts *o, size_t pad, char fill,
                     int ok) {
  size_t len;
  char *req = big_head(pad, fill, &len);
  if (ok)
    expect_ok(o, req, len);
  else
    expect_error(o, req, len, 431);
  free(req);
}

/*
** Both sides of each limit.  max_header_bytes counts 20 + pad of a
** big_head; the bytes on the wire may be twice the option, at most 64 KiB
** over it: 32 KiB for the default 16 KiB, 320 KiB for 256 KiB (a 100 KiB
** head went over the 80 KiB that used to bound every server), 512 bytes
** for 256.
*/
TEST_IMPL(head_limit_follows_option) {
  static const size_t pre = sizeof "GET /t HTTP/1.1\r\nHost: x\r\nX-Big: " - 1;
  corio_server_opts big, small;
  size_t wire;
  corio_server_opts_init(&big);
  big.max_header_bytes = 256 * 1024;
  corio_server_opts_init(&small);
  small.max_header_bytes = 256;
  /* what is counted */
  try_head(NULL, 16 * 1024 - 20, 'a', 1);
  try_head(NULL, 16 * 1024 - 19, 'a', 0);
  try_head(&big, 100 * 1024, 'a', 1);
  try_head(&big, 256 * 1024 - 20, 'a', 1);
  try_head(&big, 256 * 1024 - 19, 'a', 0);
  try_head(&small, 256 - 20, 'a', 1);
  try_head(&small, 256 - 19, 'a', 0);
  /* whitespace: nothing counted, only the bytes on the wire */
  wire = 32 * 1024;
  try_head(NULL, wire - pre - 4, ' ', 1);
  try_head(NULL, wire - pre - 3, ' ', 0);
  wire = 320 * 1024;
  try_head(&big, wire - pre - 4, ' ', 1);
  try_head(&big, wire - pre - 3, ' ', 0);
  wire = 512;
  try_head(&small, wire - pre - 4, ' ', 1);
  try_head(&small, wire - pre - 3, ' ', 0);
}

TEST_IMPL(body_too_large) {
  corio_server_opts o;
  char req[4096];
  int len;
  corio_server_opts_init(&o);
  o.max_body_bytes = 1024;
  /* a declared length over the limit is refused before the body */
  len = sprintf(
      req, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n");
  memset(req + len, 'b', 2000);
  expect_error(&o, req, (size_t)len + 2000, 413);
  /* a chunked body is counted as it arrives */
  len = sprintf(
      req,
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "300\r\n");
  memset(req + len, 'c', 0x300);
  len += 0x300;
  len += sprintf(req + len, "\r\n300\r\n");
  memset(req + len, 'c', 0x300);
  len += 0x300;
  len += sprintf(req + len, "\r\n0\r\n\r\n");
  expect_error(&o, req, (size_t)len, 413);
}

TEST_IMPL(bad_chunked_body) {
  const char *req =
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "zz\r\nhello\r\n0\r\n\r\n";
  expect_error(NULL, req, strlen(req), 400);
}

static void start_normal_client(corio_timer *tm, void *ud) {
  (void)tm;
  client_start_s(ud, corio_server_port(T.srv),
                 "GET /normal HTTP/1.1\r\nHost: x\r\n\r\n");
}

TEST_IMPL(slowloris_cut) {
  static const char *const bytes[] = {"G", "E", "T", " ", "/",  "s", "l",
                                      "o", "w", " ", "H", "T",  "T", "P",
                                      "/", "1", ".", "1", "\r", NULL};
  client slow = {0}, normal = {0};
  dripper d = {&slow, bytes, 0, 100};
  corio_server_opts o;
  int port;
  corio_server_opts_init(&o);
  o.header_timeout_ms = 300;
  port = corio_server_port(start_server(&o));
  slow.want = 0;
  slow.on_response = slow.on_closed = NULL;
  normal.want = 1;
  normal.on_response = normal.on_closed = NULL;
  client_start_s(&slow, port, NULL);
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 1, drip, &d));
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 150, start_normal_client, &normal));
  run_and_free();
  ASSERT_EQ(normal.nresp, 1);
  ASSERT_EQ(normal.status[0], 200);
  ASSERT(normal.t_end < slow.t_end);
  ASSERT_EQ(slow.nresp, 1);
  ASSERT_EQ(slow.status[0], 408);
  ASSERT(slow.eof);
  ASSERT(slow.t_end - slow.t_start >= 290);
  ASSERT(slow.t_end - slow.t_start < 1800); /* the head needs 1.9 s */
  ASSERT(d.i < 10); /* cut off long before the head was complete */
  client_free(&slow);
  client_free(&normal);
}

TEST_IMPL(max_inflight_overload) {
  client cl[3];
  memset(cl, 0, sizeof cl);
  corio_server_opts o;
  int port, i, ok = 0, over = 0;
  corio_server_opts_init(&o);
  o.max_inflight = 2;
  o.overload_status = 502;
  port = corio_server_port(start_server(&o));
  for (i = 0; i < 3; i++) {
    cl[i].want = 1;
    cl[i].on_response = cl[i].on_closed = NULL;
    client_start_s(&cl[i], port, "GET /delay/1000 HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  run_and_free();
  for (i = 0; i < 3; i++) {
    ASSERT_EQ(cl[i].nresp, 1);
    if (cl[i].status[0] == 200) {
      ok++;
      ASSERT(cl[i].t_end - cl[i].t_start >= 990);
    } else {
      ASSERT_EQ(cl[i].status[0], 502);
      /* answered at once, not after the 1 s of the others */
      ASSERT(cl[i].t_end - cl[i].t_start < 900);
      over++;
    }
    client_free(&cl[i]);
  }
  ASSERT_EQ(ok, 2);
  ASSERT_EQ(over, 1);
  ASSERT_EQ(T.nreq, 2); /* the third never reached the callback */
}

/* Graceful close: one request in flight, one idle keep-alive connection,
   one connection attempted after the close. */
static client gc[3];

static void close_now(corio_timer *tm, void *ud) {
  corio_server_stats st;
  (void)tm;
  (void)ud;
  corio_server_get_stats(T.srv, &st);
  ASSERT_EQ(st.connections, 2);
  ASSERT_EQ(st.inflight, 1);
  ASSERT_OK(corio_server_close(T.srv, 2000, on_server_closed, NULL));
  ASSERT_EQ(corio_server_close(T.srv, 0, on_server_closed, NULL), CORIO_ESTATE);
  gc[2].want = 1;
  gc[2].on_response = gc[2].on_closed = NULL;
  client_start_s(&gc[2], corio_server_port(T.srv),
                 "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
}

TEST_IMPL(graceful_close) {
  int port = corio_server_port(start_server(NULL));
  T.close_server_when_done = 0;
  gc[0].want = 0;
  gc[0].on_response = gc[0].on_closed = NULL;
  client_start_s(&gc[0], port, "GET /delay/1000 HTTP/1.1\r\nHost: x\r\n\r\n");
  gc[1].want = 0;
  gc[1].on_response = gc[1].on_closed = NULL;
  client_start_s(&gc[1], port, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 100, close_now, NULL));
  run_and_free();
  /* in flight: answered after the close, with Connection: close */
  ASSERT_EQ(gc[0].nresp, 1);
  ASSERT_STR_EQ(gc[0].body[0], "late /delay/1000?");
  ASSERT(strstr(gc[0].raw, "\r\nConnection: close\r\n") != NULL);
  ASSERT(gc[0].eof);
  ASSERT(gc[0].t_end - gc[0].t_start >= 990);
  ASSERT_OK(T.respond_ret[1]);
  /* idle: answered before, closed at once by the close */
  ASSERT_EQ(gc[1].nresp, 1);
  ASSERT(gc[1].eof);
  ASSERT(gc[1].t_end - gc[1].t_start < 900); /* not after gc[0]'s 1 s */
  /* after the close: refused */
  ASSERT_EQ(gc[2].connect_status, UV_ECONNREFUSED);
  ASSERT_EQ(gc[2].nresp, 0);
  client_free(&gc[0]);
  client_free(&gc[1]);
  client_free(&gc[2]);
}

/* The close deadline cuts a request still held; answering it afterwards is
   harmless and returns CORIO_ECLOSED, even once the server is freed. */
static corio_server_req *held;

static void hold_handler(corio_server *s, corio_server_req *req, void *ud) {
  (void)s;
  (void)ud;
  held = req;
  ASSERT_OK(corio_server_close(s, 50, on_server_closed, NULL));
}

TEST_IMPL(close_deadline_cuts) {
  client cl = {0};
  memset(&T, 0, sizeof T);
  T.rt = corio_rt_new(NULL);
  ASSERT_OK(corio_server_listen(T.rt, NULL, hold_handler, NULL, &T.srv));
  cl.want = 0;
  cl.on_response = cl.on_closed = NULL;
  client_start_s(&cl, corio_server_port(T.srv),
                 "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_OK(corio_rt_run(T.rt, UV_RUN_DEFAULT));
  ASSERT_EQ(T.server_closed, 1);
  ASSERT_NOT_NULL(held);
  ASSERT(corio_server_req_closed(held));
  ASSERT(corio_server_req_server(held) == NULL);
  ASSERT_STR_EQ(corio_server_req_path(held, NULL), "/");
  ASSERT_EQ(corio_server_respond(held, 200, NULL, 0, "x", 1), CORIO_ECLOSED);
  ASSERT(cl.eof || cl.read_err);
  ASSERT_EQ(cl.nresp, 0);
  RT_FREE_CLEAN(T.rt);
  client_free(&cl);
}

/* A client that leaves while its request is being handled: the answer
   goes nowhere, and the connection is gone before the server closes. */
static void leave_now(corio_timer *tm, void *ud) {
  (void)tm;
  client_close(ud);
}

static void check_and_close(corio_timer *tm, void *ud) {
  corio_server_stats st;
  (void)tm;
  (void)ud;
  corio_server_get_stats(T.srv, &st);
  ASSERT_EQ(st.connections, 0);
  ASSERT_EQ(st.inflight, 0);
  ASSERT_EQ(st.requests, 1);
  ASSERT_OK(corio_server_close(T.srv, 0, on_server_closed, NULL));
}

TEST_IMPL(client_leaves_early) {
  client cl = {0};
  int port = corio_server_port(start_server(NULL));
  T.close_server_when_done = 0;
  cl.want = 0;
  cl.on_response = cl.on_closed = NULL;
  client_start_s(&cl, port, "GET /delay/150 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 50, leave_now, &cl));
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 300, check_and_close, NULL));
  run_and_free();
  ASSERT_EQ(T.nrespond_ret, 1);
  ASSERT(T.respond_ret[0] == 0 || T.respond_ret[0] == CORIO_ECLOSED);
  ASSERT_EQ(cl.nresp, 0);
  client_free(&cl);
}

/* Thousands of pipelined requests in one write, answered later: the
   server buffers a bounded amount, stops reading, and answers in order. */
#define NFLOOD 3000

static int flood_order_ok = 1;

static void flood_check(client *cl) {
  char want[32];
  snprintf(want, sizeof want, "late /delay/0?%d", cl->nresp - 1);
  if (cl->nresp <= MAXR && strcmp(cl->body[cl->nresp - 1], want) != 0)
    flood_order_ok = 0;
}

TEST_IMPL(pipelined_flood) {
  client cl = {0};
  size_t cap = NFLOOD * 64, len = 0;
  char *req = malloc(cap);
  int port = corio_server_port(start_server(NULL)), i;
  for (i = 0; i < NFLOOD; i++)
    len += (size_t)snprintf(req + len, cap - len,
                            "GET /delay/0?%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
  cl.want = NFLOOD;
  cl.on_response = flood_check;
  client_start(&cl, port, req, len);
  free(req);
  run_and_free();
  ASSERT_EQ(cl.nresp, NFLOOD);
  ASSERT_EQ(T.nreq, NFLOOD);
  ASSERT(flood_order_ok);
  ASSERT(strstr(cl.raw, "late /delay/0?2999") != NULL);
  ASSERT(cl.parse_err == 0);
  client_free(&cl);
}

TEST_IMPL(body_timeout) {
  corio_server_opts o;
  client cl = {0};
  int port;
  corio_server_opts_init(&o);
  o.body_timeout_ms = 200;
  port = corio_server_port(start_server(&o));
  client_start_s(
      &cl, port,
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  run_and_free();
  ASSERT_EQ(cl.nresp, 1);
  ASSERT_EQ(cl.status[0], 408);
  ASSERT(cl.eof);
  ASSERT(cl.t_end - cl.t_start >= 190);
  ASSERT(cl.t_end - cl.t_start < 5000); /* a hang would be the 60 s default */
  ASSERT_EQ(T.nreq, 0);
  client_free(&cl);
}

/*
** corio's memory, counted through its allocator hook: live bytes (glibc's
** usable sizes) and their peak.  Blocks from before the hook was set are
** freed through it too, which is why the figures are only compared.
*/
static long long mem_live, mem_peak;

static void mem_add(long long n) {
  mem_live += n;
  if (mem_live > mem_peak) mem_peak = mem_live;
}

static void *count_malloc(size_t n) {
  void *p = malloc(n);
  if (p != NULL) mem_add((long long)malloc_usable_size(p));
  return p;
}

static void *count_realloc(void *p, size_t n) {
  long long old = p != NULL ? (long long)malloc_usable_size(p) : 0;
  void *q = realloc(p, n);
  if (q != NULL) mem_add((long long)malloc_usable_size(q) - old);
  return q;
}

static void count_free(void *p) {
  if (p != NULL) mem_live -= (long long)malloc_usable_size(p);
  free(p);
}

#define NCLAIM 20
static int nclaim_heads;

/* "100 Continue": the server has parsed the head (and reserved for it) */
static void claim_head_parsed(client *cl) {
  if (cl->nresp == 1) nclaim_heads++;
}

/*
** Clients that declare an 8 MiB body and send none: the server reserves
** for what arrives, not for the claim.  (It used to reserve 16 MiB each:
** 2,000 such connections took 32 GB of address space.)
*/
TEST_IMPL(declared_length_not_reserved) {
  static client cl[NCLAIM];
  long long base;
  uint64_t end;
  int port, i;
  ASSERT_OK(corio_replace_allocator(count_malloc, count_realloc, count_free));
  port = corio_server_port(start_server(NULL));
  mem_peak = base = mem_live;
  nclaim_heads = 0;
  for (i = 0; i < NCLAIM; i++) {
    cl[i].want = 0;
    cl[i].on_response = claim_head_parsed;
    cl[i].on_closed = NULL;
    client_start_s(&cl[i], port,
                   "POST /echo HTTP/1.1\r\nHost: x\r\n"
                   "Content-Length: 8388608\r\nExpect: 100-continue\r\n\r\n");
  }
  end = corio_rt_now(T.rt) + 5000;
  while (nclaim_heads < NCLAIM && corio_rt_now(T.rt) < end)
    corio_rt_run(T.rt, UV_RUN_ONCE);
  ASSERT_EQ(nclaim_heads, NCLAIM);
  /* each connection: its struct and small buffers, well under 32 KiB */
  ASSERT(mem_peak - base < NCLAIM * 32 * 1024);
  for (i = 0; i < NCLAIM; i++) client_close(&cl[i]);
  run_and_free();
  ASSERT_EQ(T.nreq, 0);
  for (i = 0; i < NCLAIM; i++) client_free(&cl[i]);
  ASSERT_OK(corio_replace_allocator(malloc, realloc, free));
}

/*
** A 300,000-byte body in 40,000-byte pieces with pauses: it arrives
** intact, and the buffer that holds it grows no further than about its
** declared length.  A body longer than declared is the next request (a
** bad one here), as before.
*/
#define SLOW_BODY  300000
#define SLOW_PIECE 40000

TEST_IMPL(body_arrives_in_pieces) {
  static char *parts[SLOW_BODY / SLOW_PIECE + 3];
  static char head[128];
  client a = {0}, b = {0};
  dripper d = {&a, (const char *const *)parts, 0, 5};
  char want[64];
  uint32_t h = 2166136261u;
  long long base;
  int port, i, j, n = 1;
  /* the head goes first, through the same queue as the pieces: a piece
     written before the connection is up must not overtake it */
  snprintf(head, sizeof head,
           "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
           SLOW_BODY);
  parts[0] = head;
  for (i = 0; i < SLOW_BODY; i += SLOW_PIECE, n++) {
    int len = SLOW_BODY - i < SLOW_PIECE ? SLOW_BODY - i : SLOW_PIECE;
    parts[n] = malloc((size_t)len + 1);
    ASSERT_NOT_NULL(parts[n]);
    for (j = 0; j < len; j++) {
      parts[n][j] = (char)('a' + (i + j) * 7 % 26);
      h = (h ^ (unsigned char)parts[n][j]) * 16777619u;
    }
    parts[n][len] = '\0';
  }
  parts[n] = NULL;
  ASSERT_OK(corio_replace_allocator(count_malloc, count_realloc, count_free));
  port = corio_server_port(start_server(NULL));
  mem_peak = base = mem_live;
  a.want = 1;
  a.on_response = a.on_closed = NULL;
  client_start_s(&a, port, NULL);
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 1, drip, &d));
  b.want = 0;
  b.on_response = b.on_closed = NULL;
  client_start_s(&b, port,
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
                 "helloEXTRA / HTTP/1.1\r\nHost: x\r\n\r\n");
  run_and_free();
  ASSERT_OK(corio_replace_allocator(malloc, realloc, free));
  ASSERT_EQ(a.nresp, 1);
  ASSERT_EQ(a.status[0], 200);
  snprintf(want, sizeof want, "%d %08x", SLOW_BODY, (unsigned)h);
  ASSERT_STR_EQ(a.body[0], want);
  ASSERT(mem_peak - base < SLOW_BODY + 64 * 1024); /* not twice the body */
  ASSERT_EQ(b.nresp, 2);
  ASSERT_STR_EQ(b.body[0], "hello");
  ASSERT_EQ(b.status[1], 400);
  ASSERT(b.eof);
  for (i = 1; i < n; i++) free(parts[i]);
  client_free(&a);
  client_free(&b);
}

/* A response bigger than the socket takes at once goes out by uv_write;
   the pipelined request behind it waits for it. */
TEST_IMPL(big_response) {
  client cl = {0};
  int port = corio_server_port(start_server(NULL));
  cl.want = 2;
  client_start_s(&cl, port,
                 "GET /big/6000000 HTTP/1.1\r\nHost: x\r\n\r\nGET /now "
                 "HTTP/1.1\r\nHost: x\r\n\r\n");
  run_and_free();
  ASSERT_EQ(cl.nresp, 2);
  ASSERT_EQ(cl.body_total[0], 6000000);
  ASSERT_STR_EQ(cl.body[1], "hello world\n");
  ASSERT_OK(T.respond_ret[0]);
  client_free(&cl);
}

/* A client that does not read its response is cut after write_timeout. */
static void check_cut(corio_timer *tm, void *ud) {
  client *cl = ud;
  corio_server_stats st;
  (void)tm;
  corio_server_get_stats(T.srv, &st);
  ASSERT_EQ(st.connections, 0);
  ASSERT_OK(uv_read_start((uv_stream_t *)&cl->tcp, client_alloc, client_read));
}

TEST_IMPL(write_timeout) {
  corio_server_opts o;
  client cl = {0};
  int port;
  corio_server_opts_init(&o);
  o.write_timeout_ms = 200;
  port = corio_server_port(start_server(&o));
  cl.no_read = 1;
  client_start_s(&cl, port, "GET /big/20000000 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 600, check_cut, &cl));
  run_and_free();
  ASSERT_EQ(cl.nresp, 0);
  ASSERT(cl.eof || cl.read_err);
  ASSERT(cl.body_total[0] < 20000000);
  client_free(&cl);
}

#define NIDLE 200

static client *idle_clients;
static client busy;

static void close_server(corio_timer *tm, void *ud) {
  (void)tm;
  (void)ud;
  ASSERT_OK(corio_server_close(T.srv, 0, on_server_closed, NULL));
}

static void busy_done(client *cl) {
  corio_server_stats st;
  corio_server_get_stats(T.srv, &st);
  ASSERT_EQ(st.connections, NIDLE + 1);
  (void)cl;
}

static void start_busy(corio_timer *tm, void *ud) {
  (void)tm;
  (void)ud;
  busy.want = 1;
  busy.on_response = busy_done;
  busy.on_closed = NULL;
  client_start_s(&busy, corio_server_port(T.srv),
                 "GET /busy HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 300, close_server, NULL));
}

TEST_IMPL(many_idle_connections) {
  int port = corio_server_port(start_server(NULL)), i;
  T.close_server_when_done = 0;
  idle_clients = calloc(NIDLE, sizeof *idle_clients);
  for (i = 0; i < NIDLE; i++) {
    idle_clients[i].want = 0;
    /* half never send a byte, half made one request and stay open */
    client_start_s(&idle_clients[i], port,
                   i % 2 ? "GET /first HTTP/1.1\r\nHost: x\r\n\r\n" : NULL);
  }
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 200, start_busy, NULL));
  run_and_free();
  ASSERT_EQ(busy.nresp, 1);
  ASSERT_EQ(busy.status[0], 200);
  /* not behind the idle ones (their timeouts are 60 s) */
  ASSERT(busy.t_end - busy.t_start < 2000);
  for (i = 0; i < NIDLE; i++) {
    ASSERT_EQ(idle_clients[i].connect_status, 0);
    ASSERT_EQ(idle_clients[i].nresp, i % 2);
    ASSERT(idle_clients[i].eof);
    client_free(&idle_clients[i]);
  }
  free(idle_clients);
  client_free(&busy);
}

/* The getters, checked inside the callback. */
static void inspect_handler(corio_server *s, corio_server_req *req, void *ud) {
  size_t len;
  corio_server_header h;
  int major, minor;
  const char *v;
  (void)s;
  (void)ud;
  T.nreq++;
  if (strcmp(corio_server_req_method(req), "GET") == 0 &&
      strcmp(corio_server_req_target(req, NULL), "/a/b?x=1&y=%20") == 0) {
    ASSERT_STR_EQ(corio_server_req_path(req, &len), "/a/b");
    ASSERT_EQ(len, 4);
    ASSERT_STR_EQ(corio_server_req_query(req, &len), "x=1&y=%20");
    ASSERT_EQ(len, 9);
    ASSERT_EQ(corio_server_req_header_count(req), 4);
    ASSERT_OK(corio_server_req_header_at(req, 0, &h));
    ASSERT_STR_EQ(h.name, "Host");
    ASSERT_STR_EQ(h.value, "example");
    ASSERT_OK(corio_server_req_header_at(req, 2, &h));
    ASSERT_STR_EQ(h.name, "X-Empty");
    ASSERT_STR_EQ(h.value, "");
    ASSERT_EQ(h.value_len, 0);
    ASSERT_EQ(corio_server_req_header_at(req, 4, &h), CORIO_EINVAL);
    v = corio_server_req_header(req, "content-type", &len);
    ASSERT_NOT_NULL(v);
    ASSERT_STR_EQ(v, "text/plain; q=1");
    ASSERT_EQ(len, 15);
    ASSERT_STR_EQ(corio_server_req_header(req, "X-THING", NULL), "Value");
    ASSERT(corio_server_req_header(req, "x-missing", NULL) == NULL);
    ASSERT(corio_server_req_header(req, "x-thin", NULL) == NULL);
    corio_server_req_version(req, &major, &minor);
    ASSERT_EQ(major, 1);
    ASSERT_EQ(minor, 1);
    ASSERT(corio_server_req_keep_alive(req));
    ASSERT(!corio_server_req_closed(req));
    ASSERT_STR_EQ(corio_server_req_body(req, &len), "");
    ASSERT_EQ(len, 0);
    ASSERT(starts(corio_server_req_remote(req), "127.0.0.1:"));
    corio_server_req_set_data(req, &len);
    ASSERT(corio_server_req_get_data(req) == &len);
  } else if (strcmp(corio_server_req_method(req), "DELETE") == 0) {
    /* absolute-form target: its host, not the Host field (RFC 9112 3.2.2) */
    ASSERT_STR_EQ(corio_server_req_target(req, NULL),
                  "http://example:80/p/../q?z=9#f");
    ASSERT_STR_EQ(corio_server_req_path(req, NULL), "/p/../q");
    ASSERT_STR_EQ(corio_server_req_query(req, NULL), "z=9");
    ASSERT_EQ(corio_server_req_header_count(req), 2);
    ASSERT_STR_EQ(corio_server_req_header(req, "host", &len), "example:80");
    ASSERT_EQ(len, 10);
    ASSERT_OK(corio_server_req_header_at(req, 0, &h));
    ASSERT_STR_EQ(h.name, "Host");
    ASSERT_STR_EQ(h.value, "example:80");
    ASSERT_OK(corio_server_req_header_at(req, 1, &h));
    ASSERT_STR_EQ(h.name, "X-After");
    ASSERT_STR_EQ(h.value, "1");
  } else if (strcmp(corio_server_req_method(req), "PATCH") == 0) {
    /* HTTP/1.0 without Host: the target's host is added as one */
    ASSERT_STR_EQ(corio_server_req_path(req, NULL), "/");
    ASSERT_STR_EQ(corio_server_req_query(req, &len), "a=1");
    ASSERT_EQ(corio_server_req_header_count(req), 3);
    ASSERT_OK(corio_server_req_header_at(req, 2, &h));
    ASSERT_STR_EQ(h.name, "Host");
    ASSERT_STR_EQ(h.value, "[::1]:8080");
    ASSERT_EQ(h.value_len, 10);
  } else {
    ASSERT_STR_EQ(corio_server_req_method(req), "PUT");
    ASSERT_STR_EQ(corio_server_req_path(req, NULL), "/noquery");
    ASSERT_STR_EQ(corio_server_req_query(req, &len), "");
    ASSERT_EQ(len, 0);
    corio_server_req_version(req, &major, &minor);
    ASSERT_EQ(minor, 0);
    ASSERT(!corio_server_req_keep_alive(req));
  }
  ASSERT_OK(corio_server_respond(req, 204, NULL, 0, NULL, 0));
}

TEST_IMPL(path_query_headers) {
  client cl = {0};
  memset(&T, 0, sizeof T);
  T.rt = corio_rt_new(NULL);
  T.close_server_when_done = 1;
  ASSERT_OK(corio_server_listen(T.rt, NULL, inspect_handler, NULL, &T.srv));
  cl.want = 0;
  cl.on_response = cl.on_closed = NULL;
  client_start_s(&cl, corio_server_port(T.srv),
                 "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example\r\n"
                 "content-TYPE: text/plain; q=1\r\nX-Empty:\r\n"
                 "X-Thing:   Value  \r\n\r\n"
                 "DELETE http://example:80/p/../q?z=9#f HTTP/1.1\r\n"
                 "Host: other\r\nX-After: 1\r\n\r\n"
                 "PATCH HTTPS://[::1]:08080?a=1 HTTP/1.0\r\n"
                 "Connection: keep-alive\r\nContent-Length: 0\r\n\r\n"
                 "PUT /noquery HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
  run_and_free();
  ASSERT_EQ(T.nreq, 4);
  ASSERT_EQ(cl.nresp, 4);
  ASSERT_EQ(cl.status[0], 204);
  ASSERT(strstr(cl.raw, "Content-Length") == NULL); /* not on a 204 */
  ASSERT(cl.eof); /* HTTP/1.0 without keep-alive */
  client_free(&cl);
}

TEST_IMPL(head_and_http10) {
  client a = {0}, b = {0};
  int port = corio_server_port(start_server(NULL));
  a.want = 2;
  a.head_mask = 1;
  a.on_response = a.on_closed = NULL;
  client_start_s(
      &a, port,
      "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
  b.want = 1;
  b.on_response = b.on_closed = NULL;
  client_start_s(&b, port, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  run_and_free();
  ASSERT_EQ(a.nresp, 2);
  ASSERT_EQ(a.body_len[0], 0);
  ASSERT_STR_EQ(a.body[1], "hello world\n");
  ASSERT(strstr(a.raw, "Content-Length: 12\r\n") != NULL);
  ASSERT(a.parse_err == 0);
  ASSERT_EQ(b.nresp, 1);
  ASSERT(strstr(b.raw, "\r\nConnection: keep-alive\r\n") != NULL);
  ASSERT(!b.eof);
  client_free(&a);
  client_free(&b);
}

static void send_body_after_continue(client *cl) {
  if (cl->nresp == 1) {
    ASSERT_EQ(cl->status[0], 100);
    client_sends(cl, "abc");
  }
}

TEST_IMPL(expect_continue_and_bad_header) {
  client a = {0}, b = {0};
  int port = corio_server_port(start_server(NULL));
  a.want = 2;
  a.on_response = send_body_after_continue;
  a.on_closed = NULL;
  client_start_s(&a, port,
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                 "Expect: 100-continue\r\n\r\n");
  b.want = 1;
  b.on_response = b.on_closed = NULL;
  client_start_s(&b, port, "GET /badheader HTTP/1.1\r\nHost: x\r\n\r\n");
  run_and_free();
  ASSERT_EQ(a.nresp, 2);
  ASSERT_EQ(a.status[1], 200);
  ASSERT_STR_EQ(a.body[1], "abc");
  ASSERT_EQ(b.status[0], 500);
  ASSERT(strstr(b.raw, "Set-Cookie") == NULL);
  client_free(&a);
  client_free(&b);
}

TEST_IMPL(idle_timeout_and_max_connections) {
  client cl[3];
  memset(cl, 0, sizeof cl);
  corio_server_opts o;
  int port, i;
  corio_server_opts_init(&o);
  o.idle_timeout_ms = 150;
  o.max_connections = 2;
  o.max_requests_per_conn = 1000;
  port = corio_server_port(start_server(&o));
  for (i = 0; i < 3; i++) {
    cl[i].want = 0;
    cl[i].on_response = cl[i].on_closed = NULL;
    client_start_s(&cl[i], port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  run_and_free();
  for (i = 0; i < 3; i++) ASSERT(cl[i].eof || cl[i].read_err);
  /* two served, then closed when idle; the third closed at once */
  ASSERT_EQ(cl[0].nresp + cl[1].nresp + cl[2].nresp, 2);
  for (i = 0; i < 3; i++) {
    if (cl[i].nresp == 1) {
      ASSERT(cl[i].t_end - cl[i].t_start >= 140);
      ASSERT(cl[i].t_end - cl[i].t_start < 5000); /* the default: 60 s */
    }
    client_free(&cl[i]);
  }
}

TEST_IMPL(listen_errors) {
  corio_server_opts o;
  corio_server *s2 = NULL;
  int port = corio_server_port(start_server(NULL));
  corio_server_opts_init(&o);
  o.port = port;
  ASSERT_EQ(corio_server_listen(T.rt, &o, handler, NULL, &s2),
            CORIO_EADDRINUSE);
  ASSERT(s2 == NULL);
  o.port = 0;
  o.host = "256.1.1.1.invalid";
  ASSERT(corio_server_listen(T.rt, &o, handler, NULL, &s2) < 0);
  o.host = "localhost";
  ASSERT_OK(corio_server_listen(T.rt, &o, handler, NULL, &s2));
  ASSERT_OK(corio_server_close(s2, 0, NULL, NULL));
  o.host = NULL;
  o.port = 70000;
  ASSERT_EQ(corio_server_listen(T.rt, &o, handler, NULL, &s2), CORIO_EINVAL);
  ASSERT_OK(corio_server_close(T.srv, 0, on_server_closed, NULL));
  run_and_free();
}

/* The real curl binary, spawned from the loop. */
typedef struct {
  uv_process_t proc;
  uv_pipe_t out;
  char buf[4096];
  size_t len;
  int64_t exit_status;
  int done;
} curl_run;

static int curls_left;

static void curl_part_done(curl_run *c) {
  if (++c->done == 3 && --curls_left == 0)
    ASSERT_OK(corio_server_close(T.srv, 0, on_server_closed, NULL));
}

static void curl_closed(uv_handle_t *h) {
  curl_part_done(h->data);
}

static void curl_exit(uv_process_t *p, int64_t status, int sig) {
  curl_run *c = p->data;
  (void)sig;
  c->exit_status = status;
  uv_close((uv_handle_t *)p, curl_closed);
}

static void curl_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  curl_run *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

static void curl_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  curl_run *c = st->data;
  (void)buf;
  if (n > 0) {
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
  } else if (n < 0) {
    uv_close((uv_handle_t *)st, curl_closed);
    curl_part_done(c);
  }
}

static void curl_start(curl_run *c, char **args) {
  uv_process_options_t po;
  uv_stdio_container_t io[3];
  memset(c, 0, sizeof *c);
  memset(&po, 0, sizeof po);
  ASSERT_OK(uv_pipe_init(corio_rt_loop(T.rt), &c->out, 0));
  c->out.data = c;
  c->proc.data = c;
  io[0].flags = UV_IGNORE;
  io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  io[1].data.stream = (uv_stream_t *)&c->out;
  io[2].flags = UV_INHERIT_FD;
  io[2].data.fd = 2;
  po.file = args[0];
  po.args = args;
  po.stdio = io;
  po.stdio_count = 3;
  po.exit_cb = curl_exit;
  ASSERT_OK(uv_spawn(corio_rt_loop(T.rt), &c->proc, &po));
  ASSERT_OK(uv_read_start((uv_stream_t *)&c->out, curl_alloc, curl_read));
  curls_left++;
}

TEST_IMPL(real_curl) {
  curl_run get, post;
  char url[128], url2[128];
  char *a1[] = {"curl", "-s", "-D", "-", url, NULL};
  char *a2[] = {"curl",          "-s",     "-H", "Expect: 100-continue",
                "--data-binary", "posted", url2, NULL};
  int port = corio_server_port(start_server(NULL));
  T.close_server_when_done = 0;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/x?y=1", port);
  snprintf(url2, sizeof url2, "http://127.0.0.1:%d/echo-late", port);
  curls_left = 0;
  curl_start(&get, a1);
  curl_start(&post, a2);
  run_and_free();
  ASSERT_EQ(get.exit_status, 0);
  ASSERT(starts(get.buf, "HTTP/1.1 200 OK\r\n"));
  ASSERT(strstr(get.buf, "\r\n\r\nhello world\n") != NULL);
  ASSERT_EQ(post.exit_status, 0);
  ASSERT_STR_EQ(post.buf, "posted");
}

/*
** {==================================================================
** Disconnects, abort, and a runtime freed with servers still open
** ===================================================================
*/

static corio_server_req *kept[4];
static int nkept, ngone;
static corio_server_req *gone_req[4];

static void keep_handler(corio_server *s, corio_server_req *req, void *ud) {
  (void)s;
  (void)ud;
  T.nreq++;
  if (strcmp(corio_server_req_path(req, NULL), "/now") == 0) {
    respond_str(req, 200, "now\n");
    return;
  }
  if (strcmp(corio_server_req_path(req, NULL), "/abort") == 0) {
    ASSERT_OK(corio_server_abort(req));
    return;
  }
  ASSERT(nkept < 4);
  kept[nkept++] = req;
}

static void on_gone(corio_server *s, corio_server_req *req, void *ud) {
  (void)ud;
  ASSERT(corio_server_req_server(req) == s);
  ASSERT(ngone < 4);
  gone_req[ngone++] = req;
}

static corio_server *start_keep_server(const corio_server_opts *o) {
  memset(&T, 0, sizeof T);
  nkept = ngone = 0;
  T.rt = corio_rt_new(NULL);
  ASSERT_NOT_NULL(T.rt);
  ASSERT_OK(corio_server_listen(T.rt, o, keep_handler, NULL, &T.srv));
  corio_server_on_disconnect(T.srv, on_gone);
  return T.srv;
}

/* Run the loop until `*flag` reaches `n` (bounded: 2 s). */
static void run_until(int *flag, int n) {
  uint64_t end = corio_rt_now(T.rt) + 2000;
  while (*flag < n && corio_rt_now(T.rt) < end) corio_rt_run(T.rt, UV_RUN_ONCE);
  ASSERT(*flag >= n);
}

/* The client resets while its request is held: the host is told once;
   answering afterwards is harmless. */
TEST_IMPL(disconnect_notified) {
  client cl = {0};
  corio_server_stats st;
  int r, port = corio_server_port(start_keep_server(NULL));
  cl.want = 0;
  client_start_s(&cl, port, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
  run_until(&nkept, 1);
  ASSERT_EQ(ngone, 0);
  client_reset(&cl);
  run_until(&ngone, 1);
  ASSERT(gone_req[0] == kept[0]);
  ASSERT_STR_EQ(corio_server_req_path(gone_req[0], NULL), "/held");
  ASSERT(corio_server_req_closed(kept[0]));
  corio_server_get_stats(T.srv, &st);
  ASSERT_EQ(st.inflight, 1);
  r = corio_server_respond(kept[0], 200, NULL, 0, "late", 4);
  ASSERT_EQ(r, CORIO_ECLOSED);
  corio_server_get_stats(T.srv, &st);
  ASSERT_EQ(st.inflight, 0);
  ASSERT_OK(corio_server_close(T.srv, 0, on_server_closed, NULL));
  ASSERT_OK(corio_rt_run(T.rt, UV_RUN_DEFAULT));
  ASSERT_EQ(ngone, 1);
  ASSERT_EQ(T.server_closed, 1);
  RT_FREE_CLEAN(T.rt);
  client_free(&cl);
}

/*
** A client that half-closes after its request (shutdown(SHUT_WR)) still
** waits for the answer, here given 500 ms later: the host is not told
** the client left, and the answer comes with "Connection: close", then
** the server's FIN.
*/
TEST_IMPL(half_close_still_answered) {
  client cl = {0};
  int port = corio_server_port(start_server(NULL));
  corio_server_on_disconnect(T.srv, on_gone);
  ngone = 0;
  cl.want = 0;
  cl.shut_after_send = 1;
  client_start_s(&cl, port, "GET /delay/500 HTTP/1.1\r\nHost: x\r\n\r\n");
  run_and_free();
  ASSERT(cl.shut);
  ASSERT_EQ(ngone, 0);
  ASSERT_EQ(T.nrespond_ret, 1);
  ASSERT_OK(T.respond_ret[0]);
  ASSERT_EQ(cl.nresp, 1);
  ASSERT_EQ(cl.status[0], 200);
  ASSERT_STR_EQ(cl.body[0], "late /delay/500?");
  ASSERT(strstr(cl.raw, "\r\nConnection: close\r\n") != NULL);
  ASSERT(cl.eof);
  client_free(&cl);
}

/* Pipelined requests, then the FIN: every one received is answered (all
   but the last keep the connection open), then the connection closes. */
TEST_IMPL(half_close_pipelined) {
  client cl = {0};
  const char *second;
  int port = corio_server_port(start_server(NULL));
  corio_server_on_disconnect(T.srv, on_gone);
  ngone = 0;
  cl.want = 0;
  cl.shut_after_send = 1;
  client_start_s(
      &cl, port,
      "GET /delay/100 HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo-late HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok");
  run_and_free();
  ASSERT_EQ(ngone, 0);
  ASSERT_EQ(T.nreq, 2);
  ASSERT_EQ(cl.nresp, 2);
  ASSERT_STR_EQ(cl.body[0], "late /delay/100?");
  ASSERT_STR_EQ(cl.body[1], "ok");
  second = strstr(cl.raw, "late /delay/100?");
  ASSERT_NOT_NULL(second);
  ASSERT(strstr(cl.raw, "Connection: close") > second); /* only the last */
  ASSERT(cl.eof);
  client_free(&cl);
}

/* A FIN in the middle of a request (its head, or its body cut short):
   nothing to answer, no handler runs, the connection just closes. */
TEST_IMPL(half_close_incomplete) {
  client a = {0}, b = {0};
  int port = corio_server_port(start_server(NULL));
  a.want = b.want = 0;
  a.shut_after_send = b.shut_after_send = 1;
  client_start_s(&a, port, "GET /x HTTP/1.1\r\nHost: x\r\n");
  client_start_s(
      &b, port,
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  run_and_free();
  ASSERT_EQ(T.nreq, 0);
  ASSERT_EQ(a.nresp, 0);
  ASSERT(a.eof);
  ASSERT_EQ(b.nresp, 0);
  ASSERT(b.eof);
  client_free(&a);
  client_free(&b);
}

/* corio_server_abort closes the connection without an answer; the server
   goes on serving the other clients. */
TEST_IMPL(abort_drops_connection) {
  client a = {0}, b = {0};
  int port = corio_server_port(start_keep_server(NULL));
  a.want = 0;
  b.want = 1;
  client_start_s(&a, port, "GET /abort HTTP/1.1\r\nHost: x\r\n\r\n");
  run_until(&a.closed, 1);
  ASSERT_EQ(a.nresp, 0);
  ASSERT(a.eof || a.read_err);
  client_start_s(&b, port, "GET /now HTTP/1.1\r\nHost: x\r\n\r\n");
  run_until(&b.closed, 1);
  ASSERT_EQ(b.nresp, 1);
  ASSERT_STR_EQ(b.body[0], "now\n");
  ASSERT_EQ(ngone, 0);
  ASSERT_OK(corio_server_close(T.srv, 0, on_server_closed, NULL));
  ASSERT_OK(corio_rt_run(T.rt, UV_RUN_DEFAULT));
  RT_FREE_CLEAN(T.rt);
  client_free(&a);
  client_free(&b);
}

/* corio_rt_free with one server still listening (a held request and an
   idle connection on it) and one closing gracefully with a long
   deadline: both are closed at once, the closing one's callback runs,
   and nothing leaks (ASan/valgrind check the held request). */
TEST_IMPL(rt_free_closes_servers) {
  client a = {0}, b = {0}, c = {0};
  corio_server *s2;
  corio_server_opts o;
  uint64_t t0;
  int port = corio_server_port(start_keep_server(NULL)), port2;
  corio_server_opts_init(&o);
  ASSERT_OK(corio_server_listen(T.rt, &o, keep_handler, NULL, &s2));
  corio_server_on_disconnect(s2, on_gone);
  port2 = corio_server_port(s2);
  a.want = b.want = c.want = 0;
  client_start_s(&a, port, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
  client_start_s(&b, port, NULL);
  client_start_s(&c, port2, "GET /held2 HTTP/1.1\r\nHost: x\r\n\r\n");
  run_until(&nkept, 2);
  ASSERT_OK(corio_server_close(s2, 60000, on_server_closed, NULL));
  /* the clients go too, or the owned loop could not close */
  client_close(&a);
  client_close(&b);
  client_close(&c);
  t0 = uv_hrtime();
  RT_FREE_CLEAN(T.rt);
  ASSERT((uv_hrtime() - t0) / 1000000 < 10000); /* not the 60 s deadline */
  ASSERT_EQ(T.server_closed, 1);
  ASSERT_EQ(ngone, 2);
  client_free(&a);
  client_free(&b);
  client_free(&c);
}

/* }================================================================== */

/*
** {==================================================================
** Streamed responses
** ===================================================================
*/

static int nwritten, nwrite_failed;

static void on_written(int status, void *ud) {
  (void)ud;
  if (status == 0)
    nwritten++;
  else
    nwrite_failed++;
}

/* the rest of /stream: "world", then the end, from a timer */
static void stream_rest(corio_timer *tm, void *ud) {
  corio_server_req *req = ud;
  (void)tm;
  if (corio_server_req_closed(req)) {
    ASSERT_EQ(corio_server_end(req), CORIO_ECLOSED);
    return;
  }
  ASSERT_OK(corio_server_write(req, "world", 5, on_written, NULL));
  ASSERT_OK(corio_server_write(req, "", 0, on_written, NULL)); /* no chunk */
  ASSERT_OK(corio_server_end(req));
  ASSERT_EQ(corio_server_end(req), CORIO_ESTATE);
}

static void stream_handler(corio_server *s, corio_server_req *req, void *ud) {
  static const corio_server_header h[] = {
      {"Content-Type", 12, "text/plain", 10}};
  corio_server_header bad = {"X-Bad", 5, "a\r\nb", 4};
  const char *path = corio_server_req_path(req, NULL);
  (void)s;
  (void)ud;
  T.nreq++;
  if (strncmp(path, "/stream", 7) != 0) {
    respond_str(req, 200, "now\n");
    return;
  }
  ASSERT_EQ(corio_server_write(req, "x", 1, NULL, NULL), CORIO_ESTATE);
  ASSERT_EQ(corio_server_stream(req, 200, &bad, 1), CORIO_EINVAL);
  ASSERT_OK(corio_server_stream(req, 200, h, 1));
  ASSERT_EQ(corio_server_stream(req, 200, h, 1), CORIO_ESTATE);
  ASSERT_EQ(corio_server_respond(req, 200, NULL, 0, "x", 1), CORIO_ESTATE);
  ASSERT_OK(corio_server_write(req, "hello ", 6, on_written, NULL));
  /* /stream-slow: the rest comes late enough for the client to leave */
  ASSERT_NOT_NULL(corio_timer_start(
      T.rt, strcmp(path, "/stream-slow") == 0 ? 1000 : 30, stream_rest, req));
}

static corio_server *start_stream_server(void) {
  memset(&T, 0, sizeof T);
  nwritten = nwrite_failed = 0;
  T.rt = corio_rt_new(NULL);
  ASSERT_NOT_NULL(T.rt);
  ASSERT_OK(corio_server_listen(T.rt, NULL, stream_handler, NULL, &T.srv));
  T.close_server_when_done = 1;
  return T.srv;
}

/* Chunked body, and the connection goes on with the next request. */
TEST_IMPL(stream_chunked) {
  client cl = {0};
  int port = corio_server_port(start_stream_server());
  cl.want = 2;
  client_start_s(&cl, port,
                 "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /now HTTP/1.1\r\nHost: x\r\n\r\n");
  run_and_free();
  ASSERT_EQ(cl.nresp, 2);
  ASSERT_EQ(cl.status[0], 200);
  ASSERT_STR_EQ(cl.body[0], "hello world");
  ASSERT_STR_EQ(cl.body[1], "now\n");
  ASSERT(strstr(cl.raw, "\r\nTransfer-Encoding: chunked\r\n") != NULL);
  ASSERT(strstr(cl.raw, "\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n") != NULL);
  ASSERT(strstr(cl.raw, "Content-Length: 11") == NULL);
  /* "hello " was out before the end; the end dropped the other two */
  ASSERT_EQ(nwritten, 1);
  ASSERT_EQ(nwrite_failed, 0);
  client_free(&cl);
}

/* HTTP/1.0: no chunks, the end of the body is the close.  HEAD: no body
   at all, and the connection stays open. */
TEST_IMPL(stream_http10_and_head) {
  client a = {0}, b = {0};
  int port = corio_server_port(start_stream_server());
  a.want = 0;
  client_start_s(&a, port, "GET /stream HTTP/1.0\r\n\r\n");
  b.want = 2;
  b.head_mask = 1;
  client_start_s(&b, port,
                 "HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /now HTTP/1.1\r\nHost: x\r\n\r\n");
  run_and_free();
  ASSERT(a.eof);
  ASSERT(strstr(a.raw, "\r\n\r\nhello world") != NULL);
  ASSERT(strstr(a.raw, "Transfer-Encoding") == NULL);
  ASSERT(strstr(a.raw, "\r\nConnection: close\r\n") != NULL);
  ASSERT_EQ(b.nresp, 2);
  ASSERT(strstr(b.raw, "hello") == NULL);
  ASSERT_STR_EQ(b.body[1], "now\n");
  client_free(&a);
  client_free(&b);
}

/* The client resets in the middle: the host is told, and ending the
   request gives it back. */
TEST_IMPL(stream_client_leaves) {
  client cl = {0};
  int port = corio_server_port(start_stream_server());
  corio_server_on_disconnect(T.srv, on_gone);
  ngone = 0;
  T.close_server_when_done = 0;
  cl.want = 0;
  cl.on_response = NULL;
  client_start_s(&cl, port, "GET /stream-slow HTTP/1.1\r\nHost: x\r\n\r\n");
  run_until(&T.nreq, 1);
  client_reset(&cl);
  run_until(&ngone, 1);
  run_until(&nwritten, 1); /* "hello " went before */
  ASSERT_NOT_NULL(corio_timer_start(T.rt, 100, close_server, NULL));
  ASSERT_OK(corio_rt_run(T.rt, UV_RUN_DEFAULT));
  ASSERT_EQ(T.server_closed, 1);
  RT_FREE_CLEAN(T.rt);
  client_free(&cl);
}

/* }================================================================== */

/*
** {==================================================================
** Benchmark server
** ===================================================================
*/

static void bench_late(corio_timer *tm, void *ud) {
  static const corio_server_header h[] = {
      {"Content-Type", 12, "text/plain", 10}};
  (void)tm;
  corio_server_respond(ud, 200, h, 1, "hello world\n", 12);
}

static void bench_handler(corio_server *s, corio_server_req *req, void *ud) {
  static const corio_server_header h[] = {
      {"Content-Type", 12, "text/plain", 10}};
  (void)s;
  if (ud != NULL) /* --async: answer from the next loop turn */
    corio_timer_start(corio_server_rt(s), 0, bench_late, req);
  else
    corio_server_respond(req, 200, h, 1, "hello world\n", 12);
}

static int bench_serve(int port, int async) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_server_opts o;
  corio_server *s;
  int r;
  corio_server_opts_init(&o);
  o.port = port;
  signal(SIGPIPE, SIG_IGN);
  r = corio_server_listen(rt, &o, bench_handler, async ? (void *)1 : NULL, &s);
  if (r != 0) {
    fprintf(stderr, "listen: %s\n", corio_strerror(r));
    return 1;
  }
  printf("serving on 127.0.0.1:%d\n", corio_server_port(s));
  fflush(stdout);
  corio_rt_run(rt, UV_RUN_DEFAULT);
  return 0;
}

/* }================================================================== */

int main(int argc, char **argv) {
  /* clang-format off */
  static const test_entry tests[] = {
      TEST_ENTRY(simple_get)
      TEST_ENTRY(keep_alive_sequential)
      TEST_ENTRY(pipelined_in_order)
      TEST_ENTRY(post_content_length)
      TEST_ENTRY(post_chunked)
      TEST_ENTRY(bad_request_line)
      TEST_ENTRY(empty_target_span)
      TEST_ENTRY(absolute_form_refused)
      TEST_ENTRY(header_too_large)
      TEST_ENTRY(head_limit_follows_option)
      TEST_ENTRY(body_too_large)
      TEST_ENTRY(bad_chunked_body)
      TEST_ENTRY(body_timeout)
      TEST_ENTRY(slowloris_cut)
      TEST_ENTRY(max_inflight_overload)
      TEST_ENTRY(graceful_close)
      TEST_ENTRY(close_deadline_cuts)
      TEST_ENTRY(client_leaves_early)
      TEST_ENTRY(pipelined_flood)
      TEST_ENTRY(big_response)
      TEST_ENTRY(declared_length_not_reserved)
      TEST_ENTRY(body_arrives_in_pieces)
      TEST_ENTRY(write_timeout)
      TEST_ENTRY(many_idle_connections)
      TEST_ENTRY(path_query_headers)
      TEST_ENTRY(head_and_http10)
      TEST_ENTRY(expect_continue_and_bad_header)
      TEST_ENTRY(idle_timeout_and_max_connections)
      TEST_ENTRY(listen_errors)
      TEST_ENTRY(real_curl)
      TEST_ENTRY(disconnect_notified)
      TEST_ENTRY(half_close_still_answered)
      TEST_ENTRY(half_close_pipelined)
      TEST_ENTRY(half_close_incomplete)
      TEST_ENTRY(abort_drops_connection)
      TEST_ENTRY(rt_free_closes_servers)
      TEST_ENTRY(stream_chunked)
      TEST_ENTRY(stream_http10_and_head)
      TEST_ENTRY(stream_client_leaves)
  };
  /* clang-format on */
  if (argc >= 3 && strcmp(argv[1], "--bench-serve") == 0)
    return bench_serve(atoi(argv[2]), argc >= 4 && !strcmp(argv[3], "--async"));
  return run_tests(tests, sizeof tests / sizeof tests[0], argc, argv);
}
