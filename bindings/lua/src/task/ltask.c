/*
** ltask.c: tasks and futures as Lua values.
**
** A task is a full userdata holding the binding's header (ltask) followed
** by the runtime's corio_task, with one user value: the task's coroutine
** while it is pending, then its result(s) or error once done (so a finished
** task's coroutine can be collected).  While pending, a registry ref
** anchors the userdata (and through it the coroutine); the thread's extra
** space points back at the task.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lcorio.h"
#include "corio_lua.h"

#define CORE_OFFSET   ((sizeof(ltask) + 15) & ~(size_t)15)
#define LT_BAREYIELD  0x40          /* last yield was a plain coroutine.yield */
#define NAMES_KEY     "corio.names" /* weak: task -> name set by set_name */
#define CALLBACKS_KEY "corio.donecb"    /* weak: task -> {cb, ...} */
#define CANCELMSG_KEY "corio.cancelmsg" /* weak: task -> message */

corio_task *lcorio_core(ltask *lt) {
  return (corio_task *)((char *)lt + CORE_OFFSET);
}

ltask *lcorio_ltask(corio_task *t) {
  return (ltask *)((char *)t - CORE_OFFSET);
}

ltask *lcorio_totask(lua_State *L, int idx) {
  return luaL_testudata(L, idx, LCORIO_TASK_MT);
}

ltask *lcorio_checktask(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, LCORIO_TASK_MT);
}

void lcorio_push_task(lua_State *L, ltask *lt) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lt->ref);
}

void lcorio_push_pending(lua_State *L, int hidden) {
  int n = 0;
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, LUA_REGISTRYINDEX) != 0) {
    ltask *lt = lcorio_totask(L, -1);
    if (lt != NULL && !corio_task_done(lcorio_core(lt)) &&
        (hidden || lt->id != 0)) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, -4, ++n);
    }
    lua_pop(L, 1);
  }
}

ltask *lcorio_current(lua_State *L) {
  ltask *lt = *(ltask **)lua_getextraspace(L);
  lcorio_state *S;
  if (lt == NULL) return NULL;
  S = lcorio_getstate(L);
  /* only while the scheduler is running this very task */
  if (S == NULL || S->rt == NULL ||
      corio_current_task(S->rt) != lcorio_core(lt))
    return NULL;
  return lt;
}

/* weak-keyed side tables for rare per-task data */
static void push_side(lua_State *L, const char *key) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, key);
  }
}

/* side[key][task at idx], pushed */
static int get_side(lua_State *L, const char *key, int idx) {
  idx = lua_absindex(L, idx);
  push_side(L, key);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  return lua_type(L, -1);
}

