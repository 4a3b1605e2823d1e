/*
** lcopy.c: the byte format of copied values (see lcopy.h).
**
** Both ends are the same program on the same machine (a thread, or a
** process running this very binary), so numbers and lengths are stored in
** native byte order.  Each value is a tag byte and its payload:
**   'n' nil, 'f' false, 't' true, 'i' int64, 'd' double,
**   's' size_t length + bytes,
**   'T' size_t pair count + size_t array-size hint + pairs (key, value),
**   'R' size_t id: the id-th table of this message, already sent.
** A tuple is a uint32 count and that many values.  Decoding checks every
** length, since process messages come through a pipe.
*/
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lcopy.h"

/*
** {==================================================================
** Buffer
** ===================================================================
*/

static int buf_gc(lua_State *L) {
  lcopy_buf *b = luaL_testudata(L, 1, LCORIO_COPY_BUF_MT);
  if (b == NULL) return 0;
  free(b->data);
  memset(b, 0, sizeof *b);
  return 0;
}

lcopy_buf *lcorio_copy_newbuf(lua_State *L) {
  lcopy_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  if (luaL_newmetatable(L, LCORIO_COPY_BUF_MT)) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

char *lcorio_copy_take(lcopy_buf *b, size_t *len) {
  char *p = b->data;
  *len = b->len;
  memset(b, 0, sizeof *b);
  return p;
}

void lcorio_copy_addbytes(lua_State *L, lcopy_buf *b, const void *p, size_t n) {
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 64;
    char *d;
    while (cap - b->len < n) {
      if (cap > SIZE_MAX / 2) luaL_error(L, "not enough memory");
      cap *= 2;
    }
    d = realloc(b->data, cap);
    if (d == NULL) luaL_error(L, "not enough memory");
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void addtag(lua_State *L, lcopy_buf *b, char tag) {
  lcorio_copy_addbytes(L, b, &tag, 1);
}

static void addsize(lua_State *L, lcopy_buf *b, size_t n) {
  lcorio_copy_addbytes(L, b, &n, sizeof n);
}
/* }================================================================== */

/*
** {==================================================================
** Encoding
** ===================================================================
*/

typedef struct enc {
  lua_State *L;
  lcopy_buf *b;
  const char *root;
  lua_Integer rootidx;
  int seen; /* stack index of a table: table -> id */
  size_t nseen;
  int depth;
  int keys[LCOPY_MAX_DEPTH]; /* stack index of the key at each level */
} enc;

static int is_name(const char *s, size_t len) {
  size_t i;
  if (len == 0 || len > 40) return 0;
  for (i = 0; i < len; i++) {
    char c = s[i];
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return 0;
  }
  return 1;
}

/* Push "items[3].x": the root and the keys of the levels above. */
static void push_path(enc *e) {
  lua_State *L = e->L;
  int d;
  luaL_checkstack(L, 4, NULL);
  lua_pushfstring(L, e->root, e->rootidx);
  for (d = 0; d < e->depth; d++) {
    int k = e->keys[d];
    size_t len;
    const char *s;
    switch (lua_type(L, k)) {
    case LUA_TSTRING:
      s = lua_tolstring(L, k, &len);
      if (is_name(s, len))
        lua_pushfstring(L, ".%s", s);
      else if (len <= 40 && strlen(s) == len)
        lua_pushfstring(L, "[\"%s\"]", s);
      else
        lua_pushliteral(L, "[<string>]");
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, k))
        lua_pushfstring(L, "[%I]", lua_tointeger(L, k));
      else
        lua_pushfstring(L, "[%f]", lua_tonumber(L, k));
      break;
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, k) ? "[true]" : "[false]");
      break;
    default:
      lua_pushfstring(L, "[<%s>]", luaL_typename(L, k));
    }
    lua_concat(L, 2);
  }
}

static void refuse(enc *e, int idx, int iskey) {
  lua_State *L = e->L;
  const char *tname = luaL_typename(L, idx);
  push_path(e);
  if (iskey)
    lua_pushfstring(L, "corio: cannot copy %s: it has a %s key",
                    lua_tostring(L, -1), tname);
  else
    lua_pushfstring(L, "corio: cannot copy %s: it is a %s", lua_tostring(L, -1),
                    tname);
  lua_pushliteral(L, " (only nil, booleans, numbers, strings and tables of "
                     "those travel to threads and processes)");
  lua_concat(L, 2);
  lua_error(L);
}

static void encode_value(enc *e, int idx);

