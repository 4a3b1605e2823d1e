/*
** server_parse.c: the http_parser glue of the server.  The callbacks copy
** the request line, headers and body into the connection's request buffer
** (pieces of one element may arrive in several reads), enforce the size
** limits, and pause the parser at the end of each message so that
** pipelined requests are handed out one at a time.  Also the request
** getters.
*/
#include <limits.h>
#include <string.h>

#include "server.h"

/* req->last: the element the last data callback belonged to */
enum { SRV_EL_NONE = 0, SRV_EL_URL, SRV_EL_FIELD, SRV_EL_VALUE };

static corio__server_conn *conn_of(http_parser *p) {
  return corio__container_of(p, corio__server_conn, parser);
}

static int append(corio_server_req *req, const char *at, size_t len) {
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

/* Fail the parse with `status`; the parser reports HPE_CB_*. */
static int fail(corio__server_conn *c, int status) {
  c->err_status = status;
  return -1;
}

/* Count head bytes against the limit ("+ extra" for separators). */
static int count_head(corio__server_conn *c, size_t len, size_t extra) {
  c->req.head_bytes += len + extra;
  return c->req.head_bytes > c->srv->o.max_header_bytes;
}

static int on_message_begin(http_parser *p) {
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

static int on_url(http_parser *p, const char *at, size_t len) {
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

static int on_header_field(http_parser *p, const char *at, size_t len) {
  corio__server_conn *c = conn_of(p);
  corio_server_req *req = &c->req;
  corio__server_hdr *h;
  if (count_head(c, len, 4)) return fail(c, 431); /* ": " and CRLF */
  if (req->in_body) return 0;                     /* a trailer: dropped */
  if (req->last != SRV_EL_FIELD) {
    if (seal(req) != 0) return fail(c, 500);
    if (req->nhdrs == req->hdrs_cap) {
      size_t cap = req->hdrs_cap ? req->hdrs_cap * 2 : 16;
      h = corio__realloc(req->hdrs, cap * sizeof *h);
      if (h == NULL) return fail(c, 500);
      req->hdrs = h;
      req->hdrs_cap = cap;
    }
    h = &req->hdrs[req->nhdrs++];
    h->name = req->buf.len;
    h->name_len = h->value = h->value_len = 0;
    req->last = SRV_EL_FIELD;
    req->open = 1;
  }
  req->hdrs[req->nhdrs - 1].name_len += len;
  return append(req, at, len) == 0 ? 0 : fail(c, 500);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
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

/* Split the target into path and query; both are copied after it. */
static int split_target(corio_server_req *req, int is_connect) {
  const char *t = req->buf.base + req->target;
  size_t plen = req->target_len, qoff = 0, qlen = 0;
  struct http_parser_url u;
  size_t poff = 0;
  if (t[0] == '/' || t[0] == '*') {
    const char *q = memchr(t, '?', req->target_len);
    if (q != NULL) {
      plen = (size_t)(q - t);
      qoff = plen + 1;
      qlen = req->target_len - qoff;
    }
  } else {
    /* absolute-form ("http://h/p?q") or authority-form (CONNECT) */
    http_parser_url_init(&u);
    if (http_parser_parse_url(t, req->target_len, is_connect, &u) == 0 &&
        (u.field_set & (1 << UF_PATH))) {
      poff = u.field_data[UF_PATH].off;
      plen = u.field_data[UF_PATH].len;
      if (u.field_set & (1 << UF_QUERY)) {
        qoff = u.field_data[UF_QUERY].off;
        qlen = u.field_data[UF_QUERY].len;
      }
    } else if (!is_connect) {
      plen = 0; /* no path: "/" below */
    }
  }
  /* buf may move: keep offsets, not pointers */
  if (corio__server_buf_reserve(&req->buf, plen + qlen + 3) != 0) return -1;
  t = req->buf.base + req->target;
  req->path = req->buf.len;
  if (plen == 0) {
    append(req, "/", 2);
    req->path_len = 1;
  } else {
    append(req, t + poff, plen);
    append(req, "", 1);
    req->path_len = plen;
  }
  req->query = req->buf.len;
  req->query_len = qlen;
  append(req, t + qoff, qlen);
  append(req, "", 1);
  return 0;
}

static int wants_continue(corio__server_conn *c) {
  size_t len;
  const char *v = corio_server_req_header(&c->req, "expect", &len);
  return v != NULL && ieq(v, len, "100-continue");
}

static int on_headers_complete(http_parser *p) {
  corio__server_conn *c = conn_of(p);
  corio_server_req *req = &c->req;
  corio_server *s = c->srv;
  int has_body = (p->flags & F_CHUNKED) ||
                 (p->content_length > 0 && p->content_length != ULLONG_MAX);
  if (req->last == SRV_EL_NONE) return fail(c, 400); /* no target */
  if (seal(req) != 0 || split_target(req, p->method == HTTP_CONNECT) != 0)
    return fail(c, 500);
  req->in_body = 1;
  req->method = (uint8_t)p->method;
  req->major = (uint8_t)p->http_major;
  req->minor = (uint8_t)p->http_minor;
  req->keep_alive = (uint8_t)http_should_keep_alive(p);
  if (p->upgrade) c->flags |= CORIO__SERVER_CLOSE_AFTER; /* not supported */
  if (p->content_length != ULLONG_MAX &&
      p->content_length > s->o.max_body_bytes)
    return fail(c, 413);
  if (s->o.max_inflight > 0 && s->inflight >= s->o.max_inflight)
    req->rejected = 1; /* the body is read and dropped, then answered */
  req->body = req->buf.len;
  /* nothing is reserved for the body yet: a client's Content-Length is
     a claim, and memory follows the bytes that arrive (on_body) */
  req->body_max = p->content_length != ULLONG_MAX ? (size_t)p->content_length
                                                  : s->o.max_body_bytes;
  if (has_body) {
    c->rstate = CORIO__SERVER_BODY;
    corio__server_timer_set(c, CORIO__SERVER_T_BODY);
    if (req->major == 1 && req->minor >= 1 && wants_continue(c))
      corio__server_send_continue(c);
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  corio__server_conn *c = conn_of(p);
  corio_server_req *req = &c->req;
  size_t bound;
  if (len > c->srv->o.max_body_bytes - req->body_len) return fail(c, 413);
  req->body_len += len;
  corio__server_timer_set(c, CORIO__SERVER_T_BODY); /* silence is timed */
  if (req->rejected) return 0;
  /* grown by doubling as the body arrives, up to its declared length (or
     the limit) and its NUL; append then finds the room */
  bound = req->body_max < SIZE_MAX - req->body - 1
              ? req->body + req->body_max + 1
              : SIZE_MAX;
  if (corio__server_buf_grow(&req->buf, len, bound) != 0) return fail(c, 500);
  return append(req, at, len) == 0 ? 0 : fail(c, 500);
}

static int on_message_complete(http_parser *p) {
  corio__server_conn *c = conn_of(p);
  corio_server_req *req = &c->req;
  if (req->rejected) req->body_len = 0;
  if (append(req, "", 1) != 0) return fail(c, 500); /* the body's NUL */
  c->rstate = CORIO__SERVER_READY;
  corio__server_timer_set(c, CORIO__SERVER_T_NONE);
  /* stop here: the next pipelined request waits for this one's answer */
  http_parser_pause(p, 1);
  return 0;
}

const http_parser_settings corio__server_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

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
  return http_method_str((enum http_method)req->method);
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
