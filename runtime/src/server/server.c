/*
** server.c: the listener, connections, limits, deadlines and graceful
** close of the HTTP/1.1 server.
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
** corio_server_respond.  The server is freed after its close callback, once
** its listener, timer and connections are closed; orphans left then are
** detached (conn->srv = NULL) onto the runtime's list, which
** corio_rt_free empties.  The runtime also lists its servers, so that
** corio_rt_free can close those a host forgot.
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

#define SRV_SLAB      (64 * 1024) /* read buffer shared by the connections */
#define SRV_IN_HIGH   (64 * 1024) /* pending input that stops reading */
#define SRV_LINGER_MS 2000        /* draining the peer after our FIN */

static void on_timer(uv_timer_t *t);
static void server_maybe_done(corio_server *s);
static void cut_all(corio_server *s);

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

static void arm(corio_server *s) {
  uint64_t due = s->close_due, now;
  int k;
  for (k = 1; k < CORIO__SERVER_T_COUNT; k++)
    if (s->tl[k].head != NULL && s->tl[k].head->due < due)
      due = s->tl[k].head->due;
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
  corio__server_tlist *l = &c->srv->tl[c->tkind];
  if (c->tkind == CORIO__SERVER_T_NONE) return;
  if (c->tprev)
    c->tprev->tnext = c->tnext;
  else
    l->head = c->tnext;
  if (c->tnext)
    c->tnext->tprev = c->tprev;
  else
    l->tail = c->tprev;
  c->tprev = c->tnext = NULL;
  c->tkind = CORIO__SERVER_T_NONE;
  /* the timer may now fire early; it then just re-arms */
}

/* Put the connection on deadline list `kind`, due from now (NONE: none). */
void corio__server_timer_set(corio__server_conn *c, int kind) {
  corio_server *s = c->srv;
  corio__server_tlist *l;
  tl_remove(c);
  if (kind == CORIO__SERVER_T_NONE) return;
  l = &s->tl[kind];
  c->tkind = (uint8_t)kind;
  c->due = uv_now(s->rt->loop) + s->tl_ms[kind];
  c->tprev = l->tail;
  if (l->tail)
    l->tail->tnext = c;
  else
    l->head = c;
  l->tail = c;
  if (c->due < s->armed_due) arm(s);
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
  if (s->close_due <= now) cut_all(s); /* graceful close ran out of time */
  for (k = 1; k < CORIO__SERVER_T_COUNT; k++) {
    while ((c = s->tl[k].head) != NULL && c->due <= now) {
      tl_remove(c);
      expire(c, k);
    }
  }
  arm(s);
}

/* }================================================================== */

/*
** {==================================================================
** Connections
** ===================================================================
*/

static corio__server_home *home_of(corio_rt *rt) {
  return rt->part[CORIO__PART_SERVER].state;
}

static corio__server_conn *conn_of(corio__queue *q) {
  return corio__queue_data(q, corio__server_conn, node);
}

static void conn_free(corio__server_conn *c) {
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
    conn_free(c);
  }
  corio__closed(s->rt);
  server_maybe_done(s);
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
  conn_free(c);
}