/* side[key][task at idx] = value at top (popped) */
static void set_side(lua_State *L, const char *key, int idx) {
  idx = lua_absindex(L, idx);
  push_side(L, key);
  lua_pushvalue(L, idx);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

static void task_resume(corio_task *t, int status);

/* Push a new task userdata, anchor it and start it in the runtime (queued
   to run, or with resume NULL a future). */
static ltask *push_new(lua_State *L, lcorio_state *S, uint32_t id,
                       uint8_t flags, corio_resume_fn resume) {
  ltask *lt = lua_newuserdatauv(L, CORE_OFFSET + corio_task_size(), 1);
  memset(lt, 0, sizeof *lt);
  lt->id = id;
  lt->flags = flags;
  luaL_setmetatable(L, LCORIO_TASK_MT);
  lua_pushvalue(L, -1);
  lt->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  corio_task_init(S->rt, lcorio_core(lt), resume, NULL);
  return lt;
}

/*
** Make a task for the function at `fidx` with `nargs` arguments after it
** (or, with fidx == 0, for the coroutine at the top of the stack, which is
** popped).  Pushes the task.  hidden tasks get no Task-N name.
*/
static lcorio_state *open_state(lua_State *L) {
  lcorio_state *S = lcorio_getstate(L);
  if (S == NULL || S->rt == NULL) luaL_error(L, "corio: runtime is closed");
  return S;
}

static ltask *new_task(lua_State *L, int fidx, int nargs, int hidden) {
  lcorio_state *S = open_state(L);
  lua_State *co;
  ltask *lt;
  int i;
  if (fidx == 0) {
    co = lua_tothread(L, -1);
  } else {
    fidx = lua_absindex(L, fidx);
    co = lua_newthread(L);
    if (!lua_checkstack(co, nargs + 1))
      luaL_error(L, "corio: too many arguments");
    for (i = 0; i <= nargs; i++) { /* one at a time: L may have no room */
      lua_pushvalue(L, fidx + i);
      lua_xmove(L, co, 1);
    }
  }
  lt = push_new(L, S, hidden ? 0 : S->next_id++, 0, task_resume);
  lua_rotate(L, -2, 1); /* task, thread */
  lua_setiuservalue(L, -2, 1);
  *(ltask **)lua_getextraspace(co) = lt;
  return lt;
}

static ltask *new_future(lua_State *L) {
  return push_new(L, open_state(L), 0, LT_FUTURE, NULL);
}

/* ---------------------------------------------------------------------
** Completion
** --------------------------------------------------------------------- */

/* Lua done callbacks of the task `lt` (pushed at top), in the order added. */
static void run_done_callbacks(lua_State *L, int tidx) {
  lua_Integer i, n;
  if (get_side(L, CALLBACKS_KEY, tidx) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  n = luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    lua_pushcfunction(L, lcorio_traceback_handler);
    lua_rawgeti(L, -2, i);
    lua_pushvalue(L, tidx);
    if (lua_pcall(L, 1, 0, -3) != LUA_OK)
      lcorio_report(L, "error in a done callback");
    lua_pop(L, 1); /* handler */
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  set_side(L, CALLBACKS_KEY, tidx);
}

/* The runtime's done callback: one per task that has Lua callbacks.  They
   run on the scheduler's thread, published as the running one so that
   Ctrl-C stops a busy loop in them too (corio_lua_running). */
static void on_done(corio_task *t, void *ud) {
  lcorio_state *S = ud;
  lua_State *L = S->L, *outer = S->running;
  if (S->closing) return;
  lua_checkstack(L, 8);
  lcorio_push_task(L, lcorio_ltask(t));
  S->running = L;
  run_done_callbacks(L, lua_gettop(L));
  S->running = outer;
  lua_pop(L, 1);
}

/* A done callback added after the task was done: anchored by two refs. */
typedef struct late_cb {
  lcorio_state *S;
  int fn_ref, task_ref;
} late_cb;

static void on_late_done(corio_task *t, void *ud) {
  late_cb *c = ud;
  lua_State *L = c->S->L, *outer = c->S->running;
  (void)t;
  if (!c->S->closing) {
    lua_checkstack(L, 8);
    lua_pushcfunction(L, lcorio_traceback_handler);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->task_ref);
    c->S->running = L; /* as on_done */
    if (lua_pcall(L, 1, 0, -3) != LUA_OK)
      lcorio_report(L, "error in a done callback");
    c->S->running = outer;
    lua_pop(L, 1);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, c->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->task_ref);
  free(c);
}

/*
** Store the outcome in the user value (the coroutine is released), then
** finish the runtime task (waiters and done callbacks run), then drop the
** anchor.  Values to store: `n` values at the top of L.
*/
static void complete(lua_State *L, ltask *lt, int tidx, corio_task_state st,
                     int n) {
  if (st == CORIO_TASK_FINISHED && n != 1) {
    if (n == 0) {
      lt->flags |= LT_NONE;
      lua_pushnil(L);
    } else {
      int i;
      lua_createtable(L, n, 1);
      lua_insert(L, -n - 1);
      for (i = n; i >= 1; i--) lua_rawseti(L, -i - 1, i);
      lua_pushinteger(L, n);
      lua_setfield(L, -2, "n");
      lt->flags |= LT_MULTI;
    }
  }
  lua_setiuservalue(L, tidx, 1);
  corio_task_finish(lcorio_core(lt), st);
  luaL_unref(L, LUA_REGISTRYINDEX, lt->ref);
  lt->ref = LUA_NOREF;
}

static void push_cancelled(lua_State *L, int tidx) {
  if (get_side(L, CANCELMSG_KEY, tidx) == LUA_TSTRING) {
    lcorio_pusherror(L, "CancelledError", "cancelled", "%s",
                     lua_tostring(L, -1));
    lua_remove(L, -2);
  } else {
    lua_pop(L, 1);
    lcorio_pusherror(L, "CancelledError", "cancelled", "task cancelled");
  }
}

/*
** The task's stored error value, pushed (for failed and cancelled).  A task
** cancelled before it ran, and a cancelled future, are completed with no
** value (see cancel_unstarted): their CancelledError is made here, on
** first use, and kept.
*/
static void push_error(lua_State *L, ltask *lt, int tidx) {
  tidx = lua_absindex(L, tidx);
  lua_getiuservalue(L, tidx, 1);
  if (corio_task_get_state(lcorio_core(lt)) == CORIO_TASK_FAILED) {
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  } else if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    push_cancelled(L, tidx);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, tidx, 1);
  }
}

/*
** Complete a cancelled task whose coroutine holds no frame to unwind (it
** never ran, or it is a future) without allocating: when the state is out
** of memory, cancelling is what frees it, so cancelling must not need
** memory itself.  push_error makes the CancelledError when it is asked for.
*/
static void cancel_unstarted(lua_State *L, ltask *lt, int tidx) {
  lua_pushnil(L);
  complete(L, lt, tidx, CORIO_TASK_CANCELLED, 1);
}

/*
** Out of memory, Lua collects all garbage before it gives up on an
** allocation: with hundreds of thousands of tasks in the heap, each failed
** allocation takes long.  Once a task could not even start for lack of memory,
*the
** tasks that have not started yet fail at once with the memory error,
** without touching the heap, until it has shrunk by an eighth:
** tasks that would each have failed after a full collection fail in a
** moment, and the memory they free lets the program go on.
*/
static int still_starved(lua_State *L, lcorio_state *S) {
  if (S->starved_kb == 0) return 0;
  if (lua_gc(L, LUA_GCCOUNT) > S->starved_kb - S->starved_kb / 8) return 1;
  S->starved_kb = 0;
  return 0;
}

