/*
** lfuture.c: the methods of tasks and futures (done, result, cancel,
** set_result, names, ...), their done callbacks, their finalizer, and the
** registration of the task functions and metatables.
*/
#include <stdio.h>
#include <stdlib.h>

#include "ltask.h"

/*
** {==================================================================
** Done callbacks
** ==================================================================
*/

/* Lua done callbacks of the task `lt` (pushed at top), in the order added. */
static void run_done_callbacks(lua_State *L, int tidx) {
  lua_Integer i, n;
  if (lcorio_side_get(L, LCORIO_CALLBACKS_KEY, tidx) != LUA_TTABLE) {
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
  lcorio_side_set(L, LCORIO_CALLBACKS_KEY, tidx);
}

/*
** The runtime's done callback: one per task that has Lua callbacks.  They
** run on the scheduler's thread, published as the running one so that
** Ctrl-C stops a busy loop in them too (corio_lua_running).
*/
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

/*
** A done callback added after the task was done: anchored by two refs,
** queued in the runtime for its next turn, and listed in the state, which
** takes back those still queued when it closes (lcorio_late_drop): a host
** that frees its runtime after lua_close would otherwise have them run on
** a freed state.
*/
struct lcorio_late_cb {
  lcorio_state *S;
  corio_task *t;
  int fn_ref, task_ref;
  lcorio_late_cb *prev, *next;
};
typedef lcorio_late_cb late_cb;

static void late_unlink(late_cb *c) {
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    c->S->late = c->next;
  if (c->next != NULL) c->next->prev = c->prev;
}

static void late_free(lua_State *L, late_cb *c) {
  late_unlink(c);
  luaL_unref(L, LUA_REGISTRYINDEX, c->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->task_ref);
  free(c);
}

static void on_late_done(corio_task *t, void *ud);

void lcorio_late_drop(lua_State *L, lcorio_state *S) {
  while (S->late != NULL) {
    late_cb *c = S->late;
    corio_task_remove_done(c->t, on_late_done, c);
    late_free(L, c);
  }
}

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
  late_free(L, c);
}

/* }================================================================== */

/*
** {==================================================================
** Task methods
** ==================================================================
*/

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
    lcorio_push_error(L, lt, 1);
    return 1;
  case CORIO_TASK_CANCELLED:
    lcorio_push_error(L, lt, 1);
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
  lcorio_checktask(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checkstring(L, 2);
  lua_pushboolean(L, lcorio_cancel(L, 1, lua_tostring(L, 2)));
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
    c->t = t;
    c->prev = NULL;
    c->next = S->late;
    if (S->late != NULL) S->late->prev = c;
    S->late = c;
    c->fn_ref = c->task_ref = LUA_NOREF;
    lua_pushvalue(L, 2);
    c->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 1);
    c->task_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (corio_task_add_done(t, on_late_done, c) != 0) {
      late_free(L, c);
      return luaL_error(L, "not enough memory");
    }
    return 0;
  }
  if (lcorio_side_get(L, LCORIO_CALLBACKS_KEY, 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    if (corio_task_add_done(t, on_done, S) != 0)
      return luaL_error(L, "not enough memory");
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lcorio_side_set(L, LCORIO_CALLBACKS_KEY, 1);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  return 0;
}

static int t_remove_done_callback(lua_State *L) {
  lua_Integer i, n, removed = 0, j = 1;
  lcorio_checktask(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (lcorio_side_get(L, LCORIO_CALLBACKS_KEY, 1) == LUA_TTABLE) {
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

void lcorio_push_name(lua_State *L, ltask *lt, int tidx) {
  if ((lt->flags & LT_NAMED) &&
      lcorio_side_get(L, LCORIO_NAMES_KEY, tidx) == LUA_TSTRING)
    return;
  if (lt->flags & LT_NAMED) lua_pop(L, 1);
  if (lt->flags & LT_SERVED) { /* its coroutine, while it is pending */
    int labeled = lua_getiuservalue(L, tidx, 1) == LUA_TTHREAD &&
                  lcorio_serve_push_label(L, lua_tothread(L, -1));
    lua_remove(L, labeled ? -2 : -1);
    if (labeled) return;
  }
  lua_pushfstring(L, "Task-%d", (int)lt->id);
}

static int t_get_name(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  lcorio_push_name(L, lt, 1);
  return 1;
}

static int t_set_name(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  luaL_tolstring(L, 2, NULL);
  lcorio_side_set(L, LCORIO_NAMES_KEY, 1);
  lt->flags |= LT_NAMED;
  return 0;
}

/* raise unless the task at 1 is a future not done yet */
static void check_pending_future(lua_State *L, const char *method) {
  ltask *lt = lcorio_checktask(L, 1);
  if (!(lt->flags & LT_FUTURE))
    luaL_error(L, "corio: %s is for futures, not tasks", method);
  if (corio_task_done(lcorio_core(lt)))
    lcorio_raise(L, "InvalidStateError", "invalid_state",
                 "invalid state: the future is already done");
}

static int t_set_result(lua_State *L) {
  check_pending_future(L, "set_result");
  lcorio_set_result(L, 1, lua_gettop(L) - 1);
  return 0;
}

static int t_set_exception(lua_State *L) {
  lcorio_checktask(L, 1);
  luaL_checkany(L, 2);
  check_pending_future(L, "set_exception");
  lua_settop(L, 2);
  lcorio_set_exception(L, 1);
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** Finalizer
** ==================================================================
*/

/*
** Is the failed task at 1 failed with the preallocated memory error?  A
** heap so full that tasks failed this way has no room to describe each.
*/
static int is_memory_error(lua_State *L, lcorio_state *S) {
  int same;
  lua_getiuservalue(L, 1, 1);
  lcorio_push_memory_error(L, S);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}

/*
** upvalues: 1 the state, 2 the task metatable (compared directly: this
** runs for every task collected)
*/
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
  lua_pushcfunction(L, lcorio_task_tostring);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) lua_pushliteral(L, "<Task>");
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, "traceback");
  fprintf(stderr, "corio: Task exception was never retrieved\nfuture: %s\n%s\n",
          lua_tostring(L, -3), lua_tostring(L, -1));
  fflush(stderr);
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** Registration
** ==================================================================
*/

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

/*
** task.status, task.reslt: a field no task has is an error, not a nil that
** surfaces later far from the typo (the usual slip is reading a result
** off a task instead of awaiting it).
*/
static int no_such_field(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING)
    return luaL_error(L, "Task has no field '%s' (did you mean to await it?)",
                      lua_tostring(L, 2));
  return luaL_error(L, "Task has no field [%s]", luaL_tolstring(L, 2, NULL));
}

/* module table at -2, state at -1 */
void lcorio_task_open(lua_State *L) {
  lcorio_coro_open(L);
  if (luaL_newmetatable(L, LCORIO_TASK_MT)) { /* its __name names the type */
    lua_newtable(L);      /* the methods, apart: t.__gc is nil */
    lua_pushvalue(L, -3); /* state */
    lcorio_setfuncs(L, task_methods);
    lua_pop(L, 1);
    lua_createtable(L, 0, 1); /* a miss in the methods raises */
    lua_pushcfunction(L, no_such_field);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lcorio_task_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, t_gc, 2);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}

/* }================================================================== */
