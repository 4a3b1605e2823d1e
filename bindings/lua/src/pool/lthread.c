/*
** lthread.c: corio.to_thread(fn, ...) and corio.threads.map(fn, items,
** {threads=n}): fn runs on OS threads, each with a Lua state of its own
** (standard libraries and `corio` as globals), while the calling task waits
** and the loop goes on.  The job's life on the caller's side is lpool.c's.
**
** fn travels as bytecode: its globals are the worker's, and any other
** upvalue is refused.  Arguments and results are copied (lcopy.h).  Each
** call gets fresh threads and states; a map's worker keeps its state (and
** globals) from one item to the next.
**
** A job's threads pull inputs until none is left; the last one to end
** queues the job on the hub, whose uv_async_t wakes the loop, which joins
** the threads and wakes the waiting task.  A worker thread touches only
** its own lua_State, the job's read-only inputs, and the counters and
** outcome slots under the hub's mutex: never the caller's state
** (docs/reliability.md rule 15).  uv_async_send coalesces, so the hub keeps
** a queue of ended jobs and drains all of it per callback.
**
** Cancelling the caller does not interrupt a thread: inputs not started are
** dropped, those running finish, their results are dropped, the threads are
** joined and their states closed.  lua_close of the calling state cannot
** wait for that (an item that never ends would hang the program's exit):
** it interrupts the Lua code each worker runs, as lua.c's Ctrl-C does, by
** setting a hook on the worker's state that raises (lua_sethook may be
** called asynchronously), then joins.  A worker blocked inside a C call
** is still waited for.
*/
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "corio_lua.h"
#include "lpool.h"

#define HUB_KEY     "corio.ThreadHub"
#define MAX_THREADS 10000

typedef struct thub thub;

typedef struct tjob {
  lcorio_pool_job base;
  thub *th;               /* the hub, for the threads (base.hub may go) */
  struct tjob *done_next; /* the hub's queue of ended jobs (under th->mu) */
  size_t live;            /* under th->mu: threads not ended yet */
  size_t nthreads;
  uv_thread_t *threads;
  lua_State **states; /* under th->mu: each running worker's state, or NULL */
  size_t nstates;     /* slots claimed */
  int closing;        /* under th->mu: lua_close interrupts the workers */
} tjob;

struct thub {
  lcorio_pool_hub base;
  uv_async_t async;
  uv_mutex_t mu;
  tjob *done; /* under mu: ended jobs, not yet joined */
};

/*
** {==================================================================
** A worker thread
** ===================================================================
*/

/*
** os.exit would end the whole program, the caller's state and every
** other thread included, from under them: in a worker it raises, so the
** item fails as a worker process's exit fails its item.  Any argument
** (a status, true, false, close) gets the same error.
*/
static int no_exit(lua_State *L) {
  return luaL_error(L, "corio: os.exit is not allowed in a worker thread");
}

/* (job): the worker's globals, then the function on top */
static int setup_p(lua_State *L) {
  tjob *j = lua_touserdata(L, 1);
  luaL_openlibs(L);
  /* package.loaded.os is this table too: no way back to the original */
  lua_getglobal(L, "os");
  lua_pushcfunction(L, no_exit);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  luaL_requiref(L, "corio", luaopen_corio, 1); /* a global, as in corio */
  lua_pop(L, 1);
  if (lcorio_copy_load_fn(L, j->base.fn, j->base.fn_len) != LUA_OK)
    return lua_error(L);
  return 1;
}

/* Store the outcome of input *i (when o is not NULL), then take the next
   input into *i; returns 0 when there is none to take. */
static int next_input(tjob *j, const lcopy_out *o, size_t *i) {
  int ok;
  uv_mutex_lock(&j->th->mu);
  if (o != NULL) lcorio_pool_done(&j->base, *i, *o);
  ok = lcorio_pool_take(&j->base, i);
  uv_mutex_unlock(&j->th->mu);
  return ok;
}

/* Under h->mu: `ended` threads of the job have ended.  Returns whether
   they were the last, and then queues the job on the hub. */
static int threads_ended(thub *h, tjob *j, size_t ended) {
  j->live -= ended;
  if (j->live > 0) return 0;
  j->done_next = h->done;
  h->done = j;
  return 1;
}

/* Set on a worker's state by lua_close of the caller's (job_detach). */
static void interrupted(lua_State *L, lua_Debug *ar) {
  (void)ar;
  luaL_error(L, "corio: interrupted: the program is closing");
}

