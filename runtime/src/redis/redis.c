/*
** redis.c: corio/redis.h on hiredis' asynchronous API, attached to the
** runtime's loop by hiredis' own libuv adapter (adapters/libuv.h: its
** redisLibuvAttach and poll handle, with event hooks of ours, see below).
**
** hiredis keeps the commands of a connection in order and calls each
** command's callback with its reply, or with NULL when the connection
** goes (lost, failed, or freed by us).  What this file adds:
** - the connection's life: made by a command when there is none, with a
**   handshake and a deadline (hiredis 0.14 has no connect timeout), and
**   forgotten the moment it fails, so that the next command makes a new
**   one;
** - the host name looked up off the loop (uv_getaddrinfo: hiredis would
**   call getaddrinfo on the loop thread, and a slow resolver would stall
**   every task), commands sent meanwhile parked until the address comes;
** - a callback exactly once per command: a reply is handed over from
**   hiredis' callback (the reply lives only as long as it); a failure is
**   queued on `later` and handed over at the next turn, so that no
**   callback runs from inside corio_redis_close or corio_redis_cancel, nor
**   from inside hiredis' teardown of a context (where a new command could
**   not be sent);
** - lifetimes: the adapter's poll handle is counted as the runtime's own
**   (corio__opened / corio__closing / corio__closed: its cleanup hook is
**   replaced by one that counts), and the client is freed in the close
**   callback of its last timer handle, after hiredis is done with it.
**
** hiredis rules this file keeps: never free a context from its connect
** callback (0.14 runs it outside its callback guard); free one at most
** once (c->ac is cleared before freeing); a context freed from inside one
** of its reply callbacks is freed by hiredis when that callback returns.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

#include <adapters/libuv.h>

/* cmd->hello of a handshake command: its kind, and whether it is last */
#define HELLO_AUTH   0x01
#define HELLO_SELECT 0x02
#define HELLO_PING   0x03
#define HELLO_KIND   0x0f
#define HELLO_LAST   0x10

static corio__redis_home *home_of(corio_rt *rt) {
  return rt->part[CORIO__PART_REDIS].state;
}

/*
** {==================================================================
** Commands: one callback each
** ===================================================================
*/

/*
** The connection keeps the loop alive while commands wait for it, not
** while it idles: a client left open does not keep a program from
** ending (as an idle keep-alive connection of the HTTP client does not).
*/
static void hold(corio_redis *c) {
  redisLibuvEvents *p;
  if (c->ac == NULL || (p = c->ac->ev.data) == NULL) return;
  if (c->stats.pending > 0)
    uv_ref((uv_handle_t *)&p->handle);
  else
    uv_unref((uv_handle_t *)&p->handle);
}

static void maybe_free_cmd(corio_redis_cmd *cmd) {
  if (!cmd->in_hiredis && !cmd->queued && cmd->done) corio__free(cmd);
}

/* Run the callback of a command that got its outcome. */
static void deliver(corio_redis_cmd *cmd, int status,
                    const corio_redis_reply *reply) {
  corio_redis *c = cmd->c;
  cmd->done = 1;
  c->stats.pending--;
  hold(c);
  if (cmd->cb != NULL) cmd->cb(cmd, status, reply, cmd->ud);
}

static void on_tick(uv_timer_t *h);

/* Queue the callback of `cmd` to run at the next turn with `status`. */
static void later(corio_redis_cmd *cmd, int status) {
  corio_redis *c = cmd->c;
  cmd->done = 1;
  cmd->queued = 1;
  cmd->status = status;
  corio__queue_insert_tail(&c->later, &cmd->lnode);
  /* closed: the last close callback delivers what is queued */
  if (!c->closed) uv_timer_start(&c->tick, on_tick, 0, 0);
}

