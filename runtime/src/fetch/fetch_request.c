/*
** fetch_request.c: a request before libcurl has it: checked (everything
** that can be refused before a transfer exists), copied, and set on the
** easy handle; and the receive buffer picked as the transfer starts.
*/
#include <limits.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "fetch.h"

/*
** libcurl mallocs a receive buffer (CURLOPT_BUFFERSIZE, 16 KiB) for every
** transfer when it starts and frees it when it ends.  Waiting for a slow
** answer, it is the biggest thing a transfer holds: with thousands in
** flight the buffers dominate the heap.  Past MANY_ACTIVE
** transfers in flight in the runtime, tasks waiting to run counted in (each
** may start one), a transfer gets libcurl's smallest buffer instead, which
** costs more recv calls per byte: the few first transfers stay fast for
** big bodies, the crowd stays small.  The size is picked when libcurl is
** about to start the transfer, not when the caller starts it: then a burst
** of 10,000 is a crowd from its first transfer on (picked at the call, its
** first 1,000 took 16 or 64 KiB each); and since the scheduler polls
** between batches of tasks, the tasks still waiting to run count too.
** Under FEW_ACTIVE, a transfer gets 64 KiB instead: a 100 KiB body then
** takes two reads, not seven, each a wakeup and a socket_action (faster
** for big bodies, the same for small ones).  Figures: bench/NOTES.md,
** "Receive buffer".
*/
#define MANY_ACTIVE       1000
#define SMALL_RECV_BUFFER 1024L
#define FEW_ACTIVE        128
#define BIG_RECV_BUFFER   (64 * 1024L)

static const char user_agent[] = "corio/0.1.0";

void corio_request_init(corio_request *req, const char *url) {
  memset(req, 0, sizeof *req);
  req->url = url;
  req->timeout = CORIO_FETCH_TIMEOUT;
  req->connect_timeout = CORIO_FETCH_CONNECT_TIMEOUT;
  req->follow_redirects = 1;
  req->max_redirects = CORIO_FETCH_MAX_REDIRECTS;
  req->verify_tls = 1;
  req->http_version = CORIO_HTTP_DEFAULT;
  req->retry.attempts = 1;
  req->retry.backoff = CORIO_RETRY_BACKOFF;
  req->retry.max_backoff = CORIO_RETRY_MAX_BACKOFF;
}

/*
** {==================================================================
** Checking a request
** ===================================================================
*/

/* No CR, LF, tab or other control character: a URL or a proxy.  Method
   and header lines follow the one HTTP rule (corio_http_token_ok,
   corio_http_value_ok in http/chars.c). */
static int is_clean(const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c == 0x7f) return 0;
  }
  return 1;
}

static int is_token(const char *s) {
  return s != NULL && corio_http_token_ok(s, strlen(s));
}

static int bad_seconds(double t) {
  return isnan(t);
}

/*
** Everything that can be refused before a transfer exists.  `urlh` is a
** CURLU handle to parse with (overwritten), or NULL when the caller knows
** libcurl parses this very URL (fetch_multi.c remembers the last one).
** The scheme is checked on the text: without CURLU_GUESS_SCHEME a parsed
** URL starts with "scheme:".
*/
int corio__fetch_check(const corio_request *req, CURLU *urlh) {
  size_t i;
  const char *colon;
  if (req == NULL || req->url == NULL) return CORIO_EINVAL;
  if (!is_clean(req->url)) return CORIO_EURL;
  if (req->method != NULL && !is_token(req->method)) return CORIO_EINVAL;
  if (req->nheaders > 0 && req->headers == NULL) return CORIO_EINVAL;
  for (i = 0; i < req->nheaders; i++) {
    const corio_header *h = &req->headers[i];
    if (!is_token(h->name) || h->value == NULL ||
        !corio_http_value_ok(h->value, strlen(h->value)))
      return CORIO_EINVAL;
  }
  if (req->body == NULL && req->body_len > 0) return CORIO_EINVAL;
  if (req->on_head != NULL && req->on_data == NULL) return CORIO_EINVAL;
  if (bad_seconds(req->timeout) || bad_seconds(req->connect_timeout))
    return CORIO_EINVAL;
  if (req->follow_redirects && req->max_redirects < 0) return CORIO_EINVAL;
  if (req->http_version < CORIO_HTTP_DEFAULT ||
      req->http_version > CORIO_HTTP_2_ONLY)
    return CORIO_EINVAL;
  if (req->proxy != NULL && !is_clean(req->proxy)) return CORIO_EINVAL;
  if (corio__retry_check(&req->retry) != 0) return CORIO_EINVAL;
  if (urlh != NULL) {
    CURLUcode uc =
        curl_url_set(urlh, CURLUPART_URL, req->url, CURLU_NON_SUPPORT_SCHEME);
    if (uc == CURLUE_OUT_OF_MEMORY) return CORIO_ENOMEM;
    if (uc != CURLUE_OK) return CORIO_EURL;
  }
  colon = strchr(req->url, ':');
  if (colon == NULL) return CORIO_EURL;
  if (!((colon - req->url == 4 && strncasecmp(req->url, "http", 4) == 0) ||
        (colon - req->url == 5 && strncasecmp(req->url, "https", 5) == 0)))
    return CORIO_ESCHEME;
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** Setting up the easy handle
** ===================================================================
*/

static int has_header(const corio_request *req, const char *name) {
  size_t i;
  for (i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->headers[i].name, name) == 0) return 1;
  return 0;
}

