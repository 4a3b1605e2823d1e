/*
** test-fetch-errors.c: every error a transfer can end with, produced for
** real: a closed port, a name that does not resolve, a timeout, a redirect
** to file://, a body over its limit, a body cut short by a raw libuv
** server.
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

#include "fetch_support.h"

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
  ASSERT(now() - t0 < 2.9); /* before the 3 s delay ends */
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

/* }================================================================== */

/* clang-format off */
TEST_MAIN_SETUP(fetch_setup,
  TEST_ENTRY(err_connect)
  TEST_ENTRY(err_dns)
  TEST_ENTRY(err_timeout)
  TEST_ENTRY(err_redirect_scheme)
  TEST_ENTRY(err_too_large)
  TEST_ENTRY(err_reset)
)
/* clang-format on */