static void interrupt(lua_State *L) {
  lua_sethook(L, interrupted, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Publish (or withdraw, L NULL) this worker's state in its slot. */
static void set_state(tjob *j, size_t slot, lua_State *L) {
  uv_mutex_lock(&j->th->mu);
  j->states[slot] = L;
  if (L != NULL && j->closing) interrupt(L);
  uv_mutex_unlock(&j->th->mu);
}

static void worker(void *arg) {
  tjob *j = arg;
  thub *h = j->th;
  lua_State *L = luaL_newstate();
  char *failed = NULL; /* why this worker cannot run the function */
  lcopy_out o;
  size_t i, slot;
  int more, last;
  uv_mutex_lock(&h->mu);
  slot = j->nstates++;
  uv_mutex_unlock(&h->mu);
  if (L != NULL) set_state(j, slot, L);
  if (L == NULL) {
    failed = strdup("corio: not enough memory for a worker's Lua state");
  } else {
    lua_pushcfunction(L, setup_p);
    lua_pushlightuserdata(L, j);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      const char *msg = lua_tostring(L, -1);
      failed = strdup(msg != NULL ? msg : "corio: the worker failed to start");
    }
  }
  for (more = next_input(j, NULL, &i); more; more = next_input(j, &o, &i)) {
    const char *in = j->base.in + j->base.in_off[i];
    if (L != NULL && failed == NULL)
      o = lcorio_copy_run(L, 1, in, j->base.in_off[i + 1] - j->base.in_off[i],
                          0);
    else
      o = lcorio_copy_error_outcome(failed != NULL ? failed
                                                   : "not enough memory");
  }
  free(failed);
  if (L != NULL) {
    set_state(j, slot, NULL);
    lua_close(L);
  }
  uv_mutex_lock(&h->mu);
  last = threads_ended(h, j, 1);
  uv_mutex_unlock(&h->mu);
  /* the hub outlives this call: it is freed only after joining us */
  if (last) uv_async_send(&h->async);
}
/* }================================================================== */

/*
** {==================================================================
** The hub and the job's operations
** ===================================================================
*/

static void join_all(tjob *j) {
  size_t i;
  for (i = 0; i < j->nthreads; i++) uv_thread_join(&j->threads[i]);
  j->nthreads = 0;
}

static void on_async(uv_async_t *a) {
  thub *h = a->data;
  tjob *list;
  uv_mutex_lock(&h->mu);
  list = h->done;
  h->done = NULL;
  uv_mutex_unlock(&h->mu);
  while (list != NULL) {
    tjob *j = list;
    list = j->done_next;
    join_all(j); /* they have ended or are about to return */
    lcorio_pool_unlink(&j->base);
    lcorio_pool_wake(&j->base);
    lcorio_pool_unref(&j->base); /* the hub's */
  }
}

static void on_hub_closed(uv_handle_t *a) {
  thub *h = a->data;
  uv_mutex_destroy(&h->mu);
  free(h);
}

static void hub_close(lcorio_pool_hub *base) {
  thub *h = (thub *)base;
  h->done = NULL; /* every job was detached: joined and let go */
  uv_close((uv_handle_t *)&h->async, on_hub_closed);
}

static lcorio_pool_hub *hub_new(lua_State *L, uv_loop_t *loop) {
  thub *h = calloc(1, sizeof *h);
  if (h == NULL) luaL_error(L, "not enough memory");
  if (uv_mutex_init(&h->mu) != 0) {
    free(h);
    luaL_error(L, "corio: cannot create a mutex");
  }
  uv_async_init(loop, &h->async, on_async);
  h->async.data = h;
  uv_unref((uv_handle_t *)&h->async);
  h->base.keep = (uv_handle_t *)&h->async;
  h->base.close = hub_close;
  return &h->base;
}

static int job_start(lua_State *L, lcorio_pool_job *base, size_t n) {
  tjob *j = (tjob *)base;
  thub *h = (thub *)base->hub;
  size_t i;
  int rc = 0, last;
  j->th = h;
  if ((j->threads = calloc(n, sizeof *j->threads)) == NULL ||
      (j->states = calloc(n, sizeof *j->states)) == NULL) {
    lua_pushliteral(L, "not enough memory");
    return UV_ENOMEM;
  }
  /* counted before any thread runs, so none can think it is the last */
  j->live = n;
  for (i = 0; i < n; i++) {
    rc = uv_thread_create(&j->threads[i], worker, j);
    if (rc != 0) break;
  }
  j->nthreads = i;
  if (i == 0) {
    lua_pushfstring(L, "corio: cannot start a thread: %s", uv_strerror(rc));
    return rc;
  }
  base->refs++; /* the hub's */
  if (i < n) {  /* go on with those that started */
    uv_mutex_lock(&h->mu);
    last = threads_ended(h, j, n - i); /* they may all have ended already */
    uv_mutex_unlock(&h->mu);
    if (last) uv_async_send(&h->async);
  }
  return (int)i;
}

static void job_stop(lcorio_pool_job *base) {
  tjob *j = (tjob *)base;
  if (base->hub == NULL) return; /* the threads are joined */
  uv_mutex_lock(&j->th->mu);
  base->stopping = 1;
  uv_mutex_unlock(&j->th->mu);
}

/* Interrupt the Lua code the job's workers run, now and from now on. */
static void interrupt_job(tjob *j) {
  size_t i;
  uv_mutex_lock(&j->th->mu);
  j->closing = 1;
  j->base.stopping = 1;
  for (i = 0; i < j->nstates; i++)
    if (j->states[i] != NULL) interrupt(j->states[i]);
  uv_mutex_unlock(&j->th->mu);
}

/* lua_close: interrupt the inputs running now and wait for them; the hub
   lets the job go. */
static void job_detach(lcorio_pool_job *base) {
  tjob *j = (tjob *)base;
  interrupt_job(j);
  join_all(j);
  lcorio_pool_unref(base); /* the hub's */
}

static void job_free(lcorio_pool_job *base) {
  free(((tjob *)base)->threads);
  free(((tjob *)base)->states);
}

static const lcorio_pool_ops thread_ops = {
    .what = "corio.threads.map",
    .to = "a thread",
    .hub_key = HUB_KEY,
    .size = sizeof(tjob),
    .max_items = (lua_Unsigned)-1,
    .max_len = (size_t)-1,
    .hub_new = hub_new,
    .start = job_start,
    .stop = job_stop,
    .detach = job_detach,
    .free = job_free,
};
/* }================================================================== */

/*
** {==================================================================
** The Lua functions
** ===================================================================
*/

static int l_to_thread(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_to_thread);
    lcorio_pool_job *j = lcorio_pool_call_job(L, &thread_ops);
    return lcorio_pool_run(L, lt, j, 1);
  }
}

