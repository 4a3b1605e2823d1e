/*
** test-fetch.c: the HTTP client against a private loopback nginx
** (tests/support/nginx.sh, started once per program, stopped at exit by
** PID), plus a raw libuv TCP server for a body cut short.  Every error code
** is produced for real; cancellation is tried in each phase.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "task.h"

/*
** {==================================================================
** The nginx server
** ===================================================================
*/

static char ngx_base[64]; /* "http://127.0.0.1:PORT" */
static char ngx_dir[256]; /* its state directory */
static int ngx_port, ngx_tls_port;
static volatile pid_t ngx_pid;

/* A loopback port nobody listens on right now. */
static int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;
  ASSERT(fd >= 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
  ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static const char *support_dir(void) {
  const char *d = getenv("CORIO_TEST_SUPPORT");
  return d != NULL ? d : "tests/support";
}

static void ngx_stop(void) {
  char cmd[1024];
  if (ngx_pid <= 0) return;
  snprintf(cmd, sizeof cmd, "'%s/nginx.sh' stop %d '%s' >/dev/null",
           support_dir(), ngx_port, ngx_dir);
  if (system(cmd) != 0) kill(ngx_pid, SIGTERM);
  ngx_pid = 0;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", ngx_dir); /* the state dir */
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", ngx_dir);
}

/* A failed ASSERT aborts, a timeout terminates, a user interrupts, a bug
   crashes: stop nginx by PID on the way out, then let the signal do what
   it did before (the sanitizer's report of a crash, say). */
static const int fatal_signals[] = {SIGABRT, SIGSEGV, SIGFPE,
                                    SIGBUS,  SIGTERM, SIGINT};
#define NFATAL (sizeof fatal_signals / sizeof fatal_signals[0])
static struct sigaction fatal_before[NFATAL];

static void on_abort(int sig) {
  size_t i;
  if (ngx_pid > 0) kill(ngx_pid, SIGQUIT);
  for (i = 0; i < NFATAL; i++)
    if (fatal_signals[i] == sig) sigaction(sig, &fatal_before[i], NULL);
  raise(sig);
}

static void stop_nginx_on_fatal_signals(void) {
  struct sigaction sa;
  size_t i;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_abort;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < NFATAL; i++)
    sigaction(fatal_signals[i], &sa, &fatal_before[i]);
}

static const char *base(void) {
  char cmd[1024], line[256];
  FILE *p;
  int attempt, pid = 0;
  if (ngx_pid > 0) return ngx_base;
  /* loopback only: a proxy from the environment must not get in the way */
  unsetenv("http_proxy");
  unsetenv("HTTP_PROXY");
  unsetenv("https_proxy");
  unsetenv("HTTPS_PROXY");
  unsetenv("all_proxy");
  unsetenv("ALL_PROXY");
  for (attempt = 0; attempt < 5 && pid <= 0; attempt++) {
    ngx_port = free_port();
    ngx_tls_port = free_port();
    snprintf(ngx_dir, sizeof ngx_dir, "%s/corio-test-fetch-%d-%d",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid(),
             ngx_port);
    snprintf(cmd, sizeof cmd, "'%s/nginx.sh' start %d '%s' %d", support_dir(),
             ngx_port, ngx_dir, ngx_tls_port);
    p = popen(cmd, "r");
    ASSERT_NOT_NULL(p);
    while (fgets(line, sizeof line, p) != NULL)
      if (sscanf(line, "pid %d", &pid) == 1) break;
    while (fgets(line, sizeof line, p) != NULL) continue;
    if (pclose(p) != 0) pid = 0;
  }
  ASSERT(pid > 0);
  ngx_pid = pid;
  stop_nginx_on_fatal_signals();
  atexit(ngx_stop);
  snprintf(ngx_base, sizeof ngx_base, "http://127.0.0.1:%d", ngx_port);
  return ngx_base;
}

/* base() + path in `buf` (256 bytes). */
static char *mkurl(char *buf, const char *path) {
  snprintf(buf, 256, "%s%s", base(), path);
  return buf;
}

/* }================================================================== */

/*
** {==================================================================
** Helpers
** ===================================================================
*/

#define MAXH 32

/* What one callback saw, copied out of the borrowed response. */
typedef struct {
  int called;
  int status;
  long http;
  char *body;
  size_t body_len;
  size_t nheaders;
  char hname[MAXH][64], hvalue[MAXH][128];
  char url[256];
  char version[8];
  char error[256];
  corio_fetch_timing timing;
  corio_fetch *f;
  double done_at;
} result;

static void record(corio_fetch *f, int status, const corio_response *res,
                   void *ud) {
  result *r = ud;
  size_t i;
  ASSERT_NOT_NULL(res);
  ASSERT_NOT_NULL(res->body);
  ASSERT_EQ(res->body[res->body_len], '\0');
  if (r->f != NULL) ASSERT(r->f == f);
  r->called++;
  r->status = status;
  r->http = res->status;
  free(r->body);
  r->body = malloc(res->body_len + 1);
  memcpy(r->body, res->body, res->body_len + 1);
  r->body_len = res->body_len;
  r->nheaders = res->nheaders;
  for (i = 0; i < res->nheaders && i < MAXH; i++) {
    snprintf(r->hname[i], sizeof r->hname[i], "%s", res->headers[i].name);
    snprintf(r->hvalue[i], sizeof r->hvalue[i], "%s", res->headers[i].value);
  }
  snprintf(r->url, sizeof r->url, "%s", res->url);
  snprintf(r->version, sizeof r->version, "%s", res->http_version);
  snprintf(r->error, sizeof r->error, "%s", res->error ? res->error : "");
  r->timing = res->timing;
  r->done_at = (double)uv_hrtime() / 1e9;
  if (status != 0)
    ASSERT_NOT_NULL(res->error);
  else
    ASSERT(res->error == NULL);
}

static void result_clear(result *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}

/* The value of the first header named `name`, or NULL. */
static const char *header(const result *r, const char *name) {
  size_t i;
  for (i = 0; i < r->nheaders && i < MAXH; i++)
    if (strcasecmp(r->hname[i], name) == 0) return r->hvalue[i];
  return NULL;
}

static double now(void) {
  return (double)uv_hrtime() / 1e9;
}

/* Run one request on its own runtime; returns the callback's status. */
static int fetch1(const corio_request *req, result *r) {
  corio_rt *rt = corio_rt_new(NULL);
  ASSERT_NOT_NULL(rt);
  memset(r, 0, sizeof *r);
  ASSERT_OK(corio_fetch_start(rt, NULL, req, record, r, &r->f));
  ASSERT_NOT_NULL(r->f);
  ASSERT_EQ(r->called, 0); /* never from inside start */
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(r->called, 1);
  ASSERT_OK(corio_rt_free(rt));
  return r->status;
}

static int get(const char *path, result *r) {
  char u[256];
  corio_request req;
  corio_request_init(&req, mkurl(u, path));
  return fetch1(&req, r);
}

/* }================================================================== */

/*
** {==================================================================
** Responses
** ===================================================================
*/

static void check_bytes(const char *path, size_t len, char c) {
  result r;
  size_t i;
  char cl[32];
  ASSERT_OK(get(path, &r));
  ASSERT_EQ(r.http, 200);
  ASSERT_EQ(r.body_len, len);
  for (i = 0; i < len; i++)
    if (r.body[i] != c) ASSERT(0 && "body differs");
  snprintf(cl, sizeof cl, "%zu", len);
  ASSERT_NOT_NULL(header(&r, "Content-Length"));
  ASSERT_STR_EQ(header(&r, "Content-Length"), cl);
  ASSERT_STR_EQ(r.version, "1.1");
  ASSERT(strstr(r.url, path) != NULL);
  ASSERT(r.timing.total > 0);
  ASSERT(r.timing.ttfb <= r.timing.total);
  ASSERT(r.timing.dns >= 0 && r.timing.connect >= 0 && r.timing.tls == 0);
  result_clear(&r);
}

TEST_IMPL(bodies) {
  check_bytes("/bytes/0", 0, 0);
  check_bytes("/bytes/1k", 1024, 'a');
  check_bytes("/bytes/100k", 102400, 'b');
  check_bytes("/bytes/1m", 1048576, 'c');
}

TEST_IMPL(headers) {
  result r;
  char u[256];
  corio_request req;
  corio_header h[2] = {{"X-Test", "hello there"}, {"Accept", "text/plain"}};
  size_t i, a = 0, b = 0;
  corio_request_init(&req, mkurl(u, "/headers"));
  req.headers = h;
  req.nheaders = 2;
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.http, 200);
  ASSERT_STR_EQ(r.body, "hello there");
  ASSERT_STR_EQ(header(&r, "x-reply"), "yes");
  ASSERT_STR_EQ(header(&r, "Content-Type"), "text/plain");
  /* repeated fields stay separate, in order */
  for (i = 0; i < r.nheaders; i++) {
    if (strcmp(r.hname[i], "Set-Cookie") != 0) continue;
    if (strcmp(r.hvalue[i], "a=1") == 0) a = i + 1;
    if (strcmp(r.hvalue[i], "b=2") == 0) b = i + 1;
  }
  ASSERT(a > 0 && b == a + 1);
  ASSERT_STR_EQ(r.hname[0], "Server"); /* raw names, first field first */
  result_clear(&r);
}

