/*
** ltask.c: tasks and futures as Lua values: the object, its creation,
** completion and the resume driver, and the binding's internal task API
** (lcorio_spawn, lcorio_future, lcorio_cancel, lcorio_set_result, ...).
**
** A task is a full userdata holding the binding's header (ltask) followed
** by the runtime's corio_task, with one user value: the task's coroutine
** while it is pending, then its result(s) or error once done (so a finished
** task's coroutine can be collected).  While pending, a registry ref
** anchors the userdata (and through it the coroutine); the thread's extra
** space points back at the task.
**
** The other task files: lfuture.c (methods, done callbacks), lcoro.c
** (corio.async, spawn), ltoplevel.c (waits at top level, shutdown),
** ltask_print.c (tostring); ltask.h is what they share.
*/
#include <string.h>

#include "ltask.h"

/*
** {==================================================================
** The object
** ==================================================================
*/

corio_task *lcorio_core(ltask *lt) {
  return (corio_task *)((char *)lt + LCORIO_CORE_OFFSET);
}

ltask *lcorio_ltask(corio_task *t) {
  return (ltask *)((char *)t - LCORIO_CORE_OFFSET);
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

/* side[key] and the task at idx, pushed */
static void push_side_slot(lua_State *L, const char *key, int idx) {
  idx = lua_absindex(L, idx);
  push_side(L, key);
  lua_pushvalue(L, idx);
}

/* side[key][task at idx], pushed */
int lcorio_side_get(lua_State *L, const char *key, int idx) {
  push_side_slot(L, key, idx);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  return lua_type(L, -1);
}

/* side[key][task at idx] = value at top (popped) */
void lcorio_side_set(lua_State *L, const char *key, int idx) {
  push_side_slot(L, key, idx); /* value, side, task */
  lua_rotate(L, -3, -1);       /* side, task, value */
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* }================================================================== */

/*
** {==================================================================
** Creation
** ==================================================================
*/

static void task_resume(corio_task *t, int status);

/*
** Push a new task userdata, anchor it and start it in the runtime (queued
** to run, or with resume NULL a future).
*/
static ltask *push_new(lua_State *L, lcorio_state *S, uint32_t id,
                       uint8_t flags, corio_resume_fn resume) {
  ltask *lt = lua_newuserdatauv(L, LCORIO_CORE_OFFSET + corio_task_size(), 2);
  memset(lt, 0, sizeof *lt);
  lt->id = id;
  lt->flags = flags;
  lt->wait = LCORIO_W_READY;
  lt->since = corio_rt_now(S->rt);
  lua_pushvalue(L, -1);
  lt->ref = luaL_ref(L, LUA_REGISTRYINDEX); /* out of memory: raises */
  corio_task_init(S->rt, lcorio_core(lt), resume, NULL);
  /*
  ** The finalizer last, once there is a task to finalize: had luaL_ref
  ** raised with the metatable set, __gc would have read a corio_task never
  ** initialized (whatever the allocator left there, a "failed" state
  ** included) and crashed at lua_close.  Setting it allocates nothing.
  */
  luaL_setmetatable(L, LCORIO_TASK_MT);
  return lt;
}

/*
** Make a task for the function at `fidx` with `nargs` arguments after it
** (or, with fidx == 0, for the coroutine at the top of the stack, which is
** popped).  Pushes the task.  hidden tasks get no Task-N name.
*/
lcorio_state *lcorio_open_state(lua_State *L) {
  lcorio_state *S = lcorio_getstate(L);
  if (S == NULL || S->rt == NULL) luaL_error(L, "corio: runtime is closed");
  return S;
}

ltask *lcorio_task_new(lua_State *L, int fidx, int nargs, int hidden) {
  lcorio_state *S = lcorio_open_state(L);
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
  lcorio_note_spawn(L, lt, lua_gettop(L));
  return lt;
}

/* }================================================================== */

/*
** {==================================================================
** Completion
** ==================================================================
*/

/*
** Store the outcome in the user value (the coroutine is released), then
** finish the runtime task (waiters and done callbacks run), then drop the
** anchor.  Values to store: `n` values at the top of L.
*/
void lcorio_complete(lua_State *L, ltask *lt, int tidx, corio_task_state st,
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
  lt->wait = LCORIO_W_NONE;
  lua_pushnil(L); /* the spawn site's function: only pending tasks show it */
  lua_setiuservalue(L, tidx, 2);
  corio_task_finish(lcorio_core(lt), st);
  luaL_unref(L, LUA_REGISTRYINDEX, lt->ref);
  lt->ref = LUA_NOREF;
}

void lcorio_push_cancelled(lua_State *L, int tidx) {
  if (lcorio_side_get(L, LCORIO_CANCELMSG_KEY, tidx) == LUA_TSTRING) {
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
** value (see lcorio_cancel_unstarted): their CancelledError is made here, on
** first use, and kept.
*/
void lcorio_push_error(lua_State *L, ltask *lt, int tidx) {
  tidx = lua_absindex(L, tidx);
  lua_getiuservalue(L, tidx, 1);
  if (corio_task_get_state(lcorio_core(lt)) == CORIO_TASK_FAILED) {
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  } else if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lcorio_push_cancelled(L, tidx);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, tidx, 1);
  }
}

/*
** Complete a cancelled task whose coroutine holds no frame to unwind (it
** never ran, or it is a future) without allocating: when the state is out
** of memory, cancelling is what frees it, so cancelling must not need
** memory itself.  lcorio_push_error makes the CancelledError when it is asked
** for.
*/
void lcorio_cancel_unstarted(lua_State *L, ltask *lt, int tidx) {
  lua_pushnil(L);
  lcorio_complete(L, lt, tidx, CORIO_TASK_CANCELLED, 1);
}

int lcorio_cancelled(lua_State *L) {
  ltask *lt = lcorio_current(L);
  if (lt == NULL)
    return lcorio_raise(L, "CancelledError", "cancelled", "task cancelled");
  lcorio_push_task(L, lt);
  lcorio_push_cancelled(L, lua_gettop(L));
  return lua_error(L);
}

/* }================================================================== */

/*
** {==================================================================
** The resume driver
** ==================================================================
*/

/*
** Out of memory, Lua collects all garbage before it gives up on an
** allocation: with hundreds of thousands of tasks in the heap, each failed
** allocation takes long.  Once a task could not even start for lack of
** memory, the
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

/*
** {==================================================================
** The CPU budget (corio.set_task_budget): docs/reliability.md fault 20
** ===================================================================
** A task that runs past the budget without yielding fails with a
** BudgetError raised where it is, by a count hook set on its coroutine
** for the time it runs (as lua.c's Ctrl-C stops a busy loop).  Debug
** mode's slow-task report is another mechanism (it reports after the
** fact and fails nothing).  The hook stays armed until the task yields,
** so a pcall that catches the error gets it again.  Top-level code is no
** task: no budget applies to it.
*/
#define BUDGET_COUNT 10000 /* instructions between two looks at the clock */

static void budget_hook(lua_State *co, lua_Debug *ar) {
  lcorio_state *S = lcorio_getstate(co);
  uint64_t ran;
  (void)ar;
  if (S == NULL || S->budget_ns == 0 || S->slice_start == 0) {
    lua_sethook(co, NULL, 0, 0); /* inherited by a coroutine made meanwhile */
    return;
  }
  ran = uv_hrtime() - S->slice_start;
  if (ran <= S->budget_ns) return;
  lcorio_raise(co, "BudgetError", "budget",
               "the task ran %f s without yielding (budget %f s: "
               "corio.set_task_budget)",
               (double)ran / 1e9, (double)S->budget_ns / 1e9);
}

/* Arm the hook on co (unless another hook, Ctrl-C's, is there); returns
   the outer slice's start, to give back to end_slice. */
static uint64_t start_slice(lcorio_state *S, lua_State *co) {
  uint64_t outer = S->slice_start;
  lua_Hook h = lua_gethook(co);
  if (S->budget_ns == 0) {
    if (h == budget_hook) lua_sethook(co, NULL, 0, 0);
    return outer;
  }
  if (h != NULL && h != budget_hook) return outer;
  S->slice_start = uv_hrtime();
  lua_sethook(co, budget_hook, LUA_MASKCOUNT, BUDGET_COUNT);
  return outer;
}

static void end_slice(lcorio_state *S, lua_State *co, uint64_t outer) {
  if (lua_gethook(co) == budget_hook) lua_sethook(co, NULL, 0, 0);
  S->slice_start = outer;
}

/* corio.set_task_budget(seconds | nil) -> the previous budget or nil */
int lcorio_set_task_budget(lua_State *L) {
  lcorio_state *S = lcorio_upstate(L);
  uint64_t old = S->budget_ns;
  if (lua_isnoneornil(L, 1)) {
    S->budget_ns = 0;
  } else {
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s > 0, 1, "expected a number of seconds > 0, or nil");
    /* past a year (inf included), as good as none */
    S->budget_ns = s >= 365 * 86400.0 ? 0 : (uint64_t)(s * 1e9);
    if (S->budget_ns == 0 && s < 1) S->budget_ns = 1;
  }
  if (old == 0) return 0;
  lua_pushnumber(L, (lua_Number)old / 1e9);
  return 1;
}
/* }================================================================== */

