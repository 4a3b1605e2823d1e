/*
** fuzz_url.c: corio/url.h (http/url.c) on libcurl's URL API: parse,
** join, add_query and decode.  Input fields: url, reference, query.  Checked
** beyond "no crash": every part filled in lies in the one block, and a
** URL corio hands back parses again to itself (what corio.url.join
** returns is given to fetch).
*/
#include <stdio.h>

#include "corio.h"
#include "fuzz_support.h"

static void check_url(const corio_url *u) {
  const char *parts[] = {u->href, u->scheme, u->user,  u->password,
                         u->host, u->path,   u->query, u->fragment};
  size_t i;
  FUZZ_CHECK(u->href != NULL && u->scheme != NULL);
  FUZZ_CHECK(u->port >= -1 && u->port <= 65535);
  for (i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (parts[i] != NULL) (void)strlen(parts[i]); /* ASan checks the block */
}

static void again(const corio_url *u) {
  corio_url v;
  const char *why = NULL;
  int rc = corio_url_parse(u->href, &v, &why);
  if (rc != 0) {
    fprintf(stderr, "corio returned a URL it cannot parse: [%s] (%s)\n",
            u->href, why ? why : "?");
    abort();
  }
  check_url(&v);
  FUZZ_CHECK(strcmp(v.href, u->href) == 0);
  corio_url_free(&v);
}

/* The raw input decoded into a buffer of exactly len + 1 bytes (ASan
   checks the bound), with and without '+' as a space. */
static void decode(const uint8_t *data, size_t size) {
  char *out = malloc(size + 1);
  size_t len, i, pct = 0;
  int plus;
  if (out == NULL) return;
  for (i = 0; i < size; i++) pct += data[i] == '%';
  for (plus = 0; plus < 2; plus++) {
    FUZZ_CHECK(corio_url_decode((const char *)data, size, plus, out, &len) ==
               0);
    FUZZ_CHECK(len <= size && len + 2 * pct >= size && out[len] == '\0');
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_fields ff;
  corio_url u;
  const char *why = NULL;
  fuzz_split(&ff, data, size);
  if (corio_url_parse(fuzz_field(&ff, 0), &u, &why) == 0) {
    check_url(&u);
    again(&u);
  } else {
    FUZZ_CHECK(why != NULL && u.block_ == NULL);
  }
  corio_url_free(&u);
  if (corio_url_join(fuzz_field(&ff, 0), fuzz_field(&ff, 1), &u, &why) == 0) {
    check_url(&u);
    again(&u);
  }
  corio_url_free(&u);
  if (corio_url_add_query(fuzz_field(&ff, 0), fuzz_field(&ff, 2), &u, &why) ==
      0) {
    check_url(&u);
    again(&u);
  }
  corio_url_free(&u);
  decode(data, size);
  free(ff.block);
  return 0;
}
