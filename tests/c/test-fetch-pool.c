/*
** test-fetch-pool.c: the machinery behind the speed: parked sockets,
** skipped reuse searches, receive buffers sized by the crowd, the
** admission queue, the URL cache, close-on-exec sockets.
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
  corio_session_opts o = {.max_idle = 64};
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

/* }================================================================== */

/* clang-format off */
TEST_MAIN_SETUP(fetch_setup,
  TEST_ENTRY(idle_connections_reused)
  TEST_ENTRY(sharded_burst)
  TEST_ENTRY(idle_closed_by_server)
  TEST_ENTRY(stats_count_idle_sockets)
  TEST_ENTRY(crowd_small_buffers)
  TEST_ENTRY(admission_queue)
  TEST_ENTRY(url_check_cache)
  TEST_ENTRY(sockets_cloexec)
)
/* clang-format on */