/*
** Resume the task and store its outcome, in protected mode (see
** task_resume).
*/
static int resume_task(lua_State *L) {
  resume_args *a = lua_touserdata(L, 1);
  corio_task *t = a->t;
  int status = a->status;
  ltask *lt = lcorio_ltask(t);
  lcorio_state *S = corio_rt_get_data(corio_task_rt(t));
  lua_State *co;
  int tidx, nargs, nres, rc, starting = !(lt->flags & LT_STARTED);
  uint64_t begin = 0;
  lcorio_push_task(L, lt);
  tidx = lua_gettop(L);
  lua_getiuservalue(L, tidx, 1);
  co = lua_tothread(L, -1);
  lua_pop(L, 1); /* the user value still anchors it */
  if (starting) {
    lt->flags |= LT_STARTED;
    if (status == CORIO_ECANCELED) { /* cancelled before it ever ran */
      lcorio_cancel_unstarted(L, lt, tidx);
      return 0;
    }
    if (still_starved(L, S)) {
      lcorio_push_memory_error(L, S);
      lcorio_complete(L, lt, tidx, CORIO_TASK_FAILED, 1);
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
  if (S->observe) begin = lcorio_observe_begin(L, S, lt, tidx, co);
  lt->wait = LCORIO_W_NONE;
  {
    lua_State *outer = S->running; /* a task resumed from a task's C call */
    unsigned failed = lcorio_small_alloc_failures(S);
    uint64_t slice = start_slice(S, co);
    S->running = co;
    rc = lua_resume(co, L, nargs, &nres);
    S->running = outer;
    end_slice(S, co, slice);
    if (rc == LUA_ERRMEM && starting && S->starved_kb == 0 &&
        lcorio_small_alloc_failures(S) != failed)
      S->starved_kb = lua_gc(L, LUA_GCCOUNT); /* see still_starved */
  }
  if (rc == LUA_YIELD) {
    if (corio_task_get_state(t) == CORIO_TASK_RUNNING) {
      /* a plain coroutine.yield(): give the loop a turn, like sleep(0) */
      lt->flags |= LT_BAREYIELD;
      lcorio_wait_mark(lt, LCORIO_W_READY, 0);
      corio_task_yield(t);
    }
    if (S->observe) lcorio_observe_end(L, S, lt, tidx, co, rc, begin);
    lua_pop(co, nres);
  } else if (rc == LUA_OK) {
    if (S->observe) lcorio_observe_end(L, S, lt, tidx, co, rc, begin);
    luaL_checkstack(L, nres + 2, "too many results");
    lua_xmove(co, L, nres);
    lcorio_complete(L, lt, tidx, CORIO_TASK_FINISHED, nres);
  } else {
    int cancelled;
    if (S->observe) lcorio_observe_end(L, S, lt, tidx, co, rc, begin);
    lua_xmove(co, L, 1); /* the error */
    cancelled = lcorio_iserror(L, -1, "CancelledError");
    if (cancelled) {
      lua_resetthread(co); /* runs pending <close> variables */
      lcorio_complete(L, lt, tidx, CORIO_TASK_CANCELLED, 1);
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
      lcorio_complete(L, lt, tidx, CORIO_TASK_FAILED, 1);
    }
  }
  return 0;
}

/*
** The driver: the runtime calls this when the task is ready.  It runs on
** the loop, inside libuv's and libcurl's frames, where a Lua error must
** not unwind (docs/reliability.md rule 14): storing the outcome allocates (a
** table
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
  lcorio_complete(L, lcorio_ltask(t), lua_gettop(L) - 1, CORIO_TASK_FAILED, 1);
  lua_pop(L, 1);
}

/* }================================================================== */

/*
** {==================================================================
** Waiting helpers shared by every waiting function
** ==================================================================
*/

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

/* }================================================================== */

/*
** {==================================================================
** Results
** ==================================================================
*/

/*
** Push the results of done task `lt` (its userdata at the top), or raise
** its error.  The task stays where it is.
*/
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
    lcorio_push_error(L, lt, tidx);
    return lua_error(L);
  default:
    return lcorio_raise(L, "InvalidStateError", "invalid_state",
                        "Result is not set.");
  }
}

