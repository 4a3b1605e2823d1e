/*
** test-task.c: tasks driven from plain C callbacks, no Lua: ordering,
** sleeping, awaiting, cancelling, done callbacks, futures, wait modes.
*/
#include <pthread.h>

#include "task.h"

/* A scripted task: each step is one resume; the log records what ran. */
static char logbuf[256];
static void logc(char c) {
  size_t n = strlen(logbuf);
  logbuf[n] = c;
  logbuf[n + 1] = '\0';
}

typedef struct {
  char name;
  uint64_t ms; /* sleep this long once, then finish */
  int step;
  int last_status;
} sleeper;

static void sleeper_resume(corio_task *t, int status) {
  sleeper *s = corio_task_get_data(t);
  s->last_status = status;
  if (status == CORIO_ECANCELED) {
    logc('x');
    ASSERT_OK(corio_task_finish(t, CORIO_TASK_CANCELLED));
    return;
  }
  if (s->step++ == 0) {
    logc(s->name);
    ASSERT_OK(corio_sleep(t, s->ms));
  } else {
    logc((char)(s->name - 'a' + 'A'));
    ASSERT_OK(corio_task_finish(t, CORIO_TASK_FINISHED));
  }
}

TEST_IMPL(spawn_order) {
  corio_rt *rt = corio_rt_new(NULL);
  sleeper s[3] = {{'a', 5, 0, 0}, {'b', 5, 0, 0}, {'c', 1, 0, 0}};
  corio_task *t[3];
  int i;
  logbuf[0] = '\0';
  for (i = 0; i < 3; i++) t[i] = corio_task_new(rt, sleeper_resume, &s[i]);
  ASSERT_EQ(corio_task_get_state(t[0]), CORIO_TASK_PENDING);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  /* started in spawn order; c's shorter sleep ends first; a and b have the
     same deadline and wake in the order they slept */
  ASSERT_STR_EQ(logbuf, "abcCAB");
  for (i = 0; i < 3; i++) {
    ASSERT_EQ(corio_task_get_state(t[i]), CORIO_TASK_FINISHED);
    ASSERT_OK(corio_task_free(t[i]));
  }
  RT_FREE_CLEAN(rt);
}

TEST_IMPL(cancel_sleeping) {
  corio_rt *rt = corio_rt_new(NULL);
  sleeper s = {'a', 60000, 0, 0};
  corio_task *t = corio_task_new(rt, sleeper_resume, &s);
  logbuf[0] = '\0';
  ASSERT_EQ(corio_rt_run(rt, UV_RUN_NOWAIT), 1); /* a starts and sleeps */
  ASSERT_STR_EQ(logbuf, "a");
  ASSERT_EQ(corio_task_cancel(t), 1);
  ASSERT_EQ(corio_rt_run(rt, UV_RUN_NOWAIT), 0);
  /* the 60 s deadline is gone: nothing keeps the loop alive */
  ASSERT_EQ(uv_loop_alive(corio_rt_loop(rt)), 0);
  ASSERT_STR_EQ(logbuf, "ax");
  ASSERT_EQ(s.last_status, CORIO_ECANCELED);
  ASSERT_EQ(corio_task_get_state(t), CORIO_TASK_CANCELLED);
  ASSERT_EQ(corio_task_cancel(t), 0);
  ASSERT_OK(corio_task_free(t));
  RT_FREE_CLEAN(rt);
}

TEST_IMPL(cancel_before_start) {
  corio_rt *rt = corio_rt_new(NULL);
  sleeper s = {'a', 10, 0, 0};
  corio_task *t = corio_task_new(rt, sleeper_resume, &s);
  logbuf[0] = '\0';
  ASSERT_EQ(corio_task_cancel(t), 1);
  ASSERT(corio_task_cancelling(t));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_STR_EQ(logbuf, "x"); /* first resume already carries the cancel */
  ASSERT_OK(corio_task_free(t));
  RT_FREE_CLEAN(rt);
}

/* A task that awaits another and records the state it saw. */
typedef struct {
  corio_task *target;
  int step;
  int status;
  corio_task_state seen;
} awaiter;

