/*
** fetch_multi.c: libcurl's multi_socket API driven by the runtime's libuv
** loop (the shape of curl's docs/examples/multi-uv.c), sessions, and
** cancellation.
**
** Each session owns one or more shards, each a CURLM with its uv_timer_t
** (fetch.h says why there can be several); the sockets libcurl asks us
** to watch are fetch_sock.c's.  The rules (docs/reliability.md, rules 1,
** 2 and 5):
** - libcurl's callbacks (socket, timer, write, header) only record state:
**   no curl_multi_* call and no user callback ever runs inside them.
** - curl_multi_socket_action runs from uv callbacks only, and every call is
**   followed by corio__shard_check, which removes finished handles and
**   runs the completion callbacks.
** - Cancellation removes the handle at once (legal outside callbacks; the
**   connection and its socket go away) and queues the callback, run by an
**   idle handle at the next turn.
*/
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "fetch.h"

#define POOL_MAX 256 /* idle transfer objects kept for reuse */

/*
** {==================================================================
** The session timer
** ===================================================================
*/

static void on_timeout(uv_timer_t *t) {
  corio__shard *sh = corio__container_of(t, corio__shard, timer);
  sh->in_timeout = 1;
  corio__shard_action(sh, CURL_SOCKET_TIMEOUT, 0);
  sh->in_timeout = 0;
  corio__shard_check(sh);
}

