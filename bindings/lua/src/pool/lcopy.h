/*
** lcopy.h: copying Lua values and functions between Lua states that share
** nothing: worker threads (lthread.c) and worker processes (lprocess*.c).
**
** Values travel as bytes in plain malloc'd memory (no lua_State owns them
** in transit): nil, booleans, integers and floats (kept apart), strings
** (binary-safe) and tables of those, cycles and shared subtables included
** (a table met twice is sent once and referenced after).  Metatables are
** not copied.  Functions travel as bytecode, with no upvalue but _ENV and
** the corio module, which become the receiving state's.
**
** An outcome is what running a function on one input produced: 'r' and the
** tuple of results, or 'e' and the tuple (error value, traceback).
*/
#ifndef LCOPY_H
#define LCOPY_H

#include <stddef.h>

#include <lua.h>

#define LCORIO_COPY_BUF_MT "corio.CopyBuf"

/* Nesting deeper than this is refused (it would exhaust the C stack). */
#define LCOPY_MAX_DEPTH 100

/* A growable byte buffer owned by a Lua userdata whose __gc frees the
   bytes, so an error while encoding leaks nothing. */
typedef struct lcopy_buf {
  char *data;
  size_t len, cap;
} lcopy_buf;

/* Push a new, empty buffer box. */
lcopy_buf *lcorio_copy_newbuf(lua_State *L);
/* Hand the bytes over to C (free them with free()); the box is empty. */
char *lcorio_copy_take(lcopy_buf *b, size_t *len);
void lcorio_copy_addbytes(lua_State *L, lcopy_buf *b, const void *p, size_t n);

/*
** Append the value at idx.  A value that cannot be copied raises an error
** naming where it is: `root` is a lua_pushfstring format given `rootidx`
** (as %I), e.g. "items[%I]" and 3 give "cannot copy items[3].x: ...".
*/
void lcorio_copy_encode(lua_State *L, lcopy_buf *b, int idx, const char *root,
                        lua_Integer rootidx);
/* Append the n values from `first` on as a tuple; value i is named
   `root` with i (1-based). */
void lcorio_copy_encode_tuple(lua_State *L, lcopy_buf *b, int first, int n,
                              const char *root);
/* map's input: append items[1..n] of the table at `items` to `in`, each a
   tuple of one value, and their start offsets (size_t) to `offs`, with
   the end as offset n+1.  An item over max_len bytes raises. */
void lcorio_copy_encode_items(lua_State *L, int items, lua_Integer n,
                              lcopy_buf *in, lcopy_buf *offs, size_t max_len);
/* Push the values of the tuple p[0..len); returns how many.  Malformed
   bytes raise an error. */
int lcorio_copy_decode_tuple(lua_State *L, const char *p, size_t len);

/* Dump the Lua function at idx into b.  Refuses C functions and every
   upvalue but _ENV and the corio module (which become the receiver's),
   naming it; `to` says where it goes ("a thread"). */
void lcorio_copy_dump_fn(lua_State *L, int idx, lcopy_buf *b, const char *to);
/* Load a dumped function and push it; returns a luaL_load* status. */
int lcorio_copy_load_fn(lua_State *L, const char *p, size_t len);

/* One input's outcome, in malloc'd memory; data NULL: none was produced. */
typedef struct lcopy_out {
  char *data;
  size_t len;
} lcopy_out;

/*
** In a worker: call the function at fidx with the arguments in the tuple
** p[0..len) and return the outcome (all results, or only the first with
** `first_only`).  Never raises: an error of the function, of copying, or
** of memory becomes an error outcome.
*/
lcopy_out lcorio_copy_run(lua_State *L, int fidx, const char *p, size_t len,
                          int first_only);
/* An error outcome with this message, built without Lua (a worker that
   died); data NULL when out of memory. */
lcopy_out lcorio_copy_error_outcome(const char *msg);
/* The same with a corio error value {name=, kind=, message=} (it gets the
   error metatable back in the caller, so it compares by kind). */
lcopy_out lcorio_copy_error_value_outcome(const char *name, const char *kind,
                                          const char *msg);

#endif
