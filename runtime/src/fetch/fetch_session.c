/*
** fetch_session.c: sessions and their shards.  A session is one or more
** shards, each a CURLM with the uv_timer_t libcurl's timer callback arms
** (fetch.h says why there can be several); a new transfer goes to the
** shard that corio__shard_pick chooses.  The default session is made on
** first use, with limits that keep idle connections within the
** descriptors.
*/
#include <string.h>
#include <sys/resource.h>

#include "fetch.h"

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
** Sessions and shards
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

/* The session has no transfer left: close its connections and handles. */
void corio__session_destroy(corio_session *s) {
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
  corio__gate_free(s);
  for (j = 0; j < s->nshards; j++) {
    corio__shard *sh = s->shards[j];
    uv_timer_stop(&sh->timer);
    corio__closing(s->rt);
    uv_close((uv_handle_t *)&sh->timer, on_shard_closed);
  }
}

/*
** The idle connections a session with max_connections and no max_idle
** keeps: as many as the limit lets be open.  libcurl's default keeps 4 per
** transfer still in the multi, and closes the oldest idle one each time a
** transfer ends over that: when fewer transfers ran for a while (a caller
** between two bursts, a binding whose workers restart on another thread),
** connections the limit allowed were closed and the next burst opened
** them again, a connect per request or so (bench/NOTES.md, "A session
** limit"); after a burst, as the last transfers left, each one also walked
** every connection to find the oldest.  Idle ones cost no system call
** while parked; servers close them in their own time.  But each holds a
** descriptor: at most half the process's limit, so that idle connections
** never starve new sockets, servers, files.
*/
static size_t idle_default(size_t max_connections) {
  struct rlimit lim;
  size_t n = max_connections;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
      lim.rlim_cur / 2 < n)
    n = lim.rlim_cur / 2 > 0 ? (size_t)(lim.rlim_cur / 2) : 1;
  return n;
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
  corio__queue_init(&sh->fresh);
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
corio__shard *corio__shard_pick(corio_session *s) {
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
  corio__queue_init(&s->active);
  if (o != NULL) {
    s->max_connections = o->max_connections;
    s->max_per_host = o->max_per_host;
    s->max_idle = o->max_idle;
    s->rate = o->rate;
  }
  if (s->max_idle == 0) /* libcurl's default would close them: see fetch.h */
    s->max_idle = idle_default(s->max_connections > 0
                                   ? s->max_connections
                                   : CORIO_FETCH_DEFAULT_MAX_CONNECTIONS);
  /* a per-host cap cannot be divided among shards (one host may use any
     of them); the other limits can if each share keeps a full spill */
  s->shardable = s->max_per_host == 0 &&
                 (s->max_connections == 0 || s->max_connections >= even) &&
                 (s->max_idle == 0 || s->max_idle >= even);
  if (corio__gate_init(s) != 0 || shard_add(s) == NULL) {
    corio__gate_free(s);
    corio__free(s);
    return NULL;
  }
  corio__queue_insert_head(&ft->sessions, &s->node);
  ft->nsessions++;
  return s;
}

corio_session *corio__session_dflt(corio__fetcher *ft) {
  if (ft->dflt == NULL) {
    corio_session_opts o;
    memset(&o, 0, sizeof o);
    /* and max_idle 0: as many as that, within the descriptors */
    o.max_connections = CORIO_FETCH_DEFAULT_MAX_CONNECTIONS;
    ft->dflt = session_make(ft, &o);
    if (ft->dflt != NULL) ft->dflt->is_default = 1;
  }
  return ft->dflt;
}

corio_session *corio_session_new(corio_rt *rt, const corio_session_opts *o) {
  corio__fetcher *ft;
  if (rt == NULL) return NULL;
  ft = corio__fetcher_get(rt);
  if (ft == NULL || ft->closing) return NULL;
  return session_make(ft, o);
}

corio_session *corio_session_default(corio_rt *rt) {
  corio__fetcher *ft;
  if (rt == NULL) return NULL;
  ft = corio__fetcher_get(rt);
  if (ft == NULL || ft->closing) return NULL;
  return corio__session_dflt(ft);
}

int corio_session_free(corio_session *s) {
  if (s == NULL) return 0;
  if (s->is_default) return CORIO_EINVAL;
  if (s->closing) return 0;
  s->closing = 1;
  corio__session_cancel_all(s);
  if (s->depth > 0)
    s->destroy_pending = 1; /* corio__shard_check finishes it */
  else
    corio__session_destroy(s);
  return 0;
}

void *corio_session_get_data(const corio_session *s) {
  return s->data;
}

void corio_session_set_data(corio_session *s, void *data) {
  s->data = data;
}

/* }================================================================== */
