/*
** sched.c: the ready queue.  This is the only place that resumes tasks.
** It is drained from a uv_check handle (right after each poll) and from a
** uv_idle handle that is active only while something is ready, so the loop
** never blocks in poll with work queued.
*/
#include "core.h"

static void drain(corio_rt *rt);

static void on_idle(uv_idle_t *h) {
  drain(h->data);
}

static void on_check(uv_check_t *h) {
  drain(h->data);
}

void corio__sched_init(corio_rt *rt) {
  corio__queue_init(&rt->ready);
  uv_idle_init(rt->loop, &rt->idle);
  uv_check_init(rt->loop, &rt->check);
  rt->idle.data = rt;
  rt->check.data = rt;
  uv_check_start(&rt->check, on_check);
  uv_unref((uv_handle_t *)&rt->check); /* never keeps the loop alive */
}

/*
** Run every callback still queued for a next turn that will not come
** (corio_rt_free): each was promised to run once with its task done, and
** its `ud` may be the only owner of what it points to.  Callbacks may
** queue more: run until none is left.
*/
void corio__soon_flush(corio_rt *rt) {
  while (rt->soon_head != NULL) {
    corio__soon *s = rt->soon_head;
    rt->soon_head = s->next;
    if (rt->soon_head == NULL) rt->soon_tail = NULL;
    rt->nsoon--;
    s->cb(s->task, s->ud);
    corio__free(s);
  }
}

/* Take out the (task, cb, ud) callbacks not yet run; returns how many. */
size_t corio__soon_remove(corio_task *task, corio_done_fn cb, void *ud) {
  corio_rt *rt = task->rt;
  corio__soon **link = &rt->soon_head, *s, *prev = NULL;
  size_t removed = 0, i = 0, batch = rt->soon_batch;
  for (; (s = *link) != NULL; i++) {
    if (s->task == task && s->cb == cb && s->ud == ud) {
      *link = s->next;
      corio__free(s);
      removed++;
      rt->nsoon--;
      if (i < batch) rt->soon_batch--; /* one less for this drain to run */
    } else {
      prev = s;
      link = &s->next;
    }
  }
  rt->soon_tail = prev;
  return removed;
}

static void wake_loop(corio_rt *rt) {
  if (!uv_is_active((uv_handle_t *)&rt->idle))
    uv_idle_start(&rt->idle, on_idle);
}

void corio__ready(corio_task *task, int status) {
  corio_rt *rt = task->rt;
  if (task->flags & CORIO__QUEUED) return;
  task->status = status;
  task->flags |= CORIO__QUEUED;
  corio__queue_insert_tail(&rt->ready, &task->node);
  rt->nready++;
  wake_loop(rt);
}

/* Remove a task from the ready queue (a task finished from outside). */
void corio__unqueue(corio_task *task) {
  if (!(task->flags & CORIO__QUEUED)) return;
  corio__queue_remove(&task->node); /* from the queue or a drain's batch */
  task->rt->nready--;
  task->flags &= ~CORIO__QUEUED;
}

int corio__call_soon(corio_rt *rt, corio_done_fn cb, corio_task *task,
                     void *ud) {
  corio__soon *s = corio__malloc(sizeof *s);
  if (s == NULL) return CORIO_ENOMEM;
  s->next = NULL;
  s->cb = cb;
  s->task = task;
  s->ud = ud;
  if (rt->soon_tail != NULL)
    rt->soon_tail->next = s;
  else
    rt->soon_head = s;
  rt->soon_tail = s;
  rt->nsoon++;
  wake_loop(rt);
  return 0;
}

/*
** At most DRAIN_BUDGET tasks are resumed per drain; the rest keep their
** place and the loop polls I/O first, as tokio's and Go's schedulers poll
** every 61 tasks.  A program that spawns 10,000 fetching tasks at once
** thus has its first connections under way while later tasks still start,
** and the server works on them meanwhile on the other core: the first
** response comes sooner and the burst ends sooner.  Smaller budgets made
** the small scenarios slower (bench/NOTES.md, "Drain budget").
*/
#define DRAIN_BUDGET 61

/*
** Resume what was ready when the drain started (up to the budget), in
** FIFO order; what becomes ready meanwhile waits for the next turn, so
** I/O is polled between turns and no task can starve the loop by
** yielding in a cycle.
*/
static void drain(corio_rt *rt) {
  corio__queue batch; /* what was ready when the drain started */
  int budget = DRAIN_BUDGET;
  corio__queue_move(&rt->ready, &batch);
  while (!corio__queue_empty(&batch) && budget-- > 0) {
    corio_task *t =
        corio__queue_data(corio__queue_head(&batch), corio_task, node);
    int status = t->status;
    corio__queue_remove(&t->node);
    rt->nready--;
    t->flags &= ~CORIO__QUEUED;
    t->status = 0;
    if (t->flags & CORIO__CANCEL_REQ) {
      t->flags &= ~CORIO__CANCEL_REQ;
      status = CORIO_ECANCELED;
    }
    /* a wait armed by a task whose cancel was pending already
       (corio_task_suspend): its cleanup runs now, from the loop */
    if (t->cancel != NULL) corio__disarm(t);
    t->state = CORIO_TASK_RUNNING;
    rt->current = t;
    t->resume(t, status);
    rt->current = NULL; /* t may be freed now */
  }
  /* past the budget: the rest go first next turn, before the newly ready */
  corio__queue_add(&batch, &rt->ready);
  corio__queue_move(&batch, &rt->ready);
  /* the callbacks queued before this turn: a count, not a pointer to the
     last, as a callback may remove others (corio__soon_remove) */
  rt->soon_batch = rt->nsoon;
  while (rt->soon_batch > 0) {
    corio__soon *s = rt->soon_head;
    rt->soon_batch--;
    rt->soon_head = s->next;
    if (rt->soon_head == NULL) rt->soon_tail = NULL;
    rt->nsoon--;
    s->cb(s->task, s->ud);
    corio__free(s);
  }
  if (corio__queue_empty(&rt->ready) && rt->soon_head == NULL)
    uv_idle_stop(&rt->idle);
}
