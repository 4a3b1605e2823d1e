/*
** lheaders.c: HTTP header tables, as responses (lfetch_response.c) and
** server requests (lserve_req.c) show them: lowercase names, lookup in any
** case, repeated fields joined with ", " (RFC 9110 5.3) except cookie,
** joined with "; " as one Cookie line reads (RFC 6265 5.4; HTTP/2 clients
** split it), and set-cookie, whose values may hold commas: it is always a
** list of strings.
*/
#include <string.h>

#include "lcorio.h"

/* Push the lowercase copy of s (ASCII only: header names are tokens). */
static void push_lower(lua_State *L, const char *s, size_t len) {
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, len);
  size_t i;
  for (i = 0; i < len; i++)
    p[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + ('a' - 'A') : s[i]);
  luaL_pushresultsize(&b, len);
}

void lcorio_headers_new(lua_State *L, int nfields) {
  lua_createtable(L, 0, nfields);
  luaL_setmetatable(L, LCORIO_HEADERS_MT);
}

void lcorio_headers_add(lua_State *L, int t, const char *name, size_t nlen,
                        const char *value, size_t vlen) {
  t = lua_absindex(L, t);
  push_lower(L, name, nlen);
  if (nlen == 10 && memcmp(lua_tostring(L, -1), "set-cookie", 10) == 0) {
    if (lua_rawget(L, t) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushliteral(L, "set-cookie");
      lua_pushvalue(L, -2);
      lua_rawset(L, t);
    }
    lua_pushlstring(L, value, vlen);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
    return;
  }
  lua_pushvalue(L, -1);
  if (lua_rawget(L, t) == LUA_TSTRING) {
    if (nlen == 6 && memcmp(lua_tostring(L, -2), "cookie", 6) == 0)
      lua_pushliteral(L, "; ");
    else
      lua_pushliteral(L, ", ");
    lua_pushlstring(L, value, vlen);
    lua_concat(L, 3);
  } else {
    lua_pop(L, 1);
    lua_pushlstring(L, value, vlen);
  }
  lua_rawset(L, t);
}

/* headers[k] for a key not found as is: try its lowercase form */
static int headers_index(lua_State *L) {
  size_t len;
  const char *k;
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  k = lua_tolstring(L, 2, &len);
  push_lower(L, k, len);
  lua_rawget(L, 1);
  return 1;
}

void lcorio_headers_open(lua_State *L) {
  if (luaL_newmetatable(L, LCORIO_HEADERS_MT)) {
    lua_pushcfunction(L, headers_index);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}