/* Hand out every queued outcome; a callback may queue more (next turn). */
static void drain(corio_redis *c) {
  corio__queue batch, *q;
  corio__queue_move(&c->later, &batch);
  while (!corio__queue_empty(&batch)) {
    corio_redis_cmd *cmd;
    q = corio__queue_head(&batch);
    corio__queue_remove(q);
    cmd = corio__queue_data(q, corio_redis_cmd, lnode);
    cmd->queued = 0;
    c->stats.pending--;
    hold(c);
    if (cmd->cb != NULL) cmd->cb(cmd, cmd->status, NULL, cmd->ud);
    maybe_free_cmd(cmd);
  }
}

static void on_tick(uv_timer_t *h) {
  drain(h->data);
}

/* }================================================================== */

/*
** {==================================================================
** The connection
** ===================================================================
*/

/* c->errmsg: "host:port: prefix msg" */
static void set_error(corio_redis *c, const char *prefix, const char *msg) {
  snprintf(c->errmsg, sizeof c->errmsg, "%s:%d: %s%s", c->host, c->port,
           prefix != NULL ? prefix : "",
           msg != NULL && *msg ? msg : "connection lost");
}

/*
** The connection in `ac` is gone or going, for the reason hiredis gives:
** forget it, and say with what status its commands fail.  Called for
** every sign of its end (its connect callback, a NULL reply, its cleanup),
** only the first one counts.
*/
static void conn_gone(corio_redis *c, const redisAsyncContext *ac) {
  /* the context's own error: ac->err is copied from it only after the
     connect callback has run */
  int err = ac->c.err;
  if (c->ac != ac) return; /* forgotten already: the status is set */
  c->ac = NULL;
  uv_timer_stop(&c->deadline);
  if (err == REDIS_ERR_PROTOCOL) {
    c->fail_status = CORIO_EPROTO;
    set_error(c, "not a Redis server? ", ac->c.errstr);
  } else if (err == REDIS_ERR_OOM) {
    c->fail_status = CORIO_ENOMEM;
    set_error(c, NULL, ac->c.errstr);
  } else {
    c->fail_status = c->up ? CORIO_ERESET : CORIO_ECONNECT;
    set_error(c, NULL,
              err != 0 ? ac->c.errstr : "Server closed the connection");
  }
  c->up = 0;
}

/* Drop the connection ourselves (deadline, failed handshake, close). */
static void conn_drop(corio_redis *c, int status) {
  redisAsyncContext *ac = c->ac;
  if (ac == NULL) return;
  c->ac = NULL;
  c->up = 0;
  c->fail_status = status;
  uv_timer_stop(&c->deadline);
  /* NULL replies for its commands, now or (from inside one of its
     callbacks) when that callback returns */
  redisAsyncFree(ac);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata) {
  corio_redis_cmd *cmd = privdata;
  corio_redis *c = cmd->c;
  redisReply *reply = r;
  cmd->in_hiredis = 0;
  if (reply == NULL) {
    conn_gone(c, ac);
    if (cmd->hello)
      cmd->done = 1;
    else if (!cmd->done)
      later(cmd, c->closed ? CORIO_ECLOSED : c->fail_status);
  } else if (cmd->hello) {
    if (reply->type == REDIS_REPLY_ERROR) { /* AUTH or SELECT refused */
      if (c->ac == ac) {
        set_error(c,
                  (cmd->hello & HELLO_KIND) == HELLO_SELECT ? "SELECT: "
                                                            : "AUTH: ",
                  reply->str);
        conn_drop(c, CORIO_ECONNECT);
      }
    } else if ((cmd->hello & HELLO_LAST) && c->ac == ac) {
      c->up = 1;
      uv_timer_stop(&c->deadline);
    }
    cmd->done = 1;
  } else if (!cmd->done) {
    deliver(cmd, 0, (const corio_redis_reply *)reply);
  } /* else cancelled: the reply is dropped, the order kept */
  maybe_free_cmd(cmd);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  corio_redis *c = ac->data;
  if (status != REDIS_OK) conn_gone(c, ac); /* its commands fail next */
}

