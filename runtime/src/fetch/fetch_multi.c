/*
** fetch_multi.c: a transfer's way through libcurl's multi_socket API on
** the runtime's libuv loop (the shape of curl's docs/examples/multi-uv.c):
** started (corio_fetch_start), admitted to its shard's multi a few hundred
** at a time, completed or cancelled, then pooled.  Sessions and shards are
** fetch_session.c's, the fetcher's lifetime fetch_fetcher.c's, the
** sockets libcurl asks us to watch fetch_sock.c's.  The rules
** (docs/reliability.md, rules 1, 2 and 5):
** - libcurl's callbacks (socket, timer, write, header) only record state:
**   no curl_multi_* call and no user callback ever runs inside them.
** - curl_multi_socket_action runs from uv callbacks only, and every call is
**   followed by corio__shard_check, which removes finished handles and
**   runs the completion callbacks.
** - Cancellation removes the handle at once (legal outside callbacks; the
**   connection and its socket go away) and queues the callback, run by an
**   idle handle at the next turn.
*/
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "fetch.h"

#define POOL_MAX 256 /* idle transfer objects kept for reuse */

/* The transfer linked by `q`, its node or its qnode. */
#define fetch_of(q)  corio__queue_data(q, corio_fetch, node)
#define fetch_ofq(q) corio__queue_data(q, corio_fetch, qnode)

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
  corio__queue_insert_head(&ft->pool, &f->node);
  ft->npool++;
}

/* A pooled object, or a new one; neither has an easy handle yet. */
static corio_fetch *pool_get(corio__fetcher *ft) {
  corio_fetch *f;
  if (!corio__queue_empty(&ft->pool)) {
    f = fetch_of(corio__queue_head(&ft->pool));
    corio__queue_remove(&f->node);
    ft->npool--;
    ft->pool_big -= f->pool_big;
    f->pool_big = 0;
  } else {
    f = corio__fetch_obj_new();
    if (f == NULL) return NULL;
  }
  f->fetcher = ft;
  return f;
}

/* Give `f` a new easy handle (corio__fetch_obj_recycle says why it is
   new) and set it up for `req`. */
int corio__fetch_easy_setup(corio_fetch *f, const corio_request *req) {
  corio__fetcher *ft = f->fetcher;
  if (corio__fetch_obj_easy(f) != 0) return CORIO_ENOMEM;
  if (ft->share != NULL) curl_easy_setopt(f->easy, CURLOPT_SHARE, ft->share);
  return corio__fetch_setup(f, req);
}

static void queue_leave(corio_fetch *f);

static void active_link(corio_fetch *f) {
  corio_session *s = f->session;
  corio__queue_insert_head(&s->active, &f->node);
  s->nactive++;
  f->shard->nactive++;
  f->fetcher->nactive++;
}

