/*
** lpool.h: what the two pools share, the thread pool (lthread.c) and the
** process pool (lprocess.c): a job, its life on the caller's side, and
** the hub that keeps a state's live jobs.
**
** A job is one to_thread, threads.map or processes.map call: the function
** as bytecode, its inputs as copied bytes (lcopy.h), one outcome slot per
** input, the next input to hand out, how many have an outcome, and the
** task waiting for them.  What differs, how workers start, get their
** inputs and stop, is behind a table of functions (lcorio_pool_ops); each
** kind's job struct starts with an lcorio_pool_job.
**
** A job is freed when its last reference goes, all on the loop thread:
** the caller's box (a userdata on the waiting task's stack, collected when
** that stack goes), the armed wait (dropped by the cancel callback or when
** the task is woken), and those the kind takes (threads: the hub's, until
** they are joined; processes: one per open libuv handle).
**
** The hub: one per kind and Lua state, a userdata in the registry holding
** the jobs started and not ended, so that lua_close can stop them.
*/
#ifndef LPOOL_H
#define LPOOL_H

#include <stddef.h>

#include <uv.h>

#include "lcorio.h"
#include "lcopy.h"

#define LCORIO_POOL_JOB_MT "corio.PoolJob"
#define LCORIO_POOL_HUB_MT "corio.PoolHub"

typedef struct lcorio_pool_job lcorio_pool_job;
typedef struct lcorio_pool_hub lcorio_pool_hub;

/* What a kind of pool does its own way. */
typedef struct lcorio_pool_ops {
  const char *what;       /* names map in messages: "corio.threads.map" */
  const char *to;         /* where the function goes: "a thread" */
  const char *hub_key;    /* the registry key of the kind's hub */
  size_t size;            /* of the kind's job struct */
  lua_Unsigned max_items; /* more items raise */
  size_t max_len;         /* a longer function or input raises */
  /* Make the hub (raises on failure, having freed what it made). */
  lcorio_pool_hub *(*hub_new)(lua_State *L, uv_loop_t *loop);
  /* Start up to n workers on the linked job: returns how many started,
     or a negative libuv code with the error message pushed. */
  int (*start)(lua_State *L, lcorio_pool_job *j, size_t n);
  /* Hand out no more inputs (a cancel, lua_close, a failed start). */
  void (*stop)(lcorio_pool_job *j);
  /* The hub is going (lua_close), after stop and unlink; may be NULL. */
  void (*detach)(lcorio_pool_job *j);
  /* The last reference went: free the kind's fields (may be NULL). */
  void (*free)(lcorio_pool_job *j);
} lcorio_pool_ops;

struct lcorio_pool_hub {
  lcorio_pool_job *live; /* the jobs linked: started, not ended */
  uv_handle_t *keep;     /* ref'd while a job is linked; may be NULL */
  void (*close)(lcorio_pool_hub *h); /* frees it (lua_close) */
};

struct lcorio_pool_job {
  const lcorio_pool_ops *ops;
  lcorio_pool_hub *hub; /* while linked */
  lcorio_pool_job *live_prev, *live_next;
  int refs;
  int single;       /* to_thread: one input, whose results are returned */
  corio_task *task; /* the waiting task; NULL when there is none */
  char *fn;         /* the function's bytecode */
  size_t fn_len;
  char *in;       /* the inputs (tuples), back to back */
  size_t *in_off; /* input i is in[in_off[i] .. in_off[i + 1]) */
  size_t nitems;
  lcopy_out *outs;    /* one outcome per input */
  lcorio_span *spans; /* per input, when a trace runs: when it ran */
  /* A worker thread reads and writes these under its hub's mutex. */
  size_t next;  /* the next input to hand out */
  size_t ndone; /* inputs with an outcome */
  int stopping; /* hand out no more */
};

/*
** map(fn, items, opts): fn at 1, items at 2, options at 3.  Push the box
** of a new job with fn and every item copied and return the job, or push
** {n = 0} and return NULL when there is no item.  Raises (naming what
** cannot be copied) before any wait.
*/
lcorio_pool_job *lcorio_pool_map_job(lua_State *L, const lcorio_pool_ops *ops);
/* call(fn, ...): the same for one input, the arguments after fn. */
lcorio_pool_job *lcorio_pool_call_job(lua_State *L, const lcorio_pool_ops *ops);
/*
** Start the job, whose box is at the top, on up to n workers, make the
** running task `lt` wait for it and yield.  The task then gets the map's
** array (or the call's results), raises a WorkerError for the first
** input that failed (or the call's error), or its CancelledError.
*/
int lcorio_pool_run(lua_State *L, ltask *lt, lcorio_pool_job *j, size_t n);

void lcorio_pool_unref(lcorio_pool_job *j); /* the last one frees it */
/* Take the next input to hand out into *i; 0 when there is none. */
int lcorio_pool_take(lcorio_pool_job *j, size_t *i);
/* Input i has outcome o (owned by the job from now on). */
void lcorio_pool_done(lcorio_pool_job *j, size_t i, lcopy_out o);
/* Wake the waiting task, if any (the wait's reference goes). */
void lcorio_pool_wake(lcorio_pool_job *j);
/* Take the job out of its hub's live jobs (if it is in). */
void lcorio_pool_unlink(lcorio_pool_job *j);
/* The job and hub metatables (either kind's open calls it). */
void lcorio_pool_open(lua_State *L);

#endif
