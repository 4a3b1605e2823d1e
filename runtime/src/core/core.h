/*
** core.h: the core's private structures and corio__ functions: the
** runtime, tasks, the ready queue, timers and waits.  The subsystems built
** on it (fetch/, server/, redis/) include this header; it includes neither of
** theirs: each keeps its per-runtime state in a slot of the runtime and
** registers how to tear it down (corio__part).  Never included by a
** binding.
*/
#ifndef CORIO_CORE_H
#define CORIO_CORE_H

#include <stdint.h>
#include <stddef.h>

#include "corio.h"
#include "queue.h"

#define corio__container_of(ptr, type, member)                                 \
  ((type *)((char *)(ptr)-offsetof(type, member)))

/* alloc.c: every allocation of the runtime goes through these. */
void *corio__malloc(size_t size);
void *corio__calloc(size_t n, size_t size);
void *corio__realloc(void *ptr, size_t size);
void corio__free(void *ptr);

/* alloc.c: live runtimes, counted so that the process-wide settings
   refuse to change under them. */
void corio__rt_born(void);
void corio__rt_gone(void);

/*
** A deadline in the runtime's timer heap.  `seq` orders equal deadlines
** first-in first-out; `index` is the node's slot in the heap.
*/
typedef struct corio__tnode {
  uint64_t due;
  uint32_t index;
  uint32_t seq;
} corio__tnode;

/*
** Something that wants to know when a task is done (a waiting task's wait
** set, a done callback).  One waiter may be registered on many tasks.
*/
typedef struct corio__waiter corio__waiter;
struct corio__waiter {
  void (*notify)(corio__waiter *w, corio_task *done);
};

/* task->flags */
#define CORIO__QUEUED     0x01 /* in the ready queue */
#define CORIO__CANCEL_REQ 0x02 /* cancel requested, not yet delivered */
#define CORIO__OWNED      0x04 /* memory from corio_task_new */

struct corio_task {
  corio_rt *rt;
  corio_resume_fn resume; /* NULL for a future */
  void *data;
  corio__queue node;      /* in the ready queue (or the batch a drain runs) */
  uintptr_t waiters;      /* 0, one corio__waiter *, or a list | 1 */
  corio_cancel_fn cancel; /* cleanup of the armed wait, or NULL */
  union {
    corio__tnode sleep; /* corio_sleep's deadline: no allocation per sleep */
    void *op;           /* corio_task_suspend's op */
  } u;
  uint8_t state;
  uint8_t flags;
  uint16_t ncancel; /* requests not withdrawn (corio_task_cancelling) */
  int32_t status;   /* delivered to resume */
};

struct corio_timer {
  corio__tnode node;
  corio_rt *rt;
  corio_timer_fn cb;
  void *ud;
};

/* A callback queued to run at the next turn (a done callback added to a
   task that is already done). */
typedef struct corio__soon {
  struct corio__soon *next;
  corio_done_fn cb;
  corio_task *task;
  void *ud;
} corio__soon;

/*
** A subsystem's state in a runtime, made when first used, and what
** corio_rt_free calls to tear it down (in the order of the ids) before the
** core's own parts.  The state's type is the subsystem's own.
*/
typedef enum corio__part_id {
  CORIO__PART_FETCH,  /* fetch/: a corio__fetcher */
  CORIO__PART_SERVER, /* server/: a corio__server_home */
  CORIO__PART_REDIS,  /* redis/: a corio__redis_home */
  CORIO__PART_COUNT
} corio__part_id;

/* One corio_rt_post: run fn(rt, status, data) on the loop thread. */
typedef struct corio__post {
  corio_post_fn fn;
  void *data;
} corio__post;

typedef struct corio__part {
  void *state;
  void (*shutdown)(corio_rt *rt);
} corio__part;

struct corio_rt {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owns_loop;
  int running;
  void *data;
  size_t ntasks;
  corio_task *current;
  /* ready queue (FIFO) */
  corio__queue ready;
  size_t nready;
  corio__soon *soon_head, *soon_tail;
  size_t nsoon;      /* in the soon queue */
  size_t soon_batch; /* of those, still to run in this drain */
  uv_idle_t idle;    /* active while something is ready: poll must not block */
  uv_check_t check;  /* drains the ready queue after each poll */
  /* timers */
  corio__tnode **heap; /* entries tagged: bit 0 set = a task's sleep */
  size_t heap_len, heap_cap;
  uint32_t timer_seq;
  uint64_t armed_due; /* deadline uv_timer is armed for, UINT64_MAX if none */
  uv_timer_t uvtimer;
  int nhandles; /* of those, closing: corio_rt_free waits for them */
  int nopen;    /* handles the runtime and its parts opened, not closed */
  corio__part part[CORIO__PART_COUNT];
  /* corio_rt_post (post.c): the only fields other threads touch, all of
     them under post_mu (post_async through uv_async_send) */
  uv_mutex_t post_mu;
  uv_async_t post_async;
  corio__post *posts; /* posted, not yet run */
  size_t nposts, posts_cap;
  corio__post *post_spare; /* an empty array the next drain swaps in */
  size_t post_spare_cap;
  int post_closed; /* corio_rt_free began: posts are refused */
};

/* rt.c: corio_rt_free runs the loop until every handle the runtime's parts
   are closing has its close callback run.  Count one up after a handle's
   uv_*_init succeeds (corio__opened), one up before uv_close
   (corio__closing) and both down in the close callback (corio__closed):
   corio_rt_free tells the runtime's handles from foreign ones by these. */
void corio__opened(corio_rt *rt);
void corio__closing(corio_rt *rt);
void corio__closed(corio_rt *rt);

/* sched.c */
void corio__sched_init(corio_rt *rt);
void corio__soon_flush(corio_rt *rt);
size_t corio__soon_remove(corio_task *task, corio_done_fn cb, void *ud);
void corio__ready(corio_task *task, int status);
int corio__call_soon(corio_rt *rt, corio_done_fn cb, corio_task *task,
                     void *ud);
void corio__unqueue(corio_task *task);

/* post.c */
int corio__post_init(corio_rt *rt);
void corio__post_close(corio_rt *rt);
void corio__post_free(corio_rt *rt);

/* timer.c */
void corio__timers_init(corio_rt *rt);
void corio__timers_close(corio_rt *rt);
int corio__tnode_add(corio_rt *rt, corio__tnode *node, uint64_t ms, int tag);
void corio__tnode_remove(corio_rt *rt, corio__tnode *node);

/* waiter.c */
int corio__waiter_add(corio_task *task, corio__waiter *w);
size_t corio__waiter_remove(corio_task *task, corio__waiter *w);
void corio__waiters_notify(corio_task *task);
typedef int (*corio__waiter_pred)(corio__waiter *w, void *ctx);
size_t corio__waiter_remove_if(corio_task *task, corio__waiter_pred pred,
                               void *ctx);

/* task.c */
void corio__task_sleep_expired(corio_task *task);
void corio__disarm(corio_task *t);

#endif