/* What task_resume hands to resume_task. */
typedef struct resume_args {
  corio_task *t;
  int status;
} resume_args;

/* Resume the task and store its outcome, in protected mode (see
   task_resume). */
static int resume_task(lua_State *L) {
  resume_args *a = lua_touserdata(L, 1);
  corio_task *t = a->t;
  int status = a->status;
  ltask *lt = lcorio_ltask(t);
  lcorio_state *S = corio_rt_get_data(corio_task_rt(t));
  lua_State *co;
  int tidx, nargs, nres, rc, starting = !(lt->flags & LT_STARTED);
  lcorio_push_task(L, lt);
  tidx = lua_gettop(L);
  lua_getiuservalue(L, tidx, 1);
  co = lua_tothread(L, -1);
  lua_pop(L, 1); /* the user value still anchors it */
  if (starting) {
    lt->flags |= LT_STARTED;
    if (status == CORIO_ECANCELED) { /* cancelled before it ever ran */
      cancel_unstarted(L, lt, tidx);
      return 0;
    }
    if (still_starved(L, S)) {
      lcorio_push_memory_error(L, S);
      complete(L, lt, tidx, CORIO_TASK_FAILED, 1);
      return 0;
    }
    nargs = lua_gettop(co) - 1;
  } else if (lt->flags & LT_BAREYIELD) {
    lt->flags &= ~LT_BAREYIELD;
    /* a plain yield cannot raise: the cancel waits for the next wait */
    if (status == CORIO_ECANCELED) corio_task_cancel(t);
    nargs = 0;
  } else {
    lua_pushinteger(co, status);
    nargs = 1;
  }
  {
    lua_State *outer = S->running; /* a task resumed from a task's C call */
    unsigned failed = lcorio_small_alloc_failures(S);
    S->running = co;
    rc = lua_resume(co, L, nargs, &nres);
    S->running = outer;
    if (rc == LUA_ERRMEM && starting && S->starved_kb == 0 &&
        lcorio_small_alloc_failures(S) != failed)
      S->starved_kb = lua_gc(L, LUA_GCCOUNT); /* see still_starved */
  }
  if (rc == LUA_YIELD) {
    if (corio_task_get_state(t) == CORIO_TASK_RUNNING) {
      /* a plain coroutine.yield(): give the loop a turn, like sleep(0) */
      lt->flags |= LT_BAREYIELD;
      corio_task_yield(t);
    }
    lua_pop(co, nres);
  } else if (rc == LUA_OK) {
    luaL_checkstack(L, nres + 2, "too many results");
    lua_xmove(co, L, nres);
    complete(L, lt, tidx, CORIO_TASK_FINISHED, nres);
  } else {
    int cancelled;
    lua_xmove(co, L, 1); /* the error */
    cancelled = lcorio_iserror(L, -1, "CancelledError");
    if (cancelled) {
      lua_resetthread(co); /* runs pending <close> variables */
      complete(L, lt, tidx, CORIO_TASK_CANCELLED, 1);
    } else {
      const char *msg = luaL_tolstring(L, -1, NULL);
      lua_createtable(L, 1, 1);
      lua_pushvalue(L, -3);
      lua_rawseti(L, -2, 1);
      luaL_traceback(L, co, msg, 0);
      lua_setfield(L, -2, "traceback");
      lua_remove(L, -2); /* msg */
      lua_remove(L, -2); /* error */
      lua_resetthread(co);
      complete(L, lt, tidx, CORIO_TASK_FAILED, 1);
    }
  }
  return 0;
}

/*
** The driver: the runtime calls this when the task is ready.  It runs on
** the loop, inside libuv's and libcurl's frames, where a Lua error must
** not unwind (docs/reliability.md rule 14): storing the outcome allocates (a
*table
** of results, an error with its traceback), so it runs in protected mode.
** Should that fail (out of memory), the task fails with the state's
** preallocated memory error rather than stay pending forever.
*/
static void task_resume(corio_task *t, int status) {
  lcorio_state *S = corio_rt_get_data(corio_task_rt(t));
  lua_State *L = S->L;
  resume_args a;
  a.t = t;
  a.status = status;
  if (lcorio_protect(L, resume_task, &a) == LUA_OK) return;
  if (corio_task_done(t)) return;
  lcorio_push_task(L, lcorio_ltask(t));
  lcorio_push_memory_error(L, S);
  complete(L, lcorio_ltask(t), lua_gettop(L) - 1, CORIO_TASK_FAILED, 1);
  lua_pop(L, 1);
}

/* ---------------------------------------------------------------------
** Waiting helpers shared by every waiting function
** --------------------------------------------------------------------- */

int lcorio_yield(lua_State *L, lua_KContext ctx, lua_KFunction k) {
  return lua_yieldk(L, 0, ctx, k);
}

