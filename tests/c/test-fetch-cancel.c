/*
** test-fetch-cancel.c: cancellation in each phase of a transfer, from a
** callback, and by corio_rt_free.
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
  ASSERT(now() - t0 < 1.9); /* before the 2 s delay ends */
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
  ASSERT(now() - t0 < 2.9); /* before the 3 s delay (or /slow's 10 s) */
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

/* clang-format off */
TEST_MAIN_SETUP(fetch_setup,
  TEST_ENTRY(cancel_right_after_start)
  TEST_ENTRY(cancel_waiting_headers)
  TEST_ENTRY(cancel_during_body)
  TEST_ENTRY(cancel_from_callback)
  TEST_ENTRY(shutdown_cancels)
)
/* clang-format on */
