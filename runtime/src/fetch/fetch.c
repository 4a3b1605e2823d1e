/*
** fetch.c: one HTTP transfer: the request is checked and copied, the easy
** handle configured, the response collected by libcurl's write and header
** callbacks, CURLcode folded into corio codes, and the response handed
** out.  The loop glue (multi_socket, sessions, cancellation) lives in
** fetch_multi.c; corio_fetch_blocking, the easy_perform twin, lives here.
*/
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch.h"

#define MAX_HEADER_BYTES (1024 * 1024)      /* per response, all fields */
#define MAX_RESERVE      (64 * 1024 * 1024) /* trust Content-Length this far */

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

/* What a pooled object keeps of its buffers between transfers. */
#define KEEP_ARENA   (16 * 1024)
#define KEEP_HBUF    (16 * 1024)
#define KEEP_HEADERS 64

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
  if (bad_seconds(req->timeout) || bad_seconds(req->connect_timeout))
    return CORIO_EINVAL;
  if (req->follow_redirects && req->max_redirects < 0) return CORIO_EINVAL;
  if (req->http_version < CORIO_HTTP_DEFAULT ||
      req->http_version > CORIO_HTTP_2_ONLY)
    return CORIO_EINVAL;
  if (req->proxy != NULL && !is_clean(req->proxy)) return CORIO_EINVAL;
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
** Buffers and the pooled object
** ===================================================================
*/

/* The capacity `b` needs for `extra` more bytes plus a NUL: b->cap if it
   has room, 0 on overflow.  `hint` is a size worth reserving at once (a
   Content-Length), 0 if none. */
static size_t buf_need(const corio__fbuf *b, size_t extra, size_t hint) {
  size_t need = b->len + extra + 1, cap;
  if (need < extra) return 0; /* overflow */
  if (need <= b->cap) return b->cap;
  cap = b->cap ? b->cap : 256;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (hint + 1 > cap) cap = hint + 1;
  return cap;
}

