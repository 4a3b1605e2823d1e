/*
** fuzz_copy.c: the byte format values travel in to and from worker
** threads and processes (bindings/lua/src/pool/lcopy.c).  A worker
** process's bytes come through a pipe, so decoding any bytes must raise a
** Lua error or give values, never crash.  What decodes is encoded again,
** and that must decode to the same number of values with the same bytes
** once more (the format is canonical after one round).
*/
#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lcopy.h"
#include "fuzz_support.h"

typedef struct blob {
  const char *p;
  size_t len;
} blob;

/* (blob): decode, encode again into a fresh buffer; returns the count
   and the new bytes as a string. */
static int round_p(lua_State *L) {
  blob *in = lua_touserdata(L, 1);
  int base = lua_gettop(L), n = lcorio_copy_decode_tuple(L, in->p, in->len);
  lcopy_buf *b = lcorio_copy_newbuf(L);
  size_t len;
  char *bytes;
  lcorio_copy_encode_tuple(L, b, base + 1, n, "value[%I]");
  bytes = lcorio_copy_take(b, &len);
  lua_pushinteger(L, n);
  lua_pushlstring(L, bytes, len);
  free(bytes);
  return 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  blob in = {(const char *)data, size};
  if (L == NULL) L = luaL_newstate();
  lua_settop(L, 0);
  lua_pushcfunction(L, round_p);
  lua_pushlightuserdata(L, &in);
  if (lua_pcall(L, 1, 2, 0) == LUA_OK) {
    lua_Integer n = lua_tointeger(L, 1);
    size_t len;
    const char *once = lua_tolstring(L, 2, &len);
    blob again = {once, len};
    lua_pushcfunction(L, round_p);
    lua_pushlightuserdata(L, &again);
    FUZZ_CHECK(lua_pcall(L, 1, 2, 0) == LUA_OK);
    FUZZ_CHECK(lua_tointeger(L, -2) == n);
    FUZZ_CHECK(lua_rawlen(L, -1) == len);
  } else {
    const char *msg = lua_tostring(L, -1);
    FUZZ_CHECK(msg != NULL);
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