/* The poll handle is the runtime's: count it down when it is closed. */
static void on_poll_closed(uv_handle_t *h) {
  corio_rt *rt = h->data;
  corio__closed(rt);
  free(corio__container_of(h, redisLibuvEvents, handle)); /* the adapter's */
}

/* ac->ev.cleanup: the adapter's, counted (and safe to call twice). */
static void ev_cleanup(void *privdata) {
  redisLibuvEvents *p = privdata;
  redisAsyncContext *ac = p->context;
  if (uv_is_closing((uv_handle_t *)&p->handle)) return;
  if (ac != NULL) {
    corio_redis *c = ac->data;
    conn_gone(c, ac);
    p->handle.data = c->rt;
    corio__closing(c->rt);
  }
  p->context = NULL;
  uv_close((uv_handle_t *)&p->handle, on_poll_closed);
}

/*
** The event hooks.  redisLibuvAttach makes the poll handle; the hooks are
** ours, because the adapter's poll callback drops errors (`if (status !=
** 0) return;`): libuv reports a socket's POLLERR (a refused connect, a
** reset) as an error and stops the handle, and the connection would then
** hang until the timeout, or for ever once connected.  Here an error is
** handed to hiredis as an event, whose read or connect check then finds
** the socket's error and tears the connection down.
*/
static void ev_poll(uv_poll_t *h, int status, int events) {
  redisLibuvEvents *p = h->data;
  redisAsyncContext *ac = p->context;
  if (ac == NULL) return;
  if (status < 0) {
    if (ac->c.flags & REDIS_CONNECTED)
      redisAsyncHandleRead(ac);
    else
      redisAsyncHandleWrite(ac); /* the connect check reads SO_ERROR */
    return;
  }
  if (events & UV_READABLE) redisAsyncHandleRead(ac);
  if (p->context != NULL && (events & UV_WRITABLE)) redisAsyncHandleWrite(ac);
}

static void ev_update(redisLibuvEvents *p, int add, int del) {
  if (uv_is_closing((uv_handle_t *)&p->handle)) return;
  p->events = (p->events | add) & ~del;
  if (p->events)
    uv_poll_start(&p->handle, p->events, ev_poll);
  else
    uv_poll_stop(&p->handle);
}

static void ev_add_read(void *privdata) {
  ev_update(privdata, UV_READABLE, 0);
}

static void ev_del_read(void *privdata) {
  ev_update(privdata, 0, UV_READABLE);
}

/* counting the batches written: one per idle-to-writing change */
static void ev_add_write(void *privdata) {
  redisLibuvEvents *p = privdata;
  if (!(p->events & UV_WRITABLE) && p->context != NULL) {
    corio_redis *c = p->context->data;
    c->stats.writes++;
  }
  ev_update(p, UV_WRITABLE, 0);
}

static void ev_del_write(void *privdata) {
  ev_update(privdata, 0, UV_WRITABLE);
}

/* Take a command off c->parked (sent, or failed without being sent). */
static void unpark(corio_redis_cmd *cmd) {
  corio__queue_remove(&cmd->lnode);
  cmd->parked = 0;
  redisFreeCommand(cmd->text);
  cmd->text = NULL;
}

static void fail_parked(corio_redis *c, int status) {
  while (!corio__queue_empty(&c->parked)) {
    corio_redis_cmd *cmd = corio__queue_data(corio__queue_head(&c->parked),
                                             corio_redis_cmd, lnode);
    unpark(cmd);
    later(cmd, status);
  }
}

/*
** Give up the lookup in flight and fail the commands parked on it.  One
** that no thread has started yet is taken back (its callback then runs
** with UV_EAI_CANCELED); a running one cannot be stopped, and its answer,
** when it comes, finds nobody (l->c is NULL).
*/
static void lookup_drop(corio_redis *c, int status) {
  corio__redis_lookup *l = c->lookup;
  if (l == NULL) return;
  c->lookup = NULL;
  l->c = NULL;
  (void)uv_cancel((uv_req_t *)&l->req);
  uv_timer_stop(&c->deadline);
  fail_parked(c, status);
}

