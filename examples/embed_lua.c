/*
** embed_lua.c: a C host that owns its uv_loop_t and its lua_State, runs a
** libuv timer of its own beside corio's tasks, and calls Lua functions
** that fetch (from a corio.serve server the Lua side starts on a free port
** of 127.0.0.1), getting the values back.
**
** Two ways to call Lua code that waits:
**   1. at top level: lua_pcall a function that fetches; its waits run the
**      loop (the host's own handles with it) until they are done;
**   2. as a task: the Lua side spawns it and returns it; the host turns the
**      loop itself until the task is done, then takes its result.
**
**   cc embed_lua.c $(pkg-config --cflags --libs corio lua5.4 libuv) \
**      -lcorio_lua -o embed_lua             (or CMake: corio::lua)
*/
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "corio_lua.h"

/* The Lua side: a server, and what the host calls. */
static const char script[] =
    "local corio = require 'corio'\n"
    "local server = corio.serve{port = 0, handler = function(req)\n"
    "  corio.sleep(0.01)  -- a slow backend: the host's timer ticks meanwhile\n"
    "  return 'hello from ' .. req.path\n"
    "end}\n"
    "-- n fetches at once; returns how many were 200 and the first body\n"
    "function fetch_many(n)\n"
    "  local tasks = {}\n"
    "  for i = 1, n do\n"
    "    tasks[i] = corio.spawn(corio.fetch, server.url .. '/item/' .. i)\n"
    "  end\n"
    "  local ok, results = 0, corio.gather(tasks)\n"
    "  for i = 1, n do\n"
    "    if results[i].status == 200 then ok = ok + 1 end\n"
    "  end\n"
    "  return ok, results[1].body\n"
    "end\n"
    "-- a task the host drives: its result is the status and the body\n"
    "function start_fetch(path)\n"
    "  return corio.spawn(function()\n"
    "    local r = corio.fetch(server.url .. path)\n"
    "    return r.status, r.body\n"
    "  end)\n"
    "end\n"
    "function stop() server:close() end\n";

typedef struct host {
  uv_loop_t loop;
  uv_timer_t tick;
  int ticks;
} host;

static void on_tick(uv_timer_t *t) {
  host *h = t->data;
  h->ticks++;
}

/* lua_pcall with a traceback; prints the error. */
static int call(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs, status;
  lua_pushcfunction(L, corio_lua_traceback);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status != LUA_OK) {
    fprintf(stderr, "embed_lua: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return status;
}

/* task:method() -> its results, on the stack */
static int task_call(lua_State *L, int task, const char *method, int nres) {
  lua_getfield(L, task, method);
  lua_pushvalue(L, task);
  return call(L, 1, nres);
}

int main(void) {
  host h;
  corio_rt *rt;
  lua_State *L;
  int ok = 0, task, ticks, rc = 1;
  memset(&h, 0, sizeof h);
  if (uv_loop_init(&h.loop) != 0) return 1;
  rt = corio_rt_new(&h.loop); /* borrows the host's loop */
  L = luaL_newstate();
  if (rt == NULL || L == NULL) return 1;
  luaL_openlibs(L);
  corio_lua_set_runtime(L, rt); /* before the module opens */
  luaL_requiref(L, "corio", luaopen_corio, 1);
  lua_pop(L, 1);

  /* the host's own handle: a timer every 2 ms */
  uv_timer_init(&h.loop, &h.tick);
  h.tick.data = &h;
  uv_timer_start(&h.tick, on_tick, 2, 2);

  if (luaL_loadstring(L, script) != LUA_OK || call(L, 0, 0) != LUA_OK)
    goto done;

  /* 1. at top level: the call runs the loop until its waits are done */
  lua_getglobal(L, "fetch_many");
  lua_pushinteger(L, 20);
  if (call(L, 1, 2) != LUA_OK) goto done;
  ok = (int)lua_tointeger(L, -2);
  printf("fetch_many: %d of 20 ok, first body '%s'\n", ok, lua_tostring(L, -1));
  printf("host timer ticked during the call: %s\n", h.ticks > 0 ? "yes" : "no");
  lua_pop(L, 2);

  /* 2. a task: the host turns its loop until the task is done */
  lua_getglobal(L, "start_fetch");
  lua_pushstring(L, "/from-the-host");
  if (call(L, 1, 1) != LUA_OK) goto done;
  task = lua_gettop(L);
  ticks = h.ticks;
  for (;;) {
    int done;
    if (task_call(L, task, "done", 1) != LUA_OK) goto done;
    done = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (done) break;
    /* corio_rt_run, not uv_run: the module then knows the loop turns */
    corio_rt_run(rt, UV_RUN_ONCE);
  }
  if (task_call(L, task, "result", 2) != LUA_OK) goto done;
  printf("start_fetch: %d '%s' (host ticks meanwhile: %s)\n",
         (int)lua_tointeger(L, -2), lua_tostring(L, -1),
         h.ticks > ticks ? "yes" : "no");
  lua_settop(L, 0);

  lua_getglobal(L, "stop");
  if (call(L, 0, 0) != LUA_OK) goto done;
  rc = ok == 20 && h.ticks > 0 ? 0 : 1;

done:
  uv_timer_stop(&h.tick);
  corio_lua_run_pending(L); /* whatever Lua left: nothing here */
  lua_close(L);
  if (corio_rt_free(rt) != 0) rc = 1; /* after lua_close */
  uv_close((uv_handle_t *)&h.tick, NULL);
  uv_run(&h.loop, UV_RUN_DEFAULT); /* the host's handles close */
  if (uv_loop_close(&h.loop) != 0) rc = 1;
  return rc;
}
