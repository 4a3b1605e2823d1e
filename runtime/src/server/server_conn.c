/*
** server_conn.c: the connections of the HTTP/1.1 server: accepting,
** reading and parsing, handing requests out, deadlines, and closing one
** connection.  The server itself (listen, close, its lifetime) is in
** server.c.
**
** Reading.  Every connection reads into one slab of the server and is
** parsed from there; only input that cannot be parsed yet (a pipelined
** request behind one not answered) is copied into the connection's own
** buffer, and reading stops when that holds more than SRV_IN_HIGH bytes.
**
** Deadlines.  A connection is on at most one deadline list (head, body,
** idle, write, linger).  Each list has one duration, so appending keeps it
** sorted by deadline: moving a connection is O(1) and one uv_timer_t,
** armed for the earliest head, serves all of them.
**
** Lifetime.  A connection's memory is freed in its close callback, unless
** the host still holds its request: it then stays, as an orphan, until
** corio_server_respond.
**
** Disconnects.  A host that holds a request (a task computing the answer)
** wants to know when nobody waits for it any more: corio__server_gone tells
** it once, when the connection closes (a reset, a failed write, a
** timeout).  The peer's EOF is not that: a client may send its request,
** shut down its writing side and wait for the answer (shutdown(SHUT_WR)),
** so after a FIN the requests already received are still answered, and
** the connection closes after the last of them.
*/
#include <string.h>

#include "server.h"

#define SRV_IN_HIGH (64 * 1024) /* pending input that stops reading */

static void on_timer(uv_timer_t *t);

/*
** Make room for `extra` more bytes, doubling the capacity (amortized
** copies) but not past `bound` unless `extra` needs more: a body of known
** length grows up to that length, not to twice it.
*/
int corio__server_buf_grow(corio__server_buf *b, size_t extra, size_t bound) {
  size_t cap, need;
  char *p;
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return CORIO_ENOMEM;
  need = b->len + extra;
  cap = b->cap ? b->cap : 512;
  while (cap < need) cap *= 2;
  if (cap > bound) cap = bound > need ? bound : need;
  p = corio__realloc(b->base, cap);
  if (p == NULL) return CORIO_ENOMEM;
  b->base = p;
  b->cap = cap;
  return 0;
}

int corio__server_buf_reserve(corio__server_buf *b, size_t extra) {
  return corio__server_buf_grow(b, extra, SIZE_MAX);
}

/*
** {==================================================================
** Deadlines
** ===================================================================
*/

/* The first of a deadline list (the earliest due), or NULL. */
static corio__server_conn *tl_first(const corio__queue *l) {
  if (corio__queue_empty(l)) return NULL;
  return corio__queue_data(corio__queue_head(l), corio__server_conn, tnode);
}

void corio__server_arm(corio_server *s) {
  uint64_t due = s->close_due, now;
  corio__server_conn *c;
  int k;
  for (k = 1; k < CORIO__SERVER_T_COUNT; k++)
    if ((c = tl_first(&s->tl[k])) != NULL && c->due < due) due = c->due;
  if (due == s->armed_due) return;
  s->armed_due = due;
  if (due == UINT64_MAX) {
    uv_timer_stop(&s->timer);
    return;
  }
  now = uv_now(s->rt->loop);
  uv_timer_start(&s->timer, on_timer, due > now ? due - now : 0, 0);
}

static void tl_remove(corio__server_conn *c) {
  if (c->tkind == CORIO__SERVER_T_NONE) return;
  corio__queue_remove(&c->tnode);
  c->tkind = CORIO__SERVER_T_NONE;
  /* the timer may now fire early; it then just re-arms */
}

/* Put the connection on deadline list `kind`, due from now (NONE: none). */
void corio__server_timer_set(corio__server_conn *c, int kind) {
  corio_server *s = c->srv;
  tl_remove(c);
  if (kind == CORIO__SERVER_T_NONE) return;
  c->tkind = (uint8_t)kind;
  c->due = uv_now(s->rt->loop) + s->tl_ms[kind];
  corio__queue_insert_tail(&s->tl[kind], &c->tnode);
  if (c->due < s->armed_due) corio__server_arm(s);
}

static void expire(corio__server_conn *c, int kind) {
  switch (kind) {
  case CORIO__SERVER_T_HEADER:
    /* a connection that never sent a byte is just closed */
    if (c->rstate == CORIO__SERVER_HEAD)
      corio__server_reply(c, 408, 1);
    else
      corio__server_conn_close(c);
    break;
  case CORIO__SERVER_T_BODY:
    corio__server_reply(c, 408, 1);
    break;
  default: /* idle, write, linger */
    corio__server_conn_close(c);
    break;
  }
}