TEST_IMPL(post_echo) {
  result r;
  char u[256], body[5000];
  corio_request req;
  size_t i;
  for (i = 0; i < sizeof body; i++) body[i] = (char)(i * 7 % 256); /* NULs */
  corio_request_init(&req, mkurl(u, "/echo"));
  req.body = body;
  req.body_len = sizeof body;
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.http, 200);
  ASSERT_EQ(r.body_len, sizeof body);
  ASSERT_OK(memcmp(r.body, body, sizeof body));
  result_clear(&r);
  /* empty POST, methods */
  req.body = "";
  req.body_len = 0;
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.body_len, 0);
  result_clear(&r);
  corio_request_init(&req, mkurl(u, "/method"));
  req.method = "PATCH";
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_STR_EQ(r.body, "PATCH");
  result_clear(&r);
  req.method = NULL;
  req.body = "x";
  req.body_len = 1;
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_STR_EQ(r.body, "POST");
  result_clear(&r);
  corio_request_init(&req, mkurl(u, "/bytes/1k"));
  req.method = "HEAD";
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.http, 200);
  ASSERT_EQ(r.body_len, 0);
  ASSERT_STR_EQ(header(&r, "Content-Length"), "1024");
  result_clear(&r);
}

TEST_IMPL(status_codes) {
  result r;
  ASSERT_OK(get("/status/404", &r));
  ASSERT_EQ(r.http, 404);
  ASSERT_STR_EQ(r.body, "not found\n");
  result_clear(&r);
  ASSERT_OK(get("/status/502", &r));
  ASSERT_EQ(r.http, 502);
  result_clear(&r);
}

TEST_IMPL(redirects) {
  result r;
  char u[256];
  corio_request req;
  ASSERT_OK(get("/redirect/3", &r));
  ASSERT_EQ(r.http, 200);
  ASSERT_STR_EQ(r.body, "hello world\n");
  ASSERT(strstr(r.url, "/hello") != NULL);
  ASSERT(header(&r, "Location") == NULL); /* only the last response's */
  result_clear(&r);
  /* the default limit is 10 */
  ASSERT_OK(get("/redirect/10", &r));
  result_clear(&r);
  ASSERT_EQ(get("/redirect/11", &r), CORIO_EPROTO);
  ASSERT(strstr(r.error, "edirect") != NULL);
  result_clear(&r);
  corio_request_init(&req, mkurl(u, "/redirect/3"));
  req.max_redirects = 2;
  ASSERT_EQ(fetch1(&req, &r), CORIO_EPROTO);
  result_clear(&r);
  req.follow_redirects = 0;
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.http, 302);
  ASSERT_STR_EQ(header(&r, "Location"), "/redirect/2");
  result_clear(&r);
}

/* }================================================================== */

/*
** {==================================================================
** Errors, for real
** ===================================================================
*/

TEST_IMPL(err_connect) {
  result r;
  char u[64];
  corio_request req;
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", free_port());
  corio_request_init(&req, u);
  ASSERT_EQ(fetch1(&req, &r), CORIO_ECONNECT);
  ASSERT_EQ(r.http, 0);
  result_clear(&r);
}

TEST_IMPL(err_dns) {
  result r;
  corio_request req;
  corio_request_init(&req, "http://no-such-host.invalid/");
  ASSERT_EQ(fetch1(&req, &r), CORIO_EDNS);
  result_clear(&r);
}

TEST_IMPL(err_timeout) {
  result r;
  char u[256];
  corio_request req;
  double t0 = now();
  corio_request_init(&req, mkurl(u, "/delay/3000"));
  req.timeout = 0.5;
  ASSERT_EQ(fetch1(&req, &r), CORIO_ETIMEDOUT);
  ASSERT(now() - t0 < 2.0);
  ASSERT(now() - t0 >= 0.45);
  result_clear(&r);
}

TEST_IMPL(err_redirect_scheme) {
  result r;
  ASSERT_EQ(get("/redirect-file", &r), CORIO_ESCHEME);
  ASSERT(strstr(r.body, "root:") == NULL);
  result_clear(&r);
}

TEST_IMPL(err_too_large) {
  result r;
  char u[256];
  corio_request req;
  corio_request_init(&req, mkurl(u, "/bytes/100k"));
  req.max_body = 1000; /* known length */
  ASSERT_EQ(fetch1(&req, &r), CORIO_ETOOLARGE);
  result_clear(&r);
  corio_request_init(&req, mkurl(u, "/chunked"));
  req.max_body = 100000; /* unknown length: the write callback stops it */
  ASSERT_EQ(fetch1(&req, &r), CORIO_ETOOLARGE);
  ASSERT(r.body_len <= 100000);
  result_clear(&r);
  ASSERT_OK(get("/chunked", &r));
  ASSERT_EQ(r.body_len, 1000000);
  ASSERT(header(&r, "Content-Length") == NULL);
  result_clear(&r);
  corio_request_init(&req, mkurl(u, "/bytes/1k"));
  req.max_body = 1024; /* exactly the limit is fine */
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.body_len, 1024);
  result_clear(&r);
}

/* A raw server: answers any request with Content-Length: 1000, sends 10
   bytes and closes. */
typedef struct {
  uv_tcp_t server;
  uv_tcp_t client;
  uv_write_t wr;
  int port;
  int accepted;
} short_server;

static void on_ss_closed(uv_handle_t *h) {
  (void)h;
}

static void ss_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf) {
  static char mem[4096];
  (void)h;
  (void)n;
  *buf = uv_buf_init(mem, sizeof mem);
}

static void ss_written(uv_write_t *w, int status) {
  short_server *ss = w->data;
  (void)status;
  uv_close((uv_handle_t *)&ss->client, on_ss_closed);
}

static void ss_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  short_server *ss = s->data;
  static char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
                        "Content-Type: text/plain\r\n\r\n0123456789";
  uv_buf_t b = uv_buf_init(reply, sizeof reply - 1);
  (void)buf;
  if (n <= 0) return;
  uv_read_stop(s);
  ss->wr.data = ss;
  ASSERT_OK(uv_write(&ss->wr, s, &b, 1, ss_written));
}

static void ss_connection(uv_stream_t *server, int status) {
  short_server *ss = server->data;
  ASSERT_OK(status);
  ASSERT_OK(uv_tcp_init(server->loop, &ss->client));
  ASSERT_OK(uv_accept(server, (uv_stream_t *)&ss->client));
  ss->client.data = ss;
  ss->accepted++;
  ASSERT_OK(uv_read_start((uv_stream_t *)&ss->client, ss_alloc, ss_read));
  uv_close((uv_handle_t *)&ss->server, on_ss_closed); /* one is enough */
}

TEST_IMPL(err_reset) {
  corio_rt *rt = corio_rt_new(NULL);
  short_server ss;
  struct sockaddr_in a;
  int len = sizeof a;
  char u[64];
  corio_request req;
  result r;
  memset(&ss, 0, sizeof ss);
  memset(&r, 0, sizeof r);
  ASSERT_OK(uv_ip4_addr("127.0.0.1", 0, &a));
  ASSERT_OK(uv_tcp_init(corio_rt_loop(rt), &ss.server));
  ss.server.data = &ss;
  ASSERT_OK(uv_tcp_bind(&ss.server, (struct sockaddr *)&a, 0));
  ASSERT_OK(uv_tcp_getsockname(&ss.server, (struct sockaddr *)&a, &len));
  ASSERT_OK(uv_listen((uv_stream_t *)&ss.server, 8, ss_connection));
  snprintf(u, sizeof u, "http://127.0.0.1:%d/short", ntohs(a.sin_port));
  corio_request_init(&req, u);
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r, NULL));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(ss.accepted, 1);
  ASSERT_EQ(r.called, 1);
  ASSERT_EQ(r.status, CORIO_ERESET);
  ASSERT_EQ(r.http, 200);
  ASSERT_EQ(r.body_len, 10); /* what arrived; never a success */
  result_clear(&r);
  ASSERT_OK(corio_rt_free(rt));
}

static int calls;
static void count_call(corio_fetch *f, int status, const corio_response *res,
                       void *ud) {
  (void)f;
  (void)status;
  (void)res;
  (void)ud;
  calls++;
}

static int try_start(corio_rt *rt, const corio_request *req) {
  corio_fetch *f = (corio_fetch *)&f;
  int r = corio_fetch_start(rt, NULL, req, count_call, NULL, &f);
  if (r != 0) ASSERT(f == NULL);
  return r;
}