int lcorio_wait_status(lua_State *L) {
  ltask *lt = lcorio_current(L);
  int status;
  if (lt == NULL || !lua_isinteger(L, -1))
    return luaL_error(L, "corio: a task's coroutine was resumed from outside "
                         "the scheduler");
  status = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return status;
}

int lcorio_check(lua_State *L, int rc, const char *what) {
  if (rc < 0) return luaL_error(L, "corio: %s: %s", what, corio_strerror(rc));
  return rc;
}

/* Run the loop until `lt` is done; a deadlock is an error. */
void lcorio_run_until_done(lua_State *L, lcorio_state *S, ltask *lt) {
  corio_task *t = lcorio_core(lt);
  while (!corio_task_done(t)) {
    int more = corio_rt_run(S->rt, UV_RUN_ONCE);
    if (more == 0 && !corio_task_done(t)) {
      /* nothing left that could ever finish it: a deadlock */
      corio_task_cancel(t);
      corio_rt_run(S->rt, UV_RUN_NOWAIT);
      if (!corio_task_done(t)) corio_task_finish(t, CORIO_TASK_CANCELLED);
      luaL_error(L, "corio: deadlock: the loop has nothing left to do, but "
                    "the awaited task can never finish");
    }
  }
}

static int check_loop_idle(lua_State *L, lcorio_state *S) {
  if (!corio_rt_running(S->rt)) return 0;
  if (corio_current_task(S->rt) != NULL && L != S->L)
    return luaL_error(L, "corio: cannot wait inside a coroutine that a task "
                         "resumes itself; use corio.spawn for concurrent work");
  return luaL_error(L, "corio: cannot wait here: the loop is already running "
                       "(in a done callback?); spawn a task instead");
}

int lcorio_toplevel(lua_State *L, lua_CFunction self) {
  lcorio_state *S = lcorio_getstate(L);
  int n = lua_gettop(L);
  ltask *lt;
  check_loop_idle(L, S);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, self, 1);
  lua_insert(L, 1);
  lt = new_task(L, 1, n, 1);
  lcorio_run_until_done(L, S, lt);
  return lcorio_push_results(L, lt);
}

/* ---------------------------------------------------------------------
** Results
** --------------------------------------------------------------------- */

/* Push the results of done task `lt` (its userdata at the top), or raise
   its error.  The task stays where it is. */
int lcorio_push_results(lua_State *L, ltask *lt) {
  int tidx = lua_gettop(L);
  switch (corio_task_get_state(lcorio_core(lt))) {
  case CORIO_TASK_FINISHED:
    lua_getiuservalue(L, tidx, 1);
    if (lt->flags & LT_NONE) return 0;
    if (lt->flags & LT_MULTI) {
      int i, n;
      lua_getfield(L, -1, "n");
      n = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
      luaL_checkstack(L, n, "too many results");
      for (i = 1; i <= n; i++) lua_rawgeti(L, tidx + 1, i);
      return n;
    }
    return 1;
  case CORIO_TASK_FAILED:
  case CORIO_TASK_CANCELLED:
    lt->flags |= LT_RETRIEVED;
    push_error(L, lt, tidx);
    return lua_error(L);
  default:
    return lcorio_raise(L, "InvalidStateError", "invalid_state",
                        "Result is not set.");
  }
}

/* ---------------------------------------------------------------------
** Coroutine objects: corio.async(fn)(...) makes one, not running yet
** --------------------------------------------------------------------- */

typedef struct lcoro {
  int consumed; /* turned into a task */
  int warned;   /* "never awaited" said once */
} lcoro;

static int async_call(lua_State *L) {
  int n = lua_gettop(L);
  lua_State *co;
  lcoro *c = lua_newuserdatauv(L, sizeof *c, 1);
  c->consumed = c->warned = 0;
  luaL_setmetatable(L, LCORIO_CORO_MT);
  co = lua_newthread(L);
  if (!lua_checkstack(co, n + 1)) luaL_error(L, "corio: too many arguments");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_xmove(L, co, 1);
  lua_setiuservalue(L, -2, 1);
  lua_getiuservalue(L, -1, 1);
  co = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_rotate(L, 1, 1); /* coroutine object first, args after */
  lua_xmove(L, co, n);
  return 1;
}

static int l_async(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_pushcclosure(L, async_call, 1);
  return 1;
}

int lcorio_coro_take(lua_State *L, int idx) {
  lcoro *c = luaL_testudata(L, idx, LCORIO_CORO_MT);
  lua_State *co;
  int n;
  if (c == NULL || c->consumed) return -1;
  c->consumed = 1;
  lua_getiuservalue(L, idx, 1);
  co = lua_tothread(L, -1);
  lua_pop(L, 1);
  n = lua_gettop(co);
  luaL_checkstack(L, n, "corio: too many arguments");
  lua_xmove(co, L, n);
  return n - 1;
}