static void on_timer(uv_timer_t *t) {
  corio_server *s = corio__container_of(t, corio_server, timer);
  uint64_t now = uv_now(s->rt->loop);
  corio__server_conn *c;
  int k;
  s->armed_due = UINT64_MAX;
  if (s->close_due <= now)
    corio__server_cut_all(s); /* graceful close ran out of time */
  for (k = 1; k < CORIO__SERVER_T_COUNT; k++) {
    while ((c = tl_first(&s->tl[k])) != NULL && c->due <= now) {
      tl_remove(c);
      expire(c, k);
    }
  }
  corio__server_arm(s);
}

/* }================================================================== */

/*
** {==================================================================
** Connections
** ===================================================================
*/

void corio__server_conn_free(corio__server_conn *c) {
  corio__free(c->in.base);
  corio__free(c->out.base);
  corio__free(c->req.buf.base);
  corio__free(c->req.hdrs);
  corio__free(c);
}

/* Tell the host that the client of the request it holds is gone. */
void corio__server_gone(corio__server_conn *c) {
  corio_server *s = c->srv;
  if ((c->rstate != CORIO__SERVER_USER && c->rstate != CORIO__SERVER_STREAM) ||
      (c->flags & CORIO__SERVER_GONE) || s == NULL || s->on_gone == NULL)
    return;
  c->flags |= CORIO__SERVER_GONE;
  s->on_gone(s, &c->req, s->data);
}

static void on_conn_closed(uv_handle_t *h) {
  corio__server_conn *c = h->data;
  corio_server *s = c->srv;
  corio__queue_remove(&c->node);
  s->nconns--;
  c->flags |= CORIO__SERVER_CLOSED;
  if (c->rstate == CORIO__SERVER_USER || c->rstate == CORIO__SERVER_STREAM) {
    /* the host still holds the request */
    corio__queue_insert_head(&s->orphans, &c->node);
    corio__server_gone(c); /* it may answer now: c may be freed */
  } else {
    corio__server_conn_free(c);
  }
  corio__closed(s->rt);
  corio__server_maybe_done(s);
}

void corio__server_conn_close(corio__server_conn *c) {
  if (c->flags & CORIO__SERVER_CLOSING) return;
  c->flags |= CORIO__SERVER_CLOSING | CORIO__SERVER_NO_INPUT;
  tl_remove(c);
  corio__closing(c->srv->rt);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* The host answered a request whose connection is closing or closed. */
void corio__server_conn_release(corio__server_conn *c) {
  if (!(c->flags & CORIO__SERVER_CLOSED)) return; /* on_conn_closed frees it */
  corio__queue_remove(&c->node);                  /* from its orphans list */
  corio__server_conn_free(c);
}

static void on_shutdown(uv_shutdown_t *r, int status) {
  corio__server_conn *c = corio__container_of(r, corio__server_conn, sreq);
  if (status < 0) corio__server_conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  corio__server_conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->srv->slab, CORIO__SERVER_SLAB);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/*
** Close after our last response: send FIN, then read and drop what the
** peer still sends until it closes too (or SRV_LINGER_MS).  Closing at once
** with unread input makes the kernel send RST, which can destroy the
** response before the client has read it.
*/
static void conn_linger(corio__server_conn *c) {
  if (c->flags & (CORIO__SERVER_EOF | CORIO__SERVER_CLOSING)) {
    corio__server_conn_close(c);
    return;
  }
  c->flags |= CORIO__SERVER_LINGER | CORIO__SERVER_NO_INPUT;
  c->ilen = c->ioff = 0;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    corio__server_conn_close(c);
    return;
  }
  if (c->flags & CORIO__SERVER_READ_OFF) {
    c->flags &= ~CORIO__SERVER_READ_OFF;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  }
  corio__server_timer_set(c, CORIO__SERVER_T_LINGER);
}

/* Hand a complete request to the host (or answer it: overload). */
static void dispatch(corio__server_conn *c) {
  corio_server *s = c->srv;
  c->nreq++;
  s->nrequests++;
  c->flags &= ~CORIO__SERVER_GONE;
  if (c->req.rejected) {
    s->nrejected++;
    corio__server_reply(c, s->o.overload_status, 0);
    return;
  }
  c->rstate = CORIO__SERVER_USER;
  s->inflight++;
  s->cb(s, &c->req, s->data);
}