static void encode_table(enc *e, int idx) {
  lua_State *L = e->L;
  size_t count = 0, at, hint = lua_rawlen(L, idx);
  luaL_checkstack(L, 6, "tables nested too deeply");
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->seen) == LUA_TNUMBER) { /* sent already: a reference */
    size_t id = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    addtag(L, e->b, 'R');
    addsize(L, e->b, id);
    return;
  }
  lua_pop(L, 1);
  if (e->depth >= LCOPY_MAX_DEPTH) {
    push_path(e);
    luaL_error(L, "corio: cannot copy %s: tables nested more than %d deep",
               lua_tostring(L, -1), LCOPY_MAX_DEPTH);
  }
  lua_pushvalue(L, idx);
  lua_pushinteger(L, (lua_Integer)++e->nseen);
  lua_rawset(L, e->seen);
  addtag(L, e->b, 'T');
  at = e->b->len;
  addsize(L, e->b, 0); /* the pair count and hint, filled in below */
  addsize(L, e->b, 0);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int kt = lua_type(L, -2);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN &&
        kt != LUA_TTABLE)
      refuse(e, -2, 1);
    e->keys[e->depth++] = lua_absindex(L, -2);
    encode_value(e, -2);
    encode_value(e, -1);
    e->depth--;
    lua_pop(L, 1);
    count++;
  }
  if (hint > count) hint = count; /* a border can exceed the pairs */
  memcpy(e->b->data + at, &count, sizeof count);
  memcpy(e->b->data + at + sizeof count, &hint, sizeof hint);
}

static void encode_value(enc *e, int idx) {
  lua_State *L = e->L;
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    addtag(L, e->b, 'n');
    break;
  case LUA_TBOOLEAN:
    addtag(L, e->b, lua_toboolean(L, idx) ? 't' : 'f');
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      int64_t i = (int64_t)lua_tointeger(L, idx);
      addtag(L, e->b, 'i');
      lcorio_copy_addbytes(L, e->b, &i, sizeof i);
    } else {
      double d = (double)lua_tonumber(L, idx);
      addtag(L, e->b, 'd');
      lcorio_copy_addbytes(L, e->b, &d, sizeof d);
    }
    break;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    addtag(L, e->b, 's');
    addsize(L, e->b, len);
    lcorio_copy_addbytes(L, e->b, s, len);
    break;
  }
  case LUA_TTABLE:
    encode_table(e, idx);
    break;
  default:
    refuse(e, idx, 0);
  }
}

void lcorio_copy_encode(lua_State *L, lcopy_buf *b, int idx, const char *root,
                        lua_Integer rootidx) {
  enc e;
  idx = lua_absindex(L, idx);
  memset(&e, 0, sizeof e);
  e.L = L;
  e.b = b;
  e.root = root;
  e.rootidx = rootidx;
  lua_newtable(L);
  e.seen = lua_gettop(L);
  encode_value(&e, idx);
  lua_pop(L, 1);
}

void lcorio_copy_encode_tuple(lua_State *L, lcopy_buf *b, int first, int n,
                              const char *root) {
  uint32_t count = (uint32_t)n;
  int i;
  first = lua_absindex(L, first);
  lcorio_copy_addbytes(L, b, &count, sizeof count);
  for (i = 0; i < n; i++) lcorio_copy_encode(L, b, first + i, root, i + 1);
}

void lcorio_copy_encode_items(lua_State *L, int items, lua_Integer n,
                              lcopy_buf *in, lcopy_buf *offs, size_t max_len) {
  uint32_t one = 1;
  lua_Integer k;
  size_t off;
  items = lua_absindex(L, items);
  for (k = 1; k <= n; k++) {
    off = in->len;
    lcorio_copy_addbytes(L, offs, &off, sizeof off);
    lcorio_copy_addbytes(L, in, &one, sizeof one);
    lua_geti(L, items, k);
    lcorio_copy_encode(L, in, -1, "items[%I]", k);
    lua_pop(L, 1);
    if (in->len - off > max_len)
      luaL_error(L, "corio: items[%I] is too large to send", k);
  }
  off = in->len;
  lcorio_copy_addbytes(L, offs, &off, sizeof off);
}
/* }================================================================== */

/*
** {==================================================================
** Decoding
** ===================================================================
*/

typedef struct dec {
  lua_State *L;
  const char *p, *end;
  int tables; /* stack index of a table: id -> table */
  size_t ntables;
  int depth;
} dec;

static const char *take(dec *d, size_t n) {
  const char *p = d->p;
  if ((size_t)(d->end - d->p) < n)
    luaL_error(d->L, "corio: malformed message (truncated)");
  d->p += n;
  return p;
}

static size_t take_size(dec *d) {
  size_t n;
  memcpy(&n, take(d, sizeof n), sizeof n);
  return n;
}

static void decode_value(dec *d);