static void on_shutdown(uv_shutdown_t *r, int status) {
  corio__server_conn *c = corio__container_of(r, corio__server_conn, sreq);
  if (status < 0) corio__server_conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  corio__server_conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->srv->slab, SRV_SLAB);
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
    enum http_errno e;
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
    n = http_parser_execute(&c->parser, &corio__server_settings,
                            c->ibase + c->ioff, avail);
    c->ioff += n;
    e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
      http_parser_pause(&c->parser, 0); /* rstate is READY */
      continue;
    }
    if (e != HPE_OK) {
      int status = c->err_status ? c->err_status : 400;
      if (e == HPE_HEADER_OVERFLOW) status = 431;
      corio__server_reply(c, status, 1);
      break;
    }
    if (n < avail) { /* upgrade: the rest is not HTTP */
      c->flags |= CORIO__SERVER_NO_INPUT | CORIO__SERVER_CLOSE_AFTER;
      break;
    }
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

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  corio__server_conn *c = st->data;
  int from_slab = 0;
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
  if (c->ioff < c->ilen) {
    /* input waits already: append (ibase is in.base here) */
    size_t rest = c->ilen - c->ioff;
    memmove(c->in.base, c->in.base + c->ioff, rest);
    c->in.len = rest;
    if (corio__server_buf_reserve(&c->in, (size_t)nread) != 0) {
      corio__server_conn_close(c);
      return;
    }
    memcpy(c->in.base + rest, buf->base, (size_t)nread);
    c->in.len += (size_t)nread;
    c->ibase = c->in.base;
    c->ilen = c->in.len;
    c->ioff = 0;
  } else {
    c->ibase = buf->base; /* parse straight from the slab */
    c->ilen = (size_t)nread;
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
    uv_read_stop(st);
  }
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
  } else {
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

static void on_connection(uv_stream_t *ls, int status) {
  corio_server *s = corio__container_of(ls, corio_server, listener);
  corio__server_conn *c;
  if (status < 0 || s->closing) return;
  if (s->nconns >= s->o.max_connections) {
    reject(s);
    return;
  }
  c = corio__calloc(1, sizeof *c);
  if (c == NULL) {
    reject(s);
    return;
  }
  if (uv_tcp_init(s->rt->loop, &c->tcp) != 0) {
    corio__free(c);
    reject(s);
    return;
  }
  corio__opened(s->rt);
  c->tcp.data = c;
  c->srv = s;
  c->rt = s->rt;
  c->req.conn = c;
  corio__queue_insert_head(&s->conns, &c->node);
  s->nconns++;
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
    corio__server_conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  format_remote(c);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->ibase = c->in.base;
  corio__server_timer_set(c, CORIO__SERVER_T_HEADER);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    corio__server_conn_close(c);
}

/* }================================================================== */

/*
** {==================================================================
** Server
** ===================================================================
*/

void corio_server_opts_init(corio_server_opts *o) {
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->backlog = 511;
  o->max_header_bytes = 16 * 1024;
  o->max_body_bytes = 8 * 1024 * 1024;
  o->max_connections = 10000;
  o->overload_status = 503;
  o->header_timeout_ms = 10000;
  o->body_timeout_ms = 30000;
  o->idle_timeout_ms = 60000;
  o->write_timeout_ms = 60000;
}

/* Copy `in` over the defaults, field by field where non-zero. */
static int resolve_opts(corio_server_opts *o, const corio_server_opts *in) {
  corio_server_opts_init(o);
  if (in == NULL) return 0;
#define TAKE(f)                                                                \
  if (in->f) o->f = in->f
  TAKE(host);
  TAKE(port);
  TAKE(backlog);
  TAKE(max_header_bytes);
  TAKE(max_body_bytes);
  TAKE(max_requests_per_conn);
  TAKE(max_connections);
  TAKE(max_inflight);
  TAKE(overload_status);
  TAKE(header_timeout_ms);
  TAKE(body_timeout_ms);
  TAKE(idle_timeout_ms);
  TAKE(write_timeout_ms);
#undef TAKE
  if (o->port < 0 || o->port > 65535 || o->backlog < 0 ||
      o->overload_status < 200 || o->overload_status > 999)
    return CORIO_EINVAL;
  return 0;
}

/* An IP literal, or a name resolved synchronously (first address). */
static int resolve_host(corio_rt *rt, const char *host, int port,
                        struct sockaddr_storage *ss) {
  uv_getaddrinfo_t req;
  struct addrinfo hints;
  int r;
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  r = uv_getaddrinfo(rt->loop, &req, NULL, host, NULL, &hints);
  if (r != 0)
    return r == UV_EAI_NONAME ? CORIO_EDNS : corio_translate_uv_error(r);
  memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
  uv_freeaddrinfo(req.addrinfo);
  if (ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  return 0;
}

static void server_free(corio_server *s) {
  while (!corio__queue_empty(&s->orphans)) { /* the runtime keeps them */
    corio__server_conn *c = conn_of(corio__queue_head(&s->orphans));
    corio__queue_remove(&c->node);
    c->srv = NULL;
    corio__queue_insert_head(&home_of(s->rt)->orphans, &c->node);
  }
  corio__free(s->slab);
  corio__free(s);
}

static void on_timer_closed(uv_handle_t *h) {
  corio_server *s = h->data;
  corio_rt *rt = s->rt;
  corio__queue_remove(&s->node);
  if (s->on_closed != NULL) s->on_closed(s, s->closed_ud);
  server_free(s);
  corio__closed(rt);
}

/* Close every connection now. */
static void cut_all(corio_server *s) {
  corio__queue *q, *next;
  s->close_due = UINT64_MAX;
  for (q = s->conns.next; q != &s->conns; q = next) {
    next = q->next;
    corio__server_conn_close(conn_of(q));
  }
}

/*
** corio_rt_free: close the servers still open, run the loop until they
** are gone, and free the requests nobody answered.
*/
static void server_shutdown(corio_rt *rt) {
  corio__server_home *home = home_of(rt);
  corio__queue *q;
  if (home == NULL) return;
  corio__queue_foreach(q, &home->servers) {
    corio_server *s = corio__queue_data(q, corio_server, node);
    if (!s->closing)
      corio_server_close(s, 0, NULL, NULL);
    else
      cut_all(s); /* a graceful close's deadline is not waited for */
  }
  while (!corio__queue_empty(&home->servers)) uv_run(rt->loop, UV_RUN_ONCE);
  while (!corio__queue_empty(&home->orphans)) { /* nobody answered them */
    corio__server_conn *c = conn_of(corio__queue_head(&home->orphans));
    corio__queue_remove(&c->node);
    conn_free(c);
  }
  rt->part[CORIO__PART_SERVER].state = NULL;
  corio__free(home);
}

/* The runtime's server part, made with its first server. */
static corio__server_home *home_get(corio_rt *rt) {
  corio__server_home *home = home_of(rt);
  if (home != NULL) return home;
  home = corio__calloc(1, sizeof *home);
  if (home == NULL) return NULL;
  corio__queue_init(&home->servers);
  corio__queue_init(&home->orphans);
  rt->part[CORIO__PART_SERVER].state = home;
  rt->part[CORIO__PART_SERVER].shutdown = server_shutdown;
  return home;
}

static void on_listener_closed(uv_handle_t *h) {
  corio_server *s = h->data;
  s->nopen--;
  corio__closed(s->rt);
  server_maybe_done(s);
}

/* Once the listener and every connection are closed, close the timer; its
   close callback ends the server. */
static void server_maybe_done(corio_server *s) {
  if (!s->closing || s->nopen != 1 || s->nconns > 0) return;
  s->nopen = 0;
  s->timer.data = s;
  corio__closing(s->rt);
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void on_failed_listen_closed(uv_handle_t *h) {
  corio_server *s = h->data;
  corio_rt *rt = s->rt;
  if (--s->nopen == 0) {
    server_free(s);
  }
  corio__closed(rt);
}

int corio_server_listen(corio_rt *rt, const corio_server_opts *o,
                        corio_server_request_fn cb, void *ud,
                        corio_server **out) {
  corio_server *s;
  corio__server_home *home;
  struct sockaddr_storage ss;
  struct sockaddr_storage bound;
  int r, len = sizeof bound;
  if (out != NULL) *out = NULL;
  if (rt == NULL || cb == NULL || out == NULL) return CORIO_EINVAL;
  if ((home = home_get(rt)) == NULL) return CORIO_ENOMEM;
  s = corio__calloc(1, sizeof *s);
  if (s == NULL) return CORIO_ENOMEM;
  corio__queue_init(&s->conns);
  corio__queue_init(&s->orphans);
  if ((r = resolve_opts(&s->o, o)) != 0 ||
      (r = resolve_host(rt, s->o.host, s->o.port, &ss)) != 0) {
    corio__free(s);
    return r;
  }
  s->slab = corio__malloc(SRV_SLAB);
  if (s->slab == NULL) {
    corio__free(s);
    return CORIO_ENOMEM;
  }
  s->rt = rt;
  s->cb = cb;
  s->data = ud;
  s->armed_due = s->close_due = UINT64_MAX;
  s->date_sec = -1;
  s->o.host = NULL; /* borrowed: not kept */
  s->tl_ms[CORIO__SERVER_T_HEADER] = s->o.header_timeout_ms;
  s->tl_ms[CORIO__SERVER_T_BODY] = s->o.body_timeout_ms;
  s->tl_ms[CORIO__SERVER_T_IDLE] = s->o.idle_timeout_ms;
  s->tl_ms[CORIO__SERVER_T_WRITE] = s->o.write_timeout_ms;
  s->tl_ms[CORIO__SERVER_T_LINGER] = SRV_LINGER_MS;
  uv_tcp_init(rt->loop, &s->listener);
  uv_timer_init(rt->loop, &s->timer);
  corio__opened(rt);
  corio__opened(rt);
  s->listener.data = s->timer.data = s;
  s->nopen = 2;
  r = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&s->listener, s->o.backlog, on_connection);
  if (r == 0)
    r = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
  if (r != 0) {
    /* the handles exist: they are closed, and s freed, from the loop */
    corio__closing(rt);
    corio__closing(rt);
    uv_close((uv_handle_t *)&s->listener, on_failed_listen_closed);
    uv_close((uv_handle_t *)&s->timer, on_failed_listen_closed);
    return corio_translate_uv_error(r);
  }
  s->port = ntohs(bound.ss_family == AF_INET6
                      ? ((struct sockaddr_in6 *)&bound)->sin6_port
                      : ((struct sockaddr_in *)&bound)->sin_port);
  corio__queue_insert_head(&home->servers, &s->node);
  *out = s;
  return 0;
}

int corio_server_close(corio_server *s, uint64_t deadline_ms,
                       corio_server_closed_fn cb, void *ud) {
  corio__queue *q, *next;
  if (s->closing) return CORIO_ESTATE;
  s->closing = 1;
  s->on_closed = cb;
  s->closed_ud = ud;
  corio__closing(s->rt);
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
  for (q = s->conns.next; q != &s->conns; q = next) {
    corio__server_conn *c = conn_of(q);
    next = q->next;
    if (deadline_ms == 0 || (c->rstate == CORIO__SERVER_IDLE &&
                             !(c->flags & CORIO__SERVER_WRITING) &&
                             !(c->flags & CORIO__SERVER_LINGER)))
      corio__server_conn_close(c);
    else
      c->flags |=
          CORIO__SERVER_CLOSE_AFTER; /* after the response in progress */
  }
  if (deadline_ms > 0) {
    s->close_due = uv_now(s->rt->loop) + deadline_ms;
    arm(s);
  }
  return 0;
}

void corio_server_on_disconnect(corio_server *s,
                                corio_server_disconnect_fn cb) {
  s->on_gone = cb;
}

int corio_server_port(const corio_server *s) {
  return s->port;
}

corio_rt *corio_server_rt(const corio_server *s) {
  return s->rt;
}

void *corio_server_get_data(const corio_server *s) {
  return s->data;
}

void corio_server_set_data(corio_server *s, void *data) {
  s->data = data;
}

void corio_server_get_stats(const corio_server *s, corio_server_stats *out) {
  out->connections = s->nconns;
  out->inflight = s->inflight;
  out->requests = s->nrequests;
  out->rejected = s->nrejected;
}

/* }================================================================== */
