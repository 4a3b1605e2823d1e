/*
** server_parse.c: the llhttp glue of the server.  The callbacks copy the
** request line, headers and body into the connection's request buffer
** (pieces of one element may arrive in several reads), enforce the size
** limits, and pause the parser at the end of each message so that
** pipelined requests are handed out one at a time.  Also the request
** getters.
**
** Framing (RFC 9112).  llhttp runs with every lenient flag off, which
** refuses a space before the colon, Content-Length twice or beside
** Transfer-Encoding, a Transfer-Encoding not ending in chunked, bad chunk
** sizes and versions other than 0.9, 1.0, 1.1 and 2.0.  llhttp 8.1 still
** lets through a few things a server must not take, and
** corio__server_parse checks them around it:
**   - a space (or any non-token byte) inside a header name;
**   - obs-fold (a head line starting with SP or HTAB), which llhttp joins
**     to the previous value: the parser is paused at the end of each head
**     so that the wrapper knows which bytes were head, and scans them;
**   - the two bytes after chunk data, which llhttp skips without looking
**     at them ("5\r\nhelloXX0\r\n\r\n" parses): they must be CRLF;
**   - Transfer-Encoding in HTTP/1.0 (400: the framing is faulty), and any
**     coding but a lone "chunked" (501), "identity, chunked" included;
**   - the Host rules of section 3.2: exactly one Host in HTTP/1.1, at most
**     one in HTTP/1.0, with a valid value (400 otherwise); an absolute-form
**     target must be a URL libcurl takes, whose host replaces Host's value
**     (3.2.2, server_target.c);
**   - versions other than 1.0 and 1.1 (505).
** llhttp has no limit of its own on a head's size: beside max_header_bytes,
** which counts what is kept, the server's head_max bounds the bytes a head
** may take on the wire (whitespace is not kept, and costs nothing else).
*/
#include <limits.h>
#include <string.h>

#include "server.h"

/* req->last: the element the last data callback belonged to */
enum { SRV_EL_NONE = 0, SRV_EL_URL, SRV_EL_FIELD, SRV_EL_VALUE };

static corio__server_conn *conn_of(llhttp_t *p) {
  return corio__container_of(p, corio__server_conn, parser);
}

static int append(corio_server_req *req, const char *at, size_t len) {
  if (len == 0) return 0; /* llhttp may report an empty span: buf may be NULL */
  if (corio__server_buf_reserve(&req->buf, len) != 0) return -1;
  memcpy(req->buf.base + req->buf.len, at, len);
  req->buf.len += len;
  return 0;
}

/* Terminate the element being received with its NUL. */
static int seal(corio_server_req *req) {
  if (!req->open) return 0;
  req->open = 0;
  if (req->last == SRV_EL_VALUE) { /* the value ends before trailing OWS */
    corio__server_hdr *h = &req->hdrs[req->nhdrs - 1];
    while (h->value_len > 0 && (req->buf.base[req->buf.len - 1] == ' ' ||
                                req->buf.base[req->buf.len - 1] == '\t')) {
      h->value_len--;
      req->buf.len--;
    }
  }
  return append(req, "", 1);
}

/* Fail the parse with `status`; llhttp reports HPE_USER or HPE_CB_*. */
static int fail(corio__server_conn *c, int status) {
  c->err_status = status;
  return -1;
}

/* Count head bytes against the limit ("+ extra" for separators). */
static int count_head(corio__server_conn *c, size_t len, size_t extra) {
  c->req.head_bytes += len + extra;
  return c->req.head_bytes > c->srv->o.max_header_bytes;
}

