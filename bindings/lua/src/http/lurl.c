/*
** lurl.c: corio.url (parse, join, encode, decode) and the query strings
** that fetch's `params` option and the server's req.query use.  Parsing
** and resolving are libcurl's (corio_url_*, on curl_url); encoding is the
** form encoding of lfetch_form.c.
*/
#include <string.h>

#include "lcorio.h"

/*
** {==================================================================
** decoding
** ==================================================================
*/
/*
** Push s percent-decoded (and '+' as a space when `plus`); a '%' not
** followed by two hex digits stays as it is.
*/
void lcorio_push_decoded(lua_State *L, const char *s, size_t n, int plus) {
  luaL_Buffer b;
  size_t len;
  char *out;
  if (memchr(s, '%', n) == NULL && (!plus || memchr(s, '+', n) == NULL)) {
    lua_pushlstring(L, s, n);
    return;
  }
  out = luaL_buffinitsize(L, &b, n + 1);
  lcorio_check(L, corio_url_decode(s, n, plus, out, &len), "percent-decode");
  luaL_pushresultsize(&b, len);
}

/*
** The query string as a table: "a=1&b=x+y&a=2&flag" gives
** {a={"1","2"}, b="x y", flag=""}.  Keys and values are decoded; a key
** seen twice or more gets an array of its values in order.
*/
void lcorio_push_query(lua_State *L, const char *q, size_t n) {
  lua_newtable(L);
  while (n > 0) {
    const char *amp = memchr(q, '&', n);
    size_t len = amp != NULL ? (size_t)(amp - q) : n;
    if (len > 0) {
      const char *eq = memchr(q, '=', len);
      size_t klen = eq != NULL ? (size_t)(eq - q) : len;
      lcorio_push_decoded(L, q, klen, 1);
      if (eq != NULL)
        lcorio_push_decoded(L, eq + 1, len - klen - 1, 1);
      else
        lua_pushliteral(L, "");
      lua_pushvalue(L, -2);
      switch (lua_rawget(L, -4)) {
      case LUA_TNIL:
        lua_pop(L, 1);
        lua_rawset(L, -3);
        break;
      case LUA_TSTRING: /* second value: make the array */
        lua_createtable(L, 2, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 2);
        lua_rawset(L, -3);
        break;
      default: /* an array already */
        lua_insert(L, -2);
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 2);
        break;
      }
    }
    if (amp == NULL) break;
    n -= len + 1;
    q = amp + 1;
  }
}

/* }================================================================== */

/*
** {==================================================================
** corio.url
** ==================================================================
*/

/* Push the URL's parts (light userdata 1) as a table; nil when absent. */
static int push_parts(lua_State *L) {
  const corio_url *u = lua_touserdata(L, 1);
  lua_createtable(L, 0, 10);
#define FIELD(name)                                                            \
  if (u->name != NULL) {                                                       \
    lua_pushstring(L, u->name);                                                \
    lua_setfield(L, -2, #name);                                                \
  }
  FIELD(href)
  FIELD(scheme)
  FIELD(user)
  FIELD(password)
  FIELD(host)
  FIELD(path)
  FIELD(query)
  FIELD(fragment)
#undef FIELD
  if (u->port >= 0) {
    lua_pushinteger(L, u->port);
    lua_setfield(L, -2, "port");
  }
  return 1;
}

static int push_href(lua_State *L) {
  lua_pushstring(L, ((const corio_url *)lua_touserdata(L, 1))->href);
  return 1;
}

void lcorio_push_url(lua_State *L, corio_url *u, int parts) {
  int rc;
  lua_pushcfunction(L, parts ? push_parts : push_href);
  lua_pushlightuserdata(L, u);
  rc = lua_pcall(L, 1, 1, 0); /* out of memory: u is freed all the same */
  corio_url_free(u);
  if (rc != LUA_OK) lua_error(L);
}

/* Raise for a corio_url_* failure about `url`, naming the function. */
static int url_error(lua_State *L, const char *fn, int rc, const char *url,
                     const char *why) {
  if (rc == CORIO_EURL)
    return luaL_error(L, "%s: invalid URL '%s': %s", fn, url,
                      why != NULL ? why : "malformed");
  return luaL_error(L, "%s: %s", fn, corio_strerror(rc));
}

static const char *check_url_arg(lua_State *L, int arg, const char *fn,
                                 const char *what) {
  size_t len;
  const char *s;
  if (lua_type(L, arg) != LUA_TSTRING)
    luaL_error(L, "%s: %s must be a string (got %s)", fn, what,
               luaL_typename(L, arg));
  s = lua_tolstring(L, arg, &len);
  if (strlen(s) != len)
    luaL_error(L, "%s: %s must not contain a NUL byte", fn, what);
  return s;
}

/* corio.url.parse(s) -> {href, scheme, user, password, host, port, ...} */
static int l_parse(lua_State *L) {
  const char *s = check_url_arg(L, 1, "corio.url.parse", "the URL");
  const char *why = NULL;
  corio_url u;
  int rc = corio_url_parse(s, &u, &why);
  if (rc != 0) return url_error(L, "corio.url.parse", rc, s, why);
  lcorio_push_url(L, &u, 1);
  return 1;
}

/* corio.url.join(base, ref) -> the URL ref leads to from base */
static int l_join(lua_State *L) {
  const char *base = check_url_arg(L, 1, "corio.url.join", "the base URL");
  const char *ref = check_url_arg(L, 2, "corio.url.join", "the reference");
  const char *why = NULL;
  corio_url u;
  int rc = corio_url_join(base, ref, &u, &why);
  if (rc == CORIO_EURL && corio_url_parse(base, &u, NULL) == 0) {
    corio_url_free(&u); /* the base is fine: the reference is at fault */
    return luaL_error(L, "corio.url.join: cannot resolve '%s' against '%s': %s",
                      ref, base, why != NULL ? why : "malformed");
  }
  if (rc != 0) return url_error(L, "corio.url.join", rc, base, why);
  lcorio_push_url(L, &u, 0);
  return 1;
}

/* corio.url.encode{k = v | {v1, v2}} -> "k=v&..." (keys sorted) */
static int l_encode(lua_State *L) {
  if (lua_type(L, 1) != LUA_TTABLE)
    return luaL_error(L, "corio.url.encode: expected a table (got %s)",
                      luaL_typename(L, 1));
  lcorio_push_form(L, 1, "corio.url.encode");
  return 1;
}

/* corio.url.decode("a=1&b=x+y&a=2") -> {a = {"1", "2"}, b = "x y"} */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s;
  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "corio.url.decode: expected a string (got %s)",
                      luaL_typename(L, 1));
  s = lua_tolstring(L, 1, &len);
  if (len > 0 && *s == '?') s++, len--;
  lcorio_push_query(L, s, len);
  return 1;
}

void lcorio_url_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"parse", l_parse},
                                   {"join", l_join},
                                   {"encode", l_encode},
                                   {"decode", l_decode},
                                   {NULL, NULL}};
  /* module at -2, state at -1 */
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  lua_setfield(L, -3, "url");
}

/* }================================================================== */
