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

TEST_IMPL(err_reset) {
  corio_rt *rt = corio_rt_new(NULL);
  short_server ss;
  char u[64];
  corio_request req;
  result r;
  memset(&r, 0, sizeof r);
  short_server_start(&ss, corio_rt_loop(rt), u, sizeof u);
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