static void on_deadline(uv_timer_t *h) {
  corio_redis *c = h->data;
  if (c->lookup == NULL && (c->ac == NULL || c->up)) return;
  snprintf(c->errmsg, sizeof c->errmsg,
           "%s:%d: could not connect within %.3g s (%s)", c->host, c->port,
           (double)c->timeout_ms / 1000.0,
           c->lookup != NULL ? "the name did not resolve in time"
                             : "no answer");
  lookup_drop(c, CORIO_ETIMEDOUT);
  conn_drop(c, CORIO_ETIMEDOUT);
}

/* Send one handshake command on c->ac (cmd->hello: a kind, maybe last). */

static int hello(corio_redis *c, int kind, int argc, const char **argv) {
  corio_redis_cmd *cmd = corio__calloc(1, sizeof *cmd);
  if (cmd == NULL) return CORIO_ENOMEM;
  cmd->c = c;
  cmd->hello = (uint8_t)kind;
  if (redisAsyncCommandArgv(c->ac, on_reply, cmd, argc, argv, NULL) !=
      REDIS_OK) {
    corio__free(cmd);
    return CORIO_ENOMEM;
  }
  cmd->in_hiredis = 1;
  c->stats.commands++;
  return 0;
}

/*
** Make a connection to `ip`, a numeric address (hiredis' getaddrinfo then
** only parses it: no resolver is asked), and queue its handshake: AUTH,
** then SELECT, or PING when neither is needed (the last one's reply marks
** the connection up: the timeout covers it).  A failure that hiredis
** reports at once (no socket) is CORIO_ECONNECT with the reason in
** c->errmsg.
*/
static int conn_open(corio_redis *c, const char *ip) {
  redisAsyncContext *ac;
  char dbtext[16];
  int rc = 0;
  ac = redisAsyncConnect(ip, c->port);
  if (ac == NULL) return CORIO_ENOMEM;
  if (ac->err != 0) {
    set_error(c, NULL, ac->errstr);
    redisAsyncFree(ac);
    return CORIO_ECONNECT;
  }
  ac->data = c;
  if (redisLibuvAttach(ac, c->rt->loop) != REDIS_OK) {
    set_error(c, NULL, "cannot watch the socket");
    redisAsyncFree(ac);
    return CORIO_ECONNECT;
  }
  corio__opened(c->rt);
  uv_unref((uv_handle_t *)&((redisLibuvEvents *)ac->ev.data)->handle);
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  redisAsyncSetConnectCallback(ac, on_connect);
  c->ac = ac;
  c->up = 0;
  if (c->password != NULL) {
    const char *argv[3] = {"AUTH", c->user, c->password};
    if (c->user == NULL) argv[1] = c->password;
    rc = hello(c, HELLO_AUTH | (c->db != 0 ? 0 : HELLO_LAST),
               c->user != NULL ? 3 : 2, argv);
  }
  if (rc == 0 && c->db != 0) {
    const char *argv[2] = {"SELECT", dbtext};
    snprintf(dbtext, sizeof dbtext, "%d", c->db);
    rc = hello(c, HELLO_SELECT | HELLO_LAST, 2, argv);
  }
  if (rc == 0 && c->password == NULL && c->db == 0) {
    const char *argv[1] = {"PING"};
    rc = hello(c, HELLO_PING | HELLO_LAST, 1, argv);
  }
  if (rc != 0) conn_drop(c, rc);
  return rc;
}