TEST_IMPL(sync_errors) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_request req;
  corio_response *res = (corio_response *)&req;
  corio_header crlf[1] = {{"X-Evil", "a\r\nInjected: 1"}};
  corio_header lf[1] = {{"X-Evil", "a\nb"}};
  corio_header badname[1] = {{"X Evil", "a"}};
  corio_header colon[1] = {{"X-Evil:", "a"}};
  corio_header nullv[1] = {{"X-Evil", NULL}};
  calls = 0;
  corio_request_init(&req, NULL);
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL);
  ASSERT_EQ(corio_fetch_start(rt, NULL, NULL, count_call, NULL, NULL),
            CORIO_EINVAL);
  req.url = "http://127.0.0.1:1/";
  ASSERT_EQ(corio_fetch_start(rt, NULL, &req, NULL, NULL, NULL), CORIO_EINVAL);
  /* URLs */
  req.url = "not a url";
  ASSERT_EQ(try_start(rt, &req), CORIO_EURL);
  req.url = "http://exa mple.com/";
  ASSERT_EQ(try_start(rt, &req), CORIO_EURL);
  req.url = "http://[::1/";
  ASSERT_EQ(try_start(rt, &req), CORIO_EURL);
  req.url = "http://example.com/\r\nX: y";
  ASSERT_EQ(try_start(rt, &req), CORIO_EURL);
  req.url = "http://example.com/a\nb";
  ASSERT_EQ(try_start(rt, &req), CORIO_EURL);
  req.url = "";
  ASSERT_EQ(try_start(rt, &req), CORIO_EURL);
  /* schemes */
  req.url = "gopher://127.0.0.1/";
  ASSERT_EQ(try_start(rt, &req), CORIO_ESCHEME);
  req.url = "file:///etc/passwd";
  ASSERT_EQ(try_start(rt, &req), CORIO_ESCHEME);
  req.url = "ftp://127.0.0.1/";
  ASSERT_EQ(try_start(rt, &req), CORIO_ESCHEME);
  req.url = "httpx://127.0.0.1/";
  ASSERT_EQ(try_start(rt, &req), CORIO_ESCHEME);
  /* headers and method */
  req.url = "http://127.0.0.1:1/";
  req.headers = crlf;
  req.nheaders = 1;
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL);
  req.headers = lf;
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL);
  req.headers = badname;
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL);
  req.headers = colon;
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL);
  req.headers = nullv;
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL);
  req.headers = NULL;
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL); /* nheaders 1 */
  req.nheaders = 0;
  req.method = "GET\r\nX: y";
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL);
  req.method = "";
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL);
  req.method = "GET";
  req.body_len = 3;
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL); /* body NULL */
  req.body_len = 0;
  req.http_version = 99;
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL);
  req.http_version = 0;
  req.max_redirects = -1;
  ASSERT_EQ(try_start(rt, &req), CORIO_EINVAL);
  /* the blocking twin refuses the same way */
  req.url = "gopher://127.0.0.1/";
  ASSERT_EQ(corio_fetch_blocking(&req, &res), CORIO_EINVAL);
  ASSERT(res == NULL);
  req.max_redirects = 3;
  ASSERT_EQ(corio_fetch_blocking(&req, &res), CORIO_ESCHEME);
  ASSERT(res == NULL);
  /* nothing ever calls back */
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(calls, 0);
  ASSERT_OK(corio_rt_free(rt));
  ASSERT_EQ(calls, 0);
}

/* }================================================================== */

/*
** {==================================================================
** Cancellation
** ===================================================================
*/

TEST_IMPL(cancel_right_after_start) {
  corio_rt *rt = corio_rt_new(NULL);
  result r[3];
  char u[256];
  corio_request req;
  corio_fetch_stats st;
  int i;
  double t0 = now();
  memset(r, 0, sizeof r);
  corio_request_init(&req, mkurl(u, "/delay/2000"));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r[0], &r[0].f));
  req.url = "http://no-such-host.invalid/"; /* cancelled while resolving */
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r[1], &r[1].f));
  req.url = "http://localhost:1/"; /* refused, but cancelled first */
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r[2], &r[2].f));
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.active, 3);
  for (i = 0; i < 3; i++) {
    ASSERT_OK(corio_fetch_cancel(r[i].f));
    ASSERT_EQ(r[i].called, 0); /* not from inside cancel */
    ASSERT_EQ(corio_fetch_cancel(r[i].f), CORIO_ESTATE);
  }
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.active, 0);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  for (i = 0; i < 3; i++) {
    ASSERT_EQ(r[i].called, 1);
    ASSERT_EQ(r[i].status, CORIO_ECANCELED);
    result_clear(&r[i]);
  }
  ASSERT(now() - t0 < 1.5);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.sockets, 0);
  ASSERT_OK(corio_rt_free(rt));
}

typedef struct {
  uv_timer_t timer;
  corio_fetch *f;
  int rc;
} canceller;

static void on_cancel_timer(uv_timer_t *t) {
  canceller *c = (canceller *)t;
  c->rc = corio_fetch_cancel(c->f);
  uv_close((uv_handle_t *)t, NULL);
}

/* Start `path`, cancel it `ms` later from a uv timer. */
static void cancel_after(const char *path, uint64_t ms) {
  corio_rt *rt = corio_rt_new(NULL);
  canceller c;
  result r;
  char u[256];
  corio_request req;
  corio_fetch_stats st;
  double t0 = now();
  memset(&r, 0, sizeof r);
  memset(&c, 0, sizeof c);
  corio_request_init(&req, mkurl(u, path));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r, &c.f));
  r.f = c.f;
  ASSERT_OK(uv_timer_init(corio_rt_loop(rt), &c.timer));
  ASSERT_OK(uv_timer_start(&c.timer, on_cancel_timer, ms, 0));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_OK(c.rc);
  ASSERT_EQ(r.called, 1);
  ASSERT_EQ(r.status, CORIO_ECANCELED);
  ASSERT(now() - t0 < 2.0);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.sockets, 0); /* the connection was closed */
  ASSERT_EQ(st.active, 0);
  result_clear(&r);
  ASSERT_OK(corio_rt_free(rt));
}

TEST_IMPL(cancel_waiting_headers) {
  cancel_after("/delay/3000", 100);
}

TEST_IMPL(cancel_during_body) {
  cancel_after("/slow", 300); /* "start\n" has arrived, "end\n" has not */
}

/* A callback that cancels another transfer and frees a session. */
typedef struct {
  corio_fetch *victim;
  corio_session *session;
  int rc_cancel, rc_free;
  result r;
} chain;

static void on_first(corio_fetch *f, int status, const corio_response *res,
                     void *ud) {
  chain *c = ud;
  record(f, status, res, &c->r);
  ASSERT_EQ(corio_fetch_cancel(f), CORIO_ESTATE); /* its own: too late */
  c->rc_cancel = corio_fetch_cancel(c->victim);
  c->rc_free = corio_session_free(c->session); /* its own session */
}

TEST_IMPL(cancel_from_callback) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_session *s = corio_session_new(rt, NULL);
  chain c;
  result victim, other;
  char u[256];
  corio_request req;
  corio_fetch_stats st;
  memset(&c, 0, sizeof c);
  memset(&victim, 0, sizeof victim);
  memset(&other, 0, sizeof other);
  ASSERT_NOT_NULL(s);
  corio_request_init(&req, mkurl(u, "/delay/3000"));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &victim, &c.victim));
  ASSERT_OK(corio_fetch_start(rt, s, &req, record, &other, NULL));
  req.url = mkurl(u, "/hello");
  c.session = s;
  ASSERT_OK(corio_fetch_start(rt, s, &req, on_first, &c, NULL));
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.sessions, 2);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_OK(c.r.status);
  ASSERT_STR_EQ(c.r.body, "hello world\n");
  ASSERT_OK(c.rc_cancel);
  ASSERT_OK(c.rc_free);
  ASSERT_EQ(victim.status, CORIO_ECANCELED);
  ASSERT_EQ(other.status, CORIO_ECANCELED);
  ASSERT_EQ(victim.called, 1);
  ASSERT_EQ(other.called, 1);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.sessions, 1);
  ASSERT_EQ(corio_session_free(corio_session_default(rt)), CORIO_EINVAL);
  result_clear(&c.r);
  result_clear(&victim);
  result_clear(&other);
  ASSERT_OK(corio_rt_free(rt));
}

/* corio_rt_free cancels what is still in flight, callbacks included; a
   callback cannot start anything new then. */
static corio_rt *closing_rt;
static int restart_rc;
static void on_shutdown_cb(corio_fetch *f, int status,
                           const corio_response *res, void *ud) {
  corio_request req;
  record(f, status, res, ud);
  corio_request_init(&req, "http://127.0.0.1:1/");
  restart_rc = corio_fetch_start(closing_rt, NULL, &req, record, ud, NULL);
}

TEST_IMPL(shutdown_cancels) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_session *s = corio_session_new(rt, NULL);
  result r[3];
  char u[256];
  corio_request req;
  int i;
  memset(r, 0, sizeof r);
  corio_request_init(&req, mkurl(u, "/delay/3000"));
  closing_rt = rt;
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_shutdown_cb, &r[0], NULL));
  ASSERT_OK(corio_fetch_start(rt, s, &req, record, &r[1], NULL));
  ASSERT_OK(corio_fetch_start(rt, s, &req, record, &r[2], &r[2].f));
  for (i = 0; i < 20; i++) corio_rt_run(rt, UV_RUN_NOWAIT); /* connect */
  ASSERT_OK(corio_fetch_cancel(r[2].f)); /* queued, not yet called */
  ASSERT_EQ(r[2].called, 0);
  ASSERT_OK(corio_rt_free(rt));
  ASSERT_EQ(restart_rc, CORIO_ECLOSED);
  for (i = 0; i < 3; i++) {
    ASSERT_EQ(r[i].called, 1);
    ASSERT_EQ(r[i].status, CORIO_ECANCELED);
    result_clear(&r[i]);
  }
}

/* }================================================================== */

/*
** {==================================================================
** Sessions, concurrency, reuse, descriptors
** ===================================================================
*/

typedef struct {
  int ok, failed, other;
  double last;
} tally;

static void on_tally(corio_fetch *f, int status, const corio_response *res,
                     void *ud) {
  tally *t = ud;
  (void)f;
  if (status != 0)
    t->failed++;
  else if (res->status == 200)
    t->ok++;
  else
    t->other++;
  t->last = now();
}

TEST_IMPL(session_limits) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_session_opts o = {2, 0, 0};
  corio_session *s = corio_session_new(rt, &o);
  tally t = {0, 0, 0, 0};
  char u[256];
  corio_request req;
  double t0 = now(), dt;
  int i;
  ASSERT_NOT_NULL(s);
  corio_session_set_data(s, &t);
  ASSERT(corio_session_get_data(s) == &t);
  corio_request_init(&req, mkurl(u, "/delay/300"));
  for (i = 0; i < 6; i++)
    ASSERT_OK(corio_fetch_start(rt, s, &req, on_tally, &t, NULL));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  dt = now() - t0;
  ASSERT_EQ(t.ok, 6);
  ASSERT(dt >= 0.85); /* three waves of two */
  ASSERT(dt < 3.0);
  ASSERT_OK(corio_session_free(s));
  ASSERT_OK(corio_rt_free(rt));
}