static void awaiter_resume(corio_task *t, int status) {
  awaiter *a = corio_task_get_data(t);
  if (a->step++ == 0) {
    ASSERT_OK(corio_task_await(t, a->target));
    return;
  }
  a->status = status;
  a->seen = corio_task_get_state(a->target);
  corio_task_finish(t, status == CORIO_ECANCELED ? CORIO_TASK_CANCELLED
                                                 : CORIO_TASK_FINISHED);
}

TEST_IMPL(await_and_cancel_waiter) {
  corio_rt *rt = corio_rt_new(NULL);
  sleeper s = {'a', 20, 0, 0};
  corio_task *target = corio_task_new(rt, sleeper_resume, &s);
  awaiter a1 = {target, 0, 1, 0}, a2 = {target, 0, 1, 0};
  corio_task *w1 = corio_task_new(rt, awaiter_resume, &a1);
  corio_task *w2 = corio_task_new(rt, awaiter_resume, &a2);
  logbuf[0] = '\0';
  ASSERT_EQ(corio_rt_run(rt, UV_RUN_NOWAIT), 1);
  /* cancelling a waiter leaves the target alone */
  ASSERT_EQ(corio_task_cancel(w2), 1);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(a1.status, 0);
  ASSERT_EQ(a1.seen, CORIO_TASK_FINISHED);
  ASSERT_EQ(a2.status, CORIO_ECANCELED);
  ASSERT_EQ(corio_task_get_state(w2), CORIO_TASK_CANCELLED);
  ASSERT_STR_EQ(logbuf, "aA");
  corio_task_free(w1);
  corio_task_free(w2);
  corio_task_free(target);
  RT_FREE_CLEAN(rt);
}

static char order[16];
static void on_done(corio_task *t, void *ud) {
  size_t n = strlen(order);
  order[n] = *(const char *)ud;
  order[n + 1] = '\0';
  (void)t;
}

TEST_IMPL(done_callbacks_and_futures) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_task *f = corio_task_new(rt, NULL, NULL); /* a future */
  awaiter a = {f, 0, 1, 0};
  corio_task *w = corio_task_new(rt, awaiter_resume, &a);
  static const char c1 = '1', c2 = '2', c3 = '3';
  order[0] = '\0';
  ASSERT_OK(corio_task_add_done(f, on_done, (void *)&c1));
  ASSERT_OK(corio_task_add_done(f, on_done, (void *)&c2));
  ASSERT_OK(corio_task_add_done(f, on_done, (void *)&c3));
  ASSERT_EQ(corio_task_remove_done(f, on_done, (void *)&c2), 1);
  ASSERT_EQ(corio_rt_run(rt, UV_RUN_NOWAIT), 0); /* w waits on f: no handle */
  ASSERT_EQ(corio_task_get_state(w), CORIO_TASK_PENDING);
  ASSERT_OK(corio_task_finish(f, CORIO_TASK_FAILED));
  ASSERT_EQ(corio_task_finish(f, CORIO_TASK_FINISHED), CORIO_ESTATE);
  ASSERT_STR_EQ(order, "13");
  /* added after done: runs at the next turn, not inside the call */
  ASSERT_OK(corio_task_add_done(f, on_done, (void *)&c2));
  ASSERT_STR_EQ(order, "13");
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_STR_EQ(order, "132");
  ASSERT_EQ(a.seen, CORIO_TASK_FAILED);
  corio_task_free(w);
  corio_task_free(f);
  RT_FREE_CLEAN(rt);
}

/* corio_wait driver: waits on `targets` with `mode`, records status. */
typedef struct {
  corio_task **targets;
  size_t n;
  corio_wait_mode mode;
  int64_t timeout;
  int step;
  int status;
  int done_count;
} waiter;

static void waiter_resume(corio_task *t, int status) {
  waiter *w = corio_task_get_data(t);
  size_t i;
  if (w->step++ == 0) {
    ASSERT_OK(corio_wait(t, w->targets, w->n, w->mode, w->timeout));
    return;
  }
  w->status = status;
  for (i = 0; i < w->n; i++) w->done_count += corio_task_done(w->targets[i]);
  corio_task_finish(t, CORIO_TASK_FINISHED);
}

static void fail_resume(corio_task *t, int status) {
  sleeper *s = corio_task_get_data(t);
  if (s->step++ == 0) {
    ASSERT_OK(corio_sleep(t, s->ms));
    return;
  }
  corio_task_finish(t, CORIO_TASK_FAILED);
}

