/*
** ljson.c: corio.json, and the JSON that fetch and the server speak, on
** lua-cjson (Debian's lua-cjson: nothing here parses or prints JSON).
**
** corio uses an instance of its own (cjson.new()), loaded on first use and
** kept in the registry: a script that tunes the global cjson module
** (cjson.encode_sparse_array, ...) changes nothing in corio, and a state
** that never speaks JSON never loads it.
*/
#include "lcorio.h"

#define CJSON_KEY "corio.cjson"

/* Push corio's cjson instance. */
static void push_cjson(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, CJSON_KEY) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  if (lua_type(L, -1) != LUA_TFUNCTION)
    luaL_error(L, "corio: JSON needs lua-cjson, but 'require' is missing");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_remove(L, -2);
  lua_call(L, 0, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, CJSON_KEY);
}

static int call_cjson(lua_State *L) {
  const char *name = lua_tostring(L, lua_upvalueindex(1));
  push_cjson(L);
  lua_getfield(L, -1, name);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

int lcorio_json_try(lua_State *L, const char *name, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushstring(L, name);
  lua_pushcclosure(L, call_cjson, 1);
  lua_pushvalue(L, idx);
  return lua_pcall(L, 1, 1, 0);
}

/* cjson.<name>(value at idx) pushed, or "<what>: <cjson's message>" raised */
static void json_call(lua_State *L, const char *name, int idx,
                      const char *what) {
  if (lcorio_json_try(L, name, idx) != LUA_OK)
    luaL_error(L, "%s: %s", what, lua_tostring(L, -1));
}

void lcorio_json_encode(lua_State *L, int idx, const char *what) {
  json_call(L, "encode", idx, what);
}

void lcorio_json_decode(lua_State *L, int idx, const char *what) {
  json_call(L, "decode", idx, what);
}

static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lcorio_json_encode(L, 1, "corio.json.encode");
  return 1;
}

static int l_decode(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "corio.json.decode: expected a string, got %s",
                      luaL_typename(L, 1));
  lcorio_json_decode(L, 1, "corio.json.decode");
  return 1;
}

void lcorio_json_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
  /* module at -2, state at -1 */
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  lua_pushlightuserdata(L, NULL); /* cjson.null: the same value */
  lua_setfield(L, -2, "null");
  lua_setfield(L, -3, "json");
}