/*
** CURLMOPT_TIMERFUNCTION: -1 stops the timer; any other value replaces the
** deadline.  0 becomes a 0 ms uv timer (socket_action never runs here),
** except when asked from inside on_timeout: libuv 1.44 would run a timer
** re-armed with 0 again in the same pass, without polling, so that one
** waits 1 ms.
*/
static int on_curl_timer(CURLM *m, long ms, void *userp) {
  corio__shard *sh = userp;
  (void)m;
  if (uv_is_closing((uv_handle_t *)&sh->timer)) return 0;
  if (ms < 0) {
    uv_timer_stop(&sh->timer);
  } else {
    if (ms == 0 && sh->in_timeout) ms = 1;
    uv_timer_start(&sh->timer, on_timeout, (uint64_t)ms, 0);
  }
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** Transfers: pool, active list, pending queue
** ===================================================================
*/

/*
** A pooled object keeps a body buffer of up to CORIO__KEEP_BODY bytes, and
** a bigger one while the pool's big buffers stay within
** corio_set_body_pool's bytes: freeing and mallocing a 100 KiB buffer per
** response made glibc give the pages back and fault them in again (a page
** fault per 4 KiB received).
*/
static void pool_put(corio__fetcher *ft, corio_fetch *f) {
  size_t keep = CORIO__KEEP_BODY;
  if (ft->npool >= POOL_MAX || ft->closing) {
    corio__fetch_obj_free(f);
    return;
  }
  if (f->body.cap > keep && ft->pool_big <= corio__body_pool_bytes &&
      f->body.cap <= corio__body_pool_bytes - ft->pool_big)
    keep = f->body.cap;
  corio__fetch_obj_recycle(f, keep);
  f->pool_big = f->body.cap > CORIO__KEEP_BODY ? f->body.cap : 0;
  ft->pool_big += f->pool_big;
  f->next = ft->pool;
  ft->pool = f;
  ft->npool++;
}

/* A pooled object with a new easy handle (corio__fetch_obj_recycle says
   why it is new), or a new object. */
static corio_fetch *pool_get(corio__fetcher *ft) {
  corio_fetch *f = ft->pool;
  if (f != NULL) {
    ft->pool = f->next;
    ft->npool--;
    ft->pool_big -= f->pool_big;
    f->pool_big = 0;
    f->next = NULL;
    if (corio__fetch_obj_easy(f) != 0) {
      corio__fetch_obj_free(f);
      return NULL;
    }
  } else {
    f = corio__fetch_obj_new();
    if (f == NULL) return NULL;
  }
  if (ft->share != NULL) curl_easy_setopt(f->easy, CURLOPT_SHARE, ft->share);
  f->fetcher = ft;
  return f;
}

static void queue_leave(corio_fetch *f);

static void active_link(corio_fetch *f) {
  corio_session *s = f->session;
  f->prev = NULL;
  f->next = s->active;
  if (s->active != NULL) s->active->prev = f;
  s->active = f;
  s->nactive++;
  f->shard->nactive++;
  f->fetcher->nactive++;
}

static void active_unlink(corio_fetch *f) {
  corio_session *s = f->session;
  queue_leave(f);
  if (f->prev != NULL)
    f->prev->next = f->next;
  else
    s->active = f->next;
  if (f->next != NULL) f->next->prev = f->prev;
  f->prev = f->next = NULL;
  s->nactive--;
  f->shard->nactive--;
  f->fetcher->nactive--;
}

/* Run the callback of a transfer that left its multi, then pool it. */
static void deliver(corio_fetch *f, int status, CURLcode code) {
  corio__fetcher *ft = f->fetcher;
  corio__fetch_finish(f, status, code);
  f->state = CORIO__F_CALLBACK;
  f->cb(f, status, &f->res, f->ud);
  pool_put(ft, f);
}

/* }================================================================== */

/*
** {==================================================================
** Admission: into libcurl a few hundred at a time
** ===================================================================
*/

/*
** libcurl starts every transfer added to a multi in the multi's next
** socket_action, and a connecting transfer holds a small block that it
** frees once connected.  10,000 transfers started in one turn had 10,000
** of those at once, left as holes between live blocks after, a large part
** of a burst's peak.  So at most ADMIT_MAX transfers are added and not
** started yet; the others wait in the fetcher's queue, in order, and the
** idle handle adds more each turn as libcurl starts the added ones (the
** next ones reuse the blocks the last ones freed, and those of the
** request being written).  A few hundred at a time lower a burst's peak
** for a little more total time, since the last transfers start later
** (bench/NOTES.md, "Admission").  A few hundred transfers at once never
** wait.
*/
#define ADMIT_MAX 256

static void on_idle(uv_idle_t *h);

/* Take an active transfer out of the wait queue or its shard's fresh
   list. */
static void queue_leave(corio_fetch *f) {
  corio__fetcher *ft = f->fetcher;
  int waiting = f->stage == CORIO__Q_WAIT;
  if (f->stage == CORIO__Q_NONE) return;
  if (f->qnext != NULL)
    f->qnext->qprev = f->qprev;
  else if (waiting)
    ft->wait_tail = f->qprev;
  if (f->qprev != NULL)
    f->qprev->qnext = f->qnext;
  else if (waiting)
    ft->wait_head = f->qnext;
  else
    f->shard->fresh = f->qnext;
  if (waiting)
    ft->nwait--;
  else
    ft->nfresh--;
  f->qprev = f->qnext = NULL;
  f->stage = CORIO__Q_NONE;
}

static void wait_push(corio__fetcher *ft, corio_fetch *f) {
  f->stage = CORIO__Q_WAIT;
  f->qnext = NULL;
  f->qprev = ft->wait_tail;
  if (ft->wait_tail != NULL)
    ft->wait_tail->qnext = f;
  else
    ft->wait_head = f;
  ft->wait_tail = f;
  ft->nwait++;
  uv_idle_start(&ft->idle, on_idle);
}

/*
** Whether a transfer may skip libcurl's search for a connection to reuse
** (CURLOPT_FRESH_CONNECT).  That search walks every connection to the
** host, the busy ones too: with 10,000 transfers in flight to one host,
** starting 10,000 more cost 50 million steps.  Skipping it changes nothing
** when the session has no idle connection (no parked socket), the
** transfer cannot share a busy one (HTTP/1: plain http, or a 1.x version
** asked for), and no limit can make it wait for a connection (a transfer
** queued with FRESH_CONNECT would later close an idle connection rather
** than take it).  The shard's count includes the transfer.
*/
static int may_skip_reuse(const corio_fetch *f) {
  const corio_session *s = f->session;
  const corio__shard *sh = f->shard;
  size_t cap = s->max_connections;
  if (s->shardable) cap /= CORIO__SHARDS_MAX; /* the shard's own cap */
  return f->h1 && sh->nparked == 0 && s->max_per_host == 0 &&
         (cap == 0 || sh->nactive <= cap);
}

/* Add an active transfer to its shard's multi. */
static int admit(corio_fetch *f) {
  corio__shard *sh = f->shard;
  if (may_skip_reuse(f) &&
      curl_easy_setopt(f->easy, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK)
    return CORIO_ENOMEM;
  if (curl_multi_add_handle(sh->multi, f->easy) != CURLM_OK)
    return CORIO_ENOMEM;
  f->stage = CORIO__Q_FRESH;
  f->qprev = NULL;
  f->qnext = sh->fresh;
  if (sh->fresh != NULL) sh->fresh->qprev = f;
  sh->fresh = f;
  f->fetcher->nfresh++;
  return 0;
}

/* From the idle handle: one refused now gets its callback with the
   error. */
static void admit_waiting(corio__fetcher *ft) {
  while (ft->wait_head != NULL && ft->nfresh < ADMIT_MAX && !ft->closing) {
    corio_fetch *f = ft->wait_head;
    int r;
    queue_leave(f);
    r = admit(f);
    if (r != 0) {
      active_unlink(f);
      deliver(f, r, CURLE_OUT_OF_MEMORY);
    }
  }
}

void corio__shard_action(corio__shard *sh, curl_socket_t fd, int flags) {
  int running;
  while (sh->fresh != NULL) { /* libcurl starts them now */
    corio_fetch *f = sh->fresh;
    queue_leave(f);
    corio__fetch_pick_buffer(f);
  }
  (void)curl_multi_socket_action(sh->multi, fd, flags, &running);
}

/* Queued callbacks of cancelled transfers, then admission. */
static void on_idle(uv_idle_t *h) {
  corio__fetcher *ft = corio__container_of(h, corio__fetcher, idle);
  corio_fetch *f = ft->pend_head;
  /* this turn's queue only: callbacks that cancel more wait a turn */
  ft->pend_head = ft->pend_tail = NULL;
  while (f != NULL) {
    corio_fetch *next = f->next;
    f->next = NULL;
    deliver(f, CORIO_ECANCELED, CURLE_OK);
    f = next;
  }
  admit_waiting(ft);
  if (ft->pend_head == NULL && ft->wait_head == NULL) uv_idle_stop(&ft->idle);
}

/* }================================================================== */

/*
** {==================================================================
** Cancellation and completion
** ===================================================================
*/

/* Take a transfer that libcurl may still be connecting out of its multi. */
static void remove_started(corio_fetch *f) {
  (void)curl_multi_remove_handle(f->shard->multi, f->easy);
  corio__fsock_forget_closed(f);
}

/*
** Take an active transfer out of its multi and queue its callback with
** CORIO_ECANCELED (QUICK_EXIT, set for every transfer, keeps
** curl_multi_remove_handle from waiting for a getaddrinfo still running).
*/
static void cancel_active(corio_fetch *f) {
  corio__fetcher *ft = f->fetcher;
  int added = f->stage != CORIO__Q_WAIT;
  active_unlink(f);
  if (added) remove_started(f);
  if (f->body_alloc != NULL) corio__fetch_body_free(f); /* see corio.h */
  f->state = CORIO__F_PENDING;
  f->next = NULL;
  if (ft->pend_tail != NULL)
    ft->pend_tail->next = f;
  else
    ft->pend_head = f;
  ft->pend_tail = f;
  if (!ft->closing) uv_idle_start(&ft->idle, on_idle);
}

static void session_destroy(corio_session *s);

/*
** The first doomed transfer of the shard: our socket callback could not
** watch its socket (out of memory).  Without a poll it would crawl on
** libcurl's timer; it fails now instead.  Rare: a walk is fine.
*/
static corio_fetch *find_doomed(corio__shard *sh) {
  corio_fetch *f;
  for (f = sh->session->active; f != NULL; f = f->next)
    if (f->shard == sh && f->err == CORIO_ENOMEM) return f;
  sh->doomed = 0;
  return NULL;
}

/*
** Remove every finished transfer of the shard and run its callback.
** Callbacks may start, cancel or free anything, the session included: its
** destruction waits until the loop is over (depth), and the shard's memory
** lives until its timer's close callback.
*/
void corio__shard_check(corio__shard *sh) {
  corio_session *s = sh->session;
  corio_fetch *f;
  CURLMsg *msg;
  int left;
  s->depth++;
  while (sh->multi != NULL &&
         (msg = curl_multi_info_read(sh->multi, &left)) != NULL) {
    CURL *e = msg->easy_handle;
    CURLcode code = msg->data.result;
    f = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    (void)curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&f);
    (void)curl_multi_remove_handle(sh->multi, e); /* msg is gone now */
    if (f == NULL || f->state != CORIO__F_ACTIVE) continue;
    active_unlink(f);
    deliver(f, corio__fetch_code(f, code), code);
  }
  while (sh->doomed && sh->multi != NULL && (f = find_doomed(sh)) != NULL) {
    active_unlink(f);
    remove_started(f); /* its socket was being connected */
    deliver(f, CORIO_ENOMEM, CURLE_OK);
  }
  s->depth--;
  if (s->depth == 0 && s->destroy_pending) session_destroy(s);
}

/* }================================================================== */

/*
** {==================================================================
** Fetcher and sessions
** ===================================================================
*/

/* A shard's timer closed; the last one frees the session. */
static void on_shard_closed(uv_handle_t *h) {
  corio__shard *sh = corio__container_of(h, corio__shard, timer);
  corio_session *s = sh->session;
  corio_rt *rt = s->rt;
  corio__free(sh);
  if (--s->nopen == 0) corio__free(s);
  corio__closed(rt);
}

static corio_session *session_of(corio__queue *q) {
  return corio__queue_data(q, corio_session, node);
}

/* The session has no transfer left: close its connections and handles. */
static void session_destroy(corio_session *s) {
  corio__fetcher *ft = s->fetcher;
  size_t i;
  int j;
  corio__queue_remove(&s->node);
  ft->nsessions--;
  if (ft->dflt == s) ft->dflt = NULL;
  for (j = 0; j < s->nshards; j++) {
    corio__shard *sh = s->shards[j];
    /* closes the cached connections; CURL_POLL_REMOVE may come from here */
    (void)curl_multi_cleanup(sh->multi);
    sh->multi = NULL;
  }
  for (i = 0; i < ft->nfds; i++)
    if (ft->fds[i].k != NULL && ft->fds[i].k->shard->session == s)
      corio__fsock_close(ft, ft->fds[i].k);
  for (j = 0; j < s->nshards; j++) {
    corio__shard *sh = s->shards[j];
    uv_timer_stop(&sh->timer);
    corio__closing(s->rt);
    uv_close((uv_handle_t *)&sh->timer, on_shard_closed);
  }
}

static void session_cancel_all(corio_session *s) {
  while (s->active != NULL) cancel_active(s->active);
}

static long clamp_long(size_t v) {
  return (long)(v > INT32_MAX ? INT32_MAX : v);
}

/*
** Add a shard (a multi and its timer) to the session.  The limits of a
** sharded session are divided among CORIO__SHARDS_MAX shards, each share at
** least CORIO__SHARD_SPILL (session_make checks): the shards together
** stay within them.
*/
static corio__shard *shard_add(corio_session *s) {
  corio__shard *sh;
  int div = s->shardable ? CORIO__SHARDS_MAX : 1;
  if (s->nshards >= CORIO__SHARDS_MAX) return NULL;
  sh = corio__calloc(1, sizeof *sh);
  if (sh == NULL) return NULL;
  sh->multi = curl_multi_init();
  if (sh->multi == NULL) {
    corio__free(sh);
    return NULL;
  }
  sh->session = s;
  curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, corio__fsock_curl_cb);
  curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, (void *)sh);
  curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, (void *)sh);
  curl_multi_setopt(sh->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  if (s->max_connections > 0)
    curl_multi_setopt(sh->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      clamp_long(s->max_connections / (size_t)div));
  if (s->max_per_host > 0)
    curl_multi_setopt(sh->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      clamp_long(s->max_per_host));
  if (s->max_idle > 0)
    curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS,
                      clamp_long(s->max_idle / (size_t)div));
  uv_timer_init(s->rt->loop, &sh->timer);
  corio__opened(s->rt);
  s->shards[s->nshards++] = sh;
  s->nopen++;
  return sh;
}

