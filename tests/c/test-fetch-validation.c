/*
** test-fetch-validation.c: what corio_fetch_start and corio_fetch_blocking
** refuse before any I/O (bad URLs, schemes, headers, methods, options):
** the error at once, and no callback ever.
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
** Refused at once
** ===================================================================
*/

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

#define NOBODY "http://127.0.0.1:1/" /* a valid URL nothing answers */

static const corio_header crlf[1] = {{"X-Evil", "a\r\nInjected: 1"}};
static const corio_header lf[1] = {{"X-Evil", "a\nb"}};
static const corio_header badname[1] = {{"X Evil", "a"}};
static const corio_header colon[1] = {{"X-Evil:", "a"}};
static const corio_header nullv[1] = {{"X-Evil", NULL}};

/* One request that must be refused: corio_request_init(url), then the
   fields given here (0 and NULL: the default). */
typedef struct {
  int expect;
  const char *url;
  const corio_header *headers;
  size_t nheaders;
  const char *method;
  size_t body_len;
  int http_version;
  int no_redirects; /* max_redirects = -1 */
} bad_request;

/* clang-format off */
static const bad_request bad_requests[] = {
  {CORIO_EINVAL, NULL, NULL, 0, NULL, 0, 0, 0},
  /* URLs */
  {CORIO_EURL, "not a url", NULL, 0, NULL, 0, 0, 0},
  {CORIO_EURL, "http://exa mple.com/", NULL, 0, NULL, 0, 0, 0},
  {CORIO_EURL, "http://[::1/", NULL, 0, NULL, 0, 0, 0},
  {CORIO_EURL, "http://example.com/\r\nX: y", NULL, 0, NULL, 0, 0, 0},
  {CORIO_EURL, "http://example.com/a\nb", NULL, 0, NULL, 0, 0, 0},
  {CORIO_EURL, "", NULL, 0, NULL, 0, 0, 0},
  /* schemes */
  {CORIO_ESCHEME, "gopher://127.0.0.1/", NULL, 0, NULL, 0, 0, 0},
  {CORIO_ESCHEME, "file:///etc/passwd", NULL, 0, NULL, 0, 0, 0},
  {CORIO_ESCHEME, "ftp://127.0.0.1/", NULL, 0, NULL, 0, 0, 0},
  {CORIO_ESCHEME, "httpx://127.0.0.1/", NULL, 0, NULL, 0, 0, 0},
  /* headers */
  {CORIO_EINVAL, NOBODY, crlf, 1, NULL, 0, 0, 0},
  {CORIO_EINVAL, NOBODY, lf, 1, NULL, 0, 0, 0},
  {CORIO_EINVAL, NOBODY, badname, 1, NULL, 0, 0, 0},
  {CORIO_EINVAL, NOBODY, colon, 1, NULL, 0, 0, 0},
  {CORIO_EINVAL, NOBODY, nullv, 1, NULL, 0, 0, 0},
  {CORIO_EINVAL, NOBODY, NULL, 1, NULL, 0, 0, 0}, /* nheaders 1, none */
  /* method */
  {CORIO_EINVAL, NOBODY, NULL, 0, "GET\r\nX: y", 0, 0, 0},
  {CORIO_EINVAL, NOBODY, NULL, 0, "", 0, 0, 0},
  /* options */
  {CORIO_EINVAL, NOBODY, NULL, 0, "GET", 3, 0, 0}, /* body NULL */
  {CORIO_EINVAL, NOBODY, NULL, 0, "GET", 0, 99, 0},
  {CORIO_EINVAL, NOBODY, NULL, 0, "GET", 0, 0, 1},
};
/* clang-format on */

#define NBAD (sizeof bad_requests / sizeof bad_requests[0])

static void bad_request_init(corio_request *req, const bad_request *b) {
  corio_request_init(req, b->url);
  req->headers = b->headers;
  req->nheaders = b->nheaders;
  if (b->method != NULL) req->method = b->method;
  req->body_len = b->body_len;
  if (b->http_version != 0) req->http_version = b->http_version;
  if (b->no_redirects) req->max_redirects = -1;
}

TEST_IMPL(sync_errors) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_request req;
  corio_response *res = (corio_response *)&req;
  size_t i;
  int rc;
  calls = 0;
  for (i = 0; i < NBAD; i++) {
    bad_request_init(&req, &bad_requests[i]);
    rc = try_start(rt, &req);
    if (rc != bad_requests[i].expect)
      fprintf(stderr, "bad_requests[%zu]: %s\n", i, corio_err_name(rc));
    ASSERT_EQ(rc, bad_requests[i].expect);
  }
  /* no request, no callback */
  corio_request_init(&req, NOBODY);
  ASSERT_EQ(corio_fetch_start(rt, NULL, NULL, count_call, NULL, NULL),
            CORIO_EINVAL);
  ASSERT_EQ(corio_fetch_start(rt, NULL, &req, NULL, NULL, NULL), CORIO_EINVAL);
  /* the blocking twin refuses the same way: every row, and a bad option
     before a bad scheme */
  for (i = 0; i < NBAD; i++) {
    bad_request_init(&req, &bad_requests[i]);
    res = (corio_response *)&req;
    ASSERT_EQ(corio_fetch_blocking(&req, &res), bad_requests[i].expect);
    ASSERT(res == NULL);
  }
  corio_request_init(&req, "gopher://127.0.0.1/");
  req.max_redirects = -1;
  res = (corio_response *)&req;
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

/* clang-format off */
TEST_MAIN(
  TEST_ENTRY(sync_errors)
)
/* clang-format on */
