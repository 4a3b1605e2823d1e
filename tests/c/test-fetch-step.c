/*
** test-fetch-step.c: a runtime driven from a host's own poll loop
** (corio_rt_backend_fd, corio_rt_step) instead of corio_rt_run: tasks
** and their sleeps, posts from another thread, transfers, cancellation,
** and what the step refuses.  Every loop here is bounded in count and
** time.
*/
#include <poll.h>
#include <pthread.h>

#include "fetch_support.h"

#define MAX_TURNS 100000
#define MAX_SECS  30.0

/* The host's loop: poll the backend fd for what the last step said, step,
   until *count reaches `target`, within the bounds.  Returns the turns it
   took. */
static int drive(corio_rt *rt, const int *count, int target) {
  struct pollfd p;
  int turns, ms = 0;
  double t0 = now();
  p.fd = corio_rt_backend_fd(rt);
  p.events = POLLIN;
  ASSERT(p.fd >= 0);
  for (turns = 0; *count < target && turns < MAX_TURNS; turns++) {
    ASSERT(now() - t0 < MAX_SECS);
    /* -1 (no timer): the fd brings the work; still bounded by the test */
    (void)poll(&p, 1, ms < 0 || ms > 1000 ? 1000 : ms);
    ASSERT(corio_rt_step(rt, &ms) >= 0);
  }
  ASSERT(*count >= target);
  return turns;
}

/* {==== tasks and sleeps */

static int task_done;

static void sleeper(corio_task *t, int status) {
  int *runs = corio_task_get_data(t);
  ASSERT_OK(status);
  if ((*runs)++ == 0) {
    ASSERT_OK(corio_sleep(t, 20));
    return;
  }
  task_done = 1;
  ASSERT_OK(corio_task_finish(t, CORIO_TASK_FINISHED));
}

/* A task that sleeps 20 ms: the step says how long to wait for it, and
   nothing is left once it is done. */
TEST_IMPL(task_sleeps) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_task *t;
  int runs = 0, ms = 0;
  double t0;
  ASSERT_NOT_NULL(rt);
  ASSERT_EQ(corio_rt_step(rt, &ms), 0); /* nothing to do */
  ASSERT_EQ(ms, -1);
  ASSERT_EQ(corio_rt_step(rt, NULL), 0);
  ASSERT_EQ(corio_rt_step(NULL, &ms), CORIO_EINVAL);
  ASSERT_EQ(ms, -1);
  ASSERT_EQ(corio_rt_backend_fd(NULL), -1);
  task_done = 0;
  t = corio_task_new(rt, sleeper, &runs);
  ASSERT_NOT_NULL(t);
  t0 = now();
  ASSERT_EQ(corio_rt_step(rt, &ms), 1); /* it ran and sleeps */
  ASSERT_EQ(runs, 1);
  ASSERT(ms > 0 && ms <= 20);
  drive(rt, &task_done, 1);
  ASSERT(now() - t0 >= 0.019); /* not before its time */
  ASSERT_EQ(runs, 2);
  ASSERT_EQ(corio_rt_step(rt, &ms), 0);
  ASSERT_EQ(ms, -1);
  ASSERT_OK(corio_task_free(t));
  RT_FREE_CLEAN(rt);
}

/* }==== */

/* {==== posts */

static int posted;
static int step_in_callback_rc, step_in_callback_ms;

static void on_post(corio_rt *rt, int status, void *data) {
  (void)data;
  ASSERT_OK(status);
  posted++;
  /* not reentrant: refused from inside a turn */
  step_in_callback_rc = corio_rt_step(rt, &step_in_callback_ms);
}

static void *post_later(void *arg) {
  struct timespec d = {0, 20 * 1000 * 1000};
  nanosleep(&d, NULL);
  ASSERT_OK(corio_rt_post(arg, on_post, NULL));
  return NULL;
}

