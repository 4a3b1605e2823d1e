/*
** lthread.h: worker threads, shared by lthread.c (the Lua API) and
** lthread_pool.c (threads, jobs and the hub that hands results back).
**
** A job is one to_thread call or one threads.map call: its function as
** bytecode, its inputs as copied bytes, and one outcome slot per input.
** Its threads each make a Lua state of their own and pull inputs until none
** is left; the last one to end queues the job on the hub, whose uv_async_t
** wakes the loop, which joins the threads and wakes the waiting task.
**
** A job is freed when its last reference goes, all on the loop thread:
** the caller's box (a userdata on the waiting task's stack, collected when
** that stack goes), the armed wait (dropped by the cancel callback or when
** the task is woken), and the hub's (dropped once the threads are joined).
*/
#ifndef LTHREAD_H
#define LTHREAD_H

#include <uv.h>

#include "lcorio.h"
#include "lcopy.h"

typedef struct thub thub;
typedef struct tjob tjob;

struct tjob {
  thub *hub;                   /* NULL once the hub is gone (lua_close) */
  tjob *live_prev, *live_next; /* the hub's live jobs (loop thread) */
  tjob *done_next;  /* the hub's queue of ended jobs (under hub->mu) */
  int refs;         /* loop thread only */
  corio_task *task; /* the waiting task; NULL when there is none */
  int first_only;   /* map: each input's first result only */
  char *fn;         /* the function's bytecode */
  size_t fn_len;
  char *in;       /* the inputs (tuples), back to back */
  size_t *in_off; /* input i is in[in_off[i] .. in_off[i + 1]) */
  size_t nitems;
  lcopy_out *outs; /* written by the thread that ran the input */
  size_t taken;    /* under hub->mu: inputs taken so far */
  int stop;        /* under hub->mu: take no more (cancelled) */
  size_t live;     /* under hub->mu: threads not ended yet */
  size_t nthreads;
  uv_thread_t *threads;
};

/* The state's hub, made on first use (raises when out of memory). */
thub *lthread_hub(lua_State *L);
/* A job for n inputs with one reference, or NULL when out of memory. */
tjob *lthread_job_new(size_t nitems);
void lthread_job_unref(tjob *j);
/* Start up to `nthreads` threads on the job (the hub takes a reference).
   Returns how many started, or a negative libuv code when none did. */
int lthread_job_start(thub *h, tjob *j, size_t nthreads);
/* The corio_cancel_fn of a task waiting on a job: no more inputs are
   taken; those running finish and their outcomes are dropped. */
void lthread_job_cancel(corio_task *task, void *job);

#endif
