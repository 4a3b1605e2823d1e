/*
** slab.c: size-class free lists for small Lua blocks (see slab.h).
*/
#include <stdlib.h>
#include <string.h>

#include "slab.h"

#define PAGE_SIZE (64 * 1024)

static size_t class_of(size_t size) {
  return (size + SLAB_GRAIN - 1) / SLAB_GRAIN - 1;
}

static void *take(slab *s, size_t size) {
  size_t c = class_of(size), bytes = (c + 1) * SLAB_GRAIN;
  void *p = s->free[c];
  if (p != NULL) {
    s->free[c] = *(void **)p;
    return p;
  }
  if (s->bump == NULL || (size_t)(s->bump_end - s->bump) < bytes) {
    /*
    ** the page's rest is too small for this class; it stays unused, which
    ** wastes less than a page of headers
    */
    char *page = malloc(PAGE_SIZE);
    if (page == NULL) return NULL;
    *(void **)page = s->pages; /* first 16 bytes link the pages */
    s->pages = page;
    s->bump = page + SLAB_GRAIN;
    s->bump_end = page + PAGE_SIZE;
  }
  p = s->bump;
  s->bump += bytes;
  return p;
}

static void give(slab *s, void *p, size_t size) {
  size_t c = class_of(size);
  *(void **)p = s->free[c];
  s->free[c] = p;
}

void *slab_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  slab *s = ud;
  void *n;
  if (ptr == NULL) osize = 0; /* osize then tells the object's type */
  if (nsize == 0) {
    if (ptr != NULL) {
      if (osize <= SLAB_MAX)
        give(s, ptr, osize);
      else
        free(ptr);
    }
    return NULL;
  }
  if (ptr != NULL && osize > SLAB_MAX && nsize > SLAB_MAX)
    return realloc(ptr, nsize);
  if (ptr != NULL && osize <= SLAB_MAX && nsize <= SLAB_MAX &&
      class_of(osize) == class_of(nsize))
    return ptr;
  n = nsize <= SLAB_MAX ? take(s, nsize) : malloc(nsize);
  if (n == NULL) return NULL; /* Lua keeps the old block */
  if (ptr != NULL) {
    memcpy(n, ptr, osize < nsize ? osize : nsize);
    if (osize <= SLAB_MAX)
      give(s, ptr, osize);
    else
      free(ptr);
  }
  return n;
}

void slab_free_all(slab *s) {
  while (s->pages != NULL) {
    void *next = *(void **)s->pages;
    free(s->pages);
    s->pages = next;
  }
  memset(s, 0, sizeof *s);
}