/* Seconds to libcurl milliseconds, rounded up as every duration is
   (corio_seconds_to_ms): 0 picks `dflt`, negative (or too long) `none`. */
static long to_ms(double t, double dflt, long none) {
  if (t == 0) t = dflt;
  if (t < 0 || t > (double)INT_MAX / 1000) return none;
  return (long)corio_seconds_to_ms(t);
}

/*
** Copy what libcurl does not copy itself (the header list and the body)
** into one arena, and set the options.  String options (URL, method,
** proxy) are copied by curl_easy_setopt.
*/
int corio__fetch_setup(corio_fetch *f, const corio_request *req) {
  CURL *e = f->easy;
  size_t i, nlist = req->nheaders, size, off;
  int ctype = req->body != NULL && !has_header(req, "Content-Type");
  const char *method = req->method;
  struct curl_slist *list = NULL;
  static const char octets[] = "Content-Type: application/octet-stream";
  long version;
  CURLcode rc = CURLE_OK;

  if (req->body_alloc != NULL && req->on_data == NULL) {
    corio__fetch_body_free(f); /* ours, kept by the pool */
    f->body_alloc = req->body_alloc;
    f->body_ud = req->body_alloc_ud;
    f->body_off = req->body_offset;
  }
  /* arena layout: slist nodes, then "Name: value" lines, then the body */
  if (ctype) nlist++;
  size = nlist * sizeof(struct curl_slist);
  for (i = 0; i < req->nheaders; i++)
    size += strlen(req->headers[i].name) + strlen(req->headers[i].value) + 3;
  if (ctype) size += sizeof octets;
  size += req->body_len;
  f->arena.len = 0;
  if (size > 0 && corio__fbuf_reserve(&f->arena, size) != 0)
    return CORIO_ENOMEM;
  off = nlist * sizeof(struct curl_slist);
  for (i = 0; i < nlist; i++) {
    struct curl_slist *node = (struct curl_slist *)f->arena.p + i;
    char *line = f->arena.p + off;
    if (i < req->nheaders) {
      const corio_header *h = &req->headers[i];
      size_t nl = strlen(h->name), vl = strlen(h->value);
      memcpy(line, h->name, nl);
      if (vl == 0) { /* "Name;" is curl's way to send an empty value */
        line[nl] = ';';
        line[nl + 1] = '\0';
      } else {
        line[nl] = ':';
        line[nl + 1] = ' ';
        memcpy(line + nl + 2, h->value, vl + 1);
      }
      off += nl + vl + 3;
    } else {
      memcpy(line, octets, sizeof octets);
      off += sizeof octets;
    }
    node->data = line;
    node->next = i + 1 < nlist ? node + 1 : NULL;
  }
  if (nlist > 0) list = (struct curl_slist *)f->arena.p;
  if (req->body_len > 0) memcpy(f->arena.p + off, req->body, req->body_len);
  f->arena.len = off + req->body_len;
  f->max_body = req->max_body;
  corio__retry_setup(f, req);
  corio__stream_setup(f, req);

  switch (req->http_version) {
  case CORIO_HTTP_1_0:
    version = CURL_HTTP_VERSION_1_0;
    break;
  case CORIO_HTTP_1_1:
    version = CURL_HTTP_VERSION_1_1;
    break;
  case CORIO_HTTP_2:
    version = CURL_HTTP_VERSION_2_0;
    break;
  case CORIO_HTTP_2_ONLY:
    version = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
    break;
  default:
    version = CURL_HTTP_VERSION_2TLS;
    break;
  }

#define SET(opt, val)                                                          \
  do {                                                                         \
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val);                    \
  } while (0)
  SET(CURLOPT_PRIVATE, (void *)f);
  SET(CURLOPT_URL, req->url);
  SET(CURLOPT_NOSIGNAL, 1L);
  /* A name that never resolves: at the timeout, libcurl would join its
     resolver thread, blocking the loop until getaddrinfo gives up (seconds
     with a silent DNS server; bench/NOTES.md); detached, the thread ends on its
     own.  (Since 7.87: an older libcurl says no, and waits.) */
  (void)curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_WRITEFUNCTION, corio__fetch_on_write);
  SET(CURLOPT_WRITEDATA, (void *)f);
  SET(CURLOPT_HEADERFUNCTION, corio__fetch_on_header);
  SET(CURLOPT_HEADERDATA, (void *)f);
  SET(CURLOPT_ERRORBUFFER, f->errbuf);
  SET(CURLOPT_USERAGENT, user_agent);
  SET(CURLOPT_TIMEOUT_MS, to_ms(req->timeout, CORIO_FETCH_TIMEOUT, 0L));
  SET(CURLOPT_CONNECTTIMEOUT_MS,
      to_ms(req->connect_timeout, CORIO_FETCH_CONNECT_TIMEOUT, (long)INT_MAX));
  SET(CURLOPT_FOLLOWLOCATION, req->follow_redirects ? 1L : 0L);
  SET(CURLOPT_MAXREDIRS, (long)req->max_redirects);
  SET(CURLOPT_SSL_VERIFYPEER, req->verify_tls ? 1L : 0L);
  SET(CURLOPT_SSL_VERIFYHOST, req->verify_tls ? 2L : 0L);
  SET(CURLOPT_HTTP_VERSION, version);
  if (f->fetcher != NULL) { /* see fetch_sock.c */
    SET(CURLOPT_OPENSOCKETFUNCTION, corio__fsock_open);
    SET(CURLOPT_OPENSOCKETDATA, (void *)f);
    SET(CURLOPT_CLOSESOCKETFUNCTION, corio__fsock_closesocket);
    SET(CURLOPT_CLOSESOCKETDATA, (void *)f->fetcher);
  }
  if (req->proxy != NULL) SET(CURLOPT_PROXY, req->proxy);
  if (list != NULL) SET(CURLOPT_HTTPHEADER, list);
  if (req->max_body > 0 && req->max_body <= (size_t)INT64_MAX)
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_body);
  if (method == NULL) method = req->body != NULL ? "POST" : "GET";
  if (strcmp(method, "HEAD") == 0) {
    SET(CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "GET") == 0 && req->body == NULL) {
    SET(CURLOPT_HTTPGET, 1L);
  } else {
    /* POST keeps libcurl's POST semantics (301/302/303 turn it into a
       GET); any other method is sent as is on every hop */
    if (strcmp(method, "POST") != 0) SET(CURLOPT_CUSTOMREQUEST, method);
    if (req->body != NULL || strcmp(method, "POST") == 0) {
      SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
      /* never NULL: that would make libcurl read the body from stdin */
      SET(CURLOPT_POSTFIELDS, f->arena.p != NULL ? f->arena.p + off : "");
    }
  }
#undef SET
  if (rc == CURLE_OUT_OF_MEMORY) return CORIO_ENOMEM;
  return rc == CURLE_OK ? 0 : CORIO_EINVAL;
}

/*
** The receive buffer, as libcurl is about to start the transfer (see
** MANY_ACTIVE).  (libcurl 7.88 refuses a new size while a handle still
** holds the buffer of its last transfer; each transfer has a new handle.)
*/
void corio__fetch_pick_buffer(corio_fetch *f) {
  size_t n = f->fetcher->nactive + f->fetcher->rt->nready;
  if (n >= MANY_ACTIVE)
    (void)curl_easy_setopt(f->easy, CURLOPT_BUFFERSIZE, SMALL_RECV_BUFFER);
  else if (n < FEW_ACTIVE)
    (void)curl_easy_setopt(f->easy, CURLOPT_BUFFERSIZE, BIG_RECV_BUFFER);
}

/* }================================================================== */