/* Out of the active list; a slot it held goes to the next waiting one. */
static void active_unlink(corio_fetch *f) {
  corio_session *s = f->session;
  queue_leave(f);
  corio__queue_remove(&f->node);
  corio__queue_remove(&f->snode); /* out of the pump list */
  s->nactive--;
  f->shard->nactive--;
  f->fetcher->nactive--;
  if (f->slot) corio__gate_release(f);
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

/* Take an active transfer out of its session's queue, the wait queue or
   its shard's fresh list. */
static void queue_leave(corio_fetch *f) {
  corio__fetcher *ft = f->fetcher;
  if (f->stage == CORIO__Q_NONE) return;
  if (f->stage == CORIO__Q_GATE) {
    corio__gate_leave(f);
    return;
  }
  corio__queue_remove(&f->qnode);
  if (f->stage == CORIO__Q_WAIT)
    ft->nwait--;
  else
    ft->nfresh--;
  f->stage = CORIO__Q_NONE;
}

static void wait_push(corio__fetcher *ft, corio_fetch *f) {
  f->stage = CORIO__Q_WAIT;
  corio__queue_insert_tail(&ft->wait, &f->qnode);
  ft->nwait++;
  uv_idle_start(&ft->idle, corio__fetcher_on_idle);
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

/* Add an active transfer to its shard's multi (one that waited in its
   session's queue is set up first). */
static int admit(corio_fetch *f) {
  corio__shard *sh = f->shard;
  if (f->saved != NULL) {
    int r = corio__gate_setup(f);
    if (r != 0) return r;
  }
  if (may_skip_reuse(f) &&
      curl_easy_setopt(f->easy, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK)
    return CORIO_ENOMEM;
  if (curl_multi_add_handle(sh->multi, f->easy) != CURLM_OK)
    return CORIO_ENOMEM;
  f->stage = CORIO__Q_FRESH;
  corio__queue_insert_head(&sh->fresh, &f->qnode);
  f->fetcher->nfresh++;
  return 0;
}

/*
** A transfer out of its session's queue (fetch_gate.c) goes into libcurl
** now, or into the wait queue, where the idle handle's admission gives it
** its callback if it cannot be set up or libcurl refuses it: no callback
** runs from here.
*/
void corio__fetch_go(corio_fetch *f) {
  corio__fetcher *ft = f->fetcher;
  if (ft->nwait > 0 || ft->nfresh >= ADMIT_MAX || admit(f) != 0)
    wait_push(ft, f);
}

/* From the idle handle: one refused now gets its callback with the
   error. */
static void admit_waiting(corio__fetcher *ft) {
  while (!corio__queue_empty(&ft->wait) && ft->nfresh < ADMIT_MAX &&
         !ft->closing) {
    corio_fetch *f = fetch_ofq(corio__queue_head(&ft->wait));
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
  while (!corio__queue_empty(&sh->fresh)) { /* libcurl starts them now */
    corio_fetch *f = fetch_ofq(corio__queue_head(&sh->fresh));
    queue_leave(f);
    corio__fetch_pick_buffer(f);
  }
  (void)curl_multi_socket_action(sh->multi, fd, flags, &running);
}

/* Queued callbacks of cancelled transfers, then admission. */
void corio__fetcher_on_idle(uv_idle_t *h) {
  corio__fetcher *ft = corio__container_of(h, corio__fetcher, idle);
  corio__queue batch;
  /* this turn's queue only: callbacks that cancel more wait a turn */
  corio__queue_move(&ft->pend, &batch);
  while (!corio__queue_empty(&batch)) {
    corio__queue *q = corio__queue_head(&batch);
    corio__queue_remove(q);
    deliver(fetch_of(q), CORIO_ECANCELED, CURLE_OK);
  }
  corio__stream_pump(ft);
  admit_waiting(ft);
  if (corio__queue_empty(&ft->pend) && corio__queue_empty(&ft->wait) &&
      corio__queue_empty(&ft->pumps))
    uv_idle_stop(&ft->idle);
}

/* }================================================================== */

/*
** {==================================================================
** Cancellation
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
  int added = f->stage != CORIO__Q_WAIT && f->stage != CORIO__Q_GATE &&
              f->nap == NULL && !(f->sflags & CORIO__S_FINISHED);
  if (f->nap != NULL) { /* waiting between two tries: not in a multi */
    corio_timer_stop(f->nap);
    f->nap = NULL;
  }
  active_unlink(f);
  if (added) remove_started(f);
  if (f->body_alloc != NULL) corio__fetch_body_free(f); /* see corio.h */
  f->state = CORIO__F_PENDING;
  corio__queue_insert_tail(&ft->pend, &f->node);
  if (!ft->closing) uv_idle_start(&ft->idle, corio__fetcher_on_idle);
}

/* A streamed transfer the pump ends (fetch_stream.c): out of its multi
   unless libcurl was done with it, then its callback. */
void corio__fetch_complete(corio_fetch *f, int status, CURLcode code) {
  int added = !(f->sflags & CORIO__S_FINISHED);
  active_unlink(f);
  if (added) remove_started(f);
  deliver(f, status, code);
}

void corio__session_cancel_all(corio_session *s) {
  while (!corio__queue_empty(&s->active))
    cancel_active(fetch_of(corio__queue_head(&s->active)));
}

/* }================================================================== */

/*
** {==================================================================
** Retries: between two tries, a transfer stays active (in its session's
** list, counted, cancellable) but out of its multi, with a corio_timer
** armed; the timer's callback admits its next try as a new transfer
** would be (fetch_retry.c decides whether and when).
** ===================================================================
*/

static void on_nap(corio_timer *t, void *ud) {
  corio_fetch *f = ud;
  corio__fetcher *ft = f->fetcher;
  int r;
  (void)t;
  f->nap = NULL;
  r = corio__retry_renew(f);
  if (r == 0 && f->timeout_ms > 0) /* the whole timeout, not what was left */
    (void)curl_easy_setopt(f->easy, CURLOPT_TIMEOUT_MS, f->timeout_ms);
  if (r == 0) {
    /* a session with limits queues the next try as a new transfer */
    r = f->session->gated ? corio__gate_again(f) : 1;
    if (r == 1) corio__fetch_go(f);
    if (r >= 0) return;
  }
  active_unlink(f);
  deliver(f, r, CURLE_OUT_OF_MEMORY);
  (void)ft;
}

/* Whether the try of `f` that ended with `status` gets another: then its
   wait has begun. */
static int retry_later(corio_fetch *f, int status) {
  corio__fetcher *ft = f->fetcher;
  int64_t ms;
  if (f->max_tries <= 1 || ft->closing || f->session->closing) return 0;
  if (f->sflags & CORIO__S_HEAD) return 0; /* streamed: handed out */
  ms = corio__retry_delay(f, status, &ft->rng);
  if (ms < 0) return 0;
  f->nap = corio_timer_start(ft->rt, (uint64_t)ms, on_nap, f);
  if (f->nap == NULL) return 0; /* out of memory: this outcome is the last */
  queue_leave(f);
  if (f->slot) corio__gate_release(f); /* no slot held while it sleeps */
  return 1;
}

/* }================================================================== */

/*
** {==================================================================
** Completion
** ===================================================================
*/

/*
** A transfer whose timeout ran out in its session's queue (from its timer,
** outside libcurl): it fails as libcurl's timeout would have failed it.
*/
void corio__fetch_expire(corio_fetch *f) {
  corio_session *s = f->session;
  s->depth++;
  active_unlink(f);
  snprintf(f->errbuf, sizeof f->errbuf,
           "timed out after %ld ms waiting for a connection slot or the "
           "session's rate",
           f->timeout_ms);
  deliver(f, CORIO_ETIMEDOUT, CURLE_OPERATION_TIMEDOUT);
  s->depth--;
  if (s->depth == 0 && s->destroy_pending) corio__session_destroy(s);
}

/*
** The first doomed transfer of the shard: our socket callback could not
** watch its socket (out of memory).  Without a poll it would crawl on
** libcurl's timer; it fails now instead.  Rare: a walk is fine.
*/
static corio_fetch *find_doomed(corio__shard *sh) {
  corio__queue *q;
  corio__queue_foreach(q, &sh->session->active) {
    corio_fetch *f = fetch_of(q);
    if (f->shard == sh && f->err == CORIO_ENOMEM) return f;
  }
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
  int left, rc;
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
    rc = corio__fetch_code(f, code);
    if (retry_later(f, rc)) continue;
    if (f->on_data != NULL && corio__stream_finish(f, rc, code)) continue;
    active_unlink(f);
    deliver(f, rc, code);
  }
  while (sh->doomed && sh->multi != NULL && (f = find_doomed(sh)) != NULL) {
    active_unlink(f);
    remove_started(f); /* its socket was being connected */
    deliver(f, CORIO_ENOMEM, CURLE_OK);
  }
  s->depth--;
  if (s->depth == 0 && s->destroy_pending) corio__session_destroy(s);
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
  ft = corio__fetcher_get(rt);
  if (ft == NULL) return CORIO_ENOMEM;
  if (ft->closing) return CORIO_ECLOSED;
  if (s == NULL) {
    s = corio__session_dflt(ft);
    if (s == NULL) return CORIO_ENOMEM;
  } else if (s->fetcher != ft) {
    return CORIO_EINVAL;
  }
  if (s->closing) return CORIO_ECLOSED;
  r = check_request(ft, req);
  if (r != 0) return r;
  f = pool_get(ft);
  if (f == NULL) return CORIO_ENOMEM;
  f->session = s;
  f->shard = corio__shard_pick(s);
  f->cb = cb;
  f->ud = ud;
  f->h1 = req->http_version == CORIO_HTTP_1_0 ||
          req->http_version == CORIO_HTTP_1_1 ||
          (req->http_version == CORIO_HTTP_DEFAULT &&
           strncasecmp(req->url, "http:", 5) == 0);
  active_link(f);
  f->t_call = uv_hrtime();
  /* 1: may start now; 0: waits in its session's queue, without an easy
     handle (fetch_gate.c) */
  r = s->gated ? corio__gate_enter(f, req) : 1;
  if (r == 1) {
    if (!s->gated) f->t_start = f->t_call;
    r = corio__fetch_easy_setup(f, req);
    if (r == 0 && (ft->nwait > 0 || ft->nfresh >= ADMIT_MAX))
      wait_push(ft, f); /* in order, after those already waiting */
    else if (r == 0)
      r = admit(f);
  }
  if (r != 0) {
    active_unlink(f);
    pool_put(ft, f);
    return r;
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

/* }================================================================== */
