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
  uv_idle_init(rt->loop, &rt->idle);
  uv_check_init(rt->loop, &rt->check);
  rt->idle.data = rt;
  rt->check.data = rt;
  uv_check_start(&rt->check, on_check);
  uv_unref((uv_handle_t *)&rt->check); /* never keeps the loop alive */
}

void corio__sched_close(corio_rt *rt) {
  corio__soon *s = rt->soon_head;
  while (s != NULL) { /* callbacks that never got their turn */
    corio__soon *next = s->next;
    corio__free(s);
    s = next;
  }
  rt->soon_head = rt->soon_tail = NULL;
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
  task->next = NULL;
  if (rt->ready_tail != NULL)
    rt->ready_tail->next = task;
  else
    rt->ready_head = task;
  rt->ready_tail = task;
  rt->nready++;
  wake_loop(rt);
}

/* Remove a task from the ready queue (a task finished from outside). */
void corio__unqueue(corio_task *task) {
  corio_rt *rt = task->rt;
  corio_task *prev = NULL, *t;
  if (!(task->flags & CORIO__QUEUED)) return;
  for (t = rt->ready_head; t != NULL; prev = t, t = t->next) {
    if (t != task) continue;
    if (prev != NULL)
      prev->next = t->next;
    else
      rt->ready_head = t->next;
    if (rt->ready_tail == t) rt->ready_tail = prev;
    rt->nready--;
    break;
  }
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
  corio_task *last = rt->ready_tail;
  corio__soon *soon_last = rt->soon_tail;
  int budget = DRAIN_BUDGET;
  while (last != NULL && rt->ready_head != NULL && budget-- > 0) {
    corio_task *t = rt->ready_head;
    int status = t->status;
    rt->ready_head = t->next;
    if (rt->ready_head == NULL) rt->ready_tail = NULL;
    rt->nready--;
    t->flags &= ~CORIO__QUEUED;
    t->status = 0;
    if (t->flags & CORIO__CANCEL_REQ) {
      t->flags &= ~CORIO__CANCEL_REQ;
      status = CORIO_ECANCELED;
    }
    t->state = CORIO_TASK_RUNNING;
    rt->current = t;
    t->resume(t, status);
    rt->current = NULL;
    /* t may be freed now: only its address is compared */
    if (t == last) break;
  }
  while (soon_last != NULL && rt->soon_head != NULL) {
    corio__soon *s = rt->soon_head;
    rt->soon_head = s->next;
    if (rt->soon_head == NULL) rt->soon_tail = NULL;
    s->cb(s->task, s->ud);
    corio__free(s);
    if (s == soon_last) break;
  }
  if (rt->ready_head == NULL && rt->soon_head == NULL) uv_idle_stop(&rt->idle);
}
