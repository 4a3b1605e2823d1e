/*
** lchunks.h: the parts of the module written in Lua (bindings/lua/lua/).
** The build embeds each file's source; luaopen_corio runs them in order.
*/
#ifndef LCHUNKS_H
#define LCHUNKS_H

#include <stddef.h>

typedef struct lcorio_chunk {
  const char *name; /* the file's name, e.g. "group.lua" */
  const char *source;
  size_t size;
} lcorio_chunk;

extern const lcorio_chunk lcorio_chunks[]; /* ends with a NULL name */

#endif
