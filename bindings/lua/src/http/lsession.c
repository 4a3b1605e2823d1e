/*
** lsession.c: corio.session{...}: a connection pool with its own limits
** and defaults (headers, timeout, base_url), with fetch/get/post/close.
**
** The userdata points at the runtime's corio_session; close() (also
** __close and __gc) frees it, which cancels its transfers: each waiting
** task then raises FetchError "cancelled".  A transfer keeps its session
** alive (the waiting task holds it on its stack), so __gc never finds one
** in flight.
*/
#include <string.h>

#include "lcorio.h"

static lsession *to_session(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, LCORIO_SESSION_MT);
}

lsession *lcorio_checksession(lua_State *L, int idx) {
  lsession *s = luaL_testudata(L, idx, LCORIO_SESSION_MT);
  if (s == NULL)
    luaL_error(L, "bad option 'session': expected a corio.session (got %s)",
               luaL_typename(L, idx));
  if (s->s == NULL) luaL_error(L, "corio: the session is closed");
  return s;
}

/*
** {==================================================================
** methods
** ==================================================================
*/

/* s:fetch(url, opts) etc.: [session, url, opts] -> [url, opts, session] */
#define SESSION_CALL(name, self, method, fn)                                   \
  static int name(lua_State *L) {                                              \
    LCORIO_WAIT_PROLOGUE(L, lt, self);                                         \
    lua_settop(L, 3);                                                          \
    lua_rotate(L, 1, -1);                                                      \
    return lcorio_fetch_wait(L, lt, 3, method, fn);                            \
  }

static int s_fetch(lua_State *L);
static int s_get(lua_State *L);
static int s_post(lua_State *L);
SESSION_CALL(s_fetch, s_fetch, NULL, "session:fetch")
SESSION_CALL(s_get, s_get, "GET", "session:get")
SESSION_CALL(s_post, s_post, "POST", "session:post")

/*
** Free the runtime's session; nothing when the runtime is gone already
** (lua_close: corio_rt_free freed every session).
*/
static void session_free(lua_State *L, lsession *s) {
  lcorio_state *S = lcorio_getstate(L);
  if (s->s != NULL && S != NULL && S->rt != NULL) corio_session_free(s->s);
  s->s = NULL;
}

static int s_close(lua_State *L) {
  session_free(L, to_session(L, 1));
  return 0;
}

static int s_closed(lua_State *L) {
  lua_pushboolean(L, to_session(L, 1)->s == NULL);
  return 1;
}

/* A script's call (debug library) closes the session, as close() does. */
static int s_gc(lua_State *L) {
  lsession *s = luaL_testudata(L, 1, LCORIO_SESSION_MT);
  if (s != NULL && s->s != NULL && lcorio_collecting(L))
    lcorio_debug_unclosed(L, 1, "session");
  if (s != NULL) session_free(L, s);
  return 0;
}

static int s_tostring(lua_State *L) {
  lsession *s = to_session(L, 1);
  lua_pushfstring(L, "<corio.session %p%s>", (void *)s,
                  s->s == NULL ? " closed" : "");
  return 1;
}

/* }================================================================== */

/*
** {==================================================================
** corio.session{...}
** ==================================================================
*/

#define FN "corio.session"

static size_t opt_count(lua_State *L, int opts, const char *name) {
  /* 0: no limit */
  return (size_t)lcorio_opt_integer(L, opts, FN, name, 0, 0, LUA_MAXINTEGER);
}

/* Copy and check the default headers into a new table (user value 1). */
static int copy_headers(lua_State *L, int opts) {
  int n = 0, src;
  if (!lcorio_opt_push(L, opts, FN, "headers", LUA_TTABLE)) return 0;
  src = lua_gettop(L);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, src) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING ||
        (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
      luaL_error(L, "%s: option 'headers' must hold name = string pairs", FN);
    lua_tostring(L, -1); /* a number becomes a string here */
    lcorio_header_check(L, -2, -1, "headers");
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, src + 1);
    n++;
  }
  lua_remove(L, src);
  return n;
}

static int l_session(lua_State *L) {
  lcorio_state *S = lcorio_upstate(L);
  corio_session_opts o;
  lsession *s;
  int nheaders = 0, hidx = 0;
  double timeout = 0;
  memset(&o, 0, sizeof o);
  static const char *const names[] = {
      "max_connections", "max_per_host", "max_idle", "headers", "timeout",
      "base_url",        "retries",      "rate",     NULL};
  int64_t ms;
  lcorio_opts_check(L, 1, FN, names);
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  lua_settop(L, 1);
  o.max_connections = opt_count(L, 1, "max_connections");
  o.max_per_host = opt_count(L, 1, "max_per_host");
  o.max_idle = opt_count(L, 1, "max_idle");
  /* starts per host in any one second: a sliding window, so a whole
     number (nil: no limit) */
  o.rate = (size_t)lcorio_opt_integer(L, 1, FN, "rate", 0, 1, LUA_MAXINTEGER);
  /* kept in seconds for the requests, but rounded by the one rule */
  ms = lcorio_opt_seconds(L, 1, FN, "timeout", 0, LCORIO_SECONDS_NONE);
  timeout = ms < 0 ? -1 : (double)ms / 1000.0;
  if (!lcorio_opt_push(L, 1, FN, "base_url", LUA_TSTRING)) lua_pushnil(L);
  nheaders = copy_headers(L, 1);
  if (nheaders > 0) hidx = lua_gettop(L);
  if (lua_getfield(L, 1, "retries") != LUA_TNIL) { /* checked now */
    corio_retry scratch;
    int top = lua_gettop(L);
    lcorio_retry_parse(L, top, FN, &scratch);
    lua_settop(L, top);
  }
  lua_insert(L, 2); /* retries or nil, below base_url */
  if (hidx) hidx++;
  s = lua_newuserdatauv(L, sizeof *s, 3);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, LCORIO_SESSION_MT);
  lcorio_debug_opened(L, -1);
  s->timeout = timeout;
  s->nheaders = nheaders;
  if (hidx) {
    lua_pushvalue(L, hidx);
    lua_setiuservalue(L, -2, 1);
  }
  lua_pushvalue(L, 3); /* base_url or nil */
  lua_setiuservalue(L, -2, 2);
  lua_pushvalue(L, 2); /* retries or nil: the default of its fetches */
  lua_setiuservalue(L, -2, 3);
  if (S->rt == NULL) return luaL_error(L, "corio: runtime is closed");
  s->s = corio_session_new(S->rt, &o);
  if (s->s == NULL) return luaL_error(L, "corio.session: not enough memory");
  return 1;
}

static const luaL_Reg methods[] = {{"fetch", s_fetch},   {"get", s_get},
                                   {"post", s_post},     {"close", s_close},
                                   {"closed", s_closed}, {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_session_open(lua_State *L) {
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, l_session, 1);
  lua_setfield(L, -3, "session");
  if (luaL_newmetatable(L, LCORIO_SESSION_MT)) {
    lua_pushvalue(L, -2); /* state: the methods wait */
    lua_newtable(L);
    lua_insert(L, -2);
    lcorio_setfuncs(L, methods);
    lua_pop(L, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, s_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, s_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, s_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

/* }================================================================== */
