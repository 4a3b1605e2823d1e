/*
** ltask_print.c: tostring of tasks and futures: "<Task pending
** name='Task-1' coro=worker at x.lua:3>", with the task's function found
** by the name of a global or a local that holds it.
*/
#include "ltask.h"

/*
** {==================================================================
** Printing
** ==================================================================
*/

/*
** Does the value on top hold the function at fidx: is it that function, or
** the corio.async wrapper of it (what the user named)?
*/
static int holds_function(lua_State *L, int fidx) {
  int yes = lua_rawequal(L, -1, fidx);
  if (!yes && lua_tocfunction(L, -1) == lcorio_async_call &&
      lua_getupvalue(L, -1, 1) != NULL) {
    yes = lua_rawequal(L, -1, fidx);
    lua_pop(L, 1);
  }
  return yes;
}

/*
** "name at source:line" of the function at idx: the name of a global, or
** of a local of an active function, that holds it.
*/
void lcorio_push_funcname(lua_State *L, int idx) {
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

/*
** The task's function: at the bottom of a coroutine not started yet, or
** the function of its outermost frame.  Pushes it, or nothing (0).
*/
int lcorio_push_task_function(lua_State *L, lua_State *co) {
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
int lcorio_task_tostring(lua_State *L) {
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
    lcorio_push_name(L, lt, 1);
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
    lcorio_push_error(L, lt, 1);
    push_short(L, -1);
    lua_remove(L, -2);
  } else if (st == CORIO_TASK_PENDING || st == CORIO_TASK_RUNNING) {
    lua_State *co;
    lua_getiuservalue(L, 1, 1);
    co = lua_tothread(L, -1);
    lua_pop(L, 1);
    if (co != NULL && lcorio_push_task_function(L, co)) {
      lua_pushliteral(L, " coro=");
      lua_insert(L, -2);
      lcorio_push_funcname(L, -1);
      lua_remove(L, -2);
    }
  }
  lua_pushliteral(L, ">");
  lua_concat(L, lua_gettop(L) - base);
  return 1;
}

/* }================================================================== */