/*
** A post from another thread to a loop with nothing else to do: the fd
** turns readable, one step runs the post, and the fd is quiet again (a
** turn that did not poll would leave it readable: the host would spin).
*/
TEST_IMPL(post_wakes_the_fd) {
  corio_rt *rt = corio_rt_new(NULL);
  struct pollfd p;
  pthread_t th;
  int ms = 0;
  ASSERT_NOT_NULL(rt);
  posted = 0;
  p.fd = corio_rt_backend_fd(rt);
  p.events = POLLIN;
  ASSERT_EQ(corio_rt_step(rt, &ms), 0); /* the first: fds join the backend */
  ASSERT_EQ(poll(&p, 1, 0), 0);
  ASSERT_OK(pthread_create(&th, NULL, post_later, rt));
  ASSERT_EQ(poll(&p, 1, 10000), 1); /* woken by the post */
  ASSERT_OK(pthread_join(th, NULL));
  ASSERT_EQ(corio_rt_step(rt, &ms), 0);
  ASSERT_EQ(posted, 1);
  ASSERT_EQ(ms, -1);
  ASSERT_EQ(step_in_callback_rc, CORIO_EBUSY);
  ASSERT_EQ(step_in_callback_ms, -1);
  ASSERT_EQ(poll(&p, 1, 0), 0); /* the wakeup was consumed */
  ASSERT_EQ(corio_rt_step(rt, &ms), 0);
  ASSERT_EQ(posted, 1); /* once */
  /* with keep_alive, waiting for posts is work: alive, no timeout */
  corio_rt_keep_alive(rt, 1);
  ASSERT_EQ(corio_rt_step(rt, &ms), 1);
  ASSERT_EQ(ms, -1);
  corio_rt_keep_alive(rt, 0);
  ASSERT_EQ(corio_rt_step(rt, &ms), 0);
  RT_FREE_CLEAN(rt);
}

/* }==== */

/* {==== transfers */

static int fetched;

static void count_done(corio_fetch *f, int status, const corio_response *res,
                       void *ud) {
  record(f, status, res, ud);
  fetched++;
}

/* 50 transfers at once, and one cancelled, driven by steps only. */
TEST_IMPL(fetches) {
  corio_rt *rt;
  static result r[51];
  char u[256], slow[256];
  corio_request req;
  corio_fetch *f;
  int i, fds0;
  ASSERT_OK(get("/hello", &r[0])); /* process-wide fds first */
  result_clear(&r[0]);
  fds0 = count_fds();
  rt = corio_rt_new(NULL);
  ASSERT_NOT_NULL(rt);
  memset(r, 0, sizeof r);
  fetched = 0;
  corio_request_init(&req, mkurl(u, "/hello"));
  for (i = 0; i < 50; i++)
    ASSERT_OK(corio_fetch_start(rt, NULL, &req, count_done, &r[i], NULL));
  corio_request_init(&req, mkurl(slow, "/delay/10000"));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, count_done, &r[50], &f));
  drive(rt, &fetched, 50);
  ASSERT_EQ(fetched, 50);
  for (i = 0; i < 50; i++) {
    ASSERT_OK(r[i].status);
    ASSERT_EQ(r[i].http, 200);
    result_clear(&r[i]);
  }
  ASSERT_OK(corio_fetch_cancel(f));
  ASSERT_EQ(r[50].called, 0);            /* at the next turn */
  ASSERT_EQ(drive(rt, &fetched, 51), 1); /* the next step */
  ASSERT_EQ(r[50].status, CORIO_ECANCELED);
  result_clear(&r[50]);
  RT_FREE_CLEAN(rt);
  ASSERT_EQ(count_fds(), fds0);
}

/* }==== */

/* clang-format off */
TEST_MAIN_SETUP(fetch_setup,
  TEST_ENTRY(task_sleeps)
  TEST_ENTRY(post_wakes_the_fd)
  TEST_ENTRY(fetches)
)
/* clang-format on */
