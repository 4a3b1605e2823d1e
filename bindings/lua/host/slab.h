/*
** slab.h: the corio executable's Lua allocator.  Lua states are made of many
** small objects (a coroutine is a lua_State, a stack and call frames; a task
** is a userdata), and malloc adds a header and rounding to each.  Lua tells
** the allocator every block's size when it frees it, so small blocks can
** come from per-size free lists with no header at all: a sleeping task costs
** less (bench/NOTES.md, "Size-class Lua allocator").  Blocks above SLAB_MAX
** go to malloc.
*/
#ifndef CORIO_SLAB_H
#define CORIO_SLAB_H

#include <stddef.h>

#define SLAB_GRAIN   16
#define SLAB_MAX     1024
#define SLAB_CLASSES (SLAB_MAX / SLAB_GRAIN)

typedef struct slab {
  void *free[SLAB_CLASSES]; /* free blocks of each size class */
  void *pages;              /* every page, to free them all at the end */
  char *bump, *bump_end;    /* unused rest of the newest page */
} slab;

/* A lua_Alloc; ud is a zeroed struct slab. */
void *slab_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Free every page (after lua_close). */
void slab_free_all(slab *s);

#endif