/* tchar of RFC 9110 5.6.2: what a header name is made of */
static int is_tchar(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') ||
         (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/*
** Check the CRLF owed after chunk data in [p, end): 0, or -1 for anything
** else in its place.  What is not there yet is checked when it comes.
*/
static int check_crlf(corio__server_conn *c, const char *p, const char *end) {
  for (; c->crlf_need > 0 && p < end; p++, c->crlf_need--)
    if (*p != (c->crlf_need == 2 ? '\r' : '\n')) return -1;
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  corio__server_conn *c = conn_of(p);
  corio_server_req *req = &c->req;
  req->data = NULL;
  req->buf.len = 0;
  req->nhdrs = 0;
  req->target = req->target_len = req->path = req->path_len = 0;
  req->query = req->query_len = req->body = req->body_len = 0;
  req->head_bytes = 0;
  req->last = SRV_EL_NONE;
  req->open = req->rejected = req->in_body = 0;
  c->rstate = CORIO__SERVER_HEAD;
  /* the first request's head is timed from accept, the others from here */
  if (c->tkind != CORIO__SERVER_T_HEADER)
    corio__server_timer_set(c, CORIO__SERVER_T_HEADER);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  corio__server_conn *c = conn_of(p);
  corio_server_req *req = &c->req;
  if (count_head(c, len, 0)) return fail(c, 431);
  if (req->last != SRV_EL_URL) {
    req->last = SRV_EL_URL;
    req->target = req->buf.len;
    req->open = 1;
  }
  req->target_len += len;
  return append(req, at, len) == 0 ? 0 : fail(c, 500);
}

/* One more header, zeroed; NULL when out of memory. */
static corio__server_hdr *new_hdr(corio_server_req *req) {
  corio__server_hdr *h;
  if (req->nhdrs == req->hdrs_cap) {
    size_t cap = req->hdrs_cap ? req->hdrs_cap * 2 : 16;
    h = corio__realloc(req->hdrs, cap * sizeof *h);
    if (h == NULL) return NULL;
    req->hdrs = h;
    req->hdrs_cap = cap;
  }
  h = &req->hdrs[req->nhdrs++];
  memset(h, 0, sizeof *h);
  return h;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  corio__server_conn *c = conn_of(p);
  corio_server_req *req = &c->req;
  corio__server_hdr *h;
  size_t i;
  if (count_head(c, len, 4)) return fail(c, 431); /* ": " and CRLF */
  for (i = 0; i < len; i++)                       /* llhttp takes "X Y: 1" */
    if (!is_tchar((unsigned char)at[i])) return fail(c, 400);
  if (req->in_body) return 0; /* a trailer: dropped */
  if (req->last != SRV_EL_FIELD) {
    if (seal(req) != 0 || (h = new_hdr(req)) == NULL) return fail(c, 500);
    h->name = req->buf.len;
    req->last = SRV_EL_FIELD;
    req->open = 1;
  }
  req->hdrs[req->nhdrs - 1].name_len += len;
  return append(req, at, len) == 0 ? 0 : fail(c, 500);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  corio__server_conn *c = conn_of(p);
  corio_server_req *req = &c->req;
  corio__server_hdr *h;
  if (count_head(c, len, 0)) return fail(c, 431);
  if (req->in_body) return 0;
  h = &req->hdrs[req->nhdrs - 1];
  if (req->last != SRV_EL_VALUE) {
    if (seal(req) != 0) return fail(c, 500);
    h->value = req->buf.len;
    req->last = SRV_EL_VALUE;
    req->open = 1;
  }
  h->value_len += len;
  return append(req, at, len) == 0 ? 0 : fail(c, 500);
}

static int lower(int ch) {
  return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch;
}

/* ASCII case-insensitive comparison of a counted string with a C string. */
static int ieq(const char *a, size_t alen, const char *b) {
  size_t i;
  for (i = 0; i < alen; i++)
    if (b[i] == '\0' ||
        lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
      return 0;
  return b[i] == '\0';
}

static int wants_continue(corio__server_conn *c) {
  size_t len;
  const char *v = corio_server_req_header(&c->req, "expect", &len);
  return v != NULL && ieq(v, len, "100-continue");
}

/* A Host value: uri-host [":" port] (RFC 3986 reg-name, IPv4 or an IP
   literal in brackets); empty is allowed (RFC 9112 3.2). */
static int valid_host(const char *v, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)v[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') ||
          (ch != 0 && strchr("-._~!$&'()*+,;=%:[]", ch) != NULL)))
      return 0;
  }
  return 1;
}