/*
** The shard a new transfer goes to.  One that holds an idle connection
** first (keep-alive reuse), then the first with room under
** CORIO__SHARD_SPILL, then a new shard, then the least busy.  A session of
** fewer concurrent transfers than the spill never leaves shard 0.
*/
static corio__shard *shard_pick(corio_session *s) {
  corio__shard *best = s->shards[0], *sh;
  int i;
  for (i = 0; i < s->nshards; i++) {
    sh = s->shards[i];
    if (sh->nparked > 0 && sh->nactive < CORIO__SHARD_SPILL) return sh;
  }
  if (!s->shardable) return best;
  for (i = 0; i < s->nshards; i++)
    if (s->shards[i]->nactive < CORIO__SHARD_SPILL) return s->shards[i];
  sh = shard_add(s);
  if (sh != NULL) return sh;
  for (i = 1; i < s->nshards; i++)
    if (s->shards[i]->nactive < best->nactive) best = s->shards[i];
  return best;
}

static corio_session *session_make(corio__fetcher *ft,
                                   const corio_session_opts *o) {
  corio_session *s = corio__calloc(1, sizeof *s);
  const size_t even = (size_t)CORIO__SHARDS_MAX * CORIO__SHARD_SPILL;
  if (s == NULL) return NULL;
  s->fetcher = ft;
  s->rt = ft->rt;
  if (o != NULL) {
    s->max_connections = o->max_connections;
    s->max_per_host = o->max_per_host;
    s->max_idle = o->max_idle;
  }
  /* a per-host cap cannot be divided among shards (one host may use any
     of them); the other limits can if each share keeps a full spill */
  s->shardable = s->max_per_host == 0 &&
                 (s->max_connections == 0 || s->max_connections >= even) &&
                 (s->max_idle == 0 || s->max_idle >= even);
  if (shard_add(s) == NULL) {
    corio__free(s);
    return NULL;
  }
  corio__queue_insert_head(&ft->sessions, &s->node);
  ft->nsessions++;
  return s;
}