/* n concurrent GETs of path, each under the default session. */
static void concurrent(int n, const char *path, double min_s, double max_s) {
  corio_rt *rt = corio_rt_new(NULL);
  tally t = {0, 0, 0, 0};
  char u[256];
  corio_request req;
  double t0 = now(), dt;
  int i;
  corio_fetch_stats st;
  corio_request_init(&req, mkurl(u, path));
  for (i = 0; i < n; i++)
    ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL));
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.active, (size_t)n);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  dt = now() - t0;
  if (t.ok != n)
    fprintf(stderr, "ok %d failed %d other %d\n", t.ok, t.failed, t.other);
  ASSERT_EQ(t.ok, n);
  ASSERT(dt >= min_s);
  ASSERT(dt < max_s);
  fprintf(stderr, "  %d x %s: %.3f s\n", n, path, dt);
  ASSERT_OK(corio_rt_free(rt));
}

TEST_IMPL(concurrent_1000) {
  concurrent(1000, "/delay/500", 0.45, 20.0);
}

TEST_IMPL(concurrent_10000) {
  struct rlimit rl;
  struct rusage ru;
  if (getenv("CORIO_TEST_SKIP_10K") != NULL) return;
  ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
  if (rl.rlim_max < 11000) {
    fprintf(stderr, "  skipped: open-file limit %ld\n", (long)rl.rlim_max);
    return;
  }
  concurrent(10000, "/delay/1000", 0.95, 60.0);
  ASSERT_OK(getrusage(RUSAGE_SELF, &ru));
  fprintf(stderr, "  peak RSS %ld MiB\n", ru.ru_maxrss / 1024);
}

/* A chain of sequential requests: each callback starts the next one;
   the pooled object and the keep-alive connection are reused. */
typedef struct {
  corio_rt *rt;
  int left, ok;
  char url[256];
  corio_fetch_stats mid;
} seq;

static void on_seq(corio_fetch *f, int status, const corio_response *res,
                   void *ud) {
  seq *q = ud;
  corio_request req;
  (void)f;
  if (status == 0 && res->status == 200 && res->body_len == 1024) q->ok++;
  if (q->left == 10) corio_fetch_get_stats(q->rt, &q->mid);
  if (--q->left > 0) {
    corio_request_init(&req, q->url);
    ASSERT_OK(corio_fetch_start(q->rt, NULL, &req, on_seq, q, NULL));
  }
}

TEST_IMPL(sequential_reuse) {
  seq q;
  corio_request req;
  memset(&q, 0, sizeof q);
  q.rt = corio_rt_new(NULL);
  q.left = 50;
  mkurl(q.url, "/bytes/1k");
  corio_request_init(&req, q.url);
  ASSERT_OK(corio_fetch_start(q.rt, NULL, &req, on_seq, &q, NULL));
  ASSERT_OK(corio_rt_run(q.rt, UV_RUN_DEFAULT));
  ASSERT_EQ(q.ok, 50);
  ASSERT(q.mid.sockets <= 1);
  ASSERT_OK(corio_rt_free(q.rt));
}

TEST_IMPL(fds_back_to_baseline) {
  corio_rt *rt;
  tally t = {0, 0, 0, 0};
  char u[256];
  corio_request req;
  corio_session *s;
  int before, i;
  corio_fetch *f;
  result r;
  /* process-wide, once: nginx, libuv's signal lock pipe (first loop),
     libcurl's and OpenSSL's global init; then count */
  ASSERT_OK(get("/hello", &r));
  result_clear(&r);
  before = count_fds();
  rt = corio_rt_new(NULL);
  s = corio_session_new(rt, NULL);
  corio_request_init(&req, mkurl(u, "/bytes/100k"));
  for (i = 0; i < 20; i++)
    ASSERT_OK(
        corio_fetch_start(rt, i % 2 ? s : NULL, &req, on_tally, &t, NULL));
  req.url = "http://no-such-host.invalid/";
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL));
  req.url = mkurl(u, "/slow");
  ASSERT_OK(corio_fetch_start(rt, s, &req, on_tally, &t, &f));
  (void)corio_rt_run(rt, UV_RUN_ONCE);
  ASSERT_OK(corio_fetch_cancel(f));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(t.ok, 20);
  ASSERT_EQ(t.failed, 2);
  ASSERT(count_fds() > before); /* idle keep-alive connections */
  ASSERT_OK(corio_rt_free(rt));
  ASSERT_EQ(count_fds(), before);
}

TEST_IMPL(blocking) {
  char u[256];
  corio_request req;
  corio_response *res = NULL;
  corio_request_init(&req, mkurl(u, "/bytes/100k"));
  ASSERT_OK(corio_fetch_blocking(&req, &res));
  ASSERT_NOT_NULL(res);
  ASSERT_EQ(res->status, 200);
  ASSERT_EQ(res->body_len, 102400);
  ASSERT_EQ(res->body[0], 'b');
  ASSERT(res->error == NULL);
  corio_response_free(res);
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", free_port());
  corio_request_init(&req, u);
  ASSERT_EQ(corio_fetch_blocking(&req, &res), CORIO_ECONNECT);
  ASSERT_NOT_NULL(res);
  ASSERT_NOT_NULL(res->error);
  corio_response_free(res);
}

TEST_IMPL(tls_and_http2) {
  corio_rt *rt;
  result r;
  char u[256];
  corio_request req;
  tally t = {0, 0, 0, 0};
  int i;
  base();
  snprintf(u, sizeof u, "https://localhost:%d/hello", ngx_tls_port);
  corio_request_init(&req, u); /* self-signed: refused by default */
  ASSERT_EQ(fetch1(&req, &r), CORIO_ETLS);
  result_clear(&r);
  req.verify_tls = 0;
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.http, 200);
  ASSERT_STR_EQ(r.body, "hello world\n");
  ASSERT_STR_EQ(r.version, "2");
  ASSERT(r.timing.tls > 0);
  ASSERT_STR_EQ(r.hname[0], "server"); /* HTTP/2 names, as sent */
  result_clear(&r);
  req.http_version = CORIO_HTTP_1_1;
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_STR_EQ(r.version, "1.1");
  result_clear(&r);
  /* many streams at once, multiplexed */
  rt = corio_rt_new(NULL);
  req.http_version = CORIO_HTTP_DEFAULT;
  snprintf(u, sizeof u, "https://localhost:%d/delay/200", ngx_tls_port);
  for (i = 0; i < 50; i++)
    ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(t.ok, 50);
  ASSERT_OK(corio_rt_free(rt));
}

/* nginx also answers absolute-URI requests: a forward proxy for a host
   that does not even resolve */
TEST_IMPL(proxy) {
  result r;
  corio_request req;
  corio_request_init(&req, "http://proxied.invalid/hello");
  req.proxy = base();
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.http, 200);
  ASSERT_STR_EQ(r.body, "hello world\n");
  result_clear(&r);
  req.proxy = ""; /* none: the name must resolve now */
  ASSERT_EQ(fetch1(&req, &r), CORIO_EDNS);
  result_clear(&r);
}

/* Connection: close on every request: sockets (and fd numbers) come and go
   all the time, several per loop iteration. */
typedef struct {
  corio_rt *rt;
  int left, ok, failed;
  char url[256];
} churn;

static void on_churn(corio_fetch *f, int status, const corio_response *res,
                     void *ud) {
  churn *c = ud;
  corio_request req;
  corio_header h[1] = {{"Connection", "close"}};
  (void)f;
  if (status == 0 && res->status == 200)
    c->ok++;
  else
    c->failed++;
  if (c->left > 0) {
    c->left--;
    corio_request_init(&req, c->url);
    req.headers = h;
    req.nheaders = 1;
    ASSERT_OK(corio_fetch_start(c->rt, NULL, &req, on_churn, c, NULL));
  }
}

TEST_IMPL(fd_churn) {
  churn c;
  corio_request req;
  corio_header h[1] = {{"Connection", "close"}};
  corio_fetch_stats st;
  int i;
  memset(&c, 0, sizeof c);
  c.rt = corio_rt_new(NULL);
  c.left = 400;
  mkurl(c.url, "/hello");
  corio_request_init(&req, c.url);
  req.headers = h;
  req.nheaders = 1;
  for (i = 0; i < 20; i++)
    ASSERT_OK(corio_fetch_start(c.rt, NULL, &req, on_churn, &c, NULL));
  ASSERT_OK(corio_rt_run(c.rt, UV_RUN_DEFAULT));
  ASSERT_EQ(c.ok, 420);
  ASSERT_EQ(c.failed, 0);
  corio_fetch_get_stats(c.rt, &st);
  ASSERT_EQ(st.sockets, 0);
  ASSERT_OK(corio_rt_free(c.rt));
}

/* }================================================================== */

/*
** {==================================================================
** The machinery behind the speed: parked sockets, skipped reuse
** searches, buffers sized by the crowd, pooled buffers, URL cache
** ===================================================================
*/

/* n GETs of `path` at once in session `s` (NULL: the default one), run
   to the end. */
static void burst(corio_rt *rt, corio_session *s, const char *path, int n,
                  tally *t) {
  char u[256];
  corio_request req;
  int i;
  corio_request_init(&req, mkurl(u, path));
  for (i = 0; i < n; i++)
    ASSERT_OK(corio_fetch_start(rt, s, &req, on_tally, t, NULL));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
}