/* After processing: idle timing, EOF, and reading again. */
static void settle(corio__server_conn *c) {
  size_t pending = c->ilen - c->ioff;
  if (c->flags & (CORIO__SERVER_CLOSING | CORIO__SERVER_LINGER)) return;
  if (pending == 0 &&
      (c->rstate == CORIO__SERVER_IDLE || c->rstate == CORIO__SERVER_HEAD ||
       c->rstate == CORIO__SERVER_BODY)) {
    if (c->flags & CORIO__SERVER_EOF) { /* done, or a request cut short */
      corio__server_conn_close(c);
      return;
    }
    /* before its first request a connection keeps its head deadline */
    if (c->rstate == CORIO__SERVER_IDLE && c->nreq > 0 &&
        c->tkind != CORIO__SERVER_T_IDLE)
      corio__server_timer_set(c, CORIO__SERVER_T_IDLE);
  }
  if ((c->flags & CORIO__SERVER_READ_OFF) && pending < SRV_IN_HIGH) {
    c->flags &= ~CORIO__SERVER_READ_OFF;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
      corio__server_conn_close(c);
  }
}

/*
** Parse pending input and hand out the requests it holds, one at a time:
** stop at a request the host has not answered yet, or at a response still
** being written.  Re-entered from corio_server_respond inside the request
** callback: the inner call returns and the outer loop goes on.
*/
void corio__server_process(corio__server_conn *c) {
  if (c->flags & CORIO__SERVER_IN_PROCESS) return;
  c->flags |= CORIO__SERVER_IN_PROCESS;
  for (;;) {
    size_t n, avail;
    int status;
    if (c->flags & (CORIO__SERVER_NO_INPUT | CORIO__SERVER_WRITING)) break;
    if (c->rstate == CORIO__SERVER_READY) {
      dispatch(c);
      continue;
    }
    if (c->rstate == CORIO__SERVER_USER || c->rstate == CORIO__SERVER_WRITE ||
        c->rstate == CORIO__SERVER_STREAM)
      break;
    if (c->rstate == CORIO__SERVER_IDLE && c->srv->closing) {
      corio__server_conn_close(c); /* graceful close: no new request */
      break;
    }
    avail = c->ilen - c->ioff;
    if (avail == 0) break;
    status = corio__server_parse(c, c->ibase + c->ioff, avail, &n);
    c->ioff += n;
    if (status != 0) {
      corio__server_reply(c, status, 1);
      break;
    }
    if (c->rstate != CORIO__SERVER_READY) break; /* all taken */
  }
  c->flags &= ~CORIO__SERVER_IN_PROCESS;
  settle(c);
}

/* The response is out: close, or go on with the next request. */
void corio__server_after_response(corio__server_conn *c) {
  c->rstate = CORIO__SERVER_IDLE;
  if (c->flags & CORIO__SERVER_CLOSING) return;
  if (c->flags & CORIO__SERVER_CLOSE_AFTER) {
    conn_linger(c);
    return;
  }
  corio__server_process(c);
}

