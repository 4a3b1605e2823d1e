/*
** task.c: task lifecycle.  A task is pending until its resume callback
** finishes it; while pending it is either queued (ready), armed on a wait
** (`cancel` set), or running.  Cancelling runs the armed wait's cleanup and
** queues the task with CORIO_ECANCELED.
*/
#include <string.h>

#include "core.h"

size_t corio_task_size(void) {
  return sizeof(corio_task);
}

corio_task *corio_task_init(corio_rt *rt, void *mem, corio_resume_fn resume,
                            void *data) {
  corio_task *t = mem;
  memset(t, 0, sizeof *t);
  t->rt = rt;
  t->resume = resume;
  t->data = data;
  t->state = CORIO_TASK_PENDING;
  rt->ntasks++;
  if (resume != NULL) corio__ready(t, 0);
  return t;
}

corio_task *corio_task_new(corio_rt *rt, corio_resume_fn resume, void *data) {
  corio_task *t = corio__malloc(sizeof *t);
  if (t == NULL) return NULL;
  corio_task_init(rt, t, resume, data);
  t->flags |= CORIO__OWNED;
  return t;
}

int corio_task_free(corio_task *task) {
  if (task == NULL) return 0;
  if (!corio_task_done(task)) return CORIO_EBUSY;
  if (task->flags & CORIO__OWNED) corio__free(task);
  return 0;
}

corio_rt *corio_task_rt(const corio_task *task) {
  return task->rt;
}

corio_task_state corio_task_get_state(const corio_task *task) {
  return (corio_task_state)task->state;
}

int corio_task_done(const corio_task *task) {
  return task->state >= CORIO_TASK_FINISHED;
}

int corio_task_cancelling(const corio_task *task) {
  return task->ncancel;
}

corio_task *corio_current_task(const corio_rt *rt) {
  return rt->current;
}

void *corio_task_get_data(const corio_task *task) {
  return task->data;
}

void corio_task_set_data(corio_task *task, void *data) {
  task->data = data;
}

/* A sleep's cleanup takes its deadline out of the heap; `cancel ==
   sleep_cancel` is how a sleeping task is told from one waiting on an op. */
static void sleep_cancel(corio_task *t, void *op) {
  (void)op;
  corio__tnode_remove(t->rt, &t->u.sleep);
}

void *corio_task_op(const corio_task *task) {
  return task->cancel != NULL && task->cancel != sleep_cancel ? task->u.op
                                                              : NULL;
}

/* Run the armed wait's cleanup, if any. */
void corio__disarm(corio_task *t) {
  corio_cancel_fn cancel = t->cancel;
  if (cancel == NULL) return;
  t->cancel = NULL;
  cancel(t, t->u.op);
}

int corio_task_finish(corio_task *task, corio_task_state state) {
  if (corio_task_done(task)) return CORIO_ESTATE;
  if (state < CORIO_TASK_FINISHED || state > CORIO_TASK_CANCELLED)
    return CORIO_EINVAL;
  corio__disarm(task);
  corio__unqueue(task);
  task->flags &= ~CORIO__CANCEL_REQ;
  task->state = (uint8_t)state;
  task->rt->ntasks--;
  corio__waiters_notify(task);
  return 0;
}

int corio_task_cancel(corio_task *task) {
  if (corio_task_done(task)) return 0;
  if (task->resume == NULL) { /* a future has nobody to deliver it to */
    corio_task_finish(task, CORIO_TASK_CANCELLED);
    return 1;
  }
  task->flags |= CORIO__CANCEL_REQ;
  if (task->ncancel < UINT16_MAX) task->ncancel++;
  if (task->cancel != NULL) {
    corio__disarm(task);
    corio__ready(task, CORIO_ECANCELED);
  }
  /* queued: the drain delivers it; running: delivered at its next wait */
  return 1;
}

int corio_task_uncancel(corio_task *task) {
  if (task->ncancel > 0) task->ncancel--;
  if (task->ncancel == 0) task->flags &= ~CORIO__CANCEL_REQ; /* withdrawn */
  return task->ncancel;
}