/* Give `b` a capacity of `cap` (from buf_need). */
static int buf_resize(corio__fbuf *b, size_t cap) {
  char *p;
  if (cap == 0) return CORIO_ENOMEM;
  if (cap == b->cap) return 0;
  p = corio__realloc(b->p, cap);
  if (p == NULL) return CORIO_ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

/* Make room for `extra` more bytes plus a NUL. */
static int buf_reserve(corio__fbuf *b, size_t extra) {
  return buf_resize(b, buf_need(b, extra, 0));
}

/* The body's room: in our buffer, or in the request's body_alloc block
   (body_off bytes of it before the body). */
static int body_reserve(corio_fetch *f, size_t extra, size_t hint) {
  corio__fbuf *b = &f->body;
  size_t cap = buf_need(b, extra, hint), off = f->body_off;
  char *block, *p;
  if (f->body_alloc == NULL) return buf_resize(b, cap);
  if (cap == 0 || cap > SIZE_MAX - off) return CORIO_ENOMEM;
  if (cap == b->cap) return 0;
  block = b->p != NULL ? b->p - off : NULL;
  p = f->body_alloc(f->body_ud, block, block ? off + b->cap : 0, off + cap);
  if (p == NULL) return CORIO_ENOMEM;
  b->p = p + off;
  b->cap = cap;
  return 0;
}

void corio__fetch_body_free(corio_fetch *f) {
  corio__fbuf *b = &f->body;
  if (b->p != NULL && f->body_alloc != NULL)
    (void)f->body_alloc(f->body_ud, b->p - f->body_off, f->body_off + b->cap,
                        0);
  else
    corio__free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static int buf_append(corio__fbuf *b, const char *s, size_t n) {
  if (buf_reserve(b, n) != 0) return CORIO_ENOMEM;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

static void buf_trim(corio__fbuf *b, size_t keep) {
  if (b->cap > keep) {
    corio__free(b->p);
    b->p = NULL;
    b->cap = 0;
  }
  b->len = 0;
  if (b->p != NULL) b->p[0] = '\0'; /* an empty body is "" too */
}

corio_fetch *corio__fetch_obj_new(void) {
  corio_fetch *f = corio__calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  f->easy = curl_easy_init();
  if (f->easy == NULL) {
    corio__free(f);
    return NULL;
  }
  f->opened[0] = f->opened[1] = -1;
  return f;
}

/*
** Ready `f` for its next transfer: the easy handle goes (the next
** transfer gets a new one, corio__fetch_obj_easy), big buffers are
** released; the body buffer is kept if it is ours and holds at most
** `keep_body` bytes.
**
** Why not keep the easy handle (curl_easy_reset): libcurl 7.88 keeps a
** pointer to the last header field it stored for a handle (for obs-fold
** continuation lines) when it frees those fields at the handle's next
** transfer.  A response whose first field line is folded then extends a
** freed block: any server could crash the process on its second fetch
** (upstream fixed it in 8.1, "headers: clear (possibly) lingering pointer
** in init"; Debian 12 ships 7.88).  curl_easy_reset does not clear it; a
** new handle starts clean.  The cost is small: connections, DNS and TLS
** sessions live in the multi and the share, not in the handle; init and
** cleanup cost slightly more than a reset, for the same requests per
** second (bench/NOTES.md, "A new easy handle").  Not made to depend on
** the libcurl version: a distribution may backport the fix without
** changing the number, or not, and the fast path would be the one never
** tested here.
*/
void corio__fetch_obj_recycle(corio_fetch *f, size_t keep_body) {
  curl_easy_cleanup(f->easy);
  f->easy = NULL;
  buf_trim(&f->arena, KEEP_ARENA);
  if (f->body_alloc != NULL) {
    corio__fetch_body_free(f);
    f->body_alloc = NULL;
    f->body_ud = NULL;
    f->body_off = 0;
  }
  buf_trim(&f->body, keep_body);
  buf_trim(&f->hbuf, KEEP_HBUF);
  if (f->hoff_cap > 2 * KEEP_HEADERS) {
    corio__free(f->hoff);
    f->hoff = NULL;
    f->hoff_cap = 0;
  }
  if (f->harr_cap > KEEP_HEADERS) {
    corio__free(f->harr);
    f->harr = NULL;
    f->harr_cap = 0;
  }
  f->nh = 0;
  f->hbytes = 0;
  f->err = 0;
  f->sock_errno = 0;
  f->opened[0] = f->opened[1] = -1;
  f->max_body = 0;
  f->cb = NULL;
  f->ud = NULL;
  f->session = NULL;
  f->shard = NULL;
  f->prev = f->next = NULL;
  f->qprev = f->qnext = NULL;
  f->stage = CORIO__Q_NONE;
  f->h1 = 0;
  f->state = CORIO__F_IDLE;
  f->errbuf[0] = '\0';
  memset(&f->res, 0, sizeof f->res);
}

/* Give a recycled `f` its new easy handle (see corio__fetch_obj_recycle). */
int corio__fetch_obj_easy(corio_fetch *f) {
  if (f->easy == NULL) f->easy = curl_easy_init();
  return f->easy != NULL ? 0 : CORIO_ENOMEM;
}

void corio__fetch_obj_free(corio_fetch *f) {
  if (f == NULL) return;
  if (f->easy != NULL) curl_easy_cleanup(f->easy);
  corio__free(f->arena.p);
  corio__fetch_body_free(f);
  corio__free(f->hbuf.p);
  corio__free(f->hoff);
  corio__free(f->harr);
  corio__free(f);
}

/* }================================================================== */

/*
** {==================================================================
** libcurl's write and header callbacks: record, never call curl_multi_*
** ===================================================================
*/

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  corio_fetch *f = ud;
  size_t len = size * n, hint = 0;
  if (f->max_body > 0 && len > f->max_body - f->body.len) {
    f->err = CORIO_ETOOLARGE;
    return 0; /* short write: CURLE_WRITE_ERROR */
  }
  if (f->body.cap == 0 || f->body.len + len + 1 > f->body.cap) {
    curl_off_t cl = -1;
    /* a known length is reserved at once: the body is copied once */
    if (f->body.len == 0 &&
        curl_easy_getinfo(f->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) ==
            CURLE_OK &&
        cl > 0 && cl <= MAX_RESERVE &&
        (f->max_body == 0 || (size_t)cl <= f->max_body))
      hint = (size_t)cl;
  }
  if (body_reserve(f, len, hint) != 0) {
    f->err = CORIO_ENOMEM;
    return 0;
  }
  memcpy(f->body.p + f->body.len, p, len);
  f->body.len += len;
  f->body.p[f->body.len] = '\0';
  return len;
}

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

/* Push an offset pair (name, value) for the field being stored. */
static int push_field(corio_fetch *f, size_t name, size_t value) {
  if (2 * (f->nh + 1) > f->hoff_cap) {
    size_t cap = f->hoff_cap ? f->hoff_cap * 2 : 32;
    size_t *p = corio__realloc(f->hoff, cap * sizeof *p);
    if (p == NULL) return CORIO_ENOMEM;
    f->hoff = p;
    f->hoff_cap = cap;
  }
  f->hoff[2 * f->nh] = name;
  f->hoff[2 * f->nh + 1] = value;
  f->nh++;
  return 0;
}

/*
** One header line per call, CRLF included.  A status line starts a new
** response (next redirect hop, after a 1xx, after a proxy's CONNECT
** answer): the fields collected so far are dropped.  Fields are stored as
** "name\0value\0" so the value of the last one can be extended in place by
** an obs-fold continuation line.
*/
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  corio_fetch *f = ud;
  size_t len = size * n, total = len;
  const char *colon;
  f->hbytes += len;
  if (f->hbytes > MAX_HEADER_BYTES) {
    f->err = CORIO_ETOOLARGE;
    return 0;
  }
  while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r')) len--;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    f->nh = 0;
    f->hbuf.len = 0;
    f->hbytes = total;
    return total;
  }
  if (len == 0) return total;
  if (is_blank(p[0])) { /* obs-fold: continue the last value */
    while (len > 0 && is_blank(*p)) p++, len--;
    if (f->nh == 0 || len == 0) return total;
    f->hbuf.len--; /* drop the value's NUL */
    if (buf_append(&f->hbuf, " ", 1) != 0 || buf_append(&f->hbuf, p, len) != 0)
      goto nomem;
    f->hbuf.len++; /* keep the NUL buf_append wrote */
    return total;
  }
  colon = memchr(p, ':', len);
  if (colon == NULL || colon == p) return total; /* not a field: skip */
  {
    size_t nlen = (size_t)(colon - p), vstart = nlen + 1, vend = len;
    size_t name_off = f->hbuf.len, value_off;
    while (vstart < vend && is_blank(p[vstart])) vstart++;
    while (vend > vstart && is_blank(p[vend - 1])) vend--;
    if (buf_append(&f->hbuf, p, nlen) != 0) goto nomem;
    f->hbuf.len++; /* the NUL */
    value_off = f->hbuf.len;
    if (buf_append(&f->hbuf, p + vstart, vend - vstart) != 0) goto nomem;
    f->hbuf.len++;
    if (push_field(f, name_off, value_off) != 0) goto nomem;
  }
  return total;
nomem:
  f->err = CORIO_ENOMEM;
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
   (corio__seconds_to_ms): 0 picks `dflt`, negative (or too long) `none`. */
static long to_ms(double t, double dflt, long none) {
  if (t == 0) t = dflt;
  if (t < 0 || t > (double)INT_MAX / 1000) return none;
  return (long)corio__seconds_to_ms(t);
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

  if (req->body_alloc != NULL) {
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
  if (size > 0 && buf_reserve(&f->arena, size) != 0) return CORIO_ENOMEM;
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
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_WRITEDATA, (void *)f);
  SET(CURLOPT_HEADERFUNCTION, on_header);
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

/*
** {==================================================================
** Completion
** ===================================================================
*/

/* libcurl 7.88 says CURLE_RECV_ERROR of a malformed chunked body too,
   where no socket failed; a failed recv() is "Recv failure: <strerror>".
   (CURLINFO_OS_ERRNO cannot tell them apart: it may be the errno of an
   earlier connect attempt.) */
static int socket_failed(const corio_fetch *f) {
  return strncmp(f->errbuf, "Recv failure", 12) == 0;
}

/* libcurl 7.88 caps a response's header fields at 300 KiB in all: "Too
   large response headers: N > 307200", a CURLE_RECV_ERROR. */
static int headers_capped(const corio_fetch *f) {
  return strncmp(f->errbuf, "Too large response headers", 26) == 0;
}

/*
** libcurl 7.88 also caps one header line at CURL_MAX_HTTP_HEADER (100 KiB)
** and says CURLE_OUT_OF_MEMORY of a longer one, with no message (8.6 says
** CURLE_TOO_LARGE).  Memory that is really exhausted cannot give a block
** twice that size either; so when it can, the line was too long.  The
** probe asks libc's malloc, not corio__malloc, on purpose: it is
** libcurl's allocator whose failure is being told apart, and a host's
** allocator (corio_replace_allocator) may fail for reasons of its own.
*/
static int header_line_capped(void) {
  void *p = malloc(2 * CURL_MAX_HTTP_HEADER);
  free(p);
  return p != NULL;
}

/* libcurl 7.88 says CURLE_UNSUPPORTED_PROTOCOL of an answer that is not
   HTTP ("Received HTTP/0.9 when not allowed") as well as of a redirect to
   file://: the scheme is to blame only when the URL it failed on has
   another. */
static int failed_on_http(const corio_fetch *f) {
  char *url = NULL;
  return curl_easy_getinfo(f->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK &&
         url != NULL &&
         (strncasecmp(url, "http://", 7) == 0 ||
          strncasecmp(url, "https://", 8) == 0);
}

/* CURLcode to corio code; `f->err` says why one of our callbacks said no. */
int corio__fetch_code(const corio_fetch *f, CURLcode code) {
  /* one of our callbacks ran out of memory: whatever libcurl made of it
     ("Couldn't connect" when it was the open-socket callback) */
  if (f->err == CORIO_ENOMEM && code != CURLE_OK) return CORIO_ENOMEM;
  switch (code) {
  case CURLE_OK:
    return 0;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return CORIO_EDNS;
  case CURLE_COULDNT_CONNECT:
    return CORIO_ECONNECT;
  case CURLE_OPERATION_TIMEDOUT:
    return CORIO_ETIMEDOUT;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_USE_SSL_FAILED:
    return CORIO_ETLS;
  case CURLE_RECV_ERROR:
    if (headers_capped(f)) return CORIO_ETOOLARGE;
    return socket_failed(f) ? CORIO_ERESET : CORIO_EPROTO;
  case CURLE_PARTIAL_FILE:
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_HTTP2_STREAM:
    return CORIO_ERESET;
  case CURLE_BAD_FUNCTION_ARGUMENT:
    /* libcurl 7.88 says so of a header line it cannot store (no colon, or
       a fold with no field before it); our own options were checked when
       they were set (corio__fetch_setup) */
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_HTTP2:
  case CURLE_HTTP3:
  case CURLE_TOO_MANY_REDIRECTS:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_RANGE_ERROR:
    return CORIO_EPROTO;
  case CURLE_FILESIZE_EXCEEDED:
    return CORIO_ETOOLARGE;
  case CURLE_URL_MALFORMAT:
    return CORIO_EURL;
  case CURLE_UNSUPPORTED_PROTOCOL:
    return failed_on_http(f) ? CORIO_EPROTO : CORIO_ESCHEME;
  case CURLE_ABORTED_BY_CALLBACK:
    return CORIO_ECANCELED;
  case CURLE_OUT_OF_MEMORY:
    return header_line_capped() ? CORIO_ETOOLARGE : CORIO_ENOMEM;
  case CURLE_WRITE_ERROR:
    return f->err != 0 ? f->err : CORIO_EIO;
  default:
    return CORIO_EIO;
  }
}

static double seconds(CURL *e, CURLINFO what) {
  curl_off_t us = 0;
  if (curl_easy_getinfo(e, what, &us) != CURLE_OK || us < 0) return 0;
  return (double)us / 1e6;
}

static const char *version_name(long v) {
  switch (v) {
  case CURL_HTTP_VERSION_1_0:
    return "1.0";
  case CURL_HTTP_VERSION_1_1:
    return "1.1";
  case CURL_HTTP_VERSION_2_0:
    return "2";
  case CURL_HTTP_VERSION_3:
    return "3";
  default:
    return "";
  }
}

static const char *our_message(int err) {
  switch (err) {
  case CORIO_ETOOLARGE:
    return "response larger than the size limit";
  case CORIO_ENOMEM:
    return "out of memory while receiving the response";
  case CORIO_ECANCELED:
    return "transfer cancelled";
  default:
    return NULL;
  }
}

/*
** Fill f->res.  `status` is the corio code the callback gets; `code` is
** libcurl's result (CURLE_OK for a cancelled transfer).  Header pointers
** are made only now: hbuf may have moved while it grew.
*/
void corio__fetch_finish(corio_fetch *f, int status, CURLcode code) {
  corio_response *r = &f->res;
  CURL *e = f->easy;
  char *url = NULL;
  long v = 0;
  double dns, conn, app;
  size_t i;
  memset(r, 0, sizeof *r);
  (void)curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
  if (f->nh > f->harr_cap) {
    corio_header *p = corio__realloc(f->harr, f->nh * sizeof *p);
    if (p == NULL) {
      f->nh = 0; /* no headers rather than a crash */
    } else {
      f->harr = p;
      f->harr_cap = f->nh;
    }
  }
  for (i = 0; i < f->nh; i++) {
    f->harr[i].name = f->hbuf.p + f->hoff[2 * i];
    f->harr[i].value = f->hbuf.p + f->hoff[2 * i + 1];
  }
  r->headers = f->nh > 0 ? f->harr : NULL;
  r->nheaders = f->nh;
  r->body = f->body.p != NULL ? f->body.p : "";
  r->body_len = f->body.len;
  (void)curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url);
  r->url = url != NULL ? url : "";
  (void)curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &v);
  r->http_version = version_name(v);
  dns = seconds(e, CURLINFO_NAMELOOKUP_TIME_T);
  conn = seconds(e, CURLINFO_CONNECT_TIME_T);
  app = seconds(e, CURLINFO_APPCONNECT_TIME_T);
  r->timing.dns = dns;
  r->timing.connect = conn > dns ? conn - dns : 0;
  r->timing.tls = app > conn ? app - conn : 0;
  r->timing.ttfb = seconds(e, CURLINFO_STARTTRANSFER_TIME_T);
  r->timing.total = seconds(e, CURLINFO_TOTAL_TIME_T);
  if (status != 0) {
    const char *ours =
        code == CURLE_WRITE_ERROR || code == CURLE_OK || status == f->err
            ? our_message(status)
            : NULL;
    if (ours == NULL && code == CURLE_COULDNT_CONNECT &&
        (f->sock_errno == EMFILE || f->sock_errno == ENFILE))
      ours = "cannot open a socket: too many open files (raise ulimit -n, "
             "or fetch fewer at once)";
    if (ours != NULL)
      r->error = ours;
    else if (f->errbuf[0] != '\0')
      r->error = f->errbuf;
    else if (code != CURLE_OK)
      r->error = curl_easy_strerror(code);
    else
      r->error = corio_strerror(status);
  }
}

/* }================================================================== */

/*
** {==================================================================
** The blocking twin
** ===================================================================
*/

int corio_fetch_blocking(const corio_request *req, corio_response **out) {
  CURLU *urlh;
  corio_fetch *f;
  CURLcode code;
  int r;
  if (out == NULL) return CORIO_EINVAL;
  *out = NULL;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return CORIO_ENOMEM;
  urlh = curl_url();
  if (urlh == NULL) {
    curl_global_cleanup();
    return CORIO_ENOMEM;
  }
  r = corio__fetch_check(req, urlh);
  curl_url_cleanup(urlh);
  if (r == 0) {
    f = corio__fetch_obj_new();
    if (f == NULL) r = CORIO_ENOMEM;
  }
  if (r == 0) {
    r = corio__fetch_setup(f, req);
    if (r != 0) corio__fetch_obj_free(f);
  }
  if (r != 0) {
    curl_global_cleanup();
    return r;
  }
  code = curl_easy_perform(f->easy);
  r = corio__fetch_code(f, code);
  corio__fetch_finish(f, r, code);
  *out = &f->res;
  return r;
}

void corio_response_free(corio_response *res) {
  if (res == NULL) return;
  corio__fetch_obj_free(corio__container_of(res, corio_fetch, res));
  curl_global_cleanup();
}

/* }================================================================== */
