/*
** lbody.c: a response body becomes a Lua string without a copy.
**
** Lua 5.4 makes a string by allocating a block and copying the bytes into
** it; it cannot adopt bytes already in memory.  A 100 KiB body was thus
** copied twice, from libcurl's buffer into the transfer's, then into the
** string, and both copies lived at once.  Instead the transfer receives
** the body in a block of the state's own allocator, laid out as Lua lays
** out a long string: the bytes at the offset a string's bytes have in its
** block, a NUL after them (corio_request.body_alloc).  The state's
** allocator is wrapped, and the body's block is "armed" just before
** lua_pushlstring: Lua's request for the block of a string of exactly
** that size gets the body's block, and Lua's copy of the bytes becomes a
** copy onto themselves, which glibc's memcpy skips: big bodies come
** closer to raw libcurl's speed (bench/NOTES.md, "Bodies become
** strings").
**
** Nothing here reads Lua's private structures: the offset is measured
** once per state, with a probe string, and when the probe does not find
** the layout expected (another Lua build) bodies are copied as before.
** The manual defines the call Lua makes for a new string's block
** (lua_Alloc with ptr NULL and osize LUA_TSTRING).
*/
#include <string.h>

#include "lcorio.h"

/* Shorter bodies are copied: the copy is cheaper than the bookkeeping. */
#define ADOPT_MIN 1024

struct lcorio_bodies {
  lua_Alloc f; /* the state's allocator, wrapped */
  void *ud;
  size_t offset; /* of a string's bytes in its block; 0: copy bodies */
  char *armed;   /* the block the next string block of armed_size is */
  size_t armed_size;
  int probing; /* record the next string block in seen, seen_size */
  char *seen;
  size_t seen_size;
  unsigned small_failed; /* refused requests of SMALL_BLOCK bytes or less */
};

/*
** A refused request this small means the heap is exhausted, not that one
** huge string or table was asked for (see lcorio_small_alloc_failures).
*/
#define SMALL_BLOCK 1024

static void *bodies_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lcorio_bodies *b = ud;
  void *p;
  if (ptr != NULL || osize != LUA_TSTRING) {
    p = b->f(b->ud, ptr, osize, nsize);
    if (p == NULL && nsize > 0 && nsize <= SMALL_BLOCK) b->small_failed++;
    return p;
  }
  if (b->armed != NULL && nsize == b->armed_size) {
    p = b->armed;
    b->armed = NULL;
    return p;
  }
  p = b->f(b->ud, ptr, osize, nsize);
  if (p == NULL && nsize <= SMALL_BLOCK) b->small_failed++;
  if (b->probing) {
    b->probing = 0;
    b->seen = p;
    b->seen_size = nsize;
  }
  return p;
}

/* Where a long string's bytes sit in its block, or 0 if unsure. */
static size_t probe_offset(lua_State *L, lcorio_bodies *b) {
  char bytes[64]; /* over LUAI_MAXSHORTLEN (40): not interned, a block */
  const char *s;
  size_t off;
  memset(bytes, 'x', sizeof bytes);
  b->probing = 1;
  s = lua_pushlstring(L, bytes, sizeof bytes);
  b->probing = 0;
  lua_pop(L, 1);
  if (b->seen == NULL || s <= b->seen) return 0;
  off = (size_t)(s - b->seen);
  return b->seen_size == off + sizeof bytes + 1 ? off : 0;
}

void lcorio_bodies_open(lua_State *L, lcorio_state *S) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  lcorio_bodies *b = f(ud, NULL, 0, sizeof *b);
  if (b == NULL) return; /* bodies are copied */
  memset(b, 0, sizeof *b);
  b->f = f;
  b->ud = ud;
  lua_setallocf(L, bodies_alloc, b);
  S->bodies = b;
  b->offset = probe_offset(L, b);
}

void lcorio_bodies_close(lua_State *L, lcorio_state *S) {
  lcorio_bodies *b = S->bodies;
  void *ud;
  if (b == NULL) return;
  S->bodies = NULL;
  if (lua_getallocf(L, &ud) == bodies_alloc && ud == b) {
    lua_setallocf(L, b->f, b->ud);
    (void)b->f(b->ud, b, sizeof *b, 0);
  }
  /* else someone wrapped ours since: it stays, a plain pass-through */
}

unsigned lcorio_small_alloc_failures(const lcorio_state *S) {
  return S->bodies != NULL ? S->bodies->small_failed : 0;
}

void lcorio_bodies_request(const lcorio_state *S, corio_request *req) {
  const lcorio_bodies *b = S->bodies;
  if (b == NULL || b->offset == 0) return;
  req->body_alloc = b->f;
  req->body_alloc_ud = b->ud;
  req->body_offset = b->offset;
}

void lcorio_push_body(lua_State *L, lcorio_state *S, corio_fetch *f,
                      const corio_response *res) {
  lcorio_bodies *b = S->bodies;
  size_t size, exact, len = res->body_len;
  char *block;
  if (f == NULL || b == NULL || len < ADOPT_MIN ||
      (block = corio_fetch_take_body(f, &size)) == NULL) {
    /* a copy: the block stays the transfer's, which frees it */
    lua_pushlstring(L, res->body, len);
    return;
  }
  exact = b->offset + len + 1;
  if (size != exact) { /* unknown length: trim */
    char *p = b->f(b->ud, block, size, exact);
    if (p == NULL) { /* memory is short: a copy would fail as well */
      (void)b->f(b->ud, block, size, 0);
      lua_pushliteral(L, "not enough memory"); /* Lua keeps this one */
      lua_error(L);
    }
    block = p;
  }
  b->armed = block;
  b->armed_size = exact;
  lua_pushlstring(L, block + b->offset, len);
  if (b->armed != NULL) { /* not taken after all: Lua made a copy */
    b->armed = NULL;
    (void)b->f(b->ud, block, exact, 0);
  }
}