/* (): interrupt every job's workers (see lcorio_thread_interrupt_all). */
static int interrupt_all_p(lua_State *L) {
  lcorio_pool_hub **box;
  lcorio_pool_job *j;
  if (lua_getfield(L, LUA_REGISTRYINDEX, HUB_KEY) != LUA_TUSERDATA) return 0;
  box = lua_touserdata(L, -1);
  if (*box == NULL) return 0;
  for (j = (*box)->live; j != NULL; j = j->live_next) interrupt_job((tjob *)j);
  return 0;
}

void lcorio_thread_interrupt_all(lua_State *L) {
  /* protected: looking the hub up may allocate (its key), memory may be
     short, and this runs where an error must not unwind */
  lua_pushcfunction(L, interrupt_all_p);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/* min(32, cpus + 4), as Python's ThreadPoolExecutor */
static size_t default_threads(void) {
  size_t n = (size_t)uv_available_parallelism() + 4;
  return n < 32 ? n : 32;
}

static const char *const opt_names[] = {"threads", "timeout", NULL};

/*
** map's options, the table at 3 (or none): {threads=n}.  An unknown key or
** a bad value raises, naming the option, before any wait.  There is no
** timeout: a thread cannot be killed, so an item past it would run on,
** and be joined, anyway; processes.map kills its workers and has one.
*/
static size_t opt_threads(lua_State *L, size_t dflt) {
  const char *fn = "corio.threads.map";
  int opts = lcorio_opts_check(L, 3, fn, opt_names);
  if (lcorio_opt_push(L, opts, fn, "timeout", LUA_TNONE))
    luaL_error(L,
               "%s: option 'timeout' is only supported by "
               "corio.processes.map (a thread cannot be killed)",
               fn);
  return (size_t)lcorio_opt_integer(L, opts, fn, "threads", (lua_Integer)dflt,
                                    1, MAX_THREADS);
}

static int l_map(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TTABLE);
  opt_threads(L, 1); /* bad options raise before any wait */
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_map);
    size_t nthreads = opt_threads(L, default_threads());
    lcorio_pool_job *j = lcorio_pool_map_job(L, &thread_ops);
    if (j == NULL) return 1; /* no item: {n = 0} */
    return lcorio_pool_run(L, lt, j, nthreads);
  }
}
/* }================================================================== */

static const luaL_Reg funcs[] = {{"to_thread", l_to_thread}, {NULL, NULL}};
static const luaL_Reg thread_funcs[] = {{"map", l_map}, {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_thread_open(lua_State *L) {
  lcorio_setfuncs(L, funcs);
  lua_newtable(L); /* corio.threads */
  lua_pushvalue(L, -2);
  lcorio_setfuncs(L, thread_funcs);
  lua_pop(L, 1);
  lua_setfield(L, -3, "threads");
  lcorio_pool_open(L);
}
