/*
** fetch_retry.c: retries (corio_retry): the request's retry options
** checked and copied into the transfer, whether a finished try gets
** another and after how long, and the transfer readied for it.  The wait
** itself is the caller's: a corio_timer on the loop (fetch_multi.c), a
** sleep in corio_fetch_blocking (fetch.c).
*/
#include <math.h>
#include <string.h>

#include "fetch.h"

/*
** {==================================================================
** Options
** ===================================================================
*/

static const int default_statuses[] = {429, 502, 503, 504};
static const char *const default_methods[] = {"GET", "HEAD", "PUT", "DELETE",
                                              "OPTIONS"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int bad_seconds(double t) {
  return isnan(t) || t < 0;
}

int corio__retry_check(const corio_retry *r) {
  size_t i;
  if (r->attempts < 0 || bad_seconds(r->backoff) || bad_seconds(r->max_backoff))
    return CORIO_EINVAL;
  if ((r->statuses == NULL && r->nstatuses > 0) ||
      (r->methods == NULL && r->nmethods > 0))
    return CORIO_EINVAL;
  for (i = 0; r->statuses != NULL && i < r->nstatuses; i++)
    if (r->statuses[i] < 100 || r->statuses[i] > 599) return CORIO_EINVAL;
  for (i = 0; r->methods != NULL && i < r->nmethods; i++) {
    const char *m = r->methods[i];
    if (m == NULL || !corio_http_token_ok(m, strlen(m))) return CORIO_EINVAL;
  }
  return 0;
}

/* Is the request's method among those retried? */
static int method_retried(const corio_request *req) {
  const corio_retry *r = &req->retry;
  const char *m = req->method;
  const char *const *list = r->methods != NULL ? r->methods : default_methods;
  size_t i, n = r->methods != NULL ? r->nmethods : COUNT(default_methods);
  if (m == NULL) m = req->body != NULL ? "POST" : "GET";
  for (i = 0; i < n; i++)
    if (strcmp(list[i], m) == 0) return 1;
  return 0;
}

/* The request was checked (corio__retry_check). */
void corio__retry_setup(corio_fetch *f, const corio_request *req) {
  const corio_retry *r = &req->retry;
  const int *st = r->statuses != NULL ? r->statuses : default_statuses;
  size_t i, n = r->statuses != NULL ? r->nstatuses : COUNT(default_statuses);
  f->tries = 1;
  f->max_tries = r->attempts > 1 && method_retried(req) ? r->attempts : 1;
  f->backoff = r->backoff;
  f->max_backoff = r->max_backoff;
  memset(f->statuses, 0, sizeof f->statuses);
  if (f->max_tries == 1) return;
  for (i = 0; i < n; i++)
    f->statuses[st[i] / 64] |= (uint64_t)1 << (st[i] % 64);
}

/* }================================================================== */

/*
** {==================================================================
** The next try
** ===================================================================
*/

/* xorshift64*: a delay need not be unpredictable, only spread out. */
static double uniform01(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return (double)((x * UINT64_C(2685821657736338717)) >> 11) * 0x1.0p-53;
}

uint64_t corio__retry_seed(const void *salt) {
  uint64_t s = uv_hrtime() ^ ((uint64_t)(uintptr_t)salt << 16);
  return s != 0 ? s : UINT64_C(0x9e3779b97f4a7c15);
}

static int status_listed(const corio_fetch *f, long code) {
  return code >= 100 && code <= 599 &&
         (f->statuses[code / 64] >> (code % 64) & 1) != 0;
}

/* Whether a response with status `code` gets another try. */
int corio__retry_status(const corio_fetch *f, long code) {
  return f->tries < f->max_tries && status_listed(f, code);
}

/*
** The try that just ended gave `status` (0: a response): the milliseconds
** to wait before the next one, or -1 for none.  A Retry-After header
** (libcurl parses both forms: delay-seconds and an HTTP-date, made
** relative to now) replaces the backoff, capped by max_backoff; 0 (or a
** date past) means no advice, and the backoff applies.  Otherwise: full
** jitter, a uniform draw in [0, min(max_backoff, backoff * 2^(tries-1))],
** so that clients failing together do not come back together.
*/
int64_t corio__retry_delay(corio_fetch *f, int status, uint64_t *rng) {
  double bound;
  if (f->tries >= f->max_tries) return -1;
  if (status == 0) {
    long code = 0;
    curl_off_t after = 0;
    (void)curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
    if (!status_listed(f, code)) return -1;
    if (curl_easy_getinfo(f->easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK &&
        after > 0)
      return (int64_t)corio_seconds_to_ms(
          (double)after < f->max_backoff ? (double)after : f->max_backoff);
  } else if (status != CORIO_ECONNECT && status != CORIO_ERESET &&
             status != CORIO_ETIMEDOUT) {
    return -1;
  }
  bound = ldexp(f->backoff, f->tries < 1024 ? f->tries - 1 : 1023);
  if (!(bound <= f->max_backoff)) bound = f->max_backoff; /* inf too */
  return (int64_t)corio_seconds_to_ms(bound * uniform01(rng));
}

/*
** Ready `f` for its next try: a new easy handle with the same options
** (the request's URL, headers and body, which still live in f->arena), for
** the reason corio__fetch_obj_recycle gives, and the response collected so
** far dropped.  On failure `f` is left as it was.
*/
int corio__retry_renew(corio_fetch *f) {
  CURL *e = curl_easy_duphandle(f->easy);
  if (e == NULL) return CORIO_ENOMEM;
  curl_easy_cleanup(f->easy);
  f->easy = e;
  if (f->fetcher != NULL && f->fetcher->share != NULL)
    (void)curl_easy_setopt(e, CURLOPT_SHARE, f->fetcher->share);
  /* admission decides again (may_skip_reuse) */
  (void)curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 0L);
  f->body.len = 0;
  if (f->body.p != NULL) f->body.p[0] = '\0';
  f->hbuf.len = 0;
  f->nh = 0;
  f->hbytes = 0;
  f->err = 0;
  f->sock_errno = 0;
  f->opened[0] = f->opened[1] = -1;
  f->errbuf[0] = '\0';
  f->sflags = 0; /* a streamed try handed nothing out (fetch_stream.c) */
  f->hstatus = 0;
  f->hlocation = 0;
  f->received = 0;
  f->tries++;
  return 0;
}

/* }================================================================== */