/* A burst opens one connection per transfer (no reuse search: nothing is
   idle); the next burst takes them all again and opens none.  (A session
   with max_idle: by default libcurl keeps 4 idle connections per transfer
   still in its multi, so the pool shrinks as the last transfers leave.) */
TEST_IMPL(idle_connections_reused) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_session_opts o = {0, 0, 64};
  corio_session *s = corio_session_new(rt, &o), *s2;
  tally t = {0, 0, 0, 0};
  corio_fetch_stats st;
  int fds;
  ASSERT_NOT_NULL(s);
  burst(rt, s, "/hello", 20, &t);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.idle, 20);
  ASSERT_EQ(st.sockets, 20); /* the idle ones are open */
  ASSERT_EQ(st.watched, 0);
  ASSERT_EQ(st.active, 0);
  fds = count_fds();
  burst(rt, s, "/hello", 20, &t);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.idle, 20);
  ASSERT_EQ(count_fds(), fds);
  /* another session has connections of its own, gone with it */
  s2 = corio_session_new(rt, &o);
  ASSERT_NOT_NULL(s2);
  burst(rt, s2, "/hello", 5, &t);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.idle, 25);
  ASSERT_OK(corio_session_free(s2));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.idle, 20);
  ASSERT_EQ(count_fds(), fds);
  /* the default session: at most as many as the burst */
  burst(rt, NULL, "/hello", 20, &t);
  corio_fetch_get_stats(rt, &st);
  ASSERT(st.idle > 20 && st.idle <= 40);
  ASSERT_EQ(t.ok, 65);
  ASSERT_OK(corio_session_free(s));
  ASSERT_OK(corio_rt_free(rt));
}

/*
** More transfers at once than one curl multi takes (512) spread over
** several, each with its own connection cache: all complete, every
** connection is kept, and the next burst and the common case (100 at
** once) reuse them without opening any.  A session with no limits freed
** with 1,200 in flight over its shards, some cancelled first, leaves no
** socket behind.
*/
TEST_IMPL(sharded_burst) {
  enum { N = 1200 };
  static corio_fetch *fs[N];
  corio_rt *rt;
  corio_session *s;
  tally t = {0, 0, 0, 0};
  corio_fetch_stats st;
  char u[256];
  corio_request req;
  int before, fds, i;
  result r;
  ASSERT_OK(get("/hello", &r)); /* process-wide fds first, as above */
  result_clear(&r);
  before = count_fds();
  rt = corio_rt_new(NULL);
  burst(rt, NULL, "/delay/200", N, &t);
  ASSERT_EQ(t.ok, N);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.idle, (size_t)N);
  ASSERT_EQ(st.sockets, (size_t)N);
  ASSERT_EQ(st.watched, 0);
  ASSERT_EQ(st.active, 0);
  fds = count_fds();
  burst(rt, NULL, "/delay/200", N, &t);
  ASSERT_EQ(t.ok, 2 * N);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.idle, (size_t)N);
  ASSERT_EQ(count_fds(), fds);
  burst(rt, NULL, "/hello", 100, &t);
  ASSERT_EQ(t.ok, 2 * N + 100);
  ASSERT_EQ(count_fds(), fds);
  s = corio_session_new(rt, NULL);
  ASSERT_NOT_NULL(s);
  corio_request_init(&req, mkurl(u, "/delay/2000"));
  for (i = 0; i < N; i++)
    ASSERT_OK(corio_fetch_start(rt, s, &req, on_tally, &t, &fs[i]));
  (void)corio_rt_run(rt, UV_RUN_ONCE);
  for (i = 0; i < N; i += 100) ASSERT_OK(corio_fetch_cancel(fs[i]));
  ASSERT_OK(corio_session_free(s));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(t.failed, N);
  ASSERT_EQ(t.ok, 2 * N + 100);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.active, 0);
  ASSERT_EQ(st.sessions, 1);
  ASSERT_EQ(st.sockets, st.idle); /* none of the freed session's is left */
  ASSERT_EQ(count_fds(), fds);
  ASSERT_OK(corio_rt_free(rt));
  ASSERT_EQ(count_fds(), before);
}

typedef struct {
  uv_prepare_t prep;
  uv_timer_t timer;
  int turns;
} waiter;

static void on_turn(uv_prepare_t *h) {
  ((waiter *)h->data)->turns++;
}

static void on_wait_over(uv_timer_t *h) {
  waiter *w = h->data;
  uv_prepare_stop(&w->prep);
  uv_close((uv_handle_t *)&w->prep, NULL);
  uv_close((uv_handle_t *)&w->timer, NULL);
}

/* Run the loop for `ms` doing nothing; returns how many turns it took. */
static int idle_wait(corio_rt *rt, uint64_t ms) {
  waiter w;
  memset(&w, 0, sizeof w);
  ASSERT_OK(uv_prepare_init(corio_rt_loop(rt), &w.prep));
  ASSERT_OK(uv_timer_init(corio_rt_loop(rt), &w.timer));
  w.prep.data = w.timer.data = &w;
  ASSERT_OK(uv_prepare_start(&w.prep, on_turn));
  ASSERT_OK(uv_timer_start(&w.timer, on_wait_over, ms, 0));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  return w.turns;
}

/* The server closes an idle connection: its parked poll hears the EOF and
   stops (no busy loop), and the next transfer gets a new connection. */
TEST_IMPL(idle_closed_by_server) {
  corio_rt *rt = corio_rt_new(NULL);
  tally t = {0, 0, 0, 0};
  corio_fetch_stats st;
  int fds;
  burst(rt, NULL, "/short-keepalive", 1, &t);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.idle, 1);
  fds = count_fds();
  ASSERT(idle_wait(rt, 600) < 20);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.idle, 1); /* libcurl has not looked at it yet */
  burst(rt, NULL, "/hello", 1, &t);
  ASSERT_EQ(t.ok, 2);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.idle, 1);
  ASSERT_EQ(st.sockets, 1);
  ASSERT_EQ(st.watched, 0);
  ASSERT_EQ(count_fds(), fds); /* the dead one closed, a new one open */
  ASSERT_OK(corio_rt_free(rt));
}

/*
** `sockets` counts the connections open, idle keep-alive ones included
** (libcurl keeps them open in its cache with nobody watching them); they
** are gone with their session, and with the runtime.
*/
TEST_IMPL(stats_count_idle_sockets) {
  corio_rt *rt;
  corio_session *s;
  tally t = {0, 0, 0, 0};
  corio_fetch_stats st;
  int before, fds;
  result r;
  ASSERT_OK(get("/hello", &r)); /* process-wide fds first */
  result_clear(&r);
  before = count_fds();
  rt = corio_rt_new(NULL);
  s = corio_session_new(rt, NULL);
  ASSERT_NOT_NULL(s);
  ASSERT_NOT_NULL(corio_session_default(rt));
  fds = count_fds(); /* the loop's, and each multi's wakeup pair */
  burst(rt, s, "/hello", 1, &t);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.active, 0);
  ASSERT_EQ(st.sockets, 1); /* idle, open */
  ASSERT_EQ(st.idle, 1);
  ASSERT_EQ(st.watched, 0);
  ASSERT_EQ(count_fds(), fds + 1);
  burst(rt, NULL, "/hello", 3, &t);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.sockets, 4);
  ASSERT_EQ(count_fds(), fds + 4);
  ASSERT_OK(corio_session_free(s));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.sockets, 3);
  ASSERT_EQ(count_fds(), fds + 3 - 2); /* its connection and its multi's */
  ASSERT_EQ(t.ok, 4);
  ASSERT_OK(corio_rt_free(rt));
  ASSERT_EQ(count_fds(), before);
}

static void check_body(const result *r, size_t len, const char *pattern) {
  size_t i, plen = strlen(pattern);
  ASSERT_OK(r->status);
  ASSERT_EQ(r->http, 200);
  ASSERT_EQ(r->body_len, len);
  for (i = 0; i < len; i++)
    if (r->body[i] != pattern[i % plen]) ASSERT(0 && "body differs");
}

/* Past 1000 transfers in flight, new ones get a 1 KiB receive buffer:
   big bodies still arrive whole. */
TEST_IMPL(crowd_small_buffers) {
  corio_rt *rt = corio_rt_new(NULL);
  tally t = {0, 0, 0, 0};
  result r[3];
  char u[256];
  corio_request req;
  int i;
  memset(r, 0, sizeof r);
  corio_request_init(&req, mkurl(u, "/delay/300"));
  for (i = 0; i < 1000; i++)
    ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL));
  req.url = mkurl(u, "/bytes/1m");
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r[0], NULL));
  req.url = mkurl(u, "/bytes/100k");
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r[1], NULL));
  req.url = mkurl(u, "/chunked");
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r[2], NULL));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(t.ok, 1000);
  check_body(&r[0], 1048576, "c");
  check_body(&r[1], 102400, "b");
  check_body(&r[2], 1000000, "0123456789");
  for (i = 0; i < 3; i++) result_clear(&r[i]);
  ASSERT_OK(corio_rt_free(rt));
}

/* More transfers at once than libcurl is handed in one turn: the rest wait
   in the admission queue.  Cancelling one there, or one handed over but
   not started, calls it back once; corio_rt_free cancels waiting ones. */
typedef struct {
  int called, status, cancelled;
  long http;
} slot;

static void on_slot(corio_fetch *f, int status, const corio_response *res,
                    void *ud) {
  slot *sl = ud;
  (void)f;
  sl->called++;
  sl->status = status;
  sl->http = res->status;
}

