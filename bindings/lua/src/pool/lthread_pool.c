/*
** lthread_pool.c: the threads of a job, each with a Lua state of its own,
** and the hub that brings ended jobs back to the loop (see lthread.h).
**
** A worker thread touches only its own lua_State, the job's read-only
** inputs, its outcome slots, and the counters under hub->mu: never the
** caller's state (docs/reliability.md rule 15).  uv_async_send coalesces, so
*the hub
** keeps a queue of ended jobs and drains all of it per callback.
*/
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "corio_lua.h"
#include "lthread.h"

#define HUB_KEY "corio.ThreadHub"

struct thub {
  uv_async_t async;
  uv_mutex_t mu;
  tjob *done; /* under mu: ended jobs, not yet joined */
  tjob *live; /* loop thread: jobs whose threads were started */
  size_t nlive;
};

/* {{{ jobs */
tjob *lthread_job_new(size_t nitems) {
  tjob *j = calloc(1, sizeof *j);
  if (j == NULL) return NULL;
  j->refs = 1;
  j->nitems = nitems;
  j->outs = calloc(nitems ? nitems : 1, sizeof *j->outs);
  if (j->outs == NULL) {
    free(j);
    return NULL;
  }
  return j;
}

void lthread_job_unref(tjob *j) {
  size_t i;
  if (--j->refs > 0) return;
  for (i = 0; i < j->nitems; i++) free(j->outs[i].data);
  free(j->outs);
  free(j->fn);
  free(j->in);
  free(j->in_off);
  free(j->threads);
  free(j);
}

void lthread_job_cancel(corio_task *task, void *job) {
  tjob *j = job;
  (void)task;
  j->task = NULL;
  if (j->hub != NULL) {
    uv_mutex_lock(&j->hub->mu);
    j->stop = 1;
    uv_mutex_unlock(&j->hub->mu);
  }
  lthread_job_unref(j); /* the wait's reference */
}
/* }}} */

/* {{{ a worker thread */

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
  if (lcopy_load_fn(L, j->fn, j->fn_len) != LUA_OK) return lua_error(L);
  return 1;
}

/* Take the next input, or return 0 when there is none to take. */
static int take_input(tjob *j, size_t *i) {
  int ok;
  uv_mutex_lock(&j->hub->mu);
  ok = !j->stop && j->taken < j->nitems;
  if (ok) *i = j->taken++;
  uv_mutex_unlock(&j->hub->mu);
  return ok;
}

static void worker(void *arg) {
  tjob *j = arg;
  thub *h = j->hub;
  lua_State *L = luaL_newstate();
  char *failed = NULL; /* why this worker cannot run the function */
  size_t i;
  int last;
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
  while (take_input(j, &i)) {
    if (L != NULL && failed == NULL)
      j->outs[i] = lcopy_run(L, 1, j->in + j->in_off[i],
                             j->in_off[i + 1] - j->in_off[i], j->first_only);
    else
      j->outs[i] =
          lcopy_error_outcome(failed != NULL ? failed : "not enough memory");
  }
  free(failed);
  if (L != NULL) lua_close(L);
  uv_mutex_lock(&h->mu);
  last = --j->live == 0;
  if (last) {
    j->done_next = h->done;
    h->done = j;
  }
  uv_mutex_unlock(&h->mu);
  /* the hub outlives this call: it is freed only after joining us */
  if (last) uv_async_send(&h->async);
}
/* }}} */

/* {{{ the hub */
static void link_job(thub *h, tjob *j) {
  j->live_prev = NULL;
  j->live_next = h->live;
  if (h->live != NULL) h->live->live_prev = j;
  h->live = j;
  if (h->nlive++ == 0) uv_ref((uv_handle_t *)&h->async);
}

static void unlink_job(thub *h, tjob *j) {
  if (j->live_prev != NULL)
    j->live_prev->live_next = j->live_next;
  else
    h->live = j->live_next;
  if (j->live_next != NULL) j->live_next->live_prev = j->live_prev;
  j->live_prev = j->live_next = NULL;
  /* no job running: the loop may end (a ref'd async never lets it) */
  if (--h->nlive == 0) uv_unref((uv_handle_t *)&h->async);
}

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
    unlink_job(h, j);
    if (j->task != NULL) {
      corio_task_wake(j->task, 0);
      j->task = NULL;
      lthread_job_unref(j); /* the wait's */
    }
    lthread_job_unref(j); /* the hub's */
  }
}

static void on_hub_closed(uv_handle_t *a) {
  thub *h = a->data;
  uv_mutex_destroy(&h->mu);
  free(h);
}

/*
** The state is closing (lua_close) or collected: threads cannot be
** interrupted, so stop every job from taking more inputs and join the
** threads, which waits for the inputs they run now.  A job whose task
** still waits stays alive: the task's shutdown runs lthread_job_cancel.
*/
static int hub_gc(lua_State *L) {
  thub *h = *(thub **)lua_touserdata(L, 1);
  tjob *j;
  if (h == NULL) return 0;
  uv_mutex_lock(&h->mu);
  for (j = h->live; j != NULL; j = j->live_next) j->stop = 1;
  uv_mutex_unlock(&h->mu);
  while ((j = h->live) != NULL) {
    join_all(j);
    unlink_job(h, j);
    j->hub = NULL;
    lthread_job_unref(j);
  }
  h->done = NULL;
  uv_close((uv_handle_t *)&h->async, on_hub_closed);
  *(thub **)lua_touserdata(L, 1) = NULL;
  return 0;
}

thub *lthread_hub(lua_State *L) {
  thub **box, *h;
  lcorio_state *S;
  if (lua_getfield(L, LUA_REGISTRYINDEX, HUB_KEY) == LUA_TUSERDATA) {
    h = *(thub **)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (h == NULL) luaL_error(L, "corio: the runtime is closing");
    return h;
  }
  lua_pop(L, 1);
  S = lcorio_getstate(L);
  if (S == NULL || S->rt == NULL) luaL_error(L, "corio: runtime is closed");
  box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, hub_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  h = calloc(1, sizeof *h);
  if (h == NULL) luaL_error(L, "not enough memory");
  if (uv_mutex_init(&h->mu) != 0) {
    free(h);
    luaL_error(L, "corio: cannot create a mutex");
  }
  uv_async_init(corio_rt_loop(S->rt), &h->async, on_async);
  h->async.data = h;
  uv_unref((uv_handle_t *)&h->async);
  *box = h;
  lua_setfield(L, LUA_REGISTRYINDEX, HUB_KEY);
  return h;
}

int lthread_job_start(thub *h, tjob *j, size_t nthreads) {
  size_t i;
  int rc = 0, last;
  j->threads = calloc(nthreads, sizeof *j->threads);
  if (j->threads == NULL) return UV_ENOMEM;
  j->hub = h;
  /* counted before any thread runs, so none can think it is the last */
  j->live = nthreads;
  link_job(h, j);
  for (i = 0; i < nthreads; i++) {
    rc = uv_thread_create(&j->threads[i], worker, j);
    if (rc != 0) break;
  }
  j->nthreads = i;
  if (i == 0) {
    unlink_job(h, j);
    j->hub = NULL;
    return rc;
  }
  j->refs++;          /* the hub's */
  if (i < nthreads) { /* go on with those that started */
    uv_mutex_lock(&h->mu);
    j->live -= nthreads - i;
    last = j->live == 0; /* they may all have ended already */
    if (last) {
      j->done_next = h->done;
      h->done = j;
    }
    uv_mutex_unlock(&h->mu);
    if (last) uv_async_send(&h->async);
  }
  return (int)i;
}
/* }}} */
