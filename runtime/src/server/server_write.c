/*
** server_write.c: responses.  A response is serialized once (status line,
** headers, body) into the connection's output buffer and sent with
** uv_try_write; only what the socket did not take goes through uv_write.
** While that write is in flight the connection parses nothing more, so a
** client that does not read its answers cannot make the server buffer
** more than one of them.
*/
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server.h"

static const char *reason(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 206:
    return "Partial Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 303:
    return "See Other";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 410:
    return "Gone";
  case 411:
    return "Length Required";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 422:
    return "Unprocessable Content";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  default:
    return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

static int lower(int ch) {
  return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch;
}

static int ieq(const char *a, size_t alen, const char *b) {
  size_t i;
  for (i = 0; i < alen; i++)
    if (b[i] == '\0' || lower((unsigned char)a[i]) != b[i]) return 0;
  return b[i] == '\0';
}

/* One rule with the client's: corio_http_token_ok, corio_http_value_ok. */
static int header_ok(const corio_server_header *h) {
  if (h->name == NULL || h->name_len == 0) return 0;
  if (h->value == NULL && h->value_len > 0) return 0;
  return corio_http_token_ok(h->name, h->name_len) &&
         corio_http_value_ok(h->value, h->value_len);
}

/* Headers the server writes itself: the user's copies are dropped. */
static int reserved_header(const corio_server_header *h) {
  return ieq(h->name, h->name_len, "content-length") ||
         ieq(h->name, h->name_len, "transfer-encoding") ||
         ieq(h->name, h->name_len, "connection");
}

/* The Date header, formatted at most once a second per server. */
static const char *date_line(corio_server *s) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                  "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(NULL);
  struct tm tm;
  if ((int64_t)now == s->date_sec) return s->date;
  gmtime_r(&now, &tm);
  s->date_sec = (int64_t)now;
  snprintf(s->date, sizeof s->date,
           "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n", days[tm.tm_wday],
           tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
           tm.tm_min, tm.tm_sec);
  return s->date;
}

static char *put(char *p, const char *src, size_t n) {
  memcpy(p, src, n);
  return p + n;
}

#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_uint(char *p, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *p++ = tmp[--n];
  return p;
}

/*
** Serialize a response into c->out.  `keep` says whether the connection
** stays open; `send_body` is 0 for HEAD, 1xx, 204 and 304.  `framing`
** says how the body's end is marked: 0 Content-Length (the body is `len`
** bytes here), 1 chunked, 2 by closing (both streamed: no body here).
*/
int corio__server_serialize(corio__server_conn *c, int status,
                            const corio_server_header *h, size_t nh,
                            const char *body, size_t len, int keep,
                            int framing) {
  const char *rs = reason(status);
  const char *date = date_line(c->srv);
  size_t i, need = 128 + strlen(rs) + strlen(date) + len;
  int no_length = status < 200 || status == 204 || status == 304;
  int send_body = !no_length && c->req.method != HTTP_HEAD;
  int http10 = c->req.minor == 0;
  char *p;
  for (i = 0; i < nh; i++) need += h[i].name_len + h[i].value_len + 4;
  c->out.len = 0;
  if (corio__server_buf_reserve(&c->out, need) != 0) return CORIO_ENOMEM;
  p = c->out.base;
  p = PUTS(p, "HTTP/1.1 ");
  p = put_uint(p, (uint64_t)status);
  *p++ = ' ';
  p = put(p, rs, strlen(rs));
  p = PUTS(p, "\r\n");
  p = put(p, date, strlen(date));
  if (!no_length && framing == 0) {
    p = PUTS(p, "Content-Length: ");
    p = put_uint(p, (uint64_t)len);
    p = PUTS(p, "\r\n");
  } else if (!no_length && framing == 1) {
    p = PUTS(p, "Transfer-Encoding: chunked\r\n");
  }
  if (!keep)
    p = PUTS(p, "Connection: close\r\n");
  else if (http10)
    p = PUTS(p, "Connection: keep-alive\r\n");
  for (i = 0; i < nh; i++) {
    if (reserved_header(&h[i])) continue;
    p = put(p, h[i].name, h[i].name_len);
    p = PUTS(p, ": ");
    if (h[i].value_len > 0) p = put(p, h[i].value, h[i].value_len);
    p = PUTS(p, "\r\n");
  }
  p = PUTS(p, "\r\n");
  if (send_body && len > 0) p = put(p, body, len);
  c->out.len = (size_t)(p - c->out.base);
  return 0;
}

static void on_write(uv_write_t *w, int status) {
  corio__server_conn *c = corio__container_of(w, corio__server_conn, wreq);
  c->flags &= ~CORIO__SERVER_WRITING;
  if (status < 0) {
    corio__server_conn_close(c); /* also how a cancelled write ends */
    return;
  }
  c->out.len = 0;
  corio__server_timer_set(c, CORIO__SERVER_T_NONE);
  corio__server_after_response(c);
}

/* Send c->out; corio__server_after_response follows once it is all out. */
static void send_out(corio__server_conn *c) {
  uv_buf_t b = uv_buf_init(c->out.base, (unsigned)c->out.len);
  int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (r >= 0 && (size_t)r == c->out.len) {
    c->out.len = 0;
    corio__server_after_response(c);
    return;
  }
  if (r < 0 && r != UV_EAGAIN) {
    corio__server_conn_close(c);
    return;
  }
  if (r < 0) r = 0;
  b = uv_buf_init(c->out.base + r, (unsigned)(c->out.len - (size_t)r));
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
    corio__server_conn_close(c);
    return;
  }
  c->flags |= CORIO__SERVER_WRITING;
  corio__server_timer_set(c, CORIO__SERVER_T_WRITE);
}

