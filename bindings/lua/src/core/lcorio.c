/*
** lcorio.c: luaopen_corio.  Builds the module table from each file's
** functions; every function gets the binding's state as upvalue 1.
*/
#include <string.h>

#include "lcorio.h"
#include "corio_lua.h"

#define HOST_RT_KEY "corio.HostRuntime"

void lcorio_setfuncs(lua_State *L, const luaL_Reg *l) {
  /* module table at -2, state at -1 */
  for (; l->name != NULL; l++) {
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l->func, 1);
    lua_setfield(L, -3, l->name);
  }
}

lcorio_state *lcorio_getstate(lua_State *L) {
  lcorio_state *S;
  lua_getfield(L, LUA_REGISTRYINDEX, LCORIO_STATE_KEY);
  S = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return S;
}

int lcorio_protect(lua_State *L, lua_CFunction fn, void *ud) {
  int rc;
  lua_checkstack(L, 4);     /* returns 0 rather than raise */
  lua_pushcfunction(L, fn); /* a light C function: allocates nothing */
  lua_pushlightuserdata(L, ud);
  rc = lua_pcall(L, 1, 0, 0);
  if (rc != LUA_OK) lua_pop(L, 1);
  return rc;
}

/*
** Lua names a finalizer that the collector runs (lua_close included)
** metamethod "__gc"; a script calling one itself calls it by another name
** (a field, a local, ...).
*/
int lcorio_collecting(lua_State *L) {
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "n", &ar)) return 0;
  return ar.namewhat != NULL && strcmp(ar.namewhat, "metamethod") == 0 &&
         ar.name != NULL && strcmp(ar.name, "__gc") == 0;
}

void lcorio_push_memory_error(lua_State *L, lcorio_state *S) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->nomem_ref);
}

void corio_lua_set_runtime(lua_State *L, corio_rt *rt) {
  lua_pushlightuserdata(L, rt);
  lua_setfield(L, LUA_REGISTRYINDEX, HOST_RT_KEY);
}

corio_rt *corio_lua_runtime(lua_State *L) {
  lcorio_state *S = lcorio_getstate(L);
  return S != NULL ? S->rt : NULL;
}

lua_State *volatile *corio_lua_running(lua_State *L) {
  lcorio_state *S = lcorio_getstate(L);
  return S != NULL ? &S->running : NULL;
}

static int version(lua_State *L) {
  lua_pushstring(L, corio_version_string());
  return 1;
}

static int state_gc(lua_State *L);

static lcorio_state *state_new(lua_State *L) {
  lcorio_state *S = lua_newuserdatauv(L, sizeof *S, 0);
  corio_rt *host;
  memset(S, 0, sizeof *S);
  lua_getfield(L, LUA_REGISTRYINDEX, HOST_RT_KEY);
  host = lua_touserdata(L, -1);
  lua_pop(L, 1);
  S->rt = host != NULL ? host : corio_rt_new(NULL);
  if (S->rt == NULL) luaL_error(L, "corio: cannot create the runtime");
  S->owns_rt = host == NULL;
  corio_rt_set_data(S->rt, S);
  S->L = lua_newthread(L); /* the scheduler's own stack */
  S->L_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  S->next_id = 1;
  lua_createtable(L, 1, 1); /* a failed task's error, made in advance */
  lua_pushliteral(L, "not enough memory");
  lua_rawseti(L, -2, 1);
  lua_pushliteral(L, "not enough memory (no traceback)");
  lua_setfield(L, -2, "traceback");
  S->nomem_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lcorio_bodies_open(L, S);
  lua_newtable(L); /* metatable */
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, LCORIO_STATE_KEY);
  return S;
}

static void on_keep_closed(uv_handle_t *h) {
  (void)h;
}

/*
** Only the collector (lua_close) ends the runtime: the state is in the
** registry, where a script can reach it with debug.getregistry.
*/
static int state_gc(lua_State *L) {
  lcorio_state *S = lua_touserdata(L, 1);
  if (S == NULL || S != lcorio_getstate(L) || S->rt == NULL ||
      !lcorio_collecting(L))
    return 0;
  if (S->nomem_unretrieved > 0)
    fprintf(stderr,
            "corio: %zu tasks failed for lack of memory; their exceptions "
            "were never retrieved\n",
            S->nomem_unretrieved);
  lcorio_observe_close(L, S); /* the trace file is complete */
  lcorio_task_shutdown(L, S);
  if (S->keepalive) {
    uv_close((uv_handle_t *)&S->keep, on_keep_closed);
    S->keepalive = 0;
  }
  if (S->owns_rt)
    corio_rt_free(S->rt);
  else
    corio_rt_set_data(S->rt, NULL);
  S->rt = NULL;
  lcorio_bodies_close(L, S); /* transfers of ours: done, cancelled or freed */
  return 0;
}

static const luaL_Reg funcs[] = {{"version", version}, {NULL, NULL}};

int luaopen_corio(lua_State *L) {
  lcorio_state *S;
  /* the main thread is no task: the extra space says so */
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  *(void **)lua_getextraspace(lua_tothread(L, -1)) = NULL;
  lua_pop(L, 1);
  S = lcorio_getstate(L);
  lua_newtable(L);
  if (S == NULL)
    state_new(L);
  else
    lua_getfield(L, LUA_REGISTRYINDEX, LCORIO_STATE_KEY);
  lcorio_setfuncs(L, funcs);
  lcorio_error_open(L);
  lcorio_task_open(L);
  lcorio_wait_open(L);
  lcorio_loop_open(L);
  lcorio_fetch_open(L);
  lcorio_json_open(L);
  lcorio_url_open(L);
  lcorio_serve_open(L);
  lcorio_thread_open(L);
  lcorio_process_open(L);
  lcorio_redis_open(L);
  lcorio_observe_open(L);
  lcorio_chunks_open(L); /* last: they build on the functions above */
  lua_pop(L, 1);         /* state */
  lua_pushstring(L, corio_version_string());
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
