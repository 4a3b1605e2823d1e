/*
** fetch_response.c: the response: the growable buffers it is collected
** in, libcurl's write and header callbacks that fill them (enforcing
** max_body and the header limits), the CURLcode folded into a corio code,
** and the corio_response built at completion.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch.h"

#define MAX_HEADER_BYTES (1024 * 1024)      /* per response, all fields */
#define MAX_RESERVE      (64 * 1024 * 1024) /* trust Content-Length this far */

/*
** {==================================================================
** Buffers
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
int corio__fbuf_reserve(corio__fbuf *b, size_t extra) {
  return buf_resize(b, buf_need(b, extra, 0));
}

/* The body's room: in our buffer, or in the request's body_alloc block
   (body_off bytes of it before the body). */
static int body_reserve(corio_fetch *f, size_t extra, size_t hint) {
  corio__fbuf *b = &f->body;
  size_t cap = buf_need(b, extra, hint), off = f->body_off;
  char *block, *p;
  if (f->body_alloc == NULL) return buf_resize(b, cap);
  /* a block of the announced length exactly, however short: the caller
     may adopt it as is (a Python bytes) */
  if (hint > 0 && hint >= b->len + extra && cap > hint + 1) cap = hint + 1;
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
  if (corio__fbuf_reserve(b, n) != 0) return CORIO_ENOMEM;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** libcurl's write and header callbacks: record, never call curl_multi_*
** ===================================================================
*/

size_t corio__fetch_on_write(char *p, size_t size, size_t n, void *ud) {
  corio_fetch *f = ud;
  size_t len = size * n, hint = 0;
  if (f->on_data != NULL) return corio__stream_on_write(f, p, len);
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

/* A streamed transfer notes the status of each head ("HTTP/1.1 200 OK",
   "HTTP/2 200"): fetch_stream.c tells the final one. */
static void status_line(corio_fetch *f, const char *p, size_t len) {
  size_t i = 5;
  int code = 0, digits = 0;
  while (i < len && p[i] != ' ') i++;
  while (i < len && p[i] == ' ') i++;
  for (; i < len && p[i] >= '0' && p[i] <= '9' && digits < 3; i++, digits++)
    code = code * 10 + (p[i] - '0');
  f->hstatus = digits == 3 ? code : 0;
  f->hlocation = 0;
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
size_t corio__fetch_on_header(char *p, size_t size, size_t n, void *ud) {
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
    if (f->on_data != NULL) status_line(f, p, len);
    return total;
  }
  if (len == 0) {
    if (f->on_data != NULL) corio__stream_head_end(f);
    return total;
  }
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
  if (colon - p == 8 && strncasecmp(p, "Location", 8) == 0) f->hlocation = 1;
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
  r->attempts = f->tries > 0 ? f->tries : 1;
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
  if (f->nh > 0) { /* up to the last value's NUL: hbuf may hold more */
    const char *last = r->headers[f->nh - 1].value;
    r->header_data = f->hbuf.p;
    r->header_data_len = (size_t)(last - f->hbuf.p) + strlen(last) + 1;
  }
  r->body = f->body.p != NULL ? f->body.p : "";
  r->body_len = f->body.len;
  r->bytes = f->body.len;
  if (f->on_data != NULL) { /* the bytes went to on_data */
    r->body = "";
    r->body_len = 0;
    r->bytes = f->delivered;
  }
  (void)curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url);
  if (url == NULL && f->saved != NULL) url = (char *)f->saved->url;
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
  if (f->t_start != 0) { /* started: its wait in the session's queue */
    r->timing.queue = (double)(f->t_start - f->t_call) / 1e9;
    r->timing.start = (double)f->t_start / 1e9;
  } else if (f->t_call != 0) { /* never started: the whole wait */
    r->timing.queue = (double)(uv_hrtime() - f->t_call) / 1e9;
  }
  if (status != 0) {
    const char *ours =
        code == CURLE_WRITE_ERROR || code == CURLE_OK || status == f->err
            ? our_message(status)
            : NULL;
    if (status == CORIO_ETOOLARGE) { /* state the limit that was passed */
      if (code == CURLE_FILESIZE_EXCEEDED ||
          (code == CURLE_WRITE_ERROR && f->hbytes <= MAX_HEADER_BYTES))
        snprintf(f->errbuf, sizeof f->errbuf,
                 "response body larger than max_body (%zu bytes)", f->max_body);
      else
        snprintf(f->errbuf, sizeof f->errbuf,
                 "response headers too large (over %d bytes in all, or a "
                 "line over libcurl's limit)",
                 MAX_HEADER_BYTES);
      ours = f->errbuf;
    }
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
