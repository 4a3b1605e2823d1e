/*
** test-fetch-retry.c: corio_request.retry through the C API: the tries a
** status or an error gets, what stays unretried, the request refused for
** bad retry settings, a cancel while a transfer waits between two tries,
** and corio_fetch_blocking's retries.
*/
#include "fetch_support.h"

/* Settings that retry at once: tests stay quick. */
static void quick(corio_request *req, int attempts) {
  req->retry.attempts = attempts;
  req->retry.backoff = 0.01;
  req->retry.max_backoff = 0.02;
}

TEST_IMPL(status_retried_then_last_response) {
  char u[256];
  corio_request req;
  result r;
  corio_request_init(&req, mkurl(u, "/status/502"));
  ASSERT_EQ(req.retry.attempts, 1); /* the default: one try */
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.http, 502);
  ASSERT_EQ(r.attempts, 1);
  result_clear(&r);
  quick(&req, 3);
  ASSERT_OK(fetch1(&req, &r)); /* a status is never an error */
  ASSERT_EQ(r.http, 502);
  ASSERT_EQ(r.attempts, 3);
  ASSERT_STR_EQ(r.body, "bad gateway\n");
  result_clear(&r);
}

TEST_IMPL(not_retried) {
  static const int only_503[] = {503};
  static const char *const only_put[] = {"PUT"};
  char u[256];
  corio_request req;
  result r;
  corio_request_init(&req, mkurl(u, "/hello"));
  quick(&req, 3);
  ASSERT_OK(fetch1(&req, &r)); /* a 200 */
  ASSERT_EQ(r.http, 200);
  ASSERT_EQ(r.attempts, 1);
  result_clear(&r);
  req.url = mkurl(u, "/status/502");
  req.method = "POST"; /* not idempotent: not in the default methods */
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.attempts, 1);
  result_clear(&r);
  req.method = NULL;
  req.retry.statuses = only_503; /* 502 is not listed */
  req.retry.nstatuses = 1;
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.attempts, 1);
  result_clear(&r);
  req.retry.statuses = NULL;
  req.retry.nstatuses = 0;
  req.retry.methods = only_put; /* GET is not listed */
  req.retry.nmethods = 1;
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.attempts, 1);
  result_clear(&r);
  req.method = "PUT";
  ASSERT_OK(fetch1(&req, &r));
  ASSERT_EQ(r.attempts, 3);
  result_clear(&r);
}

TEST_IMPL(connect_error_retried) {
  char u[64];
  corio_request req;
  result r;
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", free_port());
  corio_request_init(&req, u);
  quick(&req, 4);
  ASSERT_EQ(fetch1(&req, &r), CORIO_ECONNECT);
  ASSERT_EQ(r.attempts, 4);
  result_clear(&r);
  req.url = "http://no-such-host.invalid/"; /* DNS: not retried */
  ASSERT_EQ(fetch1(&req, &r), CORIO_EDNS);
  ASSERT_EQ(r.attempts, 1);
  result_clear(&r);
}

TEST_IMPL(bad_settings_refused) {
  static const int bad_status[] = {600};
  static const char *const bad_method[] = {"G T"};
  corio_rt *rt = corio_rt_new(NULL);
  corio_request req;
  result r;
  char u[256];
  memset(&r, 0, sizeof r);
#define REFUSED(field, value)                                                  \
  do {                                                                         \
    corio_request_init(&req, mkurl(u, "/hello"));                              \
    req.retry.field = value;                                                   \
    ASSERT_EQ(corio_fetch_start(rt, NULL, &req, record, &r, NULL),             \
              CORIO_EINVAL);                                                   \
  } while (0)
  REFUSED(attempts, -1);
  REFUSED(backoff, -0.5);
  REFUSED(max_backoff, 0.0 / 0.0);
  REFUSED(nstatuses, 1); /* statuses NULL */
  REFUSED(nmethods, 2);  /* methods NULL */
  corio_request_init(&req, mkurl(u, "/hello"));
  req.retry.statuses = bad_status;
  req.retry.nstatuses = 1;
  ASSERT_EQ(corio_fetch_start(rt, NULL, &req, record, &r, NULL), CORIO_EINVAL);
  corio_request_init(&req, mkurl(u, "/hello"));
  req.retry.methods = bad_method;
  req.retry.nmethods = 1;
  ASSERT_EQ(corio_fetch_start(rt, NULL, &req, record, &r, NULL), CORIO_EINVAL);
#undef REFUSED
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(r.called, 0);
  ASSERT_OK(corio_rt_free(rt));
}

typedef struct {
  uv_timer_t timer;
  corio_rt *rt;
  corio_fetch *f;
  double t0;
  int rc, napping;         /* cancel's result; the wait was seen */
  size_t active, sleeping; /* after the cancel */
} canceller;

