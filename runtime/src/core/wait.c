/*
** wait.c: a task waiting on other tasks (corio_task_await, corio_wait).
** One wait set per waiting task, registered as the same waiter on every
** target; it counts what is still needed and wakes the task once.
*/
#include "core.h"

typedef struct waitset {
  corio__waiter base;
  corio_task *task;           /* the waiting task */
  corio_task *const *targets; /* borrowed, or &one */
  corio_task *one;
  size_t n;
  size_t remaining; /* targets not done yet */
  corio_wait_mode mode;
  corio_timer *timer;
} waitset;

/* Unregister from every target still pending, stop the timer, free. */
static void release(waitset *ws) {
  size_t i;
  for (i = 0; i < ws->n; i++)
    if (!corio_task_done(ws->targets[i]))
      corio__waiter_remove(ws->targets[i], &ws->base);
  if (ws->timer != NULL) corio_timer_stop(ws->timer);
  corio__free(ws);
}

static void complete(waitset *ws, int status) {
  corio_task *task = ws->task;
  release(ws);
  corio_task_wake(task, status);
}

static int satisfied(const waitset *ws, const corio_task *done) {
  if (ws->remaining == 0) return 1;
  switch (ws->mode) {
  case CORIO_WAIT_FIRST_COMPLETED:
    return 1;
  case CORIO_WAIT_FIRST_EXCEPTION:
    return done->state == CORIO_TASK_FAILED;
  default:
    return 0;
  }
}

static void on_target_done(corio__waiter *w, corio_task *done) {
  waitset *ws = (waitset *)w;
  ws->remaining--;
  if (satisfied(ws, done)) complete(ws, 0);
}

static void on_timeout(corio_timer *tm, void *ud) {
  waitset *ws = ud;
  (void)tm;
  ws->timer = NULL; /* freed by the timer module after this returns */
  complete(ws, CORIO_ETIMEDOUT);
}

static void on_cancel(corio_task *task, void *op) {
  (void)task;
  release(op);
}

int corio_wait(corio_task *task, corio_task *const *targets, size_t n,
               corio_wait_mode mode, int64_t timeout_ms) {
  waitset *ws;
  size_t i;
  int r;
  if (task->state != CORIO_TASK_RUNNING || task->rt->current != task)
    return CORIO_ESTATE;
  for (i = 0; i < n; i++)
    if (targets[i] == task) return CORIO_EINVAL; /* would wait forever */
  ws = corio__calloc(1, sizeof *ws);
  if (ws == NULL) return CORIO_ENOMEM;
  ws->base.notify = on_target_done;
  ws->task = task;
  ws->n = n;
  ws->mode = mode;
  if (n == 1) { /* keep a copy: the caller's pointer may be a local */
    ws->one = targets[0];
    targets = &ws->one;
  }
  ws->targets = targets;
  for (i = 0; i < n; i++) {
    corio_task *t = targets[i];
    if (!corio_task_done(t))
      ws->remaining++;
    else if (mode == CORIO_WAIT_FIRST_COMPLETED ||
             (mode == CORIO_WAIT_FIRST_EXCEPTION &&
              t->state == CORIO_TASK_FAILED))
      break; /* already satisfied */
  }
  if (i < n || ws->remaining == 0) { /* nothing to wait for */
    corio__free(ws);
    return corio_task_yield(task);
  }
  for (i = 0; i < n; i++) {
    if (corio_task_done(targets[i])) continue;
    r = corio__waiter_add(targets[i], &ws->base);
    if (r != 0) {
      ws->n = i; /* unregister only what was registered */
      release(ws);
      return r;
    }
  }
  if (timeout_ms >= 0) {
    ws->timer =
        corio_timer_start(task->rt, (uint64_t)timeout_ms, on_timeout, ws);
    if (ws->timer == NULL) {
      release(ws);
      return CORIO_ENOMEM;
    }
  }
  return corio_task_suspend(task, on_cancel, ws);
}

int corio_task_await(corio_task *task, corio_task *target) {
  return corio_wait(task, &target, 1, CORIO_WAIT_ALL_COMPLETED, -1);
}