/*
** Arm a wait on the running task.  A cancel request that arrived while it
** ran is delivered now: the wait is not armed and the task is queued with
** CORIO_ECANCELED.  Returns 1 in that case, 0 when armed.
*/
static int check_running(corio_task *task) {
  if (task->state != CORIO_TASK_RUNNING || task->rt->current != task)
    return CORIO_ESTATE;
  task->state = CORIO_TASK_PENDING;
  if (task->flags & CORIO__CANCEL_REQ) {
    corio__ready(task, CORIO_ECANCELED);
    return 1;
  }
  return 0;
}

int corio_task_yield(corio_task *task) {
  if (task->state != CORIO_TASK_RUNNING) return CORIO_ESTATE;
  task->state = CORIO_TASK_PENDING;
  corio__ready(task, 0);
  return 0;
}

int corio_sleep(corio_task *task, uint64_t ms) {
  int r = check_running(task);
  if (r != 0) return r < 0 ? r : 0;
  if (ms == 0) {
    corio__ready(task, 0);
    return 0;
  }
  r = corio__tnode_add(task->rt, &task->u.sleep, ms, 1);
  if (r != 0) {
    task->state = CORIO_TASK_RUNNING;
    return r;
  }
  task->cancel = sleep_cancel;
  return 0;
}

void corio__task_sleep_expired(corio_task *task) {
  task->cancel = NULL; /* the timer module took the node out already */
  corio__ready(task, 0);
}

/*
** A cancel request already pending is delivered from the drain, not from
** here: the wait is armed as usual and the task queued with
** CORIO_ECANCELED; the drain runs `cancel` just before it resumes the task
** (sched.c), so no callback runs inside this call.  Until then the op is
** the task's as any armed op is: its owner may still complete it and wake
** the task (which then keeps its CORIO_ECANCELED and `cancel` never runs),
** and corio_task_finish or corio_task_cancel disarm it as they would.
*/
int corio_task_suspend(corio_task *task, corio_cancel_fn cancel, void *op) {
  int r;
  if (cancel == NULL) return CORIO_EINVAL;
  r = check_running(task);
  if (r < 0) return r;
  task->cancel = cancel;
  task->u.op = op;
  return 0;
}

int corio_task_wake(corio_task *task, int status) {
  if (corio_task_done(task) || task->state == CORIO_TASK_RUNNING)
    return CORIO_ESTATE;
  if (task->cancel == sleep_cancel) sleep_cancel(task, NULL);
  task->cancel = NULL; /* an op's owner released it before waking us */
  corio__ready(task, status);
  return 0;
}

/* Done callbacks: a waiter record per registration. */
typedef struct done_rec {
  corio__waiter base;
  corio_done_fn cb;
  void *ud;
} done_rec;

static void done_notify(corio__waiter *w, corio_task *t) {
  done_rec *d = (done_rec *)w;
  corio_done_fn cb = d->cb;
  void *ud = d->ud;
  corio__free(d);
  cb(t, ud);
}

int corio_task_add_done(corio_task *task, corio_done_fn cb, void *ud) {
  done_rec *d;
  int r;
  if (cb == NULL) return CORIO_EINVAL;
  if (corio_task_done(task)) return corio__call_soon(task->rt, cb, task, ud);
  d = corio__malloc(sizeof *d);
  if (d == NULL) return CORIO_ENOMEM;
  d->base.notify = done_notify;
  d->cb = cb;
  d->ud = ud;
  r = corio__waiter_add(task, &d->base);
  if (r != 0) corio__free(d);
  return r;
}

typedef struct {
  corio_done_fn cb;
  void *ud;
} done_match;

static int is_done_rec(corio__waiter *w, void *ctx) {
  done_match *m = ctx;
  done_rec *d = (done_rec *)w;
  if (w->notify != done_notify || d->cb != m->cb || d->ud != m->ud) return 0;
  corio__free(d);
  return 1;
}

int corio_task_remove_done(corio_task *task, corio_done_fn cb, void *ud) {
  done_match m;
  m.cb = cb;
  m.ud = ud;
  return (int)(corio__waiter_remove_if(task, is_done_rec, &m) +
               corio__soon_remove(task, cb, ud));
}
