/*
** fetch_fetcher.c: the fetcher, the runtime's part that runs the HTTP
** client: made by the first fetch (curl_global_init, the share, the idle
** handle), counted by corio_fetch_get_stats, and torn down by
** corio_rt_free (fetch_shutdown).
*/
#include <string.h>

#include "fetch.h"

/*
** {==================================================================
** The fetcher
** ===================================================================
*/

static corio_session *session_of(corio__queue *q) {
  return corio__queue_data(q, corio_session, node);
}

static void fetch_shutdown(corio_rt *rt);

corio__fetcher *corio__fetcher_get(corio_rt *rt) {
  corio__fetcher *ft = rt->part[CORIO__PART_FETCH].state;
  if (ft != NULL) return ft;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
  ft = corio__calloc(1, sizeof *ft);
  if (ft == NULL) goto fail;
  corio__queue_init(&ft->sessions);
  corio__queue_init(&ft->pend);
  corio__queue_init(&ft->wait);
  corio__queue_init(&ft->pumps);
  corio__queue_init(&ft->pool);
  ft->rt = rt;
  ft->rng = corio__retry_seed(ft);
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
  corio__stream_stats(ft, out);
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
    corio__queue_foreach(q, &ft->sessions)
        corio__session_cancel_all(session_of(q));
    if (corio__queue_empty(&ft->pend)) break;
    corio__fetcher_on_idle(&ft->idle);
  }
  while (!corio__queue_empty(&ft->sessions))
    corio__session_destroy(session_of(corio__queue_head(&ft->sessions)));
  while (!corio__queue_empty(&ft->pool)) {
    q = corio__queue_head(&ft->pool);
    corio__queue_remove(q);
    corio__fetch_obj_free(corio__queue_data(q, corio_fetch, node));
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
