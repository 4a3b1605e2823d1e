/*
** lfetch_blocking.c: corio.blocking.get/post/fetch: the requests-style
** call that blocks the whole loop (curl_easy_perform through
** corio_fetch_blocking).  It exists to show the article's mistake: inside
** tasks these calls run one after another.  It touches no runtime, so a
** Lua state that runs no loop (a worker thread's) can use it; it returns
** the same response object and raises the same FetchError as corio.fetch.
*/
#include "lcorio.h"

#define LCORIO_BLOCKING_RESPONSE_MT "corio.BlockingResponse"

/*
** Owns the C response until it has been copied into Lua, so that a Lua
** error (out of memory) on the way does not leak it.
*/
typedef struct guard {
  corio_response *res;
} guard;

static int guard_gc(lua_State *L) {
  guard *g = luaL_testudata(L, 1, LCORIO_BLOCKING_RESPONSE_MT);
  if (g == NULL) return 0;
  corio_response_free(g->res);
  g->res = NULL;
  return 0;
}

/* stack: 1 url, 2 opts */
static int blocking(lua_State *L, const char *method, const char *fn) {
  lcorio_req r;
  guard *g;
  int rc, top;
  lua_settop(L, 2);
  lcorio_request_parse(L, &r, 1, 2, 0, method, fn);
  if (r.output != 0 || r.stream)
    return luaL_error(L,
                      "%s: the options output and stream need the loop "
                      "(use corio.fetch)",
                      fn);
  top = lua_gettop(L);
  g = lua_newuserdatauv(L, sizeof *g, 0);
  g->res = NULL;
  luaL_setmetatable(L, LCORIO_BLOCKING_RESPONSE_MT);
  rc = corio_fetch_blocking(&r.req, &g->res);
  if (g->res == NULL) return lcorio_request_refused(L, rc, r.req.url, fn);
  if (rc == 0) {
    lua_pushlstring(L, g->res->body, g->res->body_len);
    lcorio_push_response(L, g->res, L, 1);
  } else
    lcorio_push_fetch_failure(L, rc, g->res,
                              *g->res->url ? g->res->url : r.req.url);
  corio_response_free(g->res);
  g->res = NULL;
  if (rc != 0) return lua_error(L);
  lua_replace(L, top + 1); /* over the guard */
  return 1;
}

static int b_fetch(lua_State *L) {
  return blocking(L, NULL, "corio.blocking.fetch");
}

static int b_get(lua_State *L) {
  return blocking(L, "GET", "corio.blocking.get");
}

static int b_post(lua_State *L) {
  return blocking(L, "POST", "corio.blocking.post");
}

static const luaL_Reg funcs[] = {
    {"fetch", b_fetch}, {"get", b_get}, {"post", b_post}, {NULL, NULL}};

void lcorio_blocking_push(lua_State *L) {
  lcorio_response_open(L);
  if (luaL_newmetatable(L, LCORIO_BLOCKING_RESPONSE_MT)) {
    lua_pushcfunction(L, guard_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
}
