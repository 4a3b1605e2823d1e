/*
** test-fetch-sessions.c: sessions and their limits, many transfers at
** once, keep-alive reuse, and the descriptors given back.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
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
** Sessions, concurrency, reuse, descriptors
** ===================================================================
*/

TEST_IMPL(session_limits) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_session_opts o = {.max_connections = 2};
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
  ASSERT(dt < 10.0);  /* a hang guard: the lower bound is the check */
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
** A session's queue: transfers over its limits
** ===================================================================
*/

/* Completion order and statuses of a run of queued transfers. */
typedef struct {
  int order[600];
  int n, ok, cancelled, other;
} queued;

static queued qd;
static int idx[600];

/* ud: its index */
static void on_queued(corio_fetch *f, int status, const corio_response *res,
                      void *ud) {
  (void)res;
  (void)f;
  if (status == 0)
    qd.ok++;
  else if (status == CORIO_ECANCELED)
    qd.cancelled++;
  else
    qd.other++;
  qd.order[qd.n++] = *(int *)ud;
}

/*
** 500 transfers behind max_connections = 1: the 499 that wait hold a copy
** of their request, not an easy handle (about 6 KB each in libcurl 7.88),
** and they run one after the other in the order they were made.  Heap
** bytes from glibc's counters, which see libcurl's allocations too.
*/
TEST_IMPL(queue_memory_and_order) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_session_opts o = {.max_connections = 1};
  corio_session *s = corio_session_new(rt, &o);
  char u[256];
  corio_request req;
  size_t before, per;
  int i;
  memset(&qd, 0, sizeof qd);
  corio_request_init(&req, mkurl(u, "/hello"));
  ASSERT_OK(corio_fetch_start(rt, s, &req, on_queued, &idx[0], NULL));
  before = mallinfo2().uordblks;
  for (i = 1; i < 500; i++) {
    idx[i] = i;
    ASSERT_OK(corio_fetch_start(rt, s, &req, on_queued, &idx[i], NULL));
  }
  per = (mallinfo2().uordblks - before) / 499;
  fprintf(stderr, "  %zu bytes per queued transfer\n", per);
  ASSERT(per < 2048);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(qd.ok, 500);
  for (i = 0; i < 500; i++) ASSERT_EQ(qd.order[i], i);
  ASSERT_OK(corio_session_free(s));
  ASSERT_OK(corio_rt_free(rt));
}

/* Cancel a queued transfer, then free the session with one in flight and
   two queued: every callback runs once, with CORIO_ECANCELED. */
TEST_IMPL(queue_cancel_and_close) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_session_opts o = {.max_connections = 1};
  corio_session *s = corio_session_new(rt, &o);
  corio_fetch *f[4];
  char u[256];
  corio_request req;
  int i;
  memset(&qd, 0, sizeof qd);
  corio_request_init(&req, mkurl(u, "/delay/300"));
  for (i = 0; i < 4; i++) {
    idx[i] = i;
    ASSERT_OK(corio_fetch_start(rt, s, &req, on_queued, &idx[i], &f[i]));
  }
  (void)corio_rt_run(rt, UV_RUN_NOWAIT);
  ASSERT_OK(corio_fetch_cancel(f[2]));
  ASSERT_EQ(corio_fetch_cancel(f[2]), CORIO_ESTATE);
  (void)corio_rt_run(rt, UV_RUN_NOWAIT);
  ASSERT_EQ(qd.n, 1); /* at the next turn, before the first is done */
  ASSERT_EQ(qd.order[0], 2);
  ASSERT_OK(corio_session_free(s));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(qd.cancelled, 4);
  ASSERT_EQ(qd.n, 4);
  ASSERT_OK(corio_rt_free(rt));
}

/* }================================================================== */

/* clang-format off */
TEST_MAIN_SETUP(fetch_setup,
  TEST_ENTRY(session_limits)
  TEST_ENTRY(concurrent_1000)
  TEST_ENTRY(concurrent_10000)
  TEST_ENTRY(sequential_reuse)
  TEST_ENTRY(fds_back_to_baseline)
  TEST_ENTRY(fd_churn)
  TEST_ENTRY(queue_memory_and_order)
  TEST_ENTRY(queue_cancel_and_close)
)
/* clang-format on */