/* }================================================================== */

/*
** {==================================================================
** The internal API (lcorio.h)
** ==================================================================
*/

ltask *lcorio_spawn(lua_State *L, int fidx, int nargs) {
  fidx = lua_absindex(L, fidx);
  if (luaL_testudata(L, fidx, LCORIO_CORO_MT) != NULL) {
    lua_pushvalue(L, fidx);
    return lcorio_ensure_task(L, -1);
  }
  return lcorio_task_new(L, fidx, nargs, 0);
}

ltask *lcorio_spawn_args(lua_State *L, int arg) {
  luaL_argexpected(L,
                   lua_type(L, arg) == LUA_TFUNCTION ||
                       luaL_testudata(L, arg, LCORIO_CORO_MT) != NULL,
                   arg, "function or coroutine object");
  return lcorio_spawn(L, arg, lua_gettop(L) - arg);
}

ltask *lcorio_future(lua_State *L) {
  ltask *lt = push_new(L, lcorio_open_state(L), 0, LT_FUTURE, NULL);
  lcorio_note_spawn(L, lt, lua_gettop(L));
  return lt;
}

int lcorio_cancel(lua_State *L, int tidx, const char *msg) {
  ltask *lt = lcorio_checktask(L, tidx);
  tidx = lua_absindex(L, tidx);
  if (corio_task_done(lcorio_core(lt))) return 0;
  if (msg != NULL) {
    lua_pushstring(L, msg);
    lcorio_side_set(L, LCORIO_CANCELMSG_KEY, tidx);
  }
  if (lt->flags & LT_FUTURE) {
    /* finish it here: the error value and the anchor are ours to manage */
    lcorio_cancel_unstarted(L, lt, tidx);
  } else {
    corio_task_cancel(lcorio_core(lt));
  }
  return 1;
}