/*
** Every 10 ms: once the transfer waits between two tries (its timer is
** the runtime's only one), cancel it.  Bounded: after 30 s it is cancelled
** anyway, and the test fails on `napping`.
*/
static void on_check(uv_timer_t *t) {
  canceller *c = (canceller *)t;
  corio_rt_stats rs;
  corio_fetch_stats fs;
  corio_rt_get_stats(c->rt, &rs);
  c->napping = rs.sleeping == 1;
  if (!c->napping && now() - c->t0 < 30) return;
  c->rc = corio_fetch_cancel(c->f);
  corio_rt_get_stats(c->rt, &rs);
  corio_fetch_get_stats(c->rt, &fs);
  c->active = fs.active;
  c->sleeping = rs.sleeping;
  uv_timer_stop(t);
  uv_close((uv_handle_t *)t, NULL);
}

TEST_IMPL(cancel_while_waiting) {
  corio_rt *rt = corio_rt_new(NULL);
  canceller c;
  result r;
  char u[256];
  corio_request req;
  memset(&r, 0, sizeof r);
  memset(&c, 0, sizeof c);
  corio_request_init(&req, mkurl(u, "/status/502"));
  /* a wait of up to a day: the cancel comes while it lasts */
  req.retry.attempts = 3;
  req.retry.backoff = req.retry.max_backoff = 86400;
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r, &r.f));
  c.rt = rt;
  c.f = r.f;
  c.t0 = now();
  c.rc = 1;
  uv_timer_init(corio_rt_loop(rt), &c.timer);
  uv_timer_start(&c.timer, on_check, 10, 10);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT(c.napping);
  ASSERT_OK(c.rc);
  ASSERT_EQ(c.active, 0);   /* at once */
  ASSERT_EQ(c.sleeping, 0); /* its timer is gone */
  ASSERT_EQ(r.called, 1);
  ASSERT_EQ(r.status, CORIO_ECANCELED);
  ASSERT_EQ(r.attempts, 1);
  ASSERT_EQ(r.http, 502); /* what the first try got */
  result_clear(&r);
  ASSERT_OK(corio_rt_free(rt));
}

TEST_IMPL(blocking_retries) {
  char u[64];
  corio_request req;
  corio_response *res = NULL;
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", free_port());
  corio_request_init(&req, u);
  quick(&req, 3);
  ASSERT_EQ(corio_fetch_blocking(&req, &res), CORIO_ECONNECT);
  ASSERT_NOT_NULL(res);
  ASSERT_EQ(res->attempts, 3);
  corio_response_free(res);
}

/*
** A transfer that waits in its session's queue is set up when it leaves
** it, from a copy of its request: the copy must hold the retry lists too,
** since the caller's request (and its lists) is only borrowed for the
** call.  Here the lists are overwritten and freed right after the call.
*/
TEST_IMPL(queued_request_keeps_its_retry_lists) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_session_opts o = {1, 0, 0, 0}; /* one connection: the 2nd waits */
  corio_session *s;
  char u1[256], u2[256];
  corio_request req;
  result first, second;
  int *statuses = malloc(sizeof(int));
  char *get = malloc(4);
  const char **methods = malloc(sizeof(char *));
  memset(&first, 0, sizeof first);
  memset(&second, 0, sizeof second);
  ASSERT_NOT_NULL(rt);
  s = corio_session_new(rt, &o);
  ASSERT_NOT_NULL(s);
  corio_request_init(&req, mkurl(u1, "/delay/200"));
  ASSERT_OK(corio_fetch_start(rt, s, &req, record, &first, NULL));
  corio_request_init(&req, mkurl(u2, "/status/502"));
  quick(&req, 3);
  statuses[0] = 502;
  memcpy(get, "GET", 4);
  methods[0] = get;
  req.retry.statuses = statuses;
  req.retry.nstatuses = 1;
  req.retry.methods = methods;
  req.retry.nmethods = 1;
  ASSERT_OK(corio_fetch_start(rt, s, &req, record, &second, NULL));
  statuses[0] = 0; /* the caller reuses its memory, then frees it */
  memcpy(get, "XXX", 4);
  methods[0] = NULL;
  free(statuses);
  free(get);
  free(methods);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(first.called, 1);
  ASSERT_EQ(first.http, 200);
  ASSERT_EQ(second.called, 1);
  ASSERT_EQ(second.http, 502);
  ASSERT_EQ(second.attempts, 3); /* 502 listed, GET listed: retried */
  result_clear(&first);
  result_clear(&second);
  ASSERT_OK(corio_rt_free(rt));
}

/* clang-format off */
TEST_MAIN_SETUP(fetch_setup,
  TEST_ENTRY(status_retried_then_last_response)
  TEST_ENTRY(not_retried)
  TEST_ENTRY(connect_error_retried)
  TEST_ENTRY(bad_settings_refused)
  TEST_ENTRY(cancel_while_waiting)
  TEST_ENTRY(blocking_retries)
  TEST_ENTRY(queued_request_keeps_its_retry_lists)
)
/* clang-format on */