static void run_wait(corio_wait_mode mode, int64_t timeout, int *status,
                     int *ndone) {
  corio_rt *rt = corio_rt_new(NULL);
  sleeper s[3] = {{'a', 30, 0, 0}, {'b', 10, 0, 0}, {'c', 20, 0, 0}};
  corio_task *t[3];
  waiter w = {t, 3, mode, timeout, 0, 1, 0};
  corio_task *wt;
  int i;
  logbuf[0] = '\0';
  t[0] = corio_task_new(rt, sleeper_resume, &s[0]);
  t[1] = corio_task_new(rt, sleeper_resume, &s[1]);
  t[2] = corio_task_new(rt, fail_resume, &s[2]);
  wt = corio_task_new(rt, waiter_resume, &w);
  while (corio_task_get_state(wt) == CORIO_TASK_PENDING)
    corio_rt_run(rt, UV_RUN_ONCE);
  *status = w.status;
  *ndone = w.done_count;
  corio_rt_run(rt, UV_RUN_DEFAULT); /* let the rest finish */
  for (i = 0; i < 3; i++) corio_task_free(t[i]);
  corio_task_free(wt);
  RT_FREE_CLEAN(rt);
}

TEST_IMPL(wait_modes) {
  int status, ndone;
  run_wait(CORIO_WAIT_ALL_COMPLETED, -1, &status, &ndone);
  ASSERT_EQ(status, 0);
  ASSERT_EQ(ndone, 3);
  run_wait(CORIO_WAIT_FIRST_COMPLETED, -1, &status, &ndone);
  ASSERT_EQ(status, 0);
  ASSERT_EQ(ndone, 1); /* b, after 10 ms */
  run_wait(CORIO_WAIT_FIRST_EXCEPTION, -1, &status, &ndone);
  ASSERT_EQ(status, 0);
  ASSERT_EQ(ndone, 2); /* b finished, then c failed at 20 ms */
  run_wait(CORIO_WAIT_ALL_COMPLETED, 15, &status, &ndone);
  ASSERT_EQ(status, CORIO_ETIMEDOUT);
  ASSERT_EQ(ndone, 1);
}

static int fired;
static void on_timer(corio_timer *tm, void *ud) {
  fired += *(int *)ud;
  (void)tm;
}

TEST_IMPL(timers) {
  corio_rt *rt = corio_rt_new(NULL);
  int one = 1, hundred = 100;
  corio_timer *keep = corio_timer_start(rt, 1, on_timer, &one);
  corio_timer *drop = corio_timer_start(rt, 1, on_timer, &hundred);
  ASSERT_NOT_NULL(keep);
  corio_timer_stop(drop);
  fired = 0;
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(fired, 1);
  /* a timer left armed is freed by corio_rt_free, not leaked */
  ASSERT_NOT_NULL(corio_timer_start(rt, 60000, on_timer, &one));
  RT_FREE_CLEAN(rt);
}

/* Many tasks ready at once: they run in order, a few dozen per drain, and
   the loop turns (polls I/O) between the batches. */
#define NBATCH 200
static unsigned turns; /* loop turns so far (a prepare handle) */
static unsigned ran_at[NBATCH], nran;

static void on_turn(uv_prepare_t *h) {
  (void)h;
  turns++;
}

static void note_turn(corio_task *t, int status) {
  unsigned *id = corio_task_get_data(t);
  (void)status;
  ASSERT_EQ(*id, nran); /* FIFO */
  ran_at[nran++] = turns;
  ASSERT_OK(corio_task_finish(t, CORIO_TASK_FINISHED));
}

TEST_IMPL(turns_between_batches) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_task *t[NBATCH];
  unsigned id[NBATCH], i, first_batch = 0;
  uv_prepare_t prep;
  turns = nran = 0;
  ASSERT_OK(uv_prepare_init(corio_rt_loop(rt), &prep));
  ASSERT_OK(uv_prepare_start(&prep, on_turn));
  uv_unref((uv_handle_t *)&prep);
  for (i = 0; i < NBATCH; i++) {
    id[i] = i;
    t[i] = corio_task_new(rt, note_turn, &id[i]);
  }
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(nran, NBATCH);
  for (i = 0; i < NBATCH && ran_at[i] == ran_at[0]; i++) first_batch++;
  /* two drains a turn (idle, then check after the poll) */
  ASSERT(first_batch <= 122);
  ASSERT(ran_at[NBATCH - 1] > ran_at[0]);
  for (i = 0; i < NBATCH; i++) ASSERT_OK(corio_task_free(t[i]));
  uv_close((uv_handle_t *)&prep, NULL);
  RT_FREE_CLEAN(rt);
}