/*
** Take `nread` bytes at `base` (the server's slab, or anything while no
** input waits): parse what can be, and keep the rest.
*/
static void conn_input(corio__server_conn *c, const char *base, size_t nread) {
  int from_slab = 0;
  if (c->ioff < c->ilen) {
    /* input waits already: append (ibase is in.base here) */
    size_t rest = c->ilen - c->ioff;
    memmove(c->in.base, c->in.base + c->ioff, rest);
    c->in.len = rest;
    if (corio__server_buf_reserve(&c->in, nread) != 0) {
      corio__server_conn_close(c);
      return;
    }
    memcpy(c->in.base + rest, base, nread);
    c->in.len += nread;
    c->ibase = c->in.base;
    c->ilen = c->in.len;
    c->ioff = 0;
  } else {
    c->ibase = base; /* parse straight from the slab */
    c->ilen = nread;
    c->ioff = 0;
    from_slab = 1;
  }
  corio__server_process(c);
  if (from_slab) {
    size_t rest = c->ilen - c->ioff;
    c->in.len = 0;
    if (rest > 0 && !(c->flags & CORIO__SERVER_NO_INPUT)) {
      if (corio__server_buf_reserve(&c->in, rest) != 0) {
        corio__server_conn_close(c);
        return;
      }
      memcpy(c->in.base, c->ibase + c->ioff, rest);
      c->in.len = rest;
    }
    c->ibase = c->in.base;
    c->ilen = c->in.len;
    c->ioff = 0;
  }
  if (c->ilen - c->ioff >= SRV_IN_HIGH && !(c->flags & CORIO__SERVER_CLOSING) &&
      !(c->flags & CORIO__SERVER_READ_OFF)) {
    c->flags |= CORIO__SERVER_READ_OFF;
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  corio__server_conn *c = st->data;
  if (nread == 0) return;
  if (nread < 0) {
    if (nread != UV_EOF || (c->flags & CORIO__SERVER_LINGER)) {
      corio__server_conn_close(c);
      return;
    }
    c->flags |= CORIO__SERVER_EOF; /* a half-close: answers still go out */
    if (!(c->flags & CORIO__SERVER_IN_PROCESS)) settle(c);
    return;
  }
  if (c->flags & CORIO__SERVER_NO_INPUT) return; /* lingering: dropped */
  conn_input(c, buf->base, (size_t)nread);
}

static void format_remote(corio__server_conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char ip[48];
  c->remote[0] = '\0';
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(a, ip, sizeof ip);
    snprintf(c->remote, sizeof c->remote, "[%s]:%u", ip,
             (unsigned)ntohs(a->sin6_port));
  } else if (ss.ss_family == AF_INET) { /* not a socketpair (fuzzing) */
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    uv_ip4_name(a, ip, sizeof ip);
    snprintf(c->remote, sizeof c->remote, "%s:%u", ip,
             (unsigned)ntohs(a->sin_port));
  }
}

static void on_reject_closed(uv_handle_t *h) {
  corio_rt *rt = h->data;
  corio__free(h);
  corio__closed(rt);
}

/* Over max_connections: take the connection off the backlog and close it
   (not accepting would leave the listener readable: a busy loop). */
static void reject(corio_server *s) {
  uv_tcp_t *t = corio__malloc(sizeof *t);
  if (t == NULL || uv_tcp_init(s->rt->loop, t) != 0) {
    corio__free(t);
    return;
  }
  corio__opened(s->rt);
  uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t);
  t->data = s->rt;
  corio__closing(s->rt);
  uv_close((uv_handle_t *)t, on_reject_closed);
}

/* A new connection of `s`, its handle initialized, or NULL. */
static corio__server_conn *conn_new(corio_server *s) {
  corio__server_conn *c = corio__calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  if (uv_tcp_init(s->rt->loop, &c->tcp) != 0) {
    corio__free(c);
    return NULL;
  }
  corio__opened(s->rt);
  c->tcp.data = c;
  c->srv = s;
  c->rt = s->rt;
  c->req.conn = c;
  corio__queue_init(&c->tnode);
  corio__queue_init(&c->swrites);
  corio__queue_insert_head(&s->conns, &c->node);
  s->nconns++;
  return c;
}

/* Its socket is open: parse, time and read. */
static void conn_start(corio__server_conn *c) {
  uv_tcp_nodelay(&c->tcp, 1);
  format_remote(c);
  corio__server_parser_init(c);
  c->ibase = c->in.base;
  corio__server_timer_set(c, CORIO__SERVER_T_HEADER);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    corio__server_conn_close(c);
}

void corio__server_on_connection(uv_stream_t *ls, int status) {
  corio_server *s = corio__container_of(ls, corio_server, listener);
  corio__server_conn *c;
  if (status < 0 || s->closing) return;
  if (s->nconns >= s->o.max_connections || (c = conn_new(s)) == NULL) {
    reject(s);
    return;
  }
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
    corio__server_conn_close(c);
    return;
  }
  conn_start(c);
}

/* }================================================================== */

/*
** {==================================================================
** Fuzzing (tests/fuzz/fuzz_server_parse.c)
** ===================================================================
*/

corio__server_conn *corio__server_adopt(corio_server *s, uv_os_sock_t fd) {
  corio__server_conn *c = conn_new(s);
  if (c == NULL) return NULL;
  if (uv_tcp_open(&c->tcp, fd) != 0) {
    corio__server_conn_close(c);
    return NULL;
  }
  conn_start(c);
  return c;
}

void corio__server_conn_input(corio__server_conn *c, const char *data,
                              size_t len) {
  if (len == 0 || (c->flags & CORIO__SERVER_NO_INPUT)) return;
  if (len > CORIO__SERVER_SLAB) len = CORIO__SERVER_SLAB;
  memcpy(c->srv->slab, data, len); /* as a read would have */
  conn_input(c, c->srv->slab, len);
}

/* }================================================================== */