/* a future not done yet, or NULL */
static ltask *pending_future(lua_State *L, int tidx) {
  ltask *lt = lcorio_totask(L, tidx);
  if (lt == NULL || !(lt->flags & LT_FUTURE) ||
      corio_task_done(lcorio_core(lt)))
    return NULL;
  return lt;
}

int lcorio_set_result(lua_State *L, int tidx, int n) {
  ltask *lt = pending_future(L, tidx);
  if (lt == NULL) {
    lua_pop(L, n);
    return CORIO_EINVAL;
  }
  lcorio_complete(L, lt, lua_absindex(L, tidx), CORIO_TASK_FINISHED, n);
  return 0;
}

int lcorio_set_exception(lua_State *L, int tidx) {
  ltask *lt = pending_future(L, tidx);
  int err;
  if (lt == NULL) {
    lua_pop(L, 1);
    return CORIO_EINVAL;
  }
  tidx = lua_absindex(L, tidx);
  err = lua_gettop(L);
  lua_createtable(L, 1, 1);
  lua_pushvalue(L, err);
  lua_rawseti(L, -2, 1);
  luaL_traceback(L, L, luaL_tolstring(L, err, NULL), 1);
  lua_setfield(L, -3, "traceback");
  lua_pop(L, 1); /* the message */
  lua_remove(L, err);
  lcorio_complete(L, lt, tidx, CORIO_TASK_FAILED, 1);
  return 0;
}

/* }================================================================== */