TEST_IMPL(busy_while_tasks_live) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_task *f = corio_task_new(rt, NULL, NULL);
  ASSERT_EQ(corio_rt_free(rt), CORIO_EBUSY);
  ASSERT_EQ(corio_task_free(f), CORIO_EBUSY);
  ASSERT_EQ(corio_task_cancel(f), 1);
  ASSERT_EQ(corio_task_get_state(f), CORIO_TASK_CANCELLED);
  ASSERT_OK(corio_task_free(f));
  RT_FREE_CLEAN(rt);
  ASSERT_STR_EQ(corio_err_name(CORIO_ECANCELED), "ECANCELED");
  ASSERT_STR_EQ(corio_strerror(CORIO_EBUSY),
                "resource busy: tasks or handles still alive");
  ASSERT_STR_EQ(corio_err_name(12345), "EUNKNOWN");
}

TEST_IMPL(borrowed_loop) {
  uv_loop_t loop;
  corio_rt *rt;
  sleeper s = {'a', 1, 0, 0};
  corio_task *t;
  ASSERT_OK(uv_loop_init(&loop));
  rt = corio_rt_new(&loop);
  ASSERT(corio_rt_loop(rt) == &loop);
  t = corio_task_new(rt, sleeper_resume, &s);
  logbuf[0] = '\0';
  ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT)); /* the host runs its loop */
  ASSERT_STR_EQ(logbuf, "aA");
  corio_task_free(t);
  RT_FREE_CLEAN(rt);
  ASSERT_OK(uv_loop_close(&loop)); /* nothing of corio's is left on it */
}

/* Counts many tasks through their sleeps in its own runtime. */
typedef struct {
  int step;
} counter_task;

static void counter_resume(corio_task *t, int status) {
  counter_task *c = corio_task_get_data(t);
  (void)status;
  if (c->step++ < 3)
    corio_sleep(t, 1);
  else
    corio_task_finish(t, CORIO_TASK_FINISHED);
}

static void *thread_main(void *arg) {
  enum { N = 1000 };
  corio_rt *rt = corio_rt_new(NULL);
  counter_task *c = calloc(N, sizeof *c);
  char *mem = malloc(N * corio_task_size());
  int i, finished = 0;
  for (i = 0; i < N; i++)
    corio_task_init(rt, mem + i * corio_task_size(), counter_resume, &c[i]);
  corio_rt_run(rt, UV_RUN_DEFAULT);
  for (i = 0; i < N; i++)
    finished +=
        corio_task_get_state((corio_task *)(mem + i * corio_task_size())) ==
        CORIO_TASK_FINISHED;
  *(int *)arg = finished;
  RT_FREE_CLEAN(rt);
  free(mem);
  free(c);
  return NULL;
}

TEST_IMPL(two_runtimes_two_threads) {
  pthread_t th[2];
  int done[2] = {0, 0}, i;
  for (i = 0; i < 2; i++)
    ASSERT_OK(pthread_create(&th[i], NULL, thread_main, &done[i]));
  for (i = 0; i < 2; i++) ASSERT_OK(pthread_join(th[i], NULL));
  ASSERT_EQ(done[0], 1000);
  ASSERT_EQ(done[1], 1000);
}

TEST_MAIN(TEST_ENTRY(spawn_order) TEST_ENTRY(cancel_sleeping)
              TEST_ENTRY(cancel_before_start)
                  TEST_ENTRY(await_and_cancel_waiter)
                      TEST_ENTRY(done_callbacks_and_futures)
                          TEST_ENTRY(wait_modes) TEST_ENTRY(timers)
                              TEST_ENTRY(turns_between_batches)
                                  TEST_ENTRY(busy_while_tasks_live)
                                      TEST_ENTRY(borrowed_loop)
                                          TEST_ENTRY(two_runtimes_two_threads))
