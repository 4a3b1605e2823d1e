/*
** fetch_multi.c: libcurl's multi_socket API driven by the runtime's libuv
** loop (the shape of curl's docs/examples/multi-uv.c), sessions, and
** cancellation.
**
** Each session owns one CURLM and one uv_timer_t; each socket libcurl asks
** us to watch gets one uv_poll_t (a corio__fsock, curl_multi_assign'ed),
** started again only when the events change.  The rules of
** RELIABILITY.md:
** - libcurl's callbacks (socket, timer, write, header) only record state:
**   no curl_multi_* call and no user callback ever runs inside them.
** - curl_multi_socket_action runs from uv callbacks only, and every call is
**   followed by check_multi_info, which removes finished handles and runs
**   the completion callbacks.
** - A poll handle is stopped and uv_close'd on CURL_POLL_REMOVE and freed in
**   its close callback.  An fd table finds a context left on an fd number
**   libcurl closed without telling us, which is closed before the number is
**   watched again.
** - Cancellation removes the handle at once (legal outside callbacks; the
**   connection and its socket go away) and queues the callback, run by an
**   idle handle at the next turn.
*/
#include <string.h>

#include "internal.h"

#define POOL_MAX 256 /* idle transfer objects kept for reuse */

static void check_multi_info(corio_session *s);

/*
** {==================================================================
** Sockets
** ===================================================================
*/

static void on_sock_closed(uv_handle_t *h) {
  corio__fsock *k = corio__container_of(h, corio__fsock, poll);
  corio_rt *rt = k->rt;
  corio__free(k);
  corio__closed(rt);
}

static void sock_close(corio__fetcher *ft, corio__fsock *k) {
  if (k->fd >= 0 && (size_t)k->fd < ft->nfds && ft->fds[k->fd] == k)
    ft->fds[k->fd] = NULL;
  ft->nsockets--;
  uv_poll_stop(&k->poll);
  corio__closing(k->rt);
  uv_close((uv_handle_t *)&k->poll, on_sock_closed);
}

static int fd_slot(corio__fetcher *ft, curl_socket_t fd) {
  if ((size_t)fd >= ft->nfds) {
    size_t n = ft->nfds ? ft->nfds : 64;
    corio__fsock **p;
    while (n <= (size_t)fd) n *= 2;
    p = corio__realloc(ft->fds, n * sizeof *p);
    if (p == NULL) return CORIO_ENOMEM;
    memset(p + ft->nfds, 0, (n - ft->nfds) * sizeof *p);
    ft->fds = p;
    ft->nfds = n;
  }
  return 0;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  corio__fsock *k = corio__container_of(h, corio__fsock, poll);
  corio_session *s = k->session;
  int flags = 0, running;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  (void)curl_multi_socket_action(s->multi, k->fd, flags, &running);
  check_multi_info(s); /* k may be closing now; s is alive */
}

