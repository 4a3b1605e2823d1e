/*
** lopts.c: option tables, read one way by every function that takes
** them, and the one conversion from seconds to milliseconds.
**
** A function checks its table once (lcorio_opts_check: every key a known
** name), then reads each option with a typed getter that returns the
** default when the option is absent and raises, naming the function and
** the option, when it holds a bad value.  All messages have one shape:
**
**   corio.wait: unknown option 'timout'
**   corio.serve: option 'port' must be an integer from 0 to 65535 (got 1.5)
*/
#include <math.h>
#include <string.h>

#include "lcorio.h"

/*
** {==================================================================
** Seconds to milliseconds
** ===================================================================
*/

/*
** The runtime's rule (corio_seconds_to_ms), clamped to LCORIO_MS_MAX:
** that long is as good as forever for a timeout, and it fits the
** runtime's unsigned millisecond fields.
*/
uint64_t lcorio_seconds_to_ms(double s) {
  uint64_t ms = corio_seconds_to_ms(s);
  return ms > LCORIO_MS_MAX ? LCORIO_MS_MAX : ms;
}

uint64_t lcorio_checkseconds(lua_State *L, int arg) {
  lua_Number s = luaL_checknumber(L, arg);
  luaL_argcheck(L, s >= 0, arg, "expected a number of seconds >= 0");
  return lcorio_seconds_to_ms((double)s);
}

const char *lcorio_checkpath(lua_State *L, int arg) {
  size_t len;
  const char *path = luaL_checklstring(L, arg, &len);
  luaL_argcheck(L, strlen(path) == len, arg,
                "expected a file path (this string holds a NUL byte)");
  return path;
}

/* }================================================================== */

/*
** {==================================================================
** Option tables
** ===================================================================
*/

int lcorio_opts_check(lua_State *L, int idx, const char *fn,
                      const char *const names[]) {
  if (lua_isnoneornil(L, idx)) return 0;
  idx = lua_absindex(L, idx);
  lcorio_opts_scan(L, idx, fn, names);
  return idx;
}

unsigned lcorio_opts_scan(lua_State *L, int idx, const char *fn,
                          const char *const names[]) {
  unsigned present = 0;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE)
    luaL_error(L, "%s: options must be a table, not a %s", fn,
               luaL_typename(L, idx));
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *k;
    int i;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "%s: option names are strings (got a %s key)", fn,
                 luaL_typename(L, -2));
    k = lua_tostring(L, -2);
    for (i = 0; names[i] != NULL && strcmp(names[i], k) != 0; i++)
      ;
    if (names[i] == NULL) luaL_error(L, "%s: unknown option '%s'", fn, k);
    if (i < 32) present |= 1u << i;
    lua_pop(L, 1);
  }
  return present;
}

int lcorio_opt_push(lua_State *L, int opts, const char *fn, const char *name,
                    int type) {
  int t;
  if (opts == 0) return 0;
  t = lua_getfield(L, opts, name);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (type != LUA_TNONE && t != type)
    luaL_error(L, "%s: option '%s' must be a %s, not a %s", fn, name,
               lua_typename(L, type), luaL_typename(L, -1));
  return 1;
}

/* Raise for the bad value at the top, saying what was expected. */
static int bad(lua_State *L, const char *fn, const char *name,
               const char *expected) {
  return luaL_error(L, "%s: option '%s' must be %s (got %s)", fn, name,
                    expected, luaL_tolstring(L, -1, NULL));
}

/* A range's end as a user wrote it: 65535, not 65535.0 */
static const char *push_bound(lua_State *L, lua_Number x) {
  lua_Integer i;
  if (x == floor(x) && lua_numbertointeger(x, &i))
    return lua_pushfstring(L, "%I", (LUAI_UACINT)i);
  return lua_pushfstring(L, "%f", x);
}

