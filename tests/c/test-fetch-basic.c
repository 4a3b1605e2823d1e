/*
** test-fetch-basic.c: the HTTP client against the private loopback nginx
** (fetch_support.h): bodies, headers, methods, status codes, redirects,
** the blocking twin, TLS and HTTP/2, a forward proxy, the timings.
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

/*
** {==================================================================
** Blocking, TLS and HTTP/2, proxies, timing
** ===================================================================
*/

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

TEST_IMPL(timing) {
  result r;
  ASSERT_OK(get("/delay/200", &r));
  ASSERT(r.timing.ttfb >= 0.19);
  ASSERT(r.timing.total >= r.timing.ttfb);
  ASSERT(r.timing.total < 10.0); /* seconds, not garbage */
  ASSERT_STR_EQ(r.body, "delayed\n");
  result_clear(&r);
}

/* }================================================================== */

/* clang-format off */
TEST_MAIN_SETUP(fetch_setup,
  TEST_ENTRY(bodies)
  TEST_ENTRY(headers)
  TEST_ENTRY(post_echo)
  TEST_ENTRY(status_codes)
  TEST_ENTRY(redirects)
  TEST_ENTRY(blocking)
  TEST_ENTRY(tls_and_http2)
  TEST_ENTRY(proxy)
  TEST_ENTRY(timing)
)
/* clang-format on */