TEST_IMPL(admission_queue) {
  enum { N = 2500 };
  static slot sl[N];
  static corio_fetch *fs[N];
  corio_rt *rt;
  corio_fetch_stats st;
  struct rlimit rl;
  char u[256];
  corio_request req;
  int i;
  ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
  if (rl.rlim_max < 3000) {
    fprintf(stderr, "  skipped: open-file limit %ld\n", (long)rl.rlim_max);
    return;
  }
  rt = corio_rt_new(NULL);
  memset(sl, 0, sizeof sl);
  corio_request_init(&req, mkurl(u, "/delay/300"));
  for (i = 0; i < N; i++)
    ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_slot, &sl[i], &fs[i]));
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.active, (size_t)N);
  for (i = 0; i < N; i += 3) ASSERT_OK(corio_fetch_cancel(fs[i]));
  (void)corio_rt_run(rt, UV_RUN_ONCE);
  for (i = 1; i < N; i += 30) /* some started by now, some still waiting */
    if (sl[i].called == 0) {
      ASSERT_OK(corio_fetch_cancel(fs[i]));
      sl[i].cancelled = 1;
    }
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  for (i = 0; i < N; i++) {
    ASSERT_EQ(sl[i].called, 1);
    if (i % 3 == 0 || sl[i].cancelled)
      ASSERT_EQ(sl[i].status, CORIO_ECANCELED);
    else
      ASSERT(sl[i].status == 0 && sl[i].http == 200);
  }
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.active, 0);
  ASSERT_OK(corio_rt_free(rt));

  rt = corio_rt_new(NULL);
  memset(sl, 0, sizeof sl);
  for (i = 0; i < N; i++)
    ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_slot, &sl[i], NULL));
  (void)corio_rt_run(rt, UV_RUN_NOWAIT);
  ASSERT_OK(corio_rt_free(rt));
  for (i = 0; i < N; i++) {
    ASSERT_EQ(sl[i].called, 1);
    ASSERT_EQ(sl[i].status, CORIO_ECANCELED);
  }
}

/* One after the other, each started from the callback of the one before
   (whose object is pooled only when that callback returns): two pooled
   objects take turns, each with the body buffer, big or not, of the
   transfer before last.  An empty body is "" whatever the buffer held. */
typedef struct {
  corio_rt *rt;
  int i;
  result r;
} serial;

static const struct {
  const char *path;
  size_t len;
  const char *pattern;
} serial_steps[] = {
    {"/bytes/1m", 1048576, "c"},
    {"/bytes/0", 0, "-"},
    {"/bytes/100k", 102400, "b"},
    {"/bytes/1k", 1024, "a"},
    {"/chunked", 1000000, "0123456789"},
    {"/hello", 12, "hello world\n"},
    {"/bytes/1m", 1048576, "c"},
    {"/hello", 12, "hello world\n"},
    {"/bytes/0", 0, "-"}, /* in the buffer the 1 MiB left: still "" */
};

static void on_serial(corio_fetch *f, int status, const corio_response *res,
                      void *ud) {
  serial *q = ud;
  char u[256];
  corio_request req;
  record(f, status, res, &q->r);
  check_body(&q->r, serial_steps[q->i].len, serial_steps[q->i].pattern);
  if (++q->i < (int)(sizeof serial_steps / sizeof serial_steps[0])) {
    corio_request_init(&req, mkurl(u, serial_steps[q->i].path));
    ASSERT_OK(corio_fetch_start(q->rt, NULL, &req, on_serial, q, NULL));
  }
}

/* Run serial_steps on a new runtime; the pool's stats at the end. */
static corio_fetch_stats run_serial(void) {
  serial q;
  char u[256];
  corio_request req;
  corio_fetch_stats st;
  memset(&q, 0, sizeof q);
  q.rt = corio_rt_new(NULL);
  corio_request_init(&req, mkurl(u, serial_steps[0].path));
  ASSERT_OK(corio_fetch_start(q.rt, NULL, &req, on_serial, &q, NULL));
  ASSERT_OK(corio_rt_run(q.rt, UV_RUN_DEFAULT));
  ASSERT_EQ(q.i, (int)(sizeof serial_steps / sizeof serial_steps[0]));
  corio_fetch_get_stats(q.rt, &st);
  result_clear(&q.r);
  ASSERT_OK(corio_rt_free(q.rt));
  return st;
}

TEST_IMPL(pooled_buffers) {
  corio_fetch_stats st = run_serial();
  ASSERT_EQ(st.pooled, 2);
  /* the last two bodies: 1 MiB kept, 12 bytes within the small buffer */
  ASSERT(st.pooled_bytes >= 1048576 && st.pooled_bytes < 2 * 1048576);
}

/* A host whose allocator keeps freed memory asks for no body pool: the
   same transfers, the same bodies, no big buffer kept. */
TEST_IMPL(no_body_pool) {
  corio_fetch_stats st;
  corio_set_body_pool(0);
  st = run_serial();
  corio_set_body_pool(CORIO_BODY_POOL_DEFAULT);
  ASSERT_EQ(st.pooled, 2);
  ASSERT_EQ(st.pooled_bytes, 0);
}

/* Bodies received in the caller's blocks (body_alloc), kept without a
   copy (corio_fetch_take_body). */
#define HEADROOM 24

typedef struct {
  long blocks;  /* alive */
  size_t bytes; /* in them */
} counted;

static void *counted_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  counted *c = ud;
  void *p;
  if (nsize == 0) {
    if (ptr != NULL) {
      c->blocks--;
      c->bytes -= osize;
    }
    free(ptr);
    return NULL;
  }
  p = realloc(ptr, nsize);
  if (p == NULL) return NULL;
  if (ptr == NULL)
    c->blocks++;
  else
    c->bytes -= osize;
  c->bytes += nsize;
  return p;
}

typedef struct {
  int take; /* take the body's block? */
  int called, status;
  size_t len;
  char *block; /* the block taken, its size */
  size_t size;
  int taken_twice; /* a second take returned a block */
} kept;

static void on_kept(corio_fetch *f, int status, const corio_response *res,
                    void *ud) {
  kept *k = ud;
  size_t size;
  k->called++;
  k->status = status;
  k->len = res->body_len;
  if (!k->take) return;
  k->block = corio_fetch_take_body(f, &k->size);
  if (k->block != NULL) ASSERT(res->body == k->block + HEADROOM);
  k->taken_twice = corio_fetch_take_body(f, &size) != NULL;
}

/* Fetch `path` on `rt` with blocks from `c`; returns its status. */
static int fetch_kept(corio_rt *rt, const char *path, size_t max_body,
                      counted *c, kept *k) {
  char u[256];
  corio_request req;
  corio_fetch *f;
  size_t size;
  corio_request_init(&req, mkurl(u, path));
  req.max_body = max_body;
  req.body_alloc = counted_alloc;
  req.body_alloc_ud = c;
  req.body_offset = HEADROOM;
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_kept, k, &f));
  ASSERT(corio_fetch_take_body(f, &size) == NULL); /* not in the callback */
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(k->called, 1);
  ASSERT_EQ(k->taken_twice, 0);
  return k->status;
}

static void check_kept(const kept *k, size_t len, const char *pattern) {
  size_t i, plen = strlen(pattern);
  ASSERT_NOT_NULL(k->block);
  ASSERT_EQ(k->len, len);
  ASSERT(k->size >= HEADROOM + len + 1);
  for (i = 0; i < len; i++)
    if (k->block[HEADROOM + i] != pattern[i % plen]) ASSERT(0 && "differs");
  ASSERT_EQ(k->block[HEADROOM + len], '\0');
}

/* Cancel from a timer, counting blocks before and after. */
typedef struct {
  uv_timer_t timer;
  corio_fetch *f;
  counted *c;
  long before, after;
  int rc;
} body_canceller;

static void on_body_cancel(uv_timer_t *t) {
  body_canceller *bc = (body_canceller *)t;
  bc->before = bc->c->blocks;
  bc->rc = corio_fetch_cancel(bc->f);
  bc->after = bc->c->blocks;
  uv_close((uv_handle_t *)t, NULL);
}

TEST_IMPL(body_alloc) {
  corio_rt *rt = corio_rt_new(NULL);
  counted c = {0, 0};
  kept k;
  result r;
  body_canceller bc;
  char u[256];
  corio_request req;
  /* a known length is received in a block of exactly its size */
  memset(&k, 0, sizeof k);
  k.take = 1;
  ASSERT_OK(fetch_kept(rt, "/bytes/100k", 0, &c, &k));
  check_kept(&k, 102400, "b");
  ASSERT_EQ(k.size, HEADROOM + 102400 + 1);
  ASSERT_EQ(c.blocks, 1); /* the caller's now */
  ASSERT_EQ(c.bytes, k.size);
  (void)counted_alloc(&c, k.block, k.size, 0);
  /* an unknown length grows its block */
  memset(&k, 0, sizeof k);
  k.take = 1;
  ASSERT_OK(fetch_kept(rt, "/chunked", 0, &c, &k));
  check_kept(&k, 1000000, "0123456789");
  ASSERT_EQ(c.blocks, 1);
  (void)counted_alloc(&c, k.block, k.size, 0);
  /* not taken, failed, empty: the runtime frees it */
  memset(&k, 0, sizeof k);
  ASSERT_OK(fetch_kept(rt, "/bytes/1k", 0, &c, &k));
  ASSERT_EQ(k.len, 1024);
  ASSERT_EQ(c.blocks, 0);
  memset(&k, 0, sizeof k);
  k.take = 1;
  ASSERT_EQ(fetch_kept(rt, "/bytes/100k", 1000, &c, &k), CORIO_ETOOLARGE);
  ASSERT(k.block == NULL);
  ASSERT_EQ(c.blocks, 0);
  memset(&k, 0, sizeof k);
  k.take = 1;
  ASSERT_OK(fetch_kept(rt, "/bytes/0", 0, &c, &k));
  ASSERT(k.block == NULL);
  ASSERT_EQ(c.blocks, 0);
  /* cancelled: freed before corio_fetch_cancel returns */
  memset(&r, 0, sizeof r);
  memset(&bc, 0, sizeof bc);
  bc.c = &c;
  corio_request_init(&req, mkurl(u, "/slow")); /* "start\n", then a pause */
  req.body_alloc = counted_alloc;
  req.body_alloc_ud = &c;
  req.body_offset = HEADROOM;
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r, &bc.f));
  ASSERT_OK(uv_timer_init(corio_rt_loop(rt), &bc.timer));
  ASSERT_OK(uv_timer_start(&bc.timer, on_body_cancel, 300, 0));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_OK(bc.rc);
  ASSERT_EQ(bc.before, 1);
  ASSERT_EQ(bc.after, 0);
  ASSERT_EQ(r.status, CORIO_ECANCELED);
  result_clear(&r);
  /* a request without body_alloc has nothing to take */
  memset(&k, 0, sizeof k);
  k.take = 1;
  corio_request_init(&req, mkurl(u, "/bytes/1k"));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_kept, &k, NULL));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(k.len, 1024);
  ASSERT(k.block == NULL);
  ASSERT_OK(corio_rt_free(rt));
  ASSERT_EQ(c.blocks, 0);
  ASSERT_EQ(c.bytes, 0);
}