lua_Number lcorio_opt_number(lua_State *L, int opts, const char *fn,
                             const char *name, lua_Number def, lua_Number min,
                             lua_Number max) {
  lua_Number v;
  if (!lcorio_opt_push(L, opts, fn, name, LUA_TNONE)) return def;
  v = lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || !(v >= min && v <= max)) {
    const char *got = luaL_tolstring(L, -1, NULL);
    luaL_error(L, "%s: option '%s' must be a number from %s to %s (got %s)", fn,
               name, push_bound(L, min), push_bound(L, max), got);
  }
  lua_pop(L, 1);
  return v;
}

lua_Integer lcorio_opt_integer(lua_State *L, int opts, const char *fn,
                               const char *name, lua_Integer def,
                               lua_Integer min, lua_Integer max) {
  lua_Integer v = 0;
  int ok = 0;
  if (!lcorio_opt_push(L, opts, fn, name, LUA_TNONE)) return def;
  if (lua_isinteger(L, -1)) {
    v = lua_tointeger(L, -1);
    ok = 1;
  } else if (lua_type(L, -1) == LUA_TNUMBER) {
    /* 2.0 is an integer here too: numbers, not their subtype, are the API */
    lua_Number n = lua_tonumber(L, -1);
    ok = n == floor(n) && lua_numbertointeger(n, &v);
  }
  if (!ok || v < min || v > max)
    luaL_error(L, "%s: option '%s' must be an integer from %I to %I (got %s)",
               fn, name, (LUAI_UACINT)min, (LUAI_UACINT)max,
               luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  return v;
}

int lcorio_opt_boolean(lua_State *L, int opts, const char *fn, const char *name,
                       int def) {
  int v;
  if (!lcorio_opt_push(L, opts, fn, name, LUA_TBOOLEAN)) return def;
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

const char *lcorio_opt_string(lua_State *L, int opts, const char *fn,
                              const char *name, const char *def) {
  const char *s;
  size_t len;
  if (!lcorio_opt_push(L, opts, fn, name, LUA_TSTRING)) return def;
  s = lua_tolstring(L, -1, &len); /* the option table holds it */
  if (strlen(s) != len)           /* C would read it cut short */
    luaL_error(L, "%s: option '%s' must not contain a NUL byte", fn, name);
  lua_pop(L, 1);
  return s;
}

int lcorio_opt_enum(lua_State *L, int opts, const char *fn, const char *name,
                    int def, const char *const names[]) {
  const char *s = lcorio_opt_string(L, opts, fn, name, NULL);
  int i;
  luaL_Buffer b;
  if (s == NULL) return def;
  for (i = 0; names[i] != NULL; i++)
    if (strcmp(names[i], s) == 0) return i;
  /* "must be A, B or C (got 'x')" */
  luaL_buffinit(L, &b);
  for (i = 0; names[i] != NULL; i++) {
    if (i > 0) luaL_addstring(&b, names[i + 1] != NULL ? ", " : " or ");
    luaL_addstring(&b, names[i]);
  }
  luaL_pushresult(&b);
  return luaL_error(L, "%s: option '%s' must be %s (got '%s')", fn, name,
                    lua_tostring(L, -1), s);
}

int64_t lcorio_opt_seconds(lua_State *L, int opts, const char *fn,
                           const char *name, int64_t def, int flags) {
  lua_Number s;
  if (!lcorio_opt_push(L, opts, fn, name, LUA_TNONE)) return def;
  if ((flags & LCORIO_SECONDS_NONE) && lua_type(L, -1) == LUA_TBOOLEAN &&
      !lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    return -1;
  }
  s = lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || s != s || s < 0 ||
      (s == 0 && (flags & (LCORIO_SECONDS_POSITIVE | LCORIO_SECONDS_NONE))))
    bad(L, fn, name,
        (flags & LCORIO_SECONDS_NONE)
            ? "a number of seconds > 0, or false for none"
        : (flags & LCORIO_SECONDS_POSITIVE) ? "a number of seconds > 0"
                                            : "a number of seconds >= 0");
  lua_pop(L, 1);
  if ((flags & LCORIO_SECONDS_NONE) && isinf(s)) return -1;
  return (int64_t)lcorio_seconds_to_ms((double)s);
}

/* }================================================================== */
