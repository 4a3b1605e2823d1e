/*
** server.c: the HTTP/1.1 server as a whole: its options, listening, graceful
** close and lifetime, and the runtime's list of servers.  Its connections
** are in server_conn.c.
**
** Lifetime.  The server is freed after its close callback, once its
** listener, timer and connections are closed; orphans (connections whose
** request the host still holds) left then are detached (conn->srv = NULL)
** onto the runtime's list, which corio_rt_free empties.  The runtime also
** lists its servers, so that corio_rt_free can close those a host forgot.
*/
#include <string.h>

#include "server.h"

#define SRV_LINGER_MS 2000 /* draining the peer after our FIN */

static corio__server_home *home_of(corio_rt *rt) {
  return rt->part[CORIO__PART_SERVER].state;
}

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

/* The bytes a head may take on the wire for `counted` of max_header_bytes:
   as much again for what the count leaves out, up to a bound (server.h). */
static size_t head_max(size_t counted) {
  size_t slack =
      counted < CORIO__SERVER_HEAD_SLACK ? counted : CORIO__SERVER_HEAD_SLACK;
  return counted <= SIZE_MAX - slack ? counted + slack : SIZE_MAX;
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
    corio__server_conn *c =
        corio__server_conn_of(corio__queue_head(&s->orphans));
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
void corio__server_cut_all(corio_server *s) {
  corio__queue *q, *next;
  s->close_due = UINT64_MAX;
  for (q = s->conns.next; q != &s->conns; q = next) {
    next = q->next;
    corio__server_conn_close(corio__server_conn_of(q));
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
      corio__server_cut_all(
          s); /* a graceful close's deadline is not waited for */
  }
  while (!corio__queue_empty(&home->servers)) uv_run(rt->loop, UV_RUN_ONCE);
  while (!corio__queue_empty(&home->orphans)) { /* nobody answered them */
    corio__server_conn *c =
        corio__server_conn_of(corio__queue_head(&home->orphans));
    corio__queue_remove(&c->node);
    corio__server_conn_free(c);
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
  corio__server_maybe_done(s);
}

/* Once the listener and every connection are closed, close the timer; its
   close callback ends the server. */
void corio__server_maybe_done(corio_server *s) {
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
  int r, k, len = sizeof bound;
  if (out != NULL) *out = NULL;
  if (rt == NULL || cb == NULL || out == NULL) return CORIO_EINVAL;
  if ((home = home_get(rt)) == NULL) return CORIO_ENOMEM;
  s = corio__calloc(1, sizeof *s);
  if (s == NULL) return CORIO_ENOMEM;
  corio__queue_init(&s->conns);
  corio__queue_init(&s->orphans);
  for (k = 0; k < CORIO__SERVER_T_COUNT; k++) corio__queue_init(&s->tl[k]);
  if ((r = resolve_opts(&s->o, o)) != 0 ||
      (r = resolve_host(rt, s->o.host, s->o.port, &ss)) != 0) {
    corio__free(s);
    return r;
  }
  s->slab = corio__malloc(CORIO__SERVER_SLAB);
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
  s->head_max = head_max(s->o.max_header_bytes);
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
    r = uv_listen((uv_stream_t *)&s->listener, s->o.backlog,
                  corio__server_on_connection);
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
    corio__server_conn *c = corio__server_conn_of(q);
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
    corio__server_arm(s);
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
