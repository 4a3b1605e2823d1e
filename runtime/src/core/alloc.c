/*
** alloc.c: the one allocator hook of the runtime, and the other
** process-wide setting (the body pool).  Both are plain variables read
** without a lock, so they may change only while no runtime exists: the
** live runtimes are counted (atomically: runtimes live in many threads).
*/
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static corio_malloc_fn alloc_malloc = malloc;
static corio_realloc_fn alloc_realloc = realloc;
static corio_free_fn alloc_free = free;

size_t corio__body_pool_bytes = CORIO_BODY_POOL_DEFAULT;

static atomic_size_t live_runtimes;

void corio__rt_born(void) {
  atomic_fetch_add(&live_runtimes, 1);
}

void corio__rt_gone(void) {
  atomic_fetch_sub(&live_runtimes, 1);
}

int corio_set_body_pool(size_t bytes) {
  if (atomic_load(&live_runtimes) > 0) return CORIO_EBUSY;
  corio__body_pool_bytes = bytes;
  return 0;
}

int corio_replace_allocator(corio_malloc_fn m, corio_realloc_fn r,
                            corio_free_fn f) {
  if (m == NULL || r == NULL || f == NULL) return CORIO_EINVAL;
  if (atomic_load(&live_runtimes) > 0) return CORIO_EBUSY;
  alloc_malloc = m;
  alloc_realloc = r;
  alloc_free = f;
  return 0;
}

void *corio__malloc(size_t size) {
  return alloc_malloc(size ? size : 1);
}

void *corio__calloc(size_t n, size_t size) {
  void *p;
  if (size != 0 && n > SIZE_MAX / size) return NULL; /* overflow */
  p = corio__malloc(n * size);
  if (p != NULL) memset(p, 0, n * size);
  return p;
}

void *corio__realloc(void *ptr, size_t size) {
  return alloc_realloc(ptr, size ? size : 1);
}

void corio__free(void *ptr) {
  if (ptr != NULL) alloc_free(ptr);
}