/* The connection is made: send the parked commands after its handshake. */
static void send_parked(corio_redis *c) {
  while (!corio__queue_empty(&c->parked)) {
    corio_redis_cmd *cmd = corio__queue_data(corio__queue_head(&c->parked),
                                             corio_redis_cmd, lnode);
    /* a new context refuses only when out of memory */
    int ok = redisAsyncFormattedCommand(c->ac, on_reply, cmd, cmd->text,
                                        cmd->textlen) == REDIS_OK;
    unpark(cmd);
    if (ok) {
      cmd->in_hiredis = 1;
      c->stats.commands++;
    } else {
      later(cmd, CORIO_ENOMEM);
    }
  }
  hold(c);
}

/*
** The address to connect to: the first IPv4 one, else the first IPv6 one,
** the choice hiredis makes itself (it asks for IPv4, then for IPv6).  Only
** that one is tried: a hiredis context takes one address, and the
** commands parked on it fail with it; the next command looks the name up
** again.
*/
static int pick_address(const struct addrinfo *res, char *ip, size_t size) {
  const struct addrinfo *a, *v6 = NULL;
  const struct sockaddr_in6 *sa6;
  size_t n;
  for (a = res; a != NULL; a = a->ai_next) {
    if (a->ai_family == AF_INET)
      return uv_ip4_name((const struct sockaddr_in *)a->ai_addr, ip, size);
    if (a->ai_family == AF_INET6 && v6 == NULL) v6 = a;
  }
  if (v6 == NULL) return UV_EAI_NODATA;
  sa6 = (const struct sockaddr_in6 *)v6->ai_addr;
  if (uv_ip6_name(sa6, ip, size) != 0) return UV_ENOSPC;
  /* a link-local address needs its interface: "fe80::1%2" */
  n = strlen(ip);
  if (sa6->sin6_scope_id != 0)
    snprintf(ip + n, size - n, "%%%u", (unsigned)sa6->sin6_scope_id);
  return 0;
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  corio__redis_lookup *l = corio__container_of(req, corio__redis_lookup, req);
  corio_redis *c = l->c;
  char ip[INET6_ADDRSTRLEN + 16];
  int rc = status;
  if (c != NULL && rc == 0) rc = pick_address(res, ip, sizeof ip);
  uv_freeaddrinfo(res);
  corio__free(l);
  if (c == NULL) return; /* abandoned: timed out, closed, maybe freed */
  c->lookup = NULL;
  if (rc != 0) {
    set_error(c, "cannot resolve the host name: ", uv_strerror(rc));
    rc = rc == UV_EAI_MEMORY ? CORIO_ENOMEM : CORIO_EDNS;
  } else {
    rc = conn_open(c, ip);
  }
  if (rc != 0) {
    uv_timer_stop(&c->deadline);
    fail_parked(c, rc);
    return;
  }
  send_parked(c);
}

/*
** Make a connection: at once to a numeric address, to a name once
** uv_getaddrinfo has found its address on libuv's thread pool; commands
** sent meanwhile are parked.  The timeout starts here: it covers the
** lookup, the connect and the handshake.
*/
static int conn_start(corio_redis *c) {
  unsigned char addr[sizeof(struct in6_addr)];
  struct addrinfo hints;
  corio__redis_lookup *l;
  int rc;
  c->stats.connects++;
  c->errmsg[0] = '\0';
  if (c->timeout_ms > 0)
    uv_timer_start(&c->deadline, on_deadline, c->timeout_ms, 0);
  if (uv_inet_pton(AF_INET, c->host, addr) == 0 ||
      uv_inet_pton(AF_INET6, c->host, addr) == 0) {
    rc = conn_open(c, c->host); /* no thread pool round trip */
  } else if ((l = corio__malloc(sizeof *l)) == NULL) {
    rc = CORIO_ENOMEM;
  } else {
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    l->c = c;
    rc = uv_getaddrinfo(c->rt->loop, &l->req, on_resolved, c->host, NULL,
                        &hints);
    if (rc == 0) {
      c->lookup = l;
      return 0;
    }
    corio__free(l);
    set_error(c, "cannot resolve the host name: ", uv_strerror(rc));
    rc = rc == UV_ENOMEM ? CORIO_ENOMEM : CORIO_EDNS;
  }
  if (rc != 0) uv_timer_stop(&c->deadline);
  return rc;
}

