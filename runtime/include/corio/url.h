/*
** corio/url.h: URLs, on libcurl's URL API (curl_url): parse one into its
** parts, resolve a reference against a base, add a query; and
** percent-decoding (curl_easy_unescape).  Included by
** corio.h; include corio.h, not this file.
**
** Every function fills a corio_url: one allocation (corio's allocator)
** holding the whole URL, normalized as libcurl writes it, and its parts.
** Free it with corio_url_free.  On failure `why` (if not NULL) points to
** libcurl's reason ("Bad hostname", "Port number was not a decimal number
** between 0 and 65535", ...): a static string.
*/
#ifndef CORIO_URL_API_H
#define CORIO_URL_API_H

#ifndef CORIO_H /* which opens extern "C" for C++ */
#error "include corio.h, which includes this file"
#endif

typedef struct corio_url {
  const char *href;   /* the whole URL */
  const char *scheme; /* "https"; the parts below are NULL when absent */
  const char *user;   /* still percent-encoded, as in the URL */
  const char *password;
  const char *host;     /* "example.com", "127.0.0.1", "[::1]" */
  const char *path;     /* "/" at least for http(s) */
  const char *query;    /* without its "?" */
  const char *fragment; /* without its "#" */
  int port;             /* the port written in the URL; -1 when none is */
  char *block_;         /* where the strings live (private) */
} corio_url;

/*
** Name: corio_url_parse
** Desc: Parse an absolute URL (any scheme; a scheme is required).
** Returns: 0; CORIO_EURL (a malformed URL, `why` says how); CORIO_ENOMEM;
**          CORIO_EINVAL if `url` or `out` is NULL.
*/
CORIO_EXTERN int corio_url_parse(const char *url, corio_url *out,
                                 const char **why);

/*
** Name: corio_url_join
** Desc: Resolve `ref` against `base` as RFC 3986 section 5 does (a browser
**       following a link): "../b?x" against "http://h/a/c" gives
**       "http://h/b?x"; an absolute `ref` replaces the base.
** Returns: as corio_url_parse; CORIO_EURL names the base or the result.
*/
CORIO_EXTERN int corio_url_join(const char *base, const char *ref,
                                corio_url *out, const char **why);

/*
** Name: corio_url_add_query
** Desc: `url` with `query` (already encoded: "a=1&b=x+y") added to its
**       query, after a "&" if it has one; a fragment stays at the end.
** Returns: as corio_url_parse (CORIO_EURL for a query with a byte a URL
**          cannot hold: a space, a control character).
*/
CORIO_EXTERN int corio_url_add_query(const char *url, const char *query,
                                     corio_url *out, const char **why);

/*
** Name: corio_url_decode
** Desc: Percent-decode the `len` bytes at `s` into `out`, which must have
**       room for len + 1 bytes (decoding never lengthens).  When `plus`,
**       each '+' is a space (a query string, a form body:
**       application/x-www-form-urlencoded), while "%2B" stays a '+'.  A '%'
**       not followed by two hex digits is kept as it is.  The result is
**       NUL-terminated and may hold NUL bytes ("%00"): its length is put
**       in *outlen.  The decoding is libcurl's (curl_easy_unescape).
** Returns: 0; CORIO_ENOMEM; CORIO_EINVAL if a pointer is NULL or `len` is
**          over INT_MAX.
*/
CORIO_EXTERN int corio_url_decode(const char *s, size_t len, int plus,
                                  char *out, size_t *outlen);

/* Free what a corio_url_* function filled in (after a failure, nothing
   is left to free, and calling this is harmless). */
CORIO_EXTERN void corio_url_free(corio_url *u);

#endif