/* RFC 9112 3.2 and 6.1: the Host and Transfer-Encoding rules; 0 or the
   status to answer. */
static int check_head(corio__server_conn *c) {
  corio_server_req *req = &c->req;
  llhttp_t *p = &c->parser;
  size_t i, nhost = 0;
  corio_server_header h;
  if (p->http_major != 1 || p->http_minor > 1) return 505; /* 0.9, 2.0 */
  for (i = 0; i < req->nhdrs; i++) {
    corio_server_req_header_at(req, i, &h);
    if (ieq(h.name, h.name_len, "host")) {
      if (++nhost > 1 || !valid_host(h.value, h.value_len)) return 400;
    } else if (ieq(h.name, h.name_len, "transfer-encoding")) {
      /* chunked alone: "identity, chunked" has an unknown coding */
      if (p->http_minor == 0) return 400; /* 6.1: faulty framing */
      if (!ieq(h.value, h.value_len, "chunked")) return 501;
    }
  }
  if (nhost == 0 && p->http_minor == 1) return 400;
  return 0;
}

/*
** RFC 9112 3.2.2: the host of an absolute-form target, at `off` in the
** request buffer, is the request's; the Host field received (if any) is
** ignored, and its value replaced, so that a handler reading Host finds
** the host the request is for.  0 or the status to answer.
*/
static int take_target_host(corio_server_req *req, size_t off, size_t len) {
  corio__server_hdr *h = NULL;
  size_t i;
  if (!valid_host(req->buf.base + off, len)) return 400;
  for (i = 0; i < req->nhdrs && h == NULL; i++)
    if (ieq(req->buf.base + req->hdrs[i].name, req->hdrs[i].name_len, "host"))
      h = &req->hdrs[i];
  if (h == NULL) { /* none in HTTP/1.0: one is added */
    if ((h = new_hdr(req)) == NULL) return 500;
    h->name = req->buf.len;
    h->name_len = 4;
    if (append(req, "Host", 5) != 0) return 500;
  }
  h->value = off;
  h->value_len = len;
  return 0;
}

/* The head is complete (the parser is paused right after it). */
static int head_complete(corio__server_conn *c) {
  llhttp_t *p = &c->parser;
  corio_server_req *req = &c->req;
  corio_server *s = c->srv;
  int has_body = (p->flags & F_CHUNKED) ||
                 ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  size_t host, host_len;
  int status;
  c->head_raw = 0;
  if (req->last == SRV_EL_NONE) return 400; /* no target */
  if (seal(req) != 0) return 500;
  if ((status = check_head(c)) != 0) return status;
  status =
      corio__server_target(req, p->method == HTTP_CONNECT, &host, &host_len);
  if (status == 0 && host_len > 0)
    status = take_target_host(req, host, host_len);
  if (status != 0) return status;
  req->in_body = 1;
  req->method = (uint8_t)p->method;
  req->major = (uint8_t)p->http_major;
  req->minor = (uint8_t)p->http_minor;
  req->keep_alive = (uint8_t)llhttp_should_keep_alive(p);
  if (p->upgrade) c->flags |= CORIO__SERVER_CLOSE_AFTER; /* not supported */
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s->o.max_body_bytes)
    return 413;
  if (s->o.max_inflight > 0 && s->inflight >= s->o.max_inflight)
    req->rejected = 1; /* the body is read and dropped, then answered */
  req->body = req->buf.len;
  /* nothing is reserved for the body yet: a client's Content-Length is
     a claim, and memory follows the bytes that arrive (on_body) */
  req->body_max = (p->flags & F_CONTENT_LENGTH) ? (size_t)p->content_length
                                                : s->o.max_body_bytes;
  if (has_body) {
    c->rstate = CORIO__SERVER_BODY;
    corio__server_timer_set(c, CORIO__SERVER_T_BODY);
    if (req->minor >= 1 && wants_continue(c)) corio__server_send_continue(c);
  }
  return 0;
}

