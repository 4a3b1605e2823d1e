/*
** fuzz_support.h: what the fuzz targets share.  An input is cut into
** fields at each '\n' (the last field runs to the end), each a C string
** of its own: the functions under test take C strings, so a NUL inside a
** field only shortens it, as it would for a caller.
*/
#ifndef FUZZ_SUPPORT_H
#define FUZZ_SUPPORT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer's entry point (declared for -Wmissing-prototypes) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_FIELDS 64

typedef struct fuzz_fields {
  char *block; /* the copy the fields point into */
  char *f[FUZZ_MAX_FIELDS];
  size_t len[FUZZ_MAX_FIELDS]; /* bytes up to the '\n' (NULs included) */
  int n;
} fuzz_fields;

static inline void fuzz_split(fuzz_fields *ff, const uint8_t *data,
                              size_t size) {
  size_t i, start = 0;
  ff->block = malloc(size + 1);
  memcpy(ff->block, data, size);
  ff->block[size] = '\0';
  ff->n = 0;
  for (i = 0; i <= size && ff->n < FUZZ_MAX_FIELDS; i++) {
    if (i == size || ff->block[i] == '\n') {
      ff->block[i] = '\0';
      ff->f[ff->n] = ff->block + start;
      ff->len[ff->n] = i - start;
      ff->n++;
      start = i + 1;
    }
  }
}

/* Field i, or "" past the last one. */
static inline const char *fuzz_field(const fuzz_fields *ff, int i) {
  return i < ff->n ? ff->f[i] : "";
}

/* Abort (a crash libFuzzer reports with the input) unless `ok`. */
#define FUZZ_CHECK(ok)                                                         \
  do {                                                                         \
    if (!(ok)) {                                                               \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #ok);   \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#endif
