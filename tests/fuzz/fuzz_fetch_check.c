/*
** fuzz_fetch_check.c: what fetch refuses before a transfer exists
** (corio__fetch_check, fetch/fetch_request.c) and the one rule for the
** bytes of a message head (corio_http_token_ok, corio_http_value_ok).
** Input fields: url, method, proxy, then header name and value pairs.
** Checked beyond "no crash": a request that passes carries no CR, LF or
** control byte in its head (rule 11 of docs/reliability.md), and the
** character rules agree with a plain restatement of RFC 9110.
*/
#include <stdio.h>

#include <curl/curl.h>

#include "corio.h"
#include "fetch/fetch.h"
#include "fuzz_support.h"

static int tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static int clean(const char *s, int tab_ok) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c < 0x20 && !(tab_ok && c == '\t')) || c == 0x7f) return 0;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static CURLU *urlh;
  fuzz_fields ff;
  corio_header h[FUZZ_MAX_FIELDS / 2];
  corio_request req;
  size_t i, nh = 0;
  int rc, tok = 1, val = 1;
  if (urlh == NULL) urlh = curl_url();
  /* the character rules, on the raw bytes */
  for (i = 0; i < size; i++) {
    unsigned char c = data[i];
    if (!tchar(c)) tok = 0;
    if ((c < 0x20 && c != '\t') || c == 0x7f) val = 0;
  }
  FUZZ_CHECK(corio_http_token_ok((const char *)data, size) == (tok && size));
  FUZZ_CHECK(corio_http_value_ok((const char *)data, size) == val);
  fuzz_split(&ff, data, size);
  corio_request_init(&req, fuzz_field(&ff, 0));
  if (ff.n > 1 && ff.len[1] > 0) req.method = ff.f[1];
  if (ff.n > 2 && ff.len[2] > 0) req.proxy = ff.f[2];
  for (i = 3; i + 1 < (size_t)ff.n; i += 2) {
    h[nh].name = ff.f[i];
    h[nh].value = ff.f[i + 1];
    nh++;
  }
  req.headers = h;
  req.nheaders = nh;
  rc = corio__fetch_check(&req, urlh);
  if (rc == 0) {
    FUZZ_CHECK(clean(req.url, 0));
    FUZZ_CHECK(req.method == NULL || (clean(req.method, 0) && *req.method));
    for (i = 0; i < nh; i++)
      FUZZ_CHECK(*h[i].name && clean(h[i].name, 0) && clean(h[i].value, 1));
    FUZZ_CHECK(strncasecmp(req.url, "http", 4) == 0);
  }
  /* NULL urlh: the caller vouches for libcurl parsing the URL later */
  (void)corio__fetch_check(&req, NULL);
  free(ff.block);
  return 0;
}
