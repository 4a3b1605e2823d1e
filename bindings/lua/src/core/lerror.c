/*
** lerror.c: error values.  An error is a table {name=, kind=, message=}
** (FetchError adds url=, ...), printable, and equal to another error of the
** same kind: `err == corio.TimeoutError` holds for any timeout.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lcorio.h"

static int error_tostring(lua_State *L) {
  const char *name, *kind, *msg;
  lua_getfield(L, 1, "name");
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "message");
  name = luaL_optstring(L, -3, "Error");
  kind = luaL_optstring(L, -2, "");
  msg = luaL_optstring(L, -1, "");
  if (strcmp(name, "FetchError") == 0)
    lua_pushfstring(L, "%s(%s): %s", name, kind, msg);
  else if (*msg)
    lua_pushfstring(L, "%s: %s", name, msg);
  else
    lua_pushstring(L, name);
  return 1;
}

static int error_eq(lua_State *L) {
  int eq;
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 2, "kind");
  eq = lua_type(L, -1) == LUA_TSTRING && lua_rawequal(L, -1, -2);
  lua_pushboolean(L, eq);
  return 1;
}

void lcorio_pusherror(lua_State *L, const char *name, const char *kind,
                      const char *fmt, ...) {
  va_list ap;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, LCORIO_ERROR_MT);
}

/* Is the value at idx a corio error with this name (any name if NULL)? */
int lcorio_iserror(lua_State *L, int idx, const char *name) {
  int r = 0;
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, LCORIO_ERROR_MT);
  if (lua_rawequal(L, -1, -2)) {
    r = 1;
    if (name != NULL) {
      lua_getfield(L, idx < 0 ? idx - 2 : idx, "name");
      r = lua_type(L, -1) == LUA_TSTRING &&
          strcmp(lua_tostring(L, -1), name) == 0;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 2);
  return r;
}

/*
** A message handler that adds a traceback to string-like errors, as lua.c
** does; error values keep their identity.
*/
int lcorio_traceback_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int describe(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/*
** Print the error at the top of the stack (a message with traceback) and
** pop it: the loop goes on.  Called from the loop, so describing the error
** (which allocates, and may call __tostring) runs in protected mode.
*/
void lcorio_report(lua_State *L, const char *context) {
  const char *msg;
  lua_checkstack(L, 4);
  lua_pushcfunction(L, describe);
  lua_pushvalue(L, -2);
  msg = lua_pcall(L, 1, 1, 0) == LUA_OK ? lua_tostring(L, -1) : NULL;
  fprintf(stderr, "corio: %s: %s\n", context,
          msg != NULL ? msg : "(an error that could not be described)");
  fflush(stderr);
  lua_pop(L, 2);
}

static const struct {
  const char *field, *name, *kind;
} prototypes[] = {
    {"CancelledError", "CancelledError", "cancelled"},
    {"TimeoutError", "TimeoutError", "timeout"},
    {"InvalidStateError", "InvalidStateError", "invalid_state"},
    {"BudgetError", "BudgetError", "budget"},
};

void lcorio_error_open(lua_State *L) {
  size_t i;
  if (luaL_newmetatable(L, LCORIO_ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, error_eq);
    lua_setfield(L, -2, "__eq");
    lua_pushliteral(L, "corio.Error");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  /* corio.CancelledError etc.: compare errors with them by kind */
  for (i = 0; i < sizeof prototypes / sizeof prototypes[0]; i++) {
    lcorio_pusherror(L, prototypes[i].name, prototypes[i].kind, "");
    lua_setfield(L, -3, prototypes[i].field); /* module, state, error */
  }
}