/* Pause: corio__server_parse knows then where the head ends. */
static int on_headers_complete(llhttp_t *p) {
  conn_of(p)->head_done = 1;
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  corio__server_conn *c = conn_of(p);
  corio_server_req *req = &c->req;
  size_t bound;
  if (len > c->srv->o.max_body_bytes - req->body_len) return fail(c, 413);
  req->body_len += len;
  corio__server_timer_set(c, CORIO__SERVER_T_BODY);       /* silence is timed */
  if ((p->flags & F_CHUNKED) && p->content_length == 0) { /* chunk ends */
    c->crlf_need = 2;
    if (check_crlf(c, at + len, c->pend) != 0) return fail(c, 400);
  }
  if (req->rejected) return 0;
  /* grown by doubling as the body arrives, up to its declared length (or
     the limit) and its NUL; append then finds the room */
  bound = req->body_max < SIZE_MAX - req->body - 1
              ? req->body + req->body_max + 1
              : SIZE_MAX;
  if (corio__server_buf_grow(&req->buf, len, bound) != 0) return fail(c, 500);
  return append(req, at, len) == 0 ? 0 : fail(c, 500);
}

static int on_message_complete(llhttp_t *p) {
  corio__server_conn *c = conn_of(p);
  corio_server_req *req = &c->req;
  if (req->rejected) req->body_len = 0;
  if (append(req, "", 1) != 0) return fail(c, 500); /* the body's NUL */
  c->rstate = CORIO__SERVER_READY;
  corio__server_timer_set(c, CORIO__SERVER_T_NONE);
  /* stop here: the next pipelined request waits for this one's answer */
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void corio__server_parser_init(corio__server_conn *c) {
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  /* off already; said here so that nobody turns one on unawares */
  llhttp_set_lenient_headers(&c->parser, 0);
  llhttp_set_lenient_chunked_length(&c->parser, 0);
  llhttp_set_lenient_keep_alive(&c->parser, 0);
  llhttp_set_lenient_transfer_encoding(&c->parser, 0);
  c->plast = '\n'; /* as if after a line: a head may not start with SP */
}

/* The status for an error of llhttp's own. */
static int error_status(corio__server_conn *c, llhttp_errno_t e) {
  llhttp_t *p = &c->parser;
  switch (e) {
  case HPE_USER:
  case HPE_CB_MESSAGE_BEGIN:
  case HPE_CB_HEADERS_COMPLETE:
  case HPE_CB_MESSAGE_COMPLETE:
    return c->err_status ? c->err_status : 500;
  case HPE_INVALID_TRANSFER_ENCODING: /* a coding after chunked, or none */
    return 501;
  case HPE_INVALID_VERSION: /* 1.1 read whole, then no CRLF: malformed */
    return p->http_major == 1 && p->http_minor <= 1 ? 400 : 505;
  default:
    return 400;
  }
}

int corio__server_parse(corio__server_conn *c, const char *data, size_t len,
                        size_t *used) {
  size_t off = 0;
  *used = 0;
  for (;;) {
    int head = c->rstate == CORIO__SERVER_IDLE ||
               (c->rstate == CORIO__SERVER_HEAD && !c->req.in_body);
    size_t feed = len - off, n, i;
    llhttp_errno_t e;
    if (check_crlf(c, data + off, data + len) != 0) return 400;
    if (head && feed > c->srv->head_max - c->head_raw)
      feed = c->srv->head_max - c->head_raw;
    c->pend = data + off + feed;
    e = llhttp_execute(&c->parser, data + off, feed);
    if (e == HPE_OK) {
      n = feed;
    } else if (e == HPE_PAUSED) {
      n = (size_t)(llhttp_get_error_pos(&c->parser) - (data + off));
      llhttp_resume(&c->parser);
    } else {
      *used = off;
      return error_status(c, e);
    }
    if (head) { /* obs-fold: a head line that starts with SP or HTAB */
      for (i = 0; i < n; i++) {
        char ch = data[off + i];
        if (c->plast == '\n' && (ch == ' ' || ch == '\t')) {
          *used = off;
          return 400;
        }
        c->plast = ch;
      }
      c->head_raw += n;
    } else if (n > 0) {
      c->plast = data[off + n - 1];
    }
    off += n;
    *used = off;
    if (c->head_done) { /* go on with the body, maybe with no byte */
      int status;
      c->head_done = 0;
      if ((status = head_complete(c)) != 0) return status;
      continue;
    }
    if (e == HPE_PAUSED || off == len) break; /* a request is complete */
    if (head && c->head_raw >= c->srv->head_max) return 431;
  }
  return 0;
}

/* Give back what a big request grew, once it has been answered. */
void corio__server_req_shrink(corio_server_req *req) {
  if (req->buf.cap > 64 * 1024) {
    corio__free(req->buf.base);
    req->buf.base = NULL;
    req->buf.cap = 0;
  }
  req->buf.len = 0;
  if (req->hdrs_cap > 256) {
    corio__free(req->hdrs);
    req->hdrs = NULL;
    req->hdrs_cap = 0;
  }
  req->nhdrs = 0;
}

/*
** {==================================================================
** Getters
** ===================================================================
*/

static const char *str(const corio_server_req *req, size_t off, size_t n,
                       size_t *len) {
  if (len != NULL) *len = n;
  return req->buf.base + off;
}

const char *corio_server_req_method(const corio_server_req *req) {
  return llhttp_method_name((llhttp_method_t)req->method);
}

const char *corio_server_req_target(const corio_server_req *req, size_t *len) {
  return str(req, req->target, req->target_len, len);
}

const char *corio_server_req_path(const corio_server_req *req, size_t *len) {
  return str(req, req->path, req->path_len, len);
}

const char *corio_server_req_query(const corio_server_req *req, size_t *len) {
  return str(req, req->query, req->query_len, len);
}

size_t corio_server_req_header_count(const corio_server_req *req) {
  return req->nhdrs;
}

int corio_server_req_header_at(const corio_server_req *req, size_t i,
                               corio_server_header *out) {
  const corio__server_hdr *h;
  if (i >= req->nhdrs) return CORIO_EINVAL;
  h = &req->hdrs[i];
  out->name = req->buf.base + h->name;
  out->name_len = h->name_len;
  /* a header without a value got no value callback: point at its NUL */
  out->value = h->value_len ? req->buf.base + h->value
                            : req->buf.base + h->name + h->name_len;
  out->value_len = h->value_len;
  return 0;
}

const char *corio_server_req_header(const corio_server_req *req,
                                    const char *name, size_t *len) {
  size_t i;
  corio_server_header h;
  for (i = 0; i < req->nhdrs; i++) {
    corio_server_req_header_at(req, i, &h);
    if (ieq(h.name, h.name_len, name)) {
      if (len != NULL) *len = h.value_len;
      return h.value;
    }
  }
  return NULL;
}

const char *corio_server_req_body(const corio_server_req *req, size_t *len) {
  return str(req, req->body, req->body_len, len);
}

const char *corio_server_req_remote(const corio_server_req *req) {
  return req->conn->remote;
}

void corio_server_req_version(const corio_server_req *req, int *major,
                              int *minor) {
  if (major != NULL) *major = req->major;
  if (minor != NULL) *minor = req->minor;
}

int corio_server_req_keep_alive(const corio_server_req *req) {
  return req->keep_alive;
}

int corio_server_req_closed(const corio_server_req *req) {
  return (req->conn->flags & CORIO__SERVER_CLOSING) != 0;
}

corio_server *corio_server_req_server(const corio_server_req *req) {
  return req->conn->srv;
}

void *corio_server_req_get_data(const corio_server_req *req) {
  return req->data;
}

void corio_server_req_set_data(corio_server_req *req, void *data) {
  req->data = data;
}

/* }================================================================== */
