/*
** lcoro.c: coroutine objects (corio.async(fn)(...) makes one, not running
** yet), and the functions that make tasks from functions and coroutine
** objects: spawn, create_task, ensure_future, future, current_task.
*/
#include <stdio.h>

#include "ltask.h"

/*
** {==================================================================
** Coroutine objects
** ==================================================================
*/

int lcorio_async_call(lua_State *L) {
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
  lua_pushcclosure(L, lcorio_async_call, 1);
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

/* Replace the value at idx with a task made from it if needed.  A
   positive idx is an argument, which a bad value's error names. */
ltask *lcorio_ensure_task(lua_State *L, int idx) {
  ltask *lt;
  lcoro *c;
  int arg = idx > 0 ? idx : 0;
  idx = lua_absindex(L, idx);
  if ((lt = lcorio_totask(L, idx)) != NULL) return lt;
  if ((c = luaL_testudata(L, idx, LCORIO_CORO_MT)) != NULL) {
    if (c->consumed)
      luaL_error(L, "corio: this coroutine object was already scheduled");
    c->consumed = 1;
    lua_getiuservalue(L, idx, 1);
    lt = lcorio_task_new(L, 0, 0, 0);
    lua_replace(L, idx);
    return lt;
  }
  if (lua_type(L, idx) == LUA_TFUNCTION) {
    lt = lcorio_task_new(L, idx, 0, 0);
    lua_replace(L, idx);
    return lt;
  }
  if (arg > 0)
    luaL_typeerror(L, arg, "task, future, coroutine object or function");
  luaL_error(L,
             "corio: expected a task, future, coroutine object or "
             "function, got %s",
             luaL_typename(L, idx));
  return NULL;
}

static int coro_tostring(lua_State *L) {
  lcoro *c = luaL_checkudata(L, 1, LCORIO_CORO_MT);
  lua_getiuservalue(L, 1, 1);
  if (!lcorio_push_task_function(L, lua_tothread(L, -1))) lua_pushnil(L);
  lcorio_push_funcname(L, -1);
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
  if (!lcorio_push_task_function(L, lua_tothread(L, -1))) return 0;
  lcorio_push_funcname(L, -1);
  fprintf(stderr, "corio: warning: coroutine %s was never awaited\n",
          lua_tostring(L, -1));
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** Making tasks
** ==================================================================
*/

/* corio.spawn(fn, ...) / corio.create_task(coro) */
static int l_spawn(lua_State *L) {
  lcorio_spawn_args(L, 1);
  return 1;
}

static int l_ensure_future(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  lcorio_ensure_task(L, 1);
  return 1;
}

static int l_future(lua_State *L) {
  lcorio_future(L);
  return 1;
}

static int l_current_task(lua_State *L) {
  ltask *lt = lcorio_current(L);
  if (lt == NULL) return 0;
  lcorio_push_task(L, lt);
  return 1;
}

static const luaL_Reg funcs[] = {{"async", l_async},
                                 {"spawn", l_spawn},
                                 {"create_task", l_spawn},
                                 {"ensure_future", l_ensure_future},
                                 {"future", l_future},
                                 {"current_task", l_current_task},
                                 {"set_task_budget", lcorio_set_task_budget},
                                 {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_coro_open(lua_State *L) {
  lcorio_setfuncs(L, funcs);
  if (luaL_newmetatable(L, LCORIO_CORO_MT)) {
    lua_pushcfunction(L, coro_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, coro_gc, 1);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}

/* }================================================================== */