/*
** Out of memory (RELIABILITY fault 16), as curl's torture tests do it:
** corio's Nth allocation fails, for N = 1, 2, ... until a run needs no
** failure.  Each run either fetches the body whole or reports CORIO_ENOMEM
** (from corio_fetch_start or in the callback), frees its runtime, and
** gives back every descriptor; the sanitizer and valgrind runs check that
** nothing leaks.  (libcurl's and libuv's own allocations are not counted.)
*/
static long alloc_countdown = -1; /* fail when it reaches 0; -1: never */

static int alloc_fails(void) {
  if (alloc_countdown < 0) return 0;
  return alloc_countdown-- == 0;
}

static void *failing_malloc(size_t n) {
  return alloc_fails() ? NULL : malloc(n);
}

static void *failing_realloc(void *p, size_t n) {
  return alloc_fails() ? NULL : realloc(p, n);
}

/* One fetch on `rt` (session `s`, NULL: the default one): 0 with the body
   whole (`len` bytes of `pattern`), or CORIO_ENOMEM. */
static int fetch_or_nomem(corio_rt *rt, corio_session *s,
                          const corio_request *req, size_t len,
                          const char *pattern) {
  result r;
  int rc;
  memset(&r, 0, sizeof r);
  rc = corio_fetch_start(rt, s, req, record, &r, NULL);
  if (rc == 0) {
    ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
    ASSERT_EQ(r.called, 1);
    rc = r.status;
  }
  if (rc == 0)
    check_body(&r, len, pattern);
  else
    ASSERT_EQ(rc, CORIO_ENOMEM);
  result_clear(&r);
  return rc;
}

TEST_IMPL(out_of_memory) {
  char u[256], u2[256];
  corio_header h[1] = {{"X-Test", "torture"}};
  corio_request req, redir;
  result r;
  int before, n, failed = 0;
  ASSERT_OK(get("/hello", &r)); /* process-wide set-up first, as above */
  result_clear(&r);
  before = count_fds();
  /* a header and a body bigger than the pooled buffers; a redirect */
  corio_request_init(&req, mkurl(u, "/bytes/100k"));
  req.headers = h;
  req.nheaders = 1;
  corio_request_init(&redir, mkurl(u2, "/redirect/1"));
  ASSERT_OK(corio_replace_allocator(failing_malloc, failing_realloc, free));
  for (n = 0; n < 1000; n++) {
    corio_rt *rt;
    corio_session *s;
    alloc_countdown = n;
    rt = corio_rt_new(NULL);
    if (rt == NULL) {
      failed++;
      continue;
    }
    /* on the default session, twice (the second reuses the pooled
       transfer and the connection), then on a session of its own */
    if (fetch_or_nomem(rt, NULL, &req, 102400, "b") != 0) failed++;
    if (fetch_or_nomem(rt, NULL, &redir, 12, "hello world\n") != 0) failed++;
    s = corio_session_new(rt, NULL);
    if (s == NULL || fetch_or_nomem(rt, s, &req, 102400, "b") != 0) failed++;
    ASSERT_OK(corio_rt_free(rt));
    ASSERT_EQ(count_fds(), before);
    if (alloc_countdown >= 0) break; /* no allocation failed: all tried */
  }
  alloc_countdown = -1;
  ASSERT_OK(corio_replace_allocator(malloc, realloc, free));
  fprintf(stderr, "  %d allocations failed in turn; %d fetches out of memory\n",
          n, failed);
  ASSERT(n < 1000);
  ASSERT(failed > 0);
}

/* The last URL that parsed is not parsed again; others still are. */
TEST_IMPL(url_check_cache) {
  corio_rt *rt = corio_rt_new(NULL);
  tally t = {0, 0, 0, 0};
  char good[256], bad[300];
  corio_request req;
  mkurl(good, "/hello");
  corio_request_init(&req, good);
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL));
  snprintf(bad, sizeof bad, "%s/a b", good);
  req.url = bad;
  ASSERT_EQ(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL), CORIO_EURL);
  snprintf(bad, sizeof bad, "%s\n", good);
  ASSERT_EQ(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL), CORIO_EURL);
  snprintf(bad, sizeof bad, "http://[::1%s", good + 16);
  ASSERT_EQ(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL), CORIO_EURL);
  req.url = good;
  req.method = "GET\r\n"; /* the other checks still run */
  ASSERT_EQ(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL),
            CORIO_EINVAL);
  req.method = NULL;
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_tally, &t, NULL));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(t.ok, 3);
  ASSERT_EQ(t.failed + t.other, 0);
  ASSERT_OK(corio_rt_free(rt));
}

/* Sockets to the server are close-on-exec (processes.map forks). */
TEST_IMPL(sockets_cloexec) {
  corio_rt *rt = corio_rt_new(NULL);
  result r;
  char u[256];
  corio_request req;
  corio_fetch_stats st;
  DIR *d;
  struct dirent *e;
  int i, checked = 0;
  memset(&r, 0, sizeof r);
  corio_request_init(&req, mkurl(u, "/slow"));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r, &r.f));
  for (i = 0; i < 200; i++) {
    corio_fetch_get_stats(rt, &st);
    if (st.sockets > 0) break;
    (void)corio_rt_run(rt, UV_RUN_ONCE);
  }
  ASSERT_EQ(st.sockets, 1);
  d = opendir("/proc/self/fd");
  ASSERT_NOT_NULL(d);
  while ((e = readdir(d)) != NULL) {
    struct stat sb;
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = atoi(e->d_name);
    if (e->d_name[0] == '.' || fd == dirfd(d)) continue;
    if (fstat(fd, &sb) != 0 || !S_ISSOCK(sb.st_mode)) continue;
    if (getpeername(fd, (struct sockaddr *)&a, &len) != 0 ||
        a.sin_family != AF_INET || ntohs(a.sin_port) != ngx_port)
      continue;
    ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    checked++;
  }
  closedir(d);
  ASSERT_EQ(checked, 1);
  ASSERT_OK(corio_fetch_cancel(r.f));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(r.status, CORIO_ECANCELED);
  result_clear(&r);
  ASSERT_OK(corio_rt_free(rt));
}

TEST_IMPL(timing) {
  result r;
  ASSERT_OK(get("/delay/200", &r));
  ASSERT(r.timing.ttfb >= 0.19);
  ASSERT(r.timing.total >= r.timing.ttfb);
  ASSERT(r.timing.total < 1.0);
  ASSERT_STR_EQ(r.body, "delayed\n");
  result_clear(&r);
}

/* }================================================================== */

/*
** {==================================================================
** A hostile server: raw responses from a thread, so that
** corio_fetch_blocking can be tried against it too
** ===================================================================
*/

#define RAW_CLIENTS 16

/* Answers each request by its path: "/fold" gets a response whose first
   field line is an obs-fold continuation (nothing to continue), anything
   else a 200 with a few fields.  Keeps connections open. */
typedef struct {
  int lfd, port;
  int stop[2]; /* a byte on stop[1] ends the thread */
  pthread_t thread;
  int fd[RAW_CLIENTS];
  char buf[RAW_CLIENTS][2048];
  size_t len[RAW_CLIENTS];
  int accepted, served; /* read by the test after the thread ended */
} raw_server;

static const char raw_ok[] = "HTTP/1.1 200 OK\r\nX-First: any value\r\n"
                             "Content-Length: 2\r\n\r\nok";
static const char raw_hop[] = "HTTP/1.1 302 Found\r\nLocation: /fold\r\n"
                              "Content-Length: 0\r\n\r\n";
static const char raw_fold[] = "HTTP/1.1 302 Found\r\n Location: /r\r\n"
                               "Content-Length: 0\r\n\r\n";

static void raw_drop(raw_server *rs, int i) {
  close(rs->fd[i]);
  rs->fd[i] = -1;
  rs->len[i] = 0;
}

/* Serve every complete request in client i's buffer. */
static void raw_serve(raw_server *rs, int i) {
  char *end;
  while ((end = strstr(rs->buf[i], "\r\n\r\n")) != NULL) {
    size_t used = (size_t)(end + 4 - rs->buf[i]);
    const char *reply = raw_ok;
    if (strncmp(rs->buf[i], "GET /fold ", 10) == 0) reply = raw_fold;
    if (strncmp(rs->buf[i], "GET /hop ", 9) == 0) reply = raw_hop;
    size_t n = strlen(reply);
    if (send(rs->fd[i], reply, n, MSG_NOSIGNAL) != (ssize_t)n) {
      raw_drop(rs, i);
      return;
    }
    rs->served++;
    memmove(rs->buf[i], rs->buf[i] + used, rs->len[i] - used + 1);
    rs->len[i] -= used;
  }
}