/* Replace the value at idx with a task made from it if needed. */
ltask *lcorio_ensure_task(lua_State *L, int idx) {
  ltask *lt;
  lcoro *c;
  idx = lua_absindex(L, idx);
  if ((lt = lcorio_totask(L, idx)) != NULL) return lt;
  if ((c = luaL_testudata(L, idx, LCORIO_CORO_MT)) != NULL) {
    if (c->consumed)
      luaL_error(L, "corio: this coroutine object was already scheduled");
    c->consumed = 1;
    lua_getiuservalue(L, idx, 1);
    lt = new_task(L, 0, 0, 0);
    lua_replace(L, idx);
    return lt;
  }
  if (lua_type(L, idx) == LUA_TFUNCTION) {
    lt = new_task(L, idx, 0, 0);
    lua_replace(L, idx);
    return lt;
  }
  luaL_error(L,
             "corio: expected a task, future, coroutine object or "
             "function, got %s",
             luaL_typename(L, idx));
  return NULL;
}

/* corio.spawn(fn, ...) / corio.create_task(coro) */
static int l_spawn(lua_State *L) {
  if (luaL_testudata(L, 1, LCORIO_CORO_MT) != NULL) {
    lua_settop(L, 1);
    lcorio_ensure_task(L, 1);
    return 1;
  }
  luaL_argexpected(L, lua_type(L, 1) == LUA_TFUNCTION, 1,
                   "function or coroutine object");
  new_task(L, 1, lua_gettop(L) - 1, 0);
  return 1;
}

static int l_ensure_future(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  lcorio_ensure_task(L, 1);
  return 1;
}

static int l_future(lua_State *L) {
  new_future(L);
  return 1;
}

int lcorio_cancelled(lua_State *L) {
  ltask *lt = lcorio_current(L);
  if (lt == NULL)
    return lcorio_raise(L, "CancelledError", "cancelled", "task cancelled");
  lcorio_push_task(L, lt);
  push_cancelled(L, lua_gettop(L));
  return lua_error(L);
}

static int l_current_task(lua_State *L) {
  ltask *lt = lcorio_current(L);
  if (lt == NULL) return 0;
  lcorio_push_task(L, lt);
  return 1;
}

/* ---------------------------------------------------------------------
** Task methods
** --------------------------------------------------------------------- */

static int t_done(lua_State *L) {
  lua_pushboolean(L, corio_task_done(lcorio_core(lcorio_checktask(L, 1))));
  return 1;
}

static int t_cancelled(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  lua_pushboolean(L, corio_task_get_state(lcorio_core(lt)) ==
                         CORIO_TASK_CANCELLED);
  return 1;
}

static int t_result(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  lua_settop(L, 1);
  return lcorio_push_results(L, lt);
}

static int t_exception(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  switch (corio_task_get_state(lcorio_core(lt))) {
  case CORIO_TASK_FAILED:
    lt->flags |= LT_RETRIEVED;
    push_error(L, lt, 1);
    return 1;
  case CORIO_TASK_CANCELLED:
    push_error(L, lt, 1);
    return lua_error(L);
  case CORIO_TASK_FINISHED:
    return 0;
  default:
    return lcorio_raise(L, "InvalidStateError", "invalid_state",
                        "Exception is not set.");
  }
}

static int t_traceback(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  if (corio_task_get_state(lcorio_core(lt)) != CORIO_TASK_FAILED) return 0;
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, "traceback");
  return 1;
}

