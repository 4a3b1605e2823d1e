/*
** lcopy_fn.c: shipping a function to a worker and running it there on
** one input (see lcopy.h); lpool.c turns the outcomes back into results
** or errors in the caller's state.  Shared by threads and processes.
*/
#include <stdlib.h>
#include <string.h>

#include "lcorio.h"
#include "lcopy.h"

/*
** {==================================================================
** The function
** ===================================================================
*/

/* lua_dump's writer must not raise (it runs inside the dump), so it
   reports a failed allocation and lcorio_copy_dump_fn raises afterwards. */
static int writer(lua_State *L, const void *p, size_t sz, void *ud) {
  lcopy_buf *b = ud;
  (void)L;
  if (b->cap - b->len < sz) {
    size_t cap = b->cap ? b->cap : 256;
    char *d;
    while (cap - b->len < sz) cap *= 2;
    if ((d = realloc(b->data, cap)) == NULL) return 1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, sz);
  b->len += sz;
  return 0;
}

/* Is the value at the top the corio module of this state? */
static int is_corio(lua_State *L) {
  int r;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "corio");
  r = lua_type(L, -1) == LUA_TTABLE && lua_rawequal(L, -1, -3);
  lua_pop(L, 2);
  return r;
}

/*
** The bytes are: the upvalue count (one byte), one byte per upvalue saying
** what it becomes over there ('E' the globals, 'C' the corio module), and
** the bytecode.  _ENV means the same thing there, and so does the corio
** module (`local corio = require "corio"` is how scripts start); any other
** upvalue would silently become nil, so it is refused.
*/
void lcorio_copy_dump_fn(lua_State *L, int idx, lcopy_buf *b, const char *to) {
  const char *name;
  unsigned char n = 0;
  int i;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TFUNCTION);
  if (lua_iscfunction(L, idx))
    luaL_error(L, "corio: a C function cannot be sent to %s", to);
  lcorio_copy_addbytes(L, b, &n, 1);
  for (i = 1; (name = lua_getupvalue(L, idx, i)) != NULL; i++) {
    char kind = strcmp(name, "_ENV") == 0 ? 'E' : is_corio(L) ? 'C' : 0;
    lua_pop(L, 1);
    if (kind == 0)
      luaL_error(L,
                 "corio: upvalue '%s' of the function cannot be sent to %s "
                 "(only globals travel with it; pass the value as an "
                 "argument instead)",
                 name, to);
    if (i > 255) luaL_error(L, "corio: too many upvalues to send");
    lcorio_copy_addbytes(L, b, &kind, 1);
    b->data[0] = (char)++n;
  }
  lua_pushvalue(L, idx);
  if (lua_dump(L, writer, b, 0) != 0) luaL_error(L, "not enough memory");
  lua_pop(L, 1);
}

int lcorio_copy_load_fn(lua_State *L, const char *p, size_t len) {
  size_t i, n = len > 0 ? (unsigned char)p[0] : 0;
  int rc;
  if (len < 1 + n) {
    lua_pushliteral(L, "corio: malformed function");
    return LUA_ERRSYNTAX;
  }
  rc = luaL_loadbufferx(L, p + 1 + n, len - 1 - n, "=(corio worker)", "b");
  if (rc != LUA_OK) return rc;
  for (i = 0; i < n; i++) {
    if (p[1 + i] == 'E') {
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    } else {
      lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
      lua_getfield(L, -1, "corio");
      lua_remove(L, -2);
    }
    lua_setupvalue(L, -2, (int)i + 1);
  }
  return LUA_OK;
}
/* }================================================================== */

/*
** {==================================================================
** Running it in a worker
** ===================================================================
*/

/* Message handler: keep the error value as it is, add the traceback. */
static int msgh(lua_State *L) {
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  luaL_traceback(L, L, NULL, 1);
  lua_rawseti(L, -2, 2);
  return 1;
}

/* (buf, root, values...): encode the values as a tuple, under pcall */
static int encode_p(lua_State *L) {
  lcopy_buf *b = lua_touserdata(L, 1);
  lcorio_copy_encode_tuple(L, b, 3, lua_gettop(L) - 2, lua_tostring(L, 2));
  return 0;
}

/* Encode the top n values of L as a tuple after `tag`; on a value that
   cannot be copied, leave b as it was and the message on the stack. */
static int try_encode(lua_State *L, lcopy_buf *b, char tag, int n,
                      const char *root) {
  size_t len = b->len;
  int i, first = lua_gettop(L) - n + 1;
  /* the values may fill the stack (a call with LUA_MULTRET leaves no room) */
  luaL_checkstack(L, n + 3, "too many values to copy");
  lcorio_copy_addbytes(L, b, &tag, 1);
  lua_pushcfunction(L, encode_p);
  lua_pushlightuserdata(L, b);
  lua_pushstring(L, root);
  for (i = 0; i < n; i++) lua_pushvalue(L, first + i);
  if (lua_pcall(L, n + 2, 0, 0) == LUA_OK) return 1;
  b->len = len;
  return 0;
}

typedef struct run_ctx {
  const char *p;
  size_t len;
  int first_only;
  lcopy_out out;
} run_ctx;

/* (fn, ctx): protected, so any error (memory included) is caught. */
static int run_p(lua_State *L) {
  run_ctx *c = lua_touserdata(L, 2);
  lcopy_buf *b = lcorio_copy_newbuf(L); /* 3 */
  int n, status;
  lua_pushcfunction(L, msgh); /* 4 */
  lua_pushvalue(L, 1);
  n = lcorio_copy_decode_tuple(L, c->p, c->len);
  status = lua_pcall(L, n, c->first_only ? 1 : LUA_MULTRET, 4);
  if (status == LUA_OK) {
    n = lua_gettop(L) - 4;
    if (try_encode(L, b, 'r', n, c->first_only ? "the result" : "result[%I]"))
      goto done;
    lua_pushliteral(L, ""); /* the copy failed: that is the error */
  } else if (lua_type(L, -1) == LUA_TTABLE && status == LUA_ERRRUN) {
    lua_rawgeti(L, -1, 1); /* the error value */
    lua_rawgeti(L, -2, 2); /* the traceback */
  } else {
    lua_pushliteral(L, ""); /* the handler itself failed */
  }
  /* error value and traceback on top */
  if (!try_encode(L, b, 'e', 2, "the error")) {
    lua_pop(L, 1);               /* the copy's message */
    luaL_tolstring(L, -2, NULL); /* the error as a string instead */
    lua_replace(L, -3);
    try_encode(L, b, 'e', 2, "the error"); /* strings always copy */
  }
done:
  c->out.data = lcorio_copy_take(b, &c->out.len);
  return 0;
}

lcopy_out lcorio_copy_run(lua_State *L, int fidx, const char *p, size_t len,
                          int first_only) {
  run_ctx c;
  int top = lua_gettop(L);
  memset(&c, 0, sizeof c);
  c.p = p;
  c.len = len;
  c.first_only = first_only;
  lua_pushcfunction(L, run_p);
  lua_pushvalue(L, fidx);
  lua_pushlightuserdata(L, &c);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    free(c.out.data);
    c.out = lcorio_copy_error_outcome(msg != NULL ? msg : "error in a worker");
  }
  lua_settop(L, top);
  return c.out;
}
/* }================================================================== */
