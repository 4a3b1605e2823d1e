/*
** lfetch_retry.c: the `retries` option of corio.fetch and corio.session
** -> corio_retry.  The runtime runs the tries (fetch_retry.c); this only
** reads and checks the option, naming what is wrong:
**
**   retries = n          n retries (n + 1 tries), the other settings default
**   retries = false      none (overrides a session's)
**   retries = {attempts = 4, backoff = 0.5, max_backoff = 30,
**              statuses = {429, 502, 503, 504},
**              methods = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}}
*/
#include <math.h>
#include <string.h>

#include "lcorio.h"

#define MAX_ATTEMPTS 1000000

static const char *const keys[] = {"attempts", "statuses",    "methods",
                                   "backoff",  "max_backoff", NULL};

/* The value at the top is bad for retries.<key>: raise. */
static int bad(lua_State *L, const char *fn, const char *key,
               const char *expected) {
  return luaL_error(L, "%s: option 'retries.%s' must be %s (got %s)", fn, key,
                    expected, luaL_tolstring(L, -1, NULL));
}

static double seconds(lua_State *L, int t, const char *fn, const char *key,
                      double def) {
  double v;
  if (lua_getfield(L, t, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return def;
  }
  v = (double)lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 0))
    bad(L, fn, key, "a number of seconds >= 0");
  lua_pop(L, 1);
  return v;
}

/* The list at the top: its length, every item checked. */
static size_t list_len(lua_State *L, const char *fn, const char *key,
                       const char *expected) {
  lua_Integer n;
  if (lua_type(L, -1) != LUA_TTABLE) bad(L, fn, key, expected);
  n = luaL_len(L, -1);
  if (n < 0 || n > 1000) bad(L, fn, key, expected);
  return (size_t)n;
}

void lcorio_retry_parse(lua_State *L, int idx, const char *fn, corio_retry *r) {
  static const char st_what[] =
      "a list of HTTP statuses (integers from 100 to 599)";
  static const char m_what[] = "a list of HTTP method names (strings)";
  int t = lua_absindex(L, idx), ist = 0, im = 0;
  size_t nst = 0, nm = 0, i;
  const char **mp;
  int *sp;
  r->attempts = 1;
  r->backoff = CORIO_RETRY_BACKOFF;
  r->max_backoff = CORIO_RETRY_MAX_BACKOFF;
  r->statuses = NULL;
  r->nstatuses = 0;
  r->methods = NULL;
  r->nmethods = 0;
  if (lua_type(L, t) == LUA_TBOOLEAN && !lua_toboolean(L, t)) return;
  if (lua_type(L, t) == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, t);
    if (n != floor(n) || !(n >= 0) || n >= MAX_ATTEMPTS) {
      lua_pushvalue(L, t);
      luaL_error(L,
                 "%s: option 'retries' must be a number of retries from 0 "
                 "to %d, a table or false (got %s)",
                 fn, MAX_ATTEMPTS - 1, luaL_tolstring(L, -1, NULL));
    }
    r->attempts = (int)n + 1;
    return;
  }
  if (lua_type(L, t) != LUA_TTABLE) {
    lua_pushvalue(L, t);
    luaL_error(L,
               "%s: option 'retries' must be a number of retries, a table "
               "or false (got %s)",
               fn, luaL_tolstring(L, -1, NULL));
  }
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    const char *k;
    int j;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: option 'retries' has keys %s (got a %s key)", fn,
                 "attempts, backoff, max_backoff, statuses and methods",
                 luaL_typename(L, -1));
    k = lua_tostring(L, -1);
    for (j = 0; keys[j] != NULL && strcmp(keys[j], k) != 0; j++)
      ;
    if (keys[j] == NULL)
      luaL_error(L,
                 "%s: option 'retries' has no key '%s' (known: attempts, "
                 "backoff, max_backoff, statuses, methods)",
                 fn, k);
  }
  if (lua_getfield(L, t, "attempts") != LUA_TNIL) {
    lua_Number n = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || n != floor(n) || !(n >= 1) ||
        n > MAX_ATTEMPTS)
      bad(L, fn, "attempts", "an integer from 1 to 1000000 (tries in all)");
    r->attempts = (int)n;
  }
  lua_pop(L, 1);
  r->backoff = seconds(L, t, fn, "backoff", r->backoff);
  r->max_backoff = seconds(L, t, fn, "max_backoff", r->max_backoff);
  if (lua_getfield(L, t, "statuses") != LUA_TNIL) {
    nst = list_len(L, fn, "statuses", st_what);
    ist = lua_gettop(L);
  }
  if (lua_getfield(L, t, "methods") != LUA_TNIL) {
    nm = list_len(L, fn, "methods", m_what);
    im = lua_gettop(L);
  }
  /* one block for both lists: the pointers first, for their alignment */
  mp = lua_newuserdatauv(L, nm * sizeof *mp + nst * sizeof *sp + 1, 0);
  sp = (int *)(void *)(mp + nm);
  for (i = 0; i < nst; i++) {
    lua_Number n;
    lua_geti(L, ist, (lua_Integer)i + 1);
    n = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || n != floor(n) || n < 100 || n > 599)
      luaL_error(L, "%s: option 'retries.statuses' must be %s (item %d is %s)",
                 fn, st_what, (int)i + 1, luaL_tolstring(L, -1, NULL));
    sp[i] = (int)n;
    lua_pop(L, 1);
  }
  for (i = 0; i < nm; i++) {
    size_t len;
    const char *s;
    lua_geti(L, im, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: option 'retries.methods' must be %s (item %d is %s)",
                 fn, m_what, (int)i + 1, luaL_tolstring(L, -1, NULL));
    s = lua_tolstring(L, -1, &len);
    if (!corio_http_token_ok(s, len))
      luaL_error(L, "%s: option 'retries.methods': '%s' is not an HTTP method",
                 fn, s);
    mp[i] = s; /* anchored by the list, which the options anchor */
    lua_pop(L, 1);
  }
  if (ist) {
    r->statuses = sp;
    r->nstatuses = nst;
  }
  if (im) {
    r->methods = mp;
    r->nmethods = nm;
  }
  /* the lists stay where they are; the block on top */
}