static void decode_table(dec *d) {
  lua_State *L = d->L;
  size_t i, count = take_size(d), hint = take_size(d);
  size_t room = (size_t)(d->end - d->p) / 2; /* a pair takes 2 bytes or more */
  if (count > room || hint > count || d->depth >= LCOPY_MAX_DEPTH)
    luaL_error(L, "corio: malformed message (bad table)");
  luaL_checkstack(L, 4, "tables nested too deeply");
  lua_createtable(L, (int)hint, (int)(count - hint));
  lua_pushvalue(L, -1);
  lua_rawseti(L, d->tables, (lua_Integer)++d->ntables);
  d->depth++;
  for (i = 0; i < count; i++) {
    decode_value(d);
    if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER &&
                             lua_tonumber(L, -1) != lua_tonumber(L, -1)))
      luaL_error(L, "corio: malformed message (bad key)");
    decode_value(d);
    lua_rawset(L, -3);
  }
  d->depth--;
}

static void decode_value(dec *d) {
  lua_State *L = d->L;
  char tag = *take(d, 1);
  switch (tag) {
  case 'n':
    lua_pushnil(L);
    break;
  case 'f':
  case 't':
    lua_pushboolean(L, tag == 't');
    break;
  case 'i': {
    int64_t i;
    memcpy(&i, take(d, sizeof i), sizeof i);
    lua_pushinteger(L, (lua_Integer)i);
    break;
  }
  case 'd': {
    double x;
    memcpy(&x, take(d, sizeof x), sizeof x);
    lua_pushnumber(L, (lua_Number)x);
    break;
  }
  case 's': {
    size_t len = take_size(d);
    const char *s = take(d, len);
    lua_pushlstring(L, s, len);
    break;
  }
  case 'T':
    decode_table(d);
    break;
  case 'R': {
    size_t id = take_size(d);
    if (id == 0 || id > d->ntables)
      luaL_error(L, "corio: malformed message (bad reference)");
    lua_rawgeti(L, d->tables, (lua_Integer)id);
    break;
  }
  default:
    luaL_error(L, "corio: malformed message (tag %d)", (int)(unsigned char)tag);
  }
}

int lcorio_copy_decode_tuple(lua_State *L, const char *p, size_t len) {
  dec d;
  uint32_t i, count;
  int base;
  memset(&d, 0, sizeof d);
  d.L = L;
  d.p = p;
  d.end = p + len;
  memcpy(&count, take(&d, sizeof count), sizeof count);
  if (count > len) luaL_error(L, "corio: malformed message (bad count)");
  if (count > (uint32_t)INT_MAX - 2) luaL_error(L, "corio: too many values");
  luaL_checkstack(L, (int)count + 2, "too many values");
  lua_newtable(L);
  d.tables = base = lua_gettop(L);
  for (i = 0; i < count; i++) {
    /* every value's tables are its own: references never cross values */
    d.ntables = 0;
    decode_value(&d);
  }
  if (d.p != d.end) luaL_error(L, "corio: malformed message (trailing bytes)");
  lua_remove(L, base);
  return (int)count;
}
/* }================================================================== */

/*
** {==================================================================
** Outcomes built in C
** ===================================================================
*/

static char *put_string(char *p, const char *s) {
  size_t n = strlen(s);
  *p++ = 's';
  memcpy(p, &n, sizeof n);
  memcpy(p + sizeof n, s, n);
  return p + sizeof n + n;
}

static size_t string_size(const char *s) {
  return 1 + sizeof(size_t) + strlen(s);
}

/* An error outcome whose error value is the message, or, with a name, the
   corio error {name=, kind=, message=}; and an empty traceback. */
static lcopy_out error_outcome(const char *name, const char *kind,
                               const char *msg) {
  lcopy_out o;
  size_t pairs = 3, hint = 0;
  uint32_t count = 2;
  char *p;
  o.len = 1 + sizeof count + string_size(msg) + string_size("");
  if (name != NULL)
    o.len += 1 + sizeof pairs + sizeof hint + string_size("name") +
             string_size(name) + string_size("kind") + string_size(kind) +
             string_size("message");
  o.data = p = malloc(o.len);
  if (p == NULL) return o;
  *p++ = 'e';
  memcpy(p, &count, sizeof count);
  p += sizeof count;
  if (name != NULL) { /* {name=, kind=, message=msg} */
    *p++ = 'T';
    memcpy(p, &pairs, sizeof pairs);
    memcpy(p + sizeof pairs, &hint, sizeof hint);
    p += sizeof pairs + sizeof hint;
    p = put_string(put_string(p, "name"), name);
    p = put_string(put_string(p, "kind"), kind);
    p = put_string(p, "message");
  }
  p = put_string(p, msg);
  put_string(p, ""); /* no traceback */
  return o;
}

lcopy_out lcorio_copy_error_outcome(const char *msg) {
  return error_outcome(NULL, NULL, msg);
}

lcopy_out lcorio_copy_error_value_outcome(const char *name, const char *kind,
                                          const char *msg) {
  return error_outcome(name, kind, msg);
}
/* }================================================================== */