/*
** Whether the connection stays open after answering the current request.
** After the peer's FIN only input already received can follow: pipelined
** requests behind this one keep it open, and the last answer closes it.
*/
int corio__server_keep_open(corio__server_conn *c) {
  corio_server *s = c->srv;
  if (!c->req.keep_alive || s->closing ||
      (c->flags & CORIO__SERVER_CLOSE_AFTER))
    return 0;
  if ((c->flags & CORIO__SERVER_EOF) && c->ilen == c->ioff) return 0;
  return s->o.max_requests_per_conn == 0 ||
         c->nreq < s->o.max_requests_per_conn;
}

/* Status and headers an answer may have (CORIO_EINVAL otherwise); a
   "Connection: close" of the host's closes after the answer. */
int corio__server_check_answer(corio__server_conn *c, int status,
                               const corio_server_header *h, size_t nh,
                               const char *body, size_t len) {
  size_t i;
  if (status < 200 || status > 999 || (body == NULL && len > 0) ||
      (h == NULL && nh > 0))
    return CORIO_EINVAL;
  for (i = 0; i < nh; i++)
    if (!header_ok(&h[i])) return CORIO_EINVAL;
  for (i = 0; i < nh; i++)
    if (ieq(h[i].name, h[i].name_len, "connection") &&
        ieq(h[i].value, h[i].value_len, "close"))
      c->flags |= CORIO__SERVER_CLOSE_AFTER;
  return 0;
}

int corio_server_respond(corio_server_req *req, int status,
                         const corio_server_header *headers, size_t nheaders,
                         const char *body, size_t len) {
  corio__server_conn *c = req->conn;
  int err = 0, keep;
  if (c->rstate != CORIO__SERVER_USER) return CORIO_ESTATE;
  if (c->srv != NULL) c->srv->inflight--;
  if (c->flags & CORIO__SERVER_CLOSING) {
    c->rstate = CORIO__SERVER_IDLE;
    corio__server_conn_release(c); /* frees an orphan */
    return CORIO_ECLOSED;
  }
  err = corio__server_check_answer(c, status, headers, nheaders, body, len);
  if (err != 0) {
    status = 500;
    headers = NULL;
    nheaders = 0;
    body = "Internal Server Error\n";
    len = strlen(body);
  }
  keep = corio__server_keep_open(c);
  if (!keep) c->flags |= CORIO__SERVER_CLOSE_AFTER;
  if (corio__server_serialize(c, status, headers, nheaders, body, len, keep,
                              0) != 0) {
    c->rstate = CORIO__SERVER_IDLE;
    corio__server_conn_close(c);
    return CORIO_ENOMEM;
  }
  corio__server_req_shrink(req); /* after the copy: body may point into it */
  c->rstate = CORIO__SERVER_WRITE;
  send_out(c);
  return err;
}

int corio_server_abort(corio_server_req *req) {
  corio__server_conn *c = req->conn;
  if (c->rstate != CORIO__SERVER_USER && c->rstate != CORIO__SERVER_STREAM)
    return CORIO_ESTATE;
  corio__server_stream_drop(c);
  if (c->srv != NULL) c->srv->inflight--;
  c->rstate = CORIO__SERVER_IDLE;
  if (c->flags & CORIO__SERVER_CLOSING) {
    corio__server_conn_release(c); /* frees an orphan */
    return CORIO_ECLOSED;
  }
  corio__server_req_shrink(req);
  corio__server_conn_close(c);
  return 0;
}

/*
** An answer of the server's own, its body the reason phrase.  `fatal` for
** the errors, after which the connection closes and reads nothing more;
** not for the overload status, answered to a complete request.
*/
void corio__server_reply(corio__server_conn *c, int status, int fatal) {
  char body[64];
  size_t len;
  int keep;
  if (fatal) {
    c->flags |= CORIO__SERVER_CLOSE_AFTER | CORIO__SERVER_NO_INPUT;
    c->req.method = HTTP_GET; /* the head may not have been parsed */
  }
  if (c->flags & CORIO__SERVER_WRITING) { /* parsing stops while writing */
    corio__server_conn_close(c);
    return;
  }
  len = (size_t)snprintf(body, sizeof body, "%s\n", reason(status));
  keep = corio__server_keep_open(c);
  if (!keep) c->flags |= CORIO__SERVER_CLOSE_AFTER;
  if (corio__server_serialize(c, status, NULL, 0, body, len, keep, 0) != 0) {
    corio__server_conn_close(c);
    return;
  }
  corio__server_req_shrink(&c->req);
  c->rstate = CORIO__SERVER_WRITE;
  corio__server_timer_set(c, CORIO__SERVER_T_NONE);
  send_out(c);
}

static void on_continue(uv_write_t *w, int status) {
  corio__server_conn *c = corio__container_of(w, corio__server_conn, creq);
  c->flags &= ~CORIO__SERVER_CONTINUE;
  if (status < 0) corio__server_conn_close(c);
}

/* "100 Continue" for a client that waits for it before sending its body. */
void corio__server_send_continue(corio__server_conn *c) {
  static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
  uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
  int r;
  if (c->flags & (CORIO__SERVER_CONTINUE | CORIO__SERVER_WRITING)) return;
  r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (r >= 0 && (size_t)r == b.len) return;
  if (r < 0 && r != UV_EAGAIN) return; /* the read side will notice */
  if (r < 0) r = 0;
  b = uv_buf_init((char *)msg + r, (unsigned)(sizeof msg - 1 - (size_t)r));
  if (uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1, on_continue) == 0)
    c->flags |= CORIO__SERVER_CONTINUE;
}