static int t_cancel(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  corio_task *t = lcorio_core(lt);
  if (corio_task_done(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (!lua_isnoneornil(L, 2)) {
    luaL_checkstring(L, 2);
    lua_pushvalue(L, 2);
    set_side(L, CANCELMSG_KEY, 1);
  }
  if (lt->flags & LT_FUTURE) {
    /* finish it here: the error value and the anchor are ours to manage */
    cancel_unstarted(L, lt, 1);
  } else {
    corio_task_cancel(t);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int t_add_done_callback(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  corio_task *t = lcorio_core(lt);
  lcorio_state *S = lcorio_upstate(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (corio_task_done(t)) {
    late_cb *c = malloc(sizeof *c);
    if (c == NULL) return luaL_error(L, "not enough memory");
    c->S = S;
    lua_pushvalue(L, 2);
    c->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 1);
    c->task_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (corio_task_add_done(t, on_late_done, c) != 0) {
      luaL_unref(L, LUA_REGISTRYINDEX, c->fn_ref);
      luaL_unref(L, LUA_REGISTRYINDEX, c->task_ref);
      free(c);
      return luaL_error(L, "not enough memory");
    }
    return 0;
  }
  if (get_side(L, CALLBACKS_KEY, 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    if (corio_task_add_done(t, on_done, S) != 0)
      return luaL_error(L, "not enough memory");
    lua_newtable(L);
    lua_pushvalue(L, -1);
    set_side(L, CALLBACKS_KEY, 1);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  return 0;
}

static int t_remove_done_callback(lua_State *L) {
  lua_Integer i, n, removed = 0, j = 1;
  lcorio_checktask(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (get_side(L, CALLBACKS_KEY, 1) == LUA_TTABLE) {
    n = luaL_len(L, -1);
    for (i = 1; i <= n; i++) { /* compact in place, keeping the order */
      lua_rawgeti(L, -1, i);
      if (lua_rawequal(L, -1, 2)) {
        removed++;
        lua_pop(L, 1);
      } else {
        lua_rawseti(L, -2, j++);
      }
    }
    for (; j <= n; j++) {
      lua_pushnil(L);
      lua_rawseti(L, -2, j);
    }
  }
  lua_pushinteger(L, removed);
  return 1;
}

static void push_name(lua_State *L, ltask *lt, int tidx) {
  if ((lt->flags & LT_NAMED) && get_side(L, NAMES_KEY, tidx) == LUA_TSTRING)
    return;
  if (lt->flags & LT_NAMED) lua_pop(L, 1);
  lua_pushfstring(L, "Task-%d", (int)lt->id);
}

static int t_get_name(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  push_name(L, lt, 1);
  return 1;
}

static int t_set_name(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  luaL_tolstring(L, 2, NULL);
  set_side(L, NAMES_KEY, 1);
  lt->flags |= LT_NAMED;
  return 0;
}

static int t_set_result(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  int n = lua_gettop(L) - 1;
  if (!(lt->flags & LT_FUTURE))
    return luaL_error(L, "corio: set_result is for futures, not tasks");
  if (corio_task_done(lcorio_core(lt)))
    return lcorio_raise(L, "InvalidStateError", "invalid_state",
                        "invalid state: the future is already done");
  complete(L, lt, 1, CORIO_TASK_FINISHED, n);
  return 0;
}

static int t_set_exception(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  if (!(lt->flags & LT_FUTURE))
    return luaL_error(L, "corio: set_exception is for futures, not tasks");
  luaL_checkany(L, 2);
  if (corio_task_done(lcorio_core(lt)))
    return lcorio_raise(L, "InvalidStateError", "invalid_state",
                        "invalid state: the future is already done");
  lua_settop(L, 2);
  lua_createtable(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, 1);
  luaL_traceback(L, L, luaL_tolstring(L, 2, NULL), 1);
  lua_setfield(L, -3, "traceback");
  lua_pop(L, 1); /* the message */
  complete(L, lt, 1, CORIO_TASK_FAILED, 1);
  return 0;
}

static int async_call(lua_State *L);

/* Does the value on top hold the function at fidx: is it that function, or
   the corio.async wrapper of it (what the user named)? */
static int holds_function(lua_State *L, int fidx) {
  int yes = lua_rawequal(L, -1, fidx);
  if (!yes && lua_tocfunction(L, -1) == async_call &&
      lua_getupvalue(L, -1, 1) != NULL) {
    yes = lua_rawequal(L, -1, fidx);
    lua_pop(L, 1);
  }
  return yes;
}

/* "name at source:line" of the function at idx: the name of a global, or
   of a local of an active function, that holds it. */
static void push_funcname(lua_State *L, int idx) {
  lua_Debug ar, fr;
  int top = lua_gettop(L), found = 0, level, i;
  const char *local;
  idx = lua_absindex(L, idx);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_GNAME);
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushnil(L);
    while (!found && lua_next(L, -2) != 0) {
      found = lua_type(L, -2) == LUA_TSTRING && holds_function(L, idx);
      lua_pop(L, 1); /* the key stays on top when found */
    }
  }
  if (found) lua_replace(L, top + 1);
  lua_settop(L, top + found);
  for (level = 0; !found && lua_getstack(L, level, &fr); level++)
    for (i = 1; !found && (local = lua_getlocal(L, &fr, i)) != NULL; i++) {
      found = *local != '(' && holds_function(L, idx);
      lua_pop(L, 1);
      if (found) lua_pushstring(L, local);
    }
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">S", &ar);
  if (found)
    lua_pushfstring(L, "%s at %s:%d", lua_tostring(L, top + 1), ar.short_src,
                    ar.linedefined);
  else if (*ar.what == 'C')
    lua_pushliteral(L, "function");
  else
    lua_pushfstring(L, "function at %s:%d", ar.short_src, ar.linedefined);
  if (found) lua_remove(L, top + 1);
}

/* The task's function: at the bottom of a coroutine not started yet, or
   the function of its outermost frame.  Pushes it, or nothing (0). */
static int push_task_function(lua_State *L, lua_State *co) {
  lua_Debug ar;
  int level = 0;
  if (co == NULL) return 0;
  if (lua_status(co) == LUA_OK && lua_gettop(co) >= 1 &&
      !lua_getstack(co, 0, &ar)) {
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
    return 1;
  }
  while (lua_getstack(co, level + 1, &ar)) level++;
  if (!lua_getstack(co, level, &ar)) return 0;
  lua_getinfo(co, "f", &ar);
  lua_xmove(co, L, 1);
  return 1;
}

/* tostring(value at idx), shortened */
static void push_short(lua_State *L, int idx) {
  size_t len;
  const char *s;
  if (lua_type(L, idx) == LUA_TSTRING) {
    lua_pushfstring(L, "'%s'", lua_tostring(L, idx));
  } else {
    luaL_tolstring(L, idx, NULL);
  }
  s = lua_tolstring(L, -1, &len);
  if (len > 80) {
    lua_pushfstring(L, "%.77s...", s);
    lua_remove(L, -2);
  }
}

/* Built as pieces on the stack, then concatenated. */
static int t_tostring(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  corio_task *t = lcorio_core(lt);
  int future = (lt->flags & LT_FUTURE) != 0, base;
  corio_task_state st = corio_task_get_state(t);
  lua_settop(L, 1);
  base = lua_gettop(L);
  lua_pushstring(L, future ? "<Future " : "<Task ");
  lua_pushstring(L, st == CORIO_TASK_CANCELLED  ? "cancelled"
                    : st >= CORIO_TASK_FINISHED ? "finished"
                                                : "pending");
  if (!future) {
    lua_pushliteral(L, " name='");
    push_name(L, lt, 1);
    lua_pushliteral(L, "'");
  }
  if (st == CORIO_TASK_FINISHED) {
    lua_pushliteral(L, " result=");
    if (lt->flags & LT_NONE) {
      lua_pushliteral(L, "nil");
    } else {
      lua_Integer i, n = 1;
      int tbl;
      lua_getiuservalue(L, 1, 1);
      tbl = lua_gettop(L);
      if (lt->flags & LT_MULTI) {
        lua_getfield(L, tbl, "n");
        n = lua_tointeger(L, -1);
        lua_pop(L, 1);
      }
      for (i = 1; i <= n && i <= 8; i++) {
        if (i > 1) lua_pushliteral(L, ", ");
        if (lt->flags & LT_MULTI)
          lua_rawgeti(L, tbl, i);
        else
          lua_pushvalue(L, tbl);
        push_short(L, -1);
        lua_remove(L, -2);
      }
      lua_remove(L, tbl);
    }
  } else if (st == CORIO_TASK_FAILED) {
    lua_pushliteral(L, " exception=");
    push_error(L, lt, 1);
    push_short(L, -1);
    lua_remove(L, -2);
  } else if (st == CORIO_TASK_PENDING || st == CORIO_TASK_RUNNING) {
    lua_State *co;
    lua_getiuservalue(L, 1, 1);
    co = lua_tothread(L, -1);
    lua_pop(L, 1);
    if (co != NULL && push_task_function(L, co)) {
      lua_pushliteral(L, " coro=");
      lua_insert(L, -2);
      push_funcname(L, -1);
      lua_remove(L, -2);
    }
  }
  lua_pushliteral(L, ">");
  lua_concat(L, lua_gettop(L) - base);
  return 1;
}

static int coro_tostring(lua_State *L) {
  lcoro *c = luaL_checkudata(L, 1, LCORIO_CORO_MT);
  lua_getiuservalue(L, 1, 1);
  if (!push_task_function(L, lua_tothread(L, -1))) lua_pushnil(L);
  push_funcname(L, -1);
  lua_pushfstring(L, "<coroutine %s %s>", lua_tostring(L, -1),
                  c->consumed ? "scheduled" : "pending");
  return 1;
}

static int coro_gc(lua_State *L) {
  lcoro *c = luaL_testudata(L, 1, LCORIO_CORO_MT);
  lcorio_state *S = lcorio_upstate(L);
  if (c == NULL || c->consumed || c->warned || S->closing ||
      !lcorio_collecting(L))
    return 0;
  c->warned = 1;
  lua_getiuservalue(L, 1, 1);
  if (!push_task_function(L, lua_tothread(L, -1))) return 0;
  push_funcname(L, -1);
  fprintf(stderr, "corio: warning: coroutine %s was never awaited\n",
          lua_tostring(L, -1));
  return 0;
}

/*
** Abort every task still pending (lua_close is finalizing the state): no
** Lua runs; the runtime's waits are released so the runtime can be freed.
*/
void lcorio_task_shutdown(lua_State *L, lcorio_state *S) {
  if (S->closing || S->rt == NULL) return;
  S->closing = 1;
  lua_checkstack(L, 4);
  lua_pushnil(L); /* finishing runs no Lua now (closing): the walk holds */
  while (lua_next(L, LUA_REGISTRYINDEX) != 0) {
    ltask *lt = lcorio_totask(L, -1);
    if (lt != NULL && !corio_task_done(lcorio_core(lt)))
      corio_task_finish(lcorio_core(lt), CORIO_TASK_CANCELLED);
    lua_pop(L, 1);
  }
}

/*
** Cancel every pending task, allocating nothing: a script that failed for
** lack of memory is cancelled this way (corio_lua_cancel_all).  A task is
** only flagged and queued.  A future finishes at once and runs its done
** callbacks, which may add keys to the registry, where a walk with
** lua_next may then skip entries (it stays valid from a key still
** present, and ours stay: luaL_unref never clears one).  So futures are
** noted by ref, FUTURE_BATCH at a time, and finished between steps of the
** walk; a walk that finished any is followed by another.
*/
#define FUTURE_BATCH 256

static int is_task(lua_State *L, int mt) {
  int yes;
  if (lua_type(L, -1) != LUA_TUSERDATA || !lua_getmetatable(L, -1)) return 0;
  yes = lua_rawequal(L, -1, mt);
  lua_pop(L, 1);
  return yes;
}

static int cancel_futures(lua_State *L, const int *refs, int k) {
  int i, n = 0;
  for (i = 0; i < k; i++) {
    ltask *lt;
    lua_rawgeti(L, LUA_REGISTRYINDEX, refs[i]);
    lt = lcorio_totask(L, -1);
    /* a callback of an earlier one may have finished it */
    if (lt != NULL && lt->ref == refs[i] && !corio_task_done(lcorio_core(lt))) {
      cancel_unstarted(L, lt, lua_gettop(L));
      n++;
    }
    lua_pop(L, 1);
  }
  return n;
}

int lcorio_cancel_all(lua_State *L) {
  int refs[FUTURE_BATCH], n = 0, k = 0, first = 1, walked_futures, mt;
  lua_checkstack(L, 6);
  lua_getfield(L, LUA_REGISTRYINDEX, LCORIO_TASK_MT);
  mt = lua_gettop(L);
  do {
    walked_futures = 0;
    lua_pushnil(L);
    while (lua_next(L, LUA_REGISTRYINDEX) != 0) {
      ltask *lt = is_task(L, mt) ? lua_touserdata(L, -1) : NULL;
      lua_pop(L, 1);
      if (lt == NULL || corio_task_done(lcorio_core(lt))) continue;
      if (!(lt->flags & LT_FUTURE)) {
        n += corio_task_cancel(lcorio_core(lt)) && first;
        continue;
      }
      refs[k++] = lt->ref;
      walked_futures = 1;
      if (k == FUTURE_BATCH) { /* the key stays on the stack meanwhile */
        n += cancel_futures(L, refs, k);
        k = 0;
      }
    }
    n += cancel_futures(L, refs, k);
    k = 0;
    first = 0;
  } while (walked_futures);
  lua_pop(L, 1); /* mt */
  return n;
}

/* Is the failed task at 1 failed with the preallocated memory error?  A
   heap so full that tasks failed this way has no room to describe each. */
static int is_memory_error(lua_State *L, lcorio_state *S) {
  int same;
  lua_getiuservalue(L, 1, 1);
  lcorio_push_memory_error(L, S);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}

/* upvalues: 1 the state, 2 the task metatable (compared directly: this
   runs for every task collected) */
static int t_gc(lua_State *L) {
  ltask *lt = lua_touserdata(L, 1);
  lcorio_state *S = lcorio_upstate(L);
  corio_task *t;
  if (lt == NULL || !lua_getmetatable(L, 1) ||
      !lua_rawequal(L, -1, lua_upvalueindex(2)) || S->rt == NULL)
    return 0;
  t = lcorio_core(lt);
  if (corio_task_done(t) && (corio_task_get_state(t) != CORIO_TASK_FAILED ||
                             (lt->flags & LT_RETRIEVED)))
    return 0;                          /* the common case: nothing to do */
  if (!lcorio_collecting(L)) return 0; /* a script's call: the task lives */
  if (!corio_task_done(t)) {
    /* only lua_close collects a pending task: it is anchored otherwise */
    lcorio_task_shutdown(L, S);
    return 0;
  }
  lt->flags |= LT_RETRIEVED;   /* said once */
  if (is_memory_error(L, S)) { /* told once, by the state (lcorio.c) */
    S->nomem_unretrieved++;
    return 0;
  }
  lua_pushcfunction(L, t_tostring);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) lua_pushliteral(L, "<Task>");
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, "traceback");
  fprintf(stderr, "corio: Task exception was never retrieved\nfuture: %s\n%s\n",
          lua_tostring(L, -3), lua_tostring(L, -1));
  fflush(stderr);
  return 0;
}

static const luaL_Reg task_methods[] = {
    {"done", t_done},
    {"cancelled", t_cancelled},
    {"result", t_result},
    {"exception", t_exception},
    {"traceback", t_traceback},
    {"cancel", t_cancel},
    {"add_done_callback", t_add_done_callback},
    {"remove_done_callback", t_remove_done_callback},
    {"get_name", t_get_name},
    {"set_name", t_set_name},
    {"set_result", t_set_result},
    {"set_exception", t_set_exception},
    {NULL, NULL}};

static const luaL_Reg funcs[] = {{"async", l_async},
                                 {"spawn", l_spawn},
                                 {"create_task", l_spawn},
                                 {"ensure_future", l_ensure_future},
                                 {"future", l_future},
                                 {"current_task", l_current_task},
                                 {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_task_open(lua_State *L) {
  lcorio_setfuncs(L, funcs);
  if (luaL_newmetatable(L, LCORIO_TASK_MT)) { /* its __name names the type */
    lua_newtable(L);      /* the methods, apart: t.__gc is nil */
    lua_pushvalue(L, -3); /* state */
    lcorio_setfuncs(L, task_methods);
    lua_pop(L, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, t_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, t_gc, 2);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LCORIO_CORO_MT)) {
    lua_pushcfunction(L, coro_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, coro_gc, 1);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