static void *raw_main(void *ud) {
  raw_server *rs = ud;
  for (;;) {
    struct pollfd p[RAW_CLIENTS + 2];
    int i, n = 2;
    p[0].fd = rs->stop[0];
    p[1].fd = rs->lfd;
    p[0].events = p[1].events = POLLIN;
    for (i = 0; i < RAW_CLIENTS; i++) {
      p[n].fd = rs->fd[i]; /* -1: ignored by poll */
      p[n++].events = POLLIN;
    }
    if (poll(p, (nfds_t)n, 10000) <= 0) break; /* bounded: 10 s of silence */
    if (p[0].revents) break;
    if (p[1].revents & POLLIN) {
      int c = accept(rs->lfd, NULL, NULL);
      for (i = 0; c >= 0 && i < RAW_CLIENTS && rs->fd[i] >= 0; i++) continue;
      if (c >= 0 && i == RAW_CLIENTS) close(c);
      if (c >= 0 && i < RAW_CLIENTS) {
        rs->fd[i] = c;
        rs->len[i] = 0;
        rs->accepted++;
      }
    }
    for (i = 0; i < RAW_CLIENTS; i++) {
      ssize_t got;
      if (rs->fd[i] < 0 || !p[i + 2].revents) continue;
      got = recv(rs->fd[i], rs->buf[i] + rs->len[i],
                 sizeof rs->buf[i] - 1 - rs->len[i], 0);
      if (got <= 0) {
        raw_drop(rs, i);
        continue;
      }
      rs->len[i] += (size_t)got;
      rs->buf[i][rs->len[i]] = '\0';
      raw_serve(rs, i);
      if (rs->fd[i] >= 0 && rs->len[i] == sizeof rs->buf[i] - 1)
        raw_drop(rs, i); /* a request that big is not ours */
    }
  }
  return NULL;
}

static void raw_start(raw_server *rs) {
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  int i, one = 1;
  memset(rs, 0, sizeof *rs);
  for (i = 0; i < RAW_CLIENTS; i++) rs->fd[i] = -1;
  rs->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT(rs->lfd >= 0);
  ASSERT_OK(setsockopt(rs->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(rs->lfd, (struct sockaddr *)&a, sizeof a));
  ASSERT_OK(getsockname(rs->lfd, (struct sockaddr *)&a, &alen));
  ASSERT_OK(listen(rs->lfd, 16));
  rs->port = ntohs(a.sin_port);
  ASSERT_OK(pipe2(rs->stop, O_CLOEXEC));
  ASSERT_OK(pthread_create(&rs->thread, NULL, raw_main, rs));
}

static void raw_stop(raw_server *rs) {
  int i;
  ASSERT_EQ(write(rs->stop[1], "x", 1), 1);
  ASSERT_OK(pthread_join(rs->thread, NULL));
  for (i = 0; i < RAW_CLIENTS; i++)
    if (rs->fd[i] >= 0) raw_drop(rs, i);
  close(rs->lfd);
  close(rs->stop[0]);
  close(rs->stop[1]);
}

/* One GET of http://host:port/path in session `s` of `rt`, run to its
   end; returns the callback's status. */
static int raw_get(corio_rt *rt, corio_session *s, const raw_server *rs,
                   const char *host, const char *path, result *r) {
  char u[256];
  corio_request req;
  memset(r, 0, sizeof *r);
  snprintf(u, sizeof u, "http://%s:%d%s", host, rs->port, path);
  corio_request_init(&req, u);
  ASSERT_OK(corio_fetch_start(rt, s, &req, record, r, NULL));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(r->called, 1);
  return r->status;
}

/* Any response, then one whose first field line is folded: libcurl 7.88
   keeps a pointer to the last field of a handle's previous transfer and
   would extend that freed field (heap-use-after-free, a crash without
   ASan) if corio reused the easy handle.  The second fails as a protocol
   error, as with corio_fetch_blocking; the next one succeeds.  `host2`
   and `s2` say where the second goes. */
static void fold_after(const char *host2, int other_session) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_session *s2 = other_session ? corio_session_new(rt, NULL) : NULL;
  raw_server rs;
  result r;
  int round;
  raw_start(&rs);
  for (round = 0; round < 3; round++) {
    ASSERT_OK(raw_get(rt, NULL, &rs, "127.0.0.1", "/first", &r));
    ASSERT_EQ(r.http, 200);
    ASSERT_STR_EQ(r.body, "ok");
    ASSERT_STR_EQ(header(&r, "X-First"), "any value");
    result_clear(&r);
    ASSERT_EQ(raw_get(rt, s2, &rs, host2, "/fold", &r), CORIO_EPROTO);
    ASSERT(r.error[0] != '\0');
    result_clear(&r);
  }
  ASSERT_OK(raw_get(rt, s2, &rs, host2, "/again", &r));
  ASSERT_STR_EQ(r.body, "ok");
  result_clear(&r);
  if (s2 != NULL) ASSERT_OK(corio_session_free(s2));
  ASSERT_OK(corio_rt_free(rt));
  raw_stop(&rs);
  ASSERT_EQ(rs.served, 7);
}

TEST_IMPL(folded_first_field) {
  fold_after("127.0.0.1", 0);
}

TEST_IMPL(folded_first_field_other_host) {
  fold_after("localhost", 0);
  fold_after("localhost", 1);
}

/* Within one transfer libcurl keeps every hop's fields until the
   handle's next transfer: a folded first line after a redirect extends a
   live field of the hop before (its Location: libcurl follows no
   further), and the fold has nothing to continue in our own fields. */
TEST_IMPL(folded_first_field_after_redirect) {
  corio_rt *rt = corio_rt_new(NULL);
  raw_server rs;
  result r;
  raw_start(&rs);
  ASSERT_OK(raw_get(rt, NULL, &rs, "127.0.0.1", "/first", &r));
  result_clear(&r);
  ASSERT_OK(raw_get(rt, NULL, &rs, "127.0.0.1", "/hop", &r));
  ASSERT_EQ(r.http, 302);
  ASSERT(strstr(r.url, "/fold") != NULL);
  ASSERT_EQ(r.nheaders, 1);
  ASSERT_STR_EQ(header(&r, "Content-Length"), "0");
  result_clear(&r);
  ASSERT_OK(raw_get(rt, NULL, &rs, "127.0.0.1", "/again", &r));
  result_clear(&r);
  ASSERT_OK(corio_rt_free(rt));
  raw_stop(&rs);
  ASSERT_EQ(rs.served, 4);
}

/* corio_fetch_blocking says the same of the same response. */
TEST_IMPL(folded_first_field_blocking) {
  raw_server rs;
  corio_request req;
  corio_response *res = NULL;
  char u[256];
  raw_start(&rs);
  snprintf(u, sizeof u, "http://127.0.0.1:%d/fold", rs.port);
  corio_request_init(&req, u);
  ASSERT_EQ(corio_fetch_blocking(&req, &res), CORIO_EPROTO);
  ASSERT_NOT_NULL(res);
  ASSERT_NOT_NULL(res->error);
  corio_response_free(res);
  raw_stop(&rs);
}

/* }================================================================== */

/* clang-format off */
TEST_MAIN(
  TEST_ENTRY(bodies)
  TEST_ENTRY(timing)
  TEST_ENTRY(headers)
  TEST_ENTRY(post_echo)
  TEST_ENTRY(status_codes)
  TEST_ENTRY(redirects)
  TEST_ENTRY(tls_and_http2)
  TEST_ENTRY(proxy)
  TEST_ENTRY(err_connect)
  TEST_ENTRY(err_dns)
  TEST_ENTRY(err_timeout)
  TEST_ENTRY(err_redirect_scheme)
  TEST_ENTRY(err_too_large)
  TEST_ENTRY(err_reset)
  TEST_ENTRY(folded_first_field)
  TEST_ENTRY(folded_first_field_other_host)
  TEST_ENTRY(folded_first_field_blocking)
  TEST_ENTRY(folded_first_field_after_redirect)
  TEST_ENTRY(sync_errors)
  TEST_ENTRY(cancel_right_after_start)
  TEST_ENTRY(cancel_waiting_headers)
  TEST_ENTRY(cancel_during_body)
  TEST_ENTRY(cancel_from_callback)
  TEST_ENTRY(shutdown_cancels)
  TEST_ENTRY(session_limits)
  TEST_ENTRY(sequential_reuse)
  TEST_ENTRY(fd_churn)
  TEST_ENTRY(fds_back_to_baseline)
  TEST_ENTRY(out_of_memory)
  TEST_ENTRY(idle_connections_reused)
  TEST_ENTRY(sharded_burst)
  TEST_ENTRY(idle_closed_by_server)
  TEST_ENTRY(stats_count_idle_sockets)
  TEST_ENTRY(crowd_small_buffers)
  TEST_ENTRY(admission_queue)
  TEST_ENTRY(pooled_buffers)
  TEST_ENTRY(no_body_pool)
  TEST_ENTRY(body_alloc)
  TEST_ENTRY(url_check_cache)
  TEST_ENTRY(sockets_cloexec)
  TEST_ENTRY(blocking)
  TEST_ENTRY(concurrent_1000)
  TEST_ENTRY(concurrent_10000)
)
/* clang-format on */