/* CURLMOPT_SOCKETFUNCTION */
static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp,
                          void *socketp) {
  corio_session *s = userp;
  corio__fetcher *ft = s->fetcher;
  corio__fsock *k = socketp;
  int events;
  (void)e;
  if (what == CURL_POLL_REMOVE) {
    if (k != NULL) sock_close(ft, k);
    return 0;
  }
  if (k == NULL) {
    if (fd < 0 || fd_slot(ft, fd) != 0) return 0;
    /* a context still on this fd number: libcurl closed that socket
       without a CURL_POLL_REMOVE; stop watching the old one first */
    if (ft->fds[fd] != NULL) sock_close(ft, ft->fds[fd]);
    k = corio__malloc(sizeof *k);
    if (k == NULL) return 0; /* the transfer will time out */
    if (uv_poll_init_socket(s->rt->loop, &k->poll, fd) != 0) {
      corio__free(k);
      return 0;
    }
    k->rt = s->rt;
    k->session = s;
    k->fd = fd;
    k->events = 0;
    ft->fds[fd] = k;
    ft->nsockets++;
    (void)curl_multi_assign(s->multi, fd, k);
  }
  events = ((what & CURL_POLL_IN) ? UV_READABLE : 0) |
           ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
  if (events != k->events) { /* no churn: only real changes reach libuv */
    k->events = events;
    if (events != 0)
      uv_poll_start(&k->poll, events, on_poll);
    else
      uv_poll_stop(&k->poll);
  }
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** The session timer
** ===================================================================
*/

static void on_timeout(uv_timer_t *t) {
  corio_session *s = corio__container_of(t, corio_session, timer);
  int running;
  s->in_timeout = 1;
  (void)curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  s->in_timeout = 0;
  check_multi_info(s);
}

/*
** CURLMOPT_TIMERFUNCTION: -1 stops the timer; any other value replaces the
** deadline.  0 becomes a 0 ms uv timer (socket_action never runs here),
** except when asked from inside on_timeout: libuv 1.44 would run a timer
** re-armed with 0 again in the same pass, without polling, so that one
** waits 1 ms.
*/
static int on_curl_timer(CURLM *m, long ms, void *userp) {
  corio_session *s = userp;
  (void)m;
  if (uv_is_closing((uv_handle_t *)&s->timer)) return 0;
  if (ms < 0) {
    uv_timer_stop(&s->timer);
  } else {
    if (ms == 0 && s->in_timeout) ms = 1;
    uv_timer_start(&s->timer, on_timeout, (uint64_t)ms, 0);
  }
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** Transfers: pool, active list, pending queue
** ===================================================================
*/

static void pool_put(corio__fetcher *ft, corio_fetch *f) {
  if (ft->npool >= POOL_MAX || ft->closing) {
    corio__fetch_obj_free(f);
    return;
  }
  corio__fetch_obj_recycle(f);
  f->next = ft->pool;
  ft->pool = f;
  ft->npool++;
}

static corio_fetch *pool_get(corio__fetcher *ft) {
  corio_fetch *f = ft->pool;
  if (f != NULL) {
    ft->pool = f->next;
    ft->npool--;
    f->next = NULL;
  } else {
    f = corio__fetch_obj_new();
    if (f == NULL) return NULL;
    if (ft->share != NULL) curl_easy_setopt(f->easy, CURLOPT_SHARE, ft->share);
  }
  f->fetcher = ft;
  return f;
}

static void active_unlink(corio_fetch *f) {
  corio_session *s = f->session;
  if (f->prev != NULL)
    f->prev->next = f->next;
  else
    s->active = f->next;
  if (f->next != NULL) f->next->prev = f->prev;
  f->prev = f->next = NULL;
  s->nactive--;
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

static void on_idle(uv_idle_t *h) {
  corio__fetcher *ft = corio__container_of(h, corio__fetcher, idle);
  corio_fetch *f = ft->pend_head;
  /* this turn's queue only: callbacks that cancel more wait a turn */
  ft->pend_head = ft->pend_tail = NULL;
  uv_idle_stop(&ft->idle);
  while (f != NULL) {
    corio_fetch *next = f->next;
    f->next = NULL;
    deliver(f, CORIO_ECANCELED, CURLE_OK);
    f = next;
  }
}

/*
** Take an active transfer out of its multi and queue its callback with
** CORIO_ECANCELED.  QUICK_EXIT keeps curl_multi_remove_handle from
** waiting for a threaded getaddrinfo still running (the thread finishes on
** its own).
*/
static void cancel_active(corio_fetch *f) {
  corio__fetcher *ft = f->fetcher;
  corio_session *s = f->session;
  active_unlink(f);
  (void)curl_easy_setopt(f->easy, CURLOPT_QUICK_EXIT, 1L);
  (void)curl_multi_remove_handle(s->multi, f->easy);
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
** Remove every finished transfer and run its callback.  Callbacks may
** start, cancel or free anything, this session included: its destruction
** waits until the loop is over (depth).
*/
static void check_multi_info(corio_session *s) {
  CURLMsg *msg;
  int left;
  s->depth++;
  while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
    CURL *e = msg->easy_handle;
    CURLcode code = msg->data.result;
    corio_fetch *f = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    (void)curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&f);
    (void)curl_multi_remove_handle(s->multi, e); /* msg is gone now */
    if (f == NULL || f->state != CORIO__F_ACTIVE) continue;
    active_unlink(f);
    deliver(f, corio__fetch_code(f, code), code);
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

static void on_session_closed(uv_handle_t *h) {
  corio_session *s = corio__container_of(h, corio_session, timer);
  corio_rt *rt = s->rt;
  corio__free(s);
  corio__closed(rt);
}

/* The session has no transfer left: close its connections and handles. */
static void session_destroy(corio_session *s) {
  corio__fetcher *ft = s->fetcher;
  size_t i;
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    ft->sessions = s->next;
  if (s->next != NULL) s->next->prev = s->prev;
  ft->nsessions--;
  if (ft->dflt == s) ft->dflt = NULL;
  /* closes the cached connections; CURL_POLL_REMOVE may come from here */
  (void)curl_multi_cleanup(s->multi);
  s->multi = NULL;
  for (i = 0; i < ft->nfds; i++)
    if (ft->fds[i] != NULL && ft->fds[i]->session == s)
      sock_close(ft, ft->fds[i]);
  uv_timer_stop(&s->timer);
  corio__closing(s->rt);
  uv_close((uv_handle_t *)&s->timer, on_session_closed);
}

static void session_cancel_all(corio_session *s) {
  while (s->active != NULL) cancel_active(s->active);
}

static corio_session *session_make(corio__fetcher *ft,
                                   const corio_session_opts *o) {
  corio_session *s = corio__calloc(1, sizeof *s);
  CURLM *m;
  if (s == NULL) return NULL;
  m = curl_multi_init();
  if (m == NULL) {
    corio__free(s);
    return NULL;
  }
  s->fetcher = ft;
  s->rt = ft->rt;
  s->multi = m;
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, (void *)s);
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, (void *)s);
  curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  if (o != NULL) {
    if (o->max_connections > 0)
      curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                        (long)(o->max_connections > INT32_MAX
                                   ? INT32_MAX
                                   : o->max_connections));
    if (o->max_per_host > 0)
      curl_multi_setopt(
          m, CURLMOPT_MAX_HOST_CONNECTIONS,
          (long)(o->max_per_host > INT32_MAX ? INT32_MAX : o->max_per_host));
    if (o->max_idle > 0)
      curl_multi_setopt(
          m, CURLMOPT_MAXCONNECTS,
          (long)(o->max_idle > INT32_MAX ? INT32_MAX : o->max_idle));
  }
  uv_timer_init(ft->rt->loop, &s->timer);
  s->next = ft->sessions;
  if (ft->sessions != NULL) ft->sessions->prev = s;
  ft->sessions = s;
  ft->nsessions++;
  return s;
}

static corio__fetcher *fetcher_get(corio_rt *rt) {
  corio__fetcher *ft = rt->fetcher;
  if (ft != NULL) return ft;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
  ft = corio__calloc(1, sizeof *ft);
  if (ft == NULL) goto fail;
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
  rt->fetcher = ft;
  return ft;
fail:
  if (ft != NULL) corio__free(ft);
  curl_global_cleanup();
  return NULL;
}

static corio_session *default_session(corio__fetcher *ft) {
  if (ft->dflt == NULL) {
    corio_session_opts o;
    memset(&o, 0, sizeof o);
    o.max_connections = CORIO_FETCH_DEFAULT_MAX_CONNECTIONS;
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
    s->destroy_pending = 1; /* check_multi_info finishes it */
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
  r = corio__fetch_check(req, ft->urlh);
  if (r != 0) return r;
  f = pool_get(ft);
  if (f == NULL) return CORIO_ENOMEM;
  r = corio__fetch_setup(f, req);
  if (r == 0 && curl_multi_add_handle(s->multi, f->easy) != CURLM_OK)
    r = CORIO_ENOMEM;
  if (r != 0) {
    pool_put(ft, f);
    return r;
  }
  f->session = s;
  f->cb = cb;
  f->ud = ud;
  f->state = CORIO__F_ACTIVE;
  f->prev = NULL;
  f->next = s->active;
  if (s->active != NULL) s->active->prev = f;
  s->active = f;
  s->nactive++;
  ft->nactive++;
  if (out != NULL) *out = f;
  return 0;
}

int corio_fetch_cancel(corio_fetch *f) {
  if (f == NULL) return CORIO_EINVAL;
  if (f->state != CORIO__F_ACTIVE) return CORIO_ESTATE;
  cancel_active(f);
  return 0;
}

void *corio_fetch_get_data(const corio_fetch *f) {
  return f->ud;
}

void corio_fetch_set_data(corio_fetch *f, void *data) {
  f->ud = data;
}

void corio_fetch_get_stats(const corio_rt *rt, corio_fetch_stats *out) {
  const corio__fetcher *ft = rt->fetcher;
  memset(out, 0, sizeof *out);
  if (ft == NULL) return;
  out->active = ft->nactive;
  out->sockets = ft->nsockets;
  out->sessions = ft->nsessions;
  out->pooled = ft->npool;
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
void corio__fetch_shutdown(corio_rt *rt) {
  corio__fetcher *ft = rt->fetcher;
  corio_session *s;
  size_t i;
  if (ft == NULL) return;
  ft->closing = 1;
  for (;;) {
    for (s = ft->sessions; s != NULL; s = s->next) session_cancel_all(s);
    if (ft->pend_head == NULL) break;
    on_idle(&ft->idle);
  }
  while (ft->sessions != NULL) session_destroy(ft->sessions);
  while (ft->pool != NULL) {
    corio_fetch *f = ft->pool;
    ft->pool = f->next;
    corio__fetch_obj_free(f);
  }
  ft->npool = 0;
  for (i = 0; i < ft->nfds; i++)
    if (ft->fds[i] != NULL) sock_close(ft, ft->fds[i]);
  corio__free(ft->fds);
  ft->fds = NULL;
  ft->nfds = 0;
  if (ft->share != NULL) curl_share_cleanup(ft->share);
  curl_url_cleanup(ft->urlh);
  rt->fetcher = NULL;
  uv_idle_stop(&ft->idle);
  corio__closing(rt);
  uv_close((uv_handle_t *)&ft->idle, on_fetcher_closed);
  curl_global_cleanup();
}

/* }================================================================== */