/*
** Keep a command until the lookup in flight gives the connection:
** formatted now (hiredis copies the arguments, as redisAsyncCommandArgv
** would), sent after the handshake, in order.
*/
static int park(corio_redis_cmd *cmd, int argc, const char *const *argv,
                const size_t *argvlen) {
  int len =
      redisFormatCommandArgv(&cmd->text, argc, (const char **)argv, argvlen);
  if (len < 0) return CORIO_ENOMEM;
  cmd->textlen = (size_t)len;
  cmd->parked = 1;
  corio__queue_insert_tail(&cmd->c->parked, &cmd->lnode);
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** The client
** ===================================================================
*/

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* A percent-decoded copy of s, or NULL (out of memory). */
static char *decoded(const char *s) {
  size_t n = strlen(s), i, j = 0;
  char *out = corio__malloc(n + 1);
  if (out == NULL) return NULL;
  for (i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n + 1 && hexval(s[i + 1]) >= 0 &&
        hexval(s[i + 2]) >= 0) {
      out[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else {
      out[j++] = s[i];
    }
  }
  out[j] = '\0';
  return out;
}

static char *copy(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = corio__malloc(n);
  if (p != NULL) memcpy(p, s, n);
  return p;
}

static void client_free(corio_redis *c) {
  corio__free(c->host);
  corio__free(c->user);
  corio__free(c->password);
  corio__free(c);
}

/* Read the parts of a parsed redis:// URL into c.  0 or an error code. */
static int from_url(corio_redis *c, const corio_url *u, const char **why) {
  const char *path = u->path != NULL ? u->path : "";
  size_t hlen;
  if (strcmp(u->scheme, "redis") != 0) {
    if (why != NULL) *why = "not a redis:// URL";
    return CORIO_ESCHEME;
  }
  if (u->host == NULL || *u->host == '\0') {
    if (why != NULL) *why = "no host";
    return CORIO_EURL;
  }
  if (*path == '/') path++;
  c->db = 0;
  if (*path != '\0') {
    char *end;
    long db = strtol(path, &end, 10);
    if (*end != '\0' || db < 0 || db > 1000000 || end == path) {
      if (why != NULL) *why = "the path must be a database number (/0)";
      return CORIO_EURL;
    }
    c->db = (int)db;
  }
  if (u->query != NULL || u->fragment != NULL) {
    if (why != NULL) *why = "a redis:// URL takes no query or fragment";
    return CORIO_EURL;
  }
  c->port = u->port > 0 ? u->port : CORIO_REDIS_DEFAULT_PORT;
  hlen = strlen(u->host);
  if (u->host[0] == '[' && hlen > 2 && u->host[hlen - 1] == ']') {
    c->host = corio__malloc(hlen - 1);
    if (c->host != NULL) {
      memcpy(c->host, u->host + 1, hlen - 2);
      c->host[hlen - 2] = '\0';
    }
  } else {
    c->host = copy(u->host);
  }
  if (c->host == NULL) return CORIO_ENOMEM;
  if (u->password != NULL) {
    c->password = decoded(u->password);
    if (c->password == NULL) return CORIO_ENOMEM;
    if (u->user != NULL && *u->user != '\0') {
      c->user = decoded(u->user);
      if (c->user == NULL) return CORIO_ENOMEM;
    }
  }
  return 0;
}

static void redis_shutdown(corio_rt *rt);

static corio__redis_home *home_get(corio_rt *rt) {
  corio__redis_home *home = home_of(rt);
  if (home != NULL) return home;
  home = corio__calloc(1, sizeof *home);
  if (home == NULL) return NULL;
  corio__queue_init(&home->clients);
  rt->part[CORIO__PART_REDIS].state = home;
  rt->part[CORIO__PART_REDIS].shutdown = redis_shutdown;
  return home;
}

int corio_redis_new(corio_rt *rt, const char *url, double timeout,
                    corio_redis **out, const char **why) {
  corio__redis_home *home;
  corio_redis *c;
  corio_url u;
  int rc;
  if (why != NULL) *why = NULL;
  if (rt == NULL || url == NULL || out == NULL || isnan(timeout))
    return CORIO_EINVAL;
  if (rt->post_closed) return CORIO_ECLOSED;
  rc = corio_url_parse(url, &u, why);
  if (rc != 0) return rc;
  c = corio__calloc(1, sizeof *c);
  if (c == NULL) {
    corio_url_free(&u);
    return CORIO_ENOMEM;
  }
  rc = from_url(c, &u, why);
  corio_url_free(&u);
  home = rc == 0 ? home_get(rt) : NULL;
  if (rc == 0 && home == NULL) rc = CORIO_ENOMEM;
  if (rc != 0) {
    client_free(c);
    return rc;
  }
  c->rt = rt;
  c->timeout_ms =
      timeout < 0
          ? 0
          : corio_seconds_to_ms(timeout == 0 ? CORIO_REDIS_TIMEOUT : timeout);
  corio__queue_init(&c->later);
  corio__queue_init(&c->parked);
  uv_timer_init(rt->loop, &c->tick);
  uv_timer_init(rt->loop, &c->deadline);
  c->tick.data = c->deadline.data = c;
  corio__opened(rt);
  corio__opened(rt);
  c->nhandles = 2;
  corio__queue_insert_tail(&home->clients, &c->node);
  *out = c;
  return 0;
}

int corio_redis_command(corio_redis *c, int argc, const char *const *argv,
                        const size_t *argvlen, corio_redis_cb cb, void *ud,
                        corio_redis_cmd **out) {
  corio_redis_cmd *cmd;
  int i, rc = 0;
  if (c == NULL || argc < 1 || argv == NULL || cb == NULL) return CORIO_EINVAL;
  for (i = 0; i < argc; i++)
    if (argv[i] == NULL) return CORIO_EINVAL;
  if (c->closed) return CORIO_ECLOSED;
  cmd = corio__calloc(1, sizeof *cmd);
  if (cmd == NULL) return CORIO_ENOMEM;
  cmd->c = c;
  cmd->cb = cb;
  cmd->ud = ud;
  corio__queue_init(&cmd->lnode);
  if (c->ac == NULL && c->lookup == NULL) rc = conn_start(c);
  if (rc == 0 && c->lookup != NULL) {
    rc = park(cmd, argc, argv, argvlen);
  } else if (rc == 0 &&
             redisAsyncCommandArgv(c->ac, on_reply, cmd, argc,
                                   (const char **)argv, argvlen) != REDIS_OK) {
    /* hiredis refuses only when out of memory, or on a context that is
       being torn down */
    rc = (c->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))
             ? CORIO_ERESET
             : CORIO_ENOMEM;
  } else if (rc == 0) {
    cmd->in_hiredis = 1;
    c->stats.commands++;
  }
  if (rc == CORIO_ENOMEM) {
    corio__free(cmd);
    return rc;
  }
  c->stats.pending++;
  if (out != NULL) *out = cmd;
  if (rc != 0) {
    later(cmd, rc); /* told at the next turn, as a failure on the loop */
    return 0;
  }
  hold(c);
  return 0;
}

int corio_redis_cancel(corio_redis_cmd *cmd) {
  if (cmd == NULL) return CORIO_EINVAL;
  if (cmd->done) return CORIO_ESTATE;
  if (cmd->parked) unpark(cmd); /* never sent */
  later(cmd, CORIO_ECANCELED);
  return 0;
}

static void on_handle_closed(uv_handle_t *h) {
  corio_redis *c = h->data;
  corio__closed(c->rt);
  if (--c->nhandles > 0) return;
  /* hiredis is done with c: deliver what is queued, then free */
  drain(c);
  client_free(c);
}

void corio_redis_close(corio_redis *c) {
  if (c == NULL || c->closed) return;
  c->closed = 1;
  snprintf(c->errmsg, sizeof c->errmsg, "the client is closed");
  lookup_drop(c, CORIO_ECLOSED);
  conn_drop(c, CORIO_ECLOSED);
  corio__queue_remove(&c->node);
  uv_timer_stop(&c->tick);
  corio__closing(c->rt);
  uv_close((uv_handle_t *)&c->tick, on_handle_closed);
  corio__closing(c->rt);
  uv_close((uv_handle_t *)&c->deadline, on_handle_closed);
}

/*
** corio_rt_free: close the clients still open and run the loop until
** their handles are closed (their callbacks run with CORIO_ECLOSED).
*/
static void redis_shutdown(corio_rt *rt) {
  corio__redis_home *home = home_of(rt);
  if (home == NULL) return;
  while (!corio__queue_empty(&home->clients))
    corio_redis_close(corio__queue_data(corio__queue_head(&home->clients),
                                        corio_redis, node));
  rt->part[CORIO__PART_REDIS].state = NULL;
  corio__free(home);
}

const char *corio_redis_last_error(const corio_redis *c) {
  return c->errmsg;
}

corio_redis *corio_redis_cmd_client(const corio_redis_cmd *cmd) {
  return cmd->c;
}

void *corio_redis_cmd_get_data(const corio_redis_cmd *cmd) {
  return cmd->ud;
}

void corio_redis_cmd_set_data(corio_redis_cmd *cmd, void *data) {
  cmd->ud = data;
}

void *corio_redis_get_data(const corio_redis *c) {
  return c->data;
}

void corio_redis_set_data(corio_redis *c, void *data) {
  c->data = data;
}

void corio_redis_get_stats(const corio_redis *c, corio_redis_stats *out) {
  *out = c->stats;
  out->connected = c->ac != NULL && c->up;
}

/* }================================================================== */

/*
** {==================================================================
** Replies: a corio_redis_reply is hiredis' redisReply
** ===================================================================
*/

#define R(r) ((const redisReply *)(r))

corio_redis_type corio_redis_reply_type(const corio_redis_reply *r) {
  switch (R(r)->type) {
  case REDIS_REPLY_STRING:
    return CORIO_REDIS_STRING;
  case REDIS_REPLY_STATUS:
    return CORIO_REDIS_STATUS;
  case REDIS_REPLY_INTEGER:
    return CORIO_REDIS_INTEGER;
  case REDIS_REPLY_ARRAY:
    return CORIO_REDIS_ARRAY;
  case REDIS_REPLY_ERROR:
    return CORIO_REDIS_ERROR;
  default:
    return CORIO_REDIS_NIL;
  }
}

const char *corio_redis_reply_str(const corio_redis_reply *r, size_t *len) {
  int t = R(r)->type;
  if (t != REDIS_REPLY_STRING && t != REDIS_REPLY_STATUS &&
      t != REDIS_REPLY_ERROR) {
    if (len != NULL) *len = 0;
    return NULL;
  }
  if (len != NULL) *len = R(r)->len;
  return R(r)->str;
}

long long corio_redis_reply_integer(const corio_redis_reply *r) {
  return R(r)->type == REDIS_REPLY_INTEGER ? R(r)->integer : 0;
}

size_t corio_redis_reply_len(const corio_redis_reply *r) {
  return R(r)->type == REDIS_REPLY_ARRAY ? R(r)->elements : 0;
}

const corio_redis_reply *corio_redis_reply_at(const corio_redis_reply *r,
                                              size_t i) {
  if (R(r)->type != REDIS_REPLY_ARRAY || i >= R(r)->elements) return NULL;
  return (const corio_redis_reply *)R(r)->element[i];
}

/* }================================================================== */
