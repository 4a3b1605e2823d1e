/*
** url.c: corio/url.h on libcurl's URL API.  libcurl parses, resolves and
** normalizes; this file only copies the parts into one block, so that a
** caller frees one thing and never meets curl_free.
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "corio.h"
#include "../core/core.h"

static const CURLUPart parts[] = {
    CURLUPART_URL,      CURLUPART_SCHEME,   CURLUPART_USER,
    CURLUPART_PASSWORD, CURLUPART_HOST,     CURLUPART_PATH,
    CURLUPART_QUERY,    CURLUPART_FRAGMENT, CURLUPART_PORT};
#define NPARTS (sizeof parts / sizeof parts[0])

static int fail(CURLUcode uc, const char **why) {
  if (why != NULL) *why = curl_url_strerror(uc);
  return uc == CURLUE_OUT_OF_MEMORY ? CORIO_ENOMEM : CORIO_EURL;
}

/* Copy the parts of h into out.  0 or an error code. */
static int fill(CURLU *h, corio_url *out, const char **why) {
  char *got[NPARTS];
  const char **slot[NPARTS - 1];
  size_t i, size = 0;
  int rc = 0;
  char *p;
  slot[0] = &out->href, slot[1] = &out->scheme, slot[2] = &out->user;
  slot[3] = &out->password, slot[4] = &out->host, slot[5] = &out->path;
  slot[6] = &out->query, slot[7] = &out->fragment;
  for (i = 0; i < NPARTS; i++) {
    CURLUcode uc = curl_url_get(h, parts[i], &got[i], 0);
    if (uc == CURLUE_OUT_OF_MEMORY) rc = fail(uc, why);
    if (uc != CURLUE_OK) got[i] = NULL; /* absent: CURLUE_NO_QUERY, ... */
    if (got[i] != NULL) size += strlen(got[i]) + 1;
  }
  if (rc == 0 && got[0] == NULL) rc = fail(CURLUE_MALFORMED_INPUT, why);
  p = rc == 0 ? corio__malloc(size) : NULL;
  if (rc == 0 && p == NULL) rc = CORIO_ENOMEM;
  if (rc == 0) {
    out->block_ = p;
    for (i = 0; i + 1 < NPARTS; i++) {
      if (got[i] == NULL) continue;
      *slot[i] = strcpy(p, got[i]);
      p += strlen(got[i]) + 1;
    }
    out->port = got[NPARTS - 1] != NULL ? atoi(got[NPARTS - 1]) : -1;
  }
  for (i = 0; i < NPARTS; i++) curl_free(got[i]);
  return rc;
}

typedef enum { URL_PARSE, URL_JOIN, URL_ADD_QUERY } url_op;

/*
** What libcurl 7.88 writes does not always parse back to itself, and fetch
** would then refuse, or fetch another URL than, the one handed back: a
** part set on its own (a query added, a fragment) is taken as it is, so a
** control byte or a space in it makes a URL that does not parse again; and
** "h:/%35" is written "h://5/", whose host then reads as the IPv4 address
** 0.0.0.5.  So every URL is parsed once more before it is handed back
** (both found by tests/fuzz/fuzz_url.c).
*/
static CURLUcode reparse(CURLU *h) {
  char *url = NULL;
  CURLUcode uc = curl_url_get(h, CURLUPART_URL, &url, 0);
  if (uc == CURLUE_OK)
    uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
  curl_free(url);
  return uc;
}

/* Parse `url`, apply `arg` as `op` says, and fill `out`. */
static int url_do(url_op op, const char *url, const char *arg, corio_url *out,
                  const char **why) {
  CURLU *h;
  CURLUcode uc;
  int rc;
  if (out != NULL) memset(out, 0, sizeof *out);
  if (url == NULL || out == NULL || (op != URL_PARSE && arg == NULL))
    return CORIO_EINVAL;
  if ((h = curl_url()) == NULL) return CORIO_ENOMEM;
  uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
  if (uc == CURLUE_OK && op == URL_JOIN) {
    if (*arg == '\0' || *arg == '#') {
      /* RFC 3986 5.2.2: the base with the reference's fragment (or none);
         libcurl 7.88 drops the base's last segment and query here */
      uc = curl_url_set(h, CURLUPART_FRAGMENT, *arg == '#' ? arg + 1 : NULL, 0);
    } else { /* with a URL set, a relative one is resolved against it */
      uc = curl_url_set(h, CURLUPART_URL, arg, CURLU_NON_SUPPORT_SCHEME);
    }
  } else if (uc == CURLUE_OK && op == URL_ADD_QUERY && *arg != '\0') {
    uc = curl_url_set(h, CURLUPART_QUERY, arg, CURLU_APPENDQUERY);
  }
  if (uc == CURLUE_OK) uc = reparse(h);
  rc = uc != CURLUE_OK ? fail(uc, why) : fill(h, out, why);
  curl_url_cleanup(h);
  return rc;
}

int corio_url_parse(const char *url, corio_url *out, const char **why) {
  return url_do(URL_PARSE, url, NULL, out, why);
}

int corio_url_join(const char *base, const char *ref, corio_url *out,
                   const char **why) {
  return url_do(URL_JOIN, base, ref, out, why);
}

int corio_url_add_query(const char *url, const char *query, corio_url *out,
                        const char **why) {
  return url_do(URL_ADD_QUERY, url, query, out, why);
}

int corio_url_decode(const char *s, size_t len, int plus, char *out,
                     size_t *outlen) {
  char *d;
  int dlen;
  size_t i;
  if (s == NULL || out == NULL || outlen == NULL || len > INT_MAX)
    return CORIO_EINVAL;
  if (len == 0) { /* curl_easy_unescape would take 0 as "strlen(s)" */
    *out = '\0';
    *outlen = 0;
    return 0;
  }
  if (plus && memchr(s, '+', len) != NULL) { /* '+' first: "%2B" stays */
    memmove(out, s, len);
    for (i = 0; i < len; i++)
      if (out[i] == '+') out[i] = ' ';
    s = out;
  }
  d = curl_easy_unescape(NULL, s, (int)len, &dlen);
  if (d == NULL) return CORIO_ENOMEM;
  memcpy(out, d, (size_t)dlen + 1);
  *outlen = (size_t)dlen;
  curl_free(d);
  return 0;
}

void corio_url_free(corio_url *u) {
  if (u == NULL) return;
  corio__free(u->block_);
  u->block_ = NULL;
}
