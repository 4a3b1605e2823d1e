/*
** lloop.c: running the loop: corio.run, get_event_loop() and its methods,
** corio.stats, and the host helpers of corio_lua.h.
*/
#include "lcorio.h"
#include "corio_lua.h"

static int check_not_running(lua_State *L, lcorio_state *S, const char *f) {
  if (S->rt == NULL) return luaL_error(L, "corio: runtime is closed");
  if (corio_rt_running(S->rt))
    return luaL_error(L,
                      "corio: %s: the loop is already running "
                      "(use await, or spawn a task)",
                      f);
  return 0;
}

/* run the loop until task at the top is done, then push its results */
static int run_task(lua_State *L, lcorio_state *S, ltask *lt) {
  lcorio_run_until_done(L, S, lt);
  return lcorio_push_results(L, lt);
}

/* corio.run(fn, ...): fn as the main task; its results or its error */
static int l_run(lua_State *L) {
  lcorio_state *S = lcorio_upstate(L);
  check_not_running(L, S, "run");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  return run_task(L, S, lcorio_spawn(L, 1, lua_gettop(L) - 1));
}

static int loop_run_until_complete(lua_State *L) {
  lcorio_state *S = lcorio_upstate(L);
  luaL_checkany(L, 2);
  check_not_running(L, S, "run_until_complete");
  lua_settop(L, 2);
  return run_task(L, S, lcorio_ensure_task(L, 2));
}

static void on_keep(uv_prepare_t *h) {
  (void)h;
}

static int loop_run_forever(lua_State *L) {
  lcorio_state *S = lcorio_upstate(L);
  check_not_running(L, S, "run_forever");
  if (!S->keepalive) { /* a ref'd handle: the loop never runs dry */
    uv_prepare_init(corio_rt_loop(S->rt), &S->keep);
    S->keepalive = 1;
  }
  uv_prepare_start(&S->keep, on_keep);
  corio_rt_run(S->rt, UV_RUN_DEFAULT);
  uv_prepare_stop(&S->keep);
  return 0;
}

static int loop_stop(lua_State *L) {
  lcorio_state *S = lcorio_upstate(L);
  if (S->keepalive) uv_prepare_stop(&S->keep);
  corio_rt_stop(S->rt);
  return 0;
}

static int loop_time(lua_State *L) {
  lua_pushnumber(L, corio_rt_time(lcorio_upstate(L)->rt));
  return 1;
}

static int loop_is_running(lua_State *L) {
  lua_pushboolean(L, corio_rt_running(lcorio_upstate(L)->rt));
  return 1;
}

/* loop:create_task(fn, ...) or loop:create_task(coro): as corio.spawn */
static int loop_create_task(lua_State *L) {
  lcorio_spawn_args(L, 2);
  return 1;
}

static int l_get_event_loop(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(2));
  return 1;
}

static void setcount(lua_State *L, const char *name, size_t n) {
  lua_pushinteger(L, (lua_Integer)n);
  lua_setfield(L, -2, name);
}

/* live counts: tasks, and the HTTP client's transfers and sockets */
static int l_stats(lua_State *L) {
  corio_rt *rt = lcorio_upstate(L)->rt;
  corio_rt_stats st;
  corio_fetch_stats fs;
  corio_rt_get_stats(rt, &st);
  corio_fetch_get_stats(rt, &fs);
  lua_createtable(L, 0, 6);
  setcount(L, "tasks", st.tasks);
  setcount(L, "ready", st.ready);
  setcount(L, "sleeping", st.sleeping);
  setcount(L, "fetches", fs.active);
  setcount(L, "sockets", fs.sockets); /* open, idle keep-alive included */
  setcount(L, "sessions", fs.sessions);
  setcount(L, "streamed", fs.streamed); /* bytes held for stream readers */
  return 1;
}

void corio_lua_push_pending(lua_State *L) {
  lcorio_push_pending(L, 0);
}

int corio_lua_traceback(lua_State *L) {
  return lcorio_traceback_handler(L);
}

int corio_lua_cancel_all(lua_State *L) {
  /* the program is leaving (Ctrl-C, SIGTERM, a failed script): a worker
     thread's item that never ends must not keep it (fault 46) */
  lcorio_thread_interrupt_all(L);
  return lcorio_cancel_all(L);
}

int corio_lua_run_pending(lua_State *L) {
  lcorio_state *S = lcorio_getstate(L);
  if (S == NULL || S->rt == NULL) return 0;
  if (corio_rt_running(S->rt)) return CORIO_EBUSY;
  corio_rt_run(S->rt, UV_RUN_DEFAULT);
  return 0;
}

static const luaL_Reg loop_methods[] = {
    {"run_until_complete", loop_run_until_complete},
    {"run_forever", loop_run_forever},
    {"stop", loop_stop},
    {"time", loop_time},
    {"is_running", loop_is_running},
    {"create_task", loop_create_task},
    {NULL, NULL}};

static const luaL_Reg funcs[] = {{"run", l_run},
                                 {"get_event_loop", l_get_event_loop},
                                 {"stats", l_stats},
                                 {"time", loop_time},
                                 {NULL, NULL}};

/*
** module table at -2, state at -1; functions here get (state, loop) as
** upvalues
*/
void lcorio_loop_open(lua_State *L) {
  const luaL_Reg *r;
  int module = lua_absindex(L, -2), state = lua_absindex(L, -1), loop;
  lua_newtable(L); /* the loop object: a table of methods */
  loop = lua_gettop(L);
  for (r = loop_methods; r->name != NULL; r++) {
    lua_pushvalue(L, state);
    lua_pushcclosure(L, r->func, 1);
    lua_setfield(L, loop, r->name);
  }
  for (r = funcs; r->name != NULL; r++) {
    lua_pushvalue(L, state);
    lua_pushvalue(L, loop);
    lua_pushcclosure(L, r->func, 2);
    lua_setfield(L, module, r->name);
  }
  lua_pop(L, 1); /* loop */
}