static void fetch_shutdown(corio_rt *rt);

static corio__fetcher *fetcher_get(corio_rt *rt) {
  corio__fetcher *ft = rt->part[CORIO__PART_FETCH].state;
  if (ft != NULL) return ft;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
  ft = corio__calloc(1, sizeof *ft);
  if (ft == NULL) goto fail;
  corio__queue_init(&ft->sessions);
  ft->rt = rt;
  ft->urlh = curl_url();
  if (ft->urlh == NULL) goto fail;
  /* one DNS and TLS session cache for every session of the runtime; no
     lock functions: everything happens on the loop thread */
  ft->share = curl_share_init();
  if (ft->share != NULL) {
    curl_share_setopt(ft->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(ft->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  uv_idle_init(rt->loop, &ft->idle);
  corio__opened(rt);
  rt->part[CORIO__PART_FETCH].state = ft;
  rt->part[CORIO__PART_FETCH].shutdown = fetch_shutdown;
  return ft;
fail:
  if (ft != NULL) corio__free(ft);
  curl_global_cleanup();
  return NULL;
}

static corio_session *default_session(corio__fetcher *ft) {
  if (ft->dflt == NULL) {
    corio_session_opts o;
    struct rlimit lim;
    memset(&o, 0, sizeof o);
    o.max_connections = CORIO_FETCH_DEFAULT_MAX_CONNECTIONS;
    /* libcurl's default keeps 4 connections per transfer still in the
       multi: after a burst, as the last transfers leave, every one of
       them closed the oldest idle connection, found by walking all of
       them (bench/NOTES.md).  Idle ones cost no
       system call while parked; servers close them in their own time.
       But each holds a descriptor: at most half the process's limit, so
       that idle connections never starve new sockets, servers, files. */
    o.max_idle = CORIO_FETCH_DEFAULT_MAX_CONNECTIONS;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        lim.rlim_cur / 2 < o.max_idle)
      o.max_idle = lim.rlim_cur / 2 > 0 ? (size_t)(lim.rlim_cur / 2) : 1;
    ft->dflt = session_make(ft, &o);
    if (ft->dflt != NULL) ft->dflt->is_default = 1;
  }
  return ft->dflt;
}

corio_session *corio_session_new(corio_rt *rt, const corio_session_opts *o) {
  corio__fetcher *ft;
  if (rt == NULL) return NULL;
  ft = fetcher_get(rt);
  if (ft == NULL || ft->closing) return NULL;
  return session_make(ft, o);
}

corio_session *corio_session_default(corio_rt *rt) {
  corio__fetcher *ft;
  if (rt == NULL) return NULL;
  ft = fetcher_get(rt);
  if (ft == NULL || ft->closing) return NULL;
  return default_session(ft);
}

int corio_session_free(corio_session *s) {
  if (s == NULL) return 0;
  if (s->is_default) return CORIO_EINVAL;
  if (s->closing) return 0;
  s->closing = 1;
  session_cancel_all(s);
  if (s->depth > 0)
    s->destroy_pending = 1; /* corio__shard_check finishes it */
  else
    session_destroy(s);
  return 0;
}

void *corio_session_get_data(const corio_session *s) {
  return s->data;
}

void corio_session_set_data(corio_session *s, void *data) {
  s->data = data;
}

/* }================================================================== */

/*
** {==================================================================
** Public transfer calls
** ===================================================================
*/

/*
** corio__fetch_check, but a URL equal to the last one that parsed is not
** parsed again: that parse was a tenth of the CPU a small request costs
** (libcurl parses the URL once more when the transfer starts).
*/
static int check_request(corio__fetcher *ft, const corio_request *req) {
  size_t len;
  int r, known = req->url != NULL && ft->url_ok != NULL &&
                 strcmp(req->url, ft->url_ok) == 0;
  r = corio__fetch_check(req, known ? NULL : ft->urlh);
  if (r != 0 || known) return r;
  len = strlen(req->url) + 1;
  if (len > ft->url_ok_cap) {
    char *p = corio__realloc(ft->url_ok, len);
    if (p == NULL) return 0; /* nothing remembered: parsed again next time */
    ft->url_ok = p;
    ft->url_ok_cap = len;
  }
  memcpy(ft->url_ok, req->url, len);
  return 0;
}

int corio_fetch_start(corio_rt *rt, corio_session *s, const corio_request *req,
                      corio_fetch_cb cb, void *ud, corio_fetch **out) {
  corio__fetcher *ft;
  corio_fetch *f;
  int r;
  if (out != NULL) *out = NULL;
  if (rt == NULL || req == NULL || cb == NULL) return CORIO_EINVAL;
  ft = fetcher_get(rt);
  if (ft == NULL) return CORIO_ENOMEM;
  if (ft->closing) return CORIO_ECLOSED;
  if (s == NULL) {
    s = default_session(ft);
    if (s == NULL) return CORIO_ENOMEM;
  } else if (s->fetcher != ft) {
    return CORIO_EINVAL;
  }
  if (s->closing) return CORIO_ECLOSED;
  r = check_request(ft, req);
  if (r != 0) return r;
  f = pool_get(ft);
  if (f == NULL) return CORIO_ENOMEM;
  r = corio__fetch_setup(f, req);
  if (r != 0) {
    pool_put(ft, f);
    return r;
  }
  f->session = s;
  f->shard = shard_pick(s);
  f->cb = cb;
  f->ud = ud;
  f->h1 = req->http_version == CORIO_HTTP_1_0 ||
          req->http_version == CORIO_HTTP_1_1 ||
          (req->http_version == CORIO_HTTP_DEFAULT &&
           strncasecmp(req->url, "http:", 5) == 0);
  active_link(f);
  if (ft->nwait > 0 || ft->nfresh >= ADMIT_MAX) {
    wait_push(ft, f); /* in order, after those already waiting */
  } else {
    r = admit(f);
    if (r != 0) {
      active_unlink(f);
      pool_put(ft, f);
      return r;
    }
  }
  f->state = CORIO__F_ACTIVE;
  if (out != NULL) *out = f;
  return 0;
}

int corio_fetch_cancel(corio_fetch *f) {
  if (f == NULL) return CORIO_EINVAL;
  if (f->state != CORIO__F_ACTIVE) return CORIO_ESTATE;
  cancel_active(f);
  return 0;
}

void *corio_fetch_take_body(corio_fetch *f, size_t *size) {
  char *block;
  if (f == NULL || f->state != CORIO__F_CALLBACK || f->body_alloc == NULL ||
      f->body.p == NULL)
    return NULL;
  block = f->body.p - f->body_off;
  *size = f->body_off + f->body.cap;
  f->body.p = NULL;
  f->body.len = f->body.cap = 0;
  return block;
}

void *corio_fetch_get_data(const corio_fetch *f) {
  return f->ud;
}

void corio_fetch_set_data(corio_fetch *f, void *data) {
  f->ud = data;
}

void corio_fetch_get_stats(const corio_rt *rt, corio_fetch_stats *out) {
  const corio__fetcher *ft = rt->part[CORIO__PART_FETCH].state;
  corio__queue *q;
  memset(out, 0, sizeof *out);
  if (ft == NULL) return;
  out->active = ft->nactive;
  out->sockets = ft->nconn;
  out->watched = ft->nsockets;
  out->sessions = ft->nsessions;
  out->pooled = ft->npool;
  out->pooled_bytes = ft->pool_big;
  corio__queue_foreach(q, &ft->sessions) out->idle += session_of(q)->nparked;
}

/* }================================================================== */

/*
** {==================================================================
** Shutdown (corio_rt_free)
** ===================================================================
*/

static void on_fetcher_closed(uv_handle_t *h) {
  corio__fetcher *ft = corio__container_of(h, corio__fetcher, idle);
  corio_rt *rt = ft->rt;
  corio__free(ft);
  corio__closed(rt);
}

/*
** Every transfer still active or queued gets its callback with
** CORIO_ECANCELED, synchronously (the loop is not running); a callback may
** free sessions but cannot start transfers (CORIO_ECLOSED).  Then the
** multis are cleaned up, the leftover polls and timers closed, and the
** fetcher freed in the idle handle's close callback.
*/
static void fetch_shutdown(corio_rt *rt) {
  corio__fetcher *ft = rt->part[CORIO__PART_FETCH].state;
  corio__queue *q;
  size_t i;
  if (ft == NULL) return;
  ft->closing = 1;
  for (;;) {
    corio__queue_foreach(q, &ft->sessions) session_cancel_all(session_of(q));
    if (ft->pend_head == NULL) break;
    on_idle(&ft->idle);
  }
  while (!corio__queue_empty(&ft->sessions))
    session_destroy(session_of(corio__queue_head(&ft->sessions)));
  while (ft->pool != NULL) {
    corio_fetch *f = ft->pool;
    ft->pool = f->next;
    corio__fetch_obj_free(f);
  }
  ft->npool = 0;
  ft->pool_big = 0;
  for (i = 0; i < ft->nfds; i++)
    if (ft->fds[i].k != NULL) corio__fsock_close(ft, ft->fds[i].k);
  corio__free(ft->fds);
  ft->fds = NULL;
  ft->nfds = 0;
  if (ft->share != NULL) curl_share_cleanup(ft->share);
  curl_url_cleanup(ft->urlh);
  corio__free(ft->url_ok);
  rt->part[CORIO__PART_FETCH].state = NULL;
  uv_idle_stop(&ft->idle);
  corio__closing(rt);
  uv_close((uv_handle_t *)&ft->idle, on_fetcher_closed);
  curl_global_cleanup();
}

/* }================================================================== */
