/*
** lchunks.c: runs the module's Lua parts (the files in bindings/lua/lua).
**
** Job-level tools (task groups, semaphores, queues, map) are plain
** compositions of futures and tasks, as asyncio writes them in Python; they
** are written in Lua here, on the C functions underneath.  Each chunk is
** called as chunk(corio, internal): `corio` is the module table being
** built, `internal` a table the chunks share with each other and with this
** file.  A chunk keeps the module functions it uses in locals when it
** loads, so a script that later replaces corio.spawn changes nothing inside.
*/
#include <stdio.h>
#include <unistd.h>

#include "lchunks.h"
#include "lcorio.h"
#include "corio_lua.h"

#define TIMELINE_KEY "corio.timeline"

/* internal.error(name, kind, message [, fields]) -> a corio error value */
static int internal_error(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *kind = luaL_checkstring(L, 2);
  const char *message = luaL_checkstring(L, 3);
  lcorio_pusherror(L, name, kind, "%s", message);
  if (lua_istable(L, 4)) {
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, -4);
    }
  }
  return 1;
}

/* internal.iserror(v [, name]): is v a corio error (with this name)? */
static int internal_iserror(lua_State *L) {
  lua_pushboolean(L, lcorio_iserror(L, 1, luaL_optstring(L, 2, NULL)));
  return 1;
}

/*
** internal.isatty(fd): is the descriptor a terminal?  The progress bar
** redraws in place on a terminal and prints plain lines otherwise.
*/
static int internal_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)) == 1);
  return 1;
}

static const luaL_Reg internal_funcs[] = {
    {"error", internal_error},
    {"iserror", internal_iserror},
    {"isatty", internal_isatty},
    {"wait_reason", lcorio_internal_wait_reason},
    {NULL, NULL}};

void lcorio_chunks_open(lua_State *L) {
  const lcorio_chunk *c;
  char chunkname[64];
  /* module at -2, state at -1 */
  lua_newtable(L);
  lua_pushvalue(L, -2);
  lcorio_setfuncs(L, internal_funcs);
  lua_pop(L, 1); /* module, state, internal */
  for (c = lcorio_chunks; c->name != NULL; c++) {
    snprintf(chunkname, sizeof chunkname, "@corio/%s", c->name);
    if (luaL_loadbufferx(L, c->source, c->size, chunkname, "t") != LUA_OK)
      lua_error(L);
    lua_pushvalue(L, -4); /* module */
    lua_pushvalue(L, -3); /* internal */
    lua_call(L, 2, 0);
  }
  /* for hosts (corio_lua_timeline), out of a script's reach */
  lua_getfield(L, -1, "timeline");
  lua_setfield(L, LUA_REGISTRYINDEX, TIMELINE_KEY);
  lua_pop(L, 1);
}

static int timeline_call(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, TIMELINE_KEY);
  lua_insert(L, 1);
  lua_call(L, 2, 0);
  return 0;
}

int corio_lua_timeline(lua_State *L, const char *trace, const char *svg) {
  int rc;
  lua_pushcfunction(L, timeline_call);
  lua_pushstring(L, trace);
  lua_pushstring(L, svg);
  rc = lua_pcall(L, 2, 0, 0);
  if (rc != LUA_OK) {
    fprintf(stderr, "corio: timeline: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return rc;
}
