/*
** fetch_gate.c: a session's queue.  A transfer of a session with limits
** (max_connections, max_per_host, rate) starts only when its session and
** its host have a connection slot free and its host's rate allows; until
** then it waits here, in order, before it has a place in libcurl.
**
** Why not leave the waiting to libcurl (CURLMOPT_MAX_TOTAL_CONNECTIONS and
** MAX_HOST_CONNECTIONS, which it keeps set as a backstop): libcurl 7.88
** takes a transfer over its limit through connection setup (URL parse,
** proxy lookups in the environment, a connection struct, a receive
** buffer) before it parks it in its pending list, and each finished
** transfer wakes one parked transfer to go through that setup again,
** whether or not a slot is free for it.  20,000 fetches on a session of
** 50 connections took 9 times the CPU of 50 workers fetching in a loop,
** and 150 MB (bench/NOTES.md, "A session's queue").  Here a waiting
** transfer costs a list node and, if it has a timeout, a timer.
**
** A slot is an HTTP/1 transfer in flight: it needs a connection of its
** own, so with as many in flight as the limit allows libcurl could not
** start one more.  Transfers that may multiplex (https, HTTP/2) take no
** slot: libcurl may run many on one connection, and its own limits decide.
**
** Each host has its queue, in order; the session keeps a ready list of
** the hosts whose first transfer may start as soon as the session has a
** slot, served in turn (strict order within a host, round robin between
** hosts).  A host blocked by its own limit leaves the list and comes back
** when one of its transfers finishes, or when its rate timer fires: no
** walk over waiting transfers, ever.
**
** The rate: at most `rate` starts per host in any one second, a sliding
** window of the last second's start times (a bucket refilled each second
** would allow twice that across a refill).  The clock is uv_hrtime, the
** one corio_rt_time reads, so response timing.start is on it too.
*/
#include <stdio.h>
#include <string.h>

#include "fetch.h"

#define SECOND_NS   UINT64_C(1000000000)
#define SWEEP_FIRST 64 /* hosts kept before idle ones are swept */

#define fetch_ofq(q) corio__queue_data(q, corio_fetch, qnode)
#define host_of(q)   corio__queue_data(q, corio__host, ready)

/*
** {==================================================================
** Hosts
** ===================================================================
*/

/*
** The host:port key of the URL the fetcher's CURLU handle holds (the
** request's: corio_fetch_start checked it there just before), from
** libcurl's URL API: the host in lower case, the port explicit or the
** scheme's.  Writes at most `cap` bytes; returns the key's length (0 when
** libcurl gives no host, or out of memory: such URLs share one key).
*/
static size_t url_key(CURLU *h, char *out, size_t cap) {
  char *host = NULL, *port = NULL;
  size_t n = 0;
  if (curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
    const char *p;
    for (p = host; *p != '\0' && n + 1 < cap; p++)
      out[n++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
    n += (size_t)snprintf(out + n, cap - n, ":%s", port);
    if (n >= cap) n = cap - 1; /* a key that long is cut short */
  }
  out[n] = '\0';
  curl_free(host);
  curl_free(port);
  return n;
}

static uint32_t hash_key(const char *k, size_t len) {
  uint32_t h = 2166136261u; /* FNV-1a */
  size_t i;
  for (i = 0; i < len; i++) h = (h ^ (unsigned char)k[i]) * 16777619u;
  return h;
}

static corio__host *host_new(corio_session *s, const char *key, size_t len) {
  corio__host *h = corio__calloc(1, sizeof *h + len);
  if (h == NULL) return NULL;
  h->session = s;
  corio__queue_init(&h->waiting);
  corio__queue_init(&h->ready);
  memcpy(h->key, key, len + 1);
  h->hash = hash_key(key, len);
  return h;
}

static void host_free(corio__host *h) {
  corio__queue_remove(&h->ready);
  if (h->timer != NULL) corio_timer_stop(h->timer);
  corio__free(h->starts);
  corio__free(h);
}

/* Drop the start times older than a second. */
static void window_trim(corio__host *h, uint64_t now) {
  while (h->nstarts > 0 && now - h->starts[h->shead] >= SECOND_NS) {
    h->shead = (h->shead + 1) % h->scap;
    h->nstarts--;
  }
}

/* A host with nothing waiting, in flight or in its window. */
static int host_idle(corio__host *h, uint64_t now) {
  if (h->nwait > 0 || h->nslots > 0) return 0;
  window_trim(h, now);
  return h->nstarts == 0;
}

/* Free the idle hosts (from host_find, when the table doubled since the
   last sweep: amortized O(1) per host made). */
static void sweep(corio_session *s) {
  uint64_t now = uv_hrtime();
  size_t i;
  for (i = 0; i < s->nbuckets; i++) {
    corio__host **p = &s->hosts[i];
    while (*p != NULL) {
      corio__host *h = *p;
      if (h != s->any && host_idle(h, now)) {
        *p = h->next;
        s->nhosts--;
        host_free(h);
      } else {
        p = &h->next;
      }
    }
  }
  s->sweep_at = s->nhosts * 2 > SWEEP_FIRST ? s->nhosts * 2 : SWEEP_FIRST;
}

static int grow(corio_session *s) {
  size_t n = s->nbuckets * 2, i;
  corio__host **t = corio__calloc(n, sizeof *t);
  if (t == NULL) return CORIO_ENOMEM;
  for (i = 0; i < s->nbuckets; i++) {
    corio__host *h = s->hosts[i], *next;
    for (; h != NULL; h = next) {
      next = h->next;
      h->next = t[h->hash & (n - 1)];
      t[h->hash & (n - 1)] = h;
    }
  }
  corio__free(s->hosts);
  s->hosts = t;
  s->nbuckets = n;
  return 0;
}

/* The host of the request being started (its URL is in the fetcher's
   CURLU handle) in the session's table, made if new; NULL: no memory. */
static corio__host *host_find(corio_session *s) {
  char key[512];
  size_t len = url_key(s->fetcher->urlh, key, sizeof key);
  uint32_t hash = hash_key(key, len);
  corio__host *h;
  for (h = s->hosts[hash & (s->nbuckets - 1)]; h != NULL; h = h->next)
    if (h->hash == hash && strcmp(h->key, key) == 0) return h;
  if (s->nhosts >= s->sweep_at) sweep(s);
  if (s->nhosts >= s->nbuckets && grow(s) != 0) return NULL;
  h = host_new(s, key, len);
  if (h == NULL) return NULL;
  h->next = s->hosts[hash & (s->nbuckets - 1)];
  s->hosts[hash & (s->nbuckets - 1)] = h;
  s->nhosts++;
  return h;
}

int corio__gate_init(corio_session *s) {
  corio__queue_init(&s->ready);
  s->gated = s->max_connections > 0 || s->max_per_host > 0 || s->rate > 0;
  if (!s->gated) return 0;
  if (s->max_per_host == 0 && s->rate == 0) { /* limited in total only */
    s->any = host_new(s, "", 0);
    return s->any != NULL ? 0 : CORIO_ENOMEM;
  }
  s->nbuckets = 16;
  s->sweep_at = SWEEP_FIRST;
  s->hosts = corio__calloc(s->nbuckets, sizeof *s->hosts);
  return s->hosts != NULL ? 0 : CORIO_ENOMEM;
}

/* The session is going: its transfers are gone, its hosts go too. */
void corio__gate_free(corio_session *s) {
  size_t i;
  if (s->any != NULL) host_free(s->any);
  s->any = NULL;
  for (i = 0; i < s->nbuckets; i++) {
    corio__host *h = s->hosts[i], *next;
    for (; h != NULL; h = next) {
      next = h->next;
      host_free(h);
    }
  }
  corio__free(s->hosts);
  s->hosts = NULL;
  s->nbuckets = s->nhosts = 0;
}

/* }================================================================== */

/*
** {==================================================================
** The rate window
** ===================================================================
*/

/* Whether the host may start one more now (the window is trimmed). */
static int rate_allows(const corio_session *s, corio__host *h, uint64_t now) {
  if (s->rate == 0) return 1;
  window_trim(h, now);
  return h->nstarts < s->rate;
}

/* Record a start; the ring grows by doubling, up to `rate` entries.  Out
   of memory, the oldest start is overwritten: the window then holds
   fewer than it should, which only ever makes the host wait longer. */
static void rate_record(const corio_session *s, corio__host *h, uint64_t now) {
  if (s->rate == 0) return;
  if (h->nstarts == h->scap && h->scap < s->rate) {
    size_t cap = h->scap == 0 ? 4 : h->scap * 2, i;
    uint64_t *p;
    if (cap > s->rate) cap = s->rate;
    p = corio__malloc(cap * sizeof *p);
    if (p != NULL) {
      for (i = 0; i < h->nstarts; i++)
        p[i] = h->starts[(h->shead + i) % h->scap];
      corio__free(h->starts);
      h->starts = p;
      h->scap = cap;
      h->shead = 0;
    }
  }
  if (h->scap == 0) return;
  if (h->nstarts == h->scap) { /* the oldest goes */
    h->shead = (h->shead + 1) % h->scap;
    h->nstarts--;
  }
  h->starts[(h->shead + h->nstarts) % h->scap] = now;
  h->nstarts++;
}

static void gate_run(corio_session *s);

static void on_rate_timer(corio_timer *t, void *ud) {
  corio__host *h = ud;
  (void)t;
  h->timer = NULL; /* freed after this returns */
  if (h->nwait > 0 && corio__queue_empty(&h->ready))
    corio__queue_insert_tail(&h->session->ready, &h->ready);
  gate_run(h->session);
}

/* Wake the host when its oldest start leaves the window (at least 1 ms
   from now; a timer that fires early finds it full and comes again). */
static void rate_wait(corio__host *h, uint64_t now) {
  uint64_t ns;
  if (h->timer != NULL || h->nstarts == 0) return;
  ns = h->starts[h->shead] + SECOND_NS - now;
  h->timer = corio_timer_start(h->session->rt, (ns + 999999) / 1000000,
                               on_rate_timer, h);
  /* out of memory: the host waits for one of its transfers to finish */
}

/* }================================================================== */

/*
** {==================================================================
** A waiting transfer's request
** ===================================================================
*/

static size_t str_size(const char *p) {
  return p != NULL ? strlen(p) + 1 : 0;
}

static const char *str_copy(char **to, const char *p) {
  size_t n = str_size(p);
  char *q = *to;
  if (p == NULL) return NULL;
  memcpy(q, p, n);
  *to += n;
  return q;
}

/*
** A copy of `req` in one block (the struct, its header array, its retry
** methods and statuses, its strings and body): what a waiting transfer
** keeps instead of an easy handle, which holds about 6 KB before it ever
** connects.  The retry lists too: the transfer reads them when it leaves
** the queue (corio__retry_setup), long after the caller's request is gone.
*/
static corio_request *request_copy(const corio_request *req) {
  const corio_retry *r = &req->retry;
  size_t nm = r->methods != NULL ? r->nmethods : 0;
  size_t ns = r->statuses != NULL ? r->nstatuses : 0;
  size_t size = sizeof *req + req->nheaders * sizeof(corio_header) +
                nm * sizeof(char *) + ns * sizeof(int),
         i;
  corio_request *c;
  corio_header *hs;
  const char **ms;
  int *ss;
  char *p;
  size += str_size(req->url) + str_size(req->method) + str_size(req->proxy);
  for (i = 0; i < req->nheaders; i++)
    size += str_size(req->headers[i].name) + str_size(req->headers[i].value);
  for (i = 0; i < nm; i++) size += str_size(r->methods[i]);
  if (req->body != NULL) size += req->body_len;
  c = corio__malloc(size);
  if (c == NULL) return NULL;
  *c = *req;
  hs = (corio_header *)(c + 1);
  ms = (const char **)(hs + req->nheaders);
  ss = (int *)(ms + nm);
  p = (char *)(ss + ns);
  c->headers = req->nheaders > 0 ? hs : NULL;
  for (i = 0; i < req->nheaders; i++) {
    hs[i].name = str_copy(&p, req->headers[i].name);
    hs[i].value = str_copy(&p, req->headers[i].value);
  }
  if (r->methods != NULL) {
    for (i = 0; i < nm; i++) ms[i] = str_copy(&p, r->methods[i]);
    c->retry.methods = ms;
  }
  if (r->statuses != NULL) {
    if (ns > 0) memcpy(ss, r->statuses, ns * sizeof(int));
    c->retry.statuses = ss;
  }
  c->url = str_copy(&p, req->url);
  c->method = str_copy(&p, req->method);
  c->proxy = str_copy(&p, req->proxy);
  if (req->body != NULL) {
    memcpy(p, req->body, req->body_len);
    c->body = p;
  }
  return c;
}

/* The request's total timeout in ms as corio__fetch_setup gives it to
   libcurl (0: none): the deadline of its wait in the queue. */
static long timeout_ms(double t) {
  if (t == 0) t = CORIO_FETCH_TIMEOUT;
  if (t < 0 || t > (double)INT32_MAX / 1000) return 0;
  return (long)corio_seconds_to_ms(t);
}

/*
** The transfer leaves the queue for libcurl: its easy handle now, set up
** from the copy, with what is left of its timeout (at least 1 ms).
*/
int corio__gate_setup(corio_fetch *f) {
  uint64_t waited = (f->t_start - f->t_call) / 1000000;
  int r = corio__fetch_easy_setup(f, f->saved);
  if (r != 0) return r;
  if (f->timeout_ms > 0 && waited > 0)
    (void)curl_easy_setopt(
        f->easy, CURLOPT_TIMEOUT_MS,
        waited < (uint64_t)f->timeout_ms ? f->timeout_ms - (long)waited : 1L);
  corio__free(f->saved);
  f->saved = NULL;
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** The queue
** ===================================================================
*/

static int needs_slot(const corio_fetch *f) {
  const corio_session *s = f->session;
  return f->h1 && (s->max_connections > 0 || s->max_per_host > 0);
}

static int host_full(const corio_session *s, const corio__host *h,
                     const corio_fetch *f) {
  return f->h1 && s->max_per_host > 0 && h->nslots >= s->max_per_host;
}

static int session_full(const corio_session *s, const corio_fetch *f) {
  return f->h1 && s->max_connections > 0 && s->nslots >= s->max_connections;
}

/* `f` starts: it takes its slots and a place in its host's window. */
static void take(corio_fetch *f, uint64_t now) {
  corio_session *s = f->session;
  corio__host *h = f->host;
  f->t_start = now;
  if (needs_slot(f)) {
    f->slot = 1;
    s->nslots++;
    h->nslots++;
  }
  rate_record(s, h, now);
}

static void on_deadline(corio_timer *t, void *ud) {
  corio_fetch *f = ud;
  (void)t;
  f->deadline = NULL; /* freed after this returns */
  corio__fetch_expire(f);
}

/* Out of the queue: cancelled, timed out, or started. */
void corio__gate_leave(corio_fetch *f) {
  corio__host *h = f->host;
  corio__queue_remove(&f->qnode);
  h->nwait--;
  f->stage = CORIO__Q_NONE;
  if (f->deadline != NULL) {
    corio_timer_stop(f->deadline);
    f->deadline = NULL;
  }
  if (h->nwait == 0) corio__queue_remove(&h->ready);
}

/*
** Start the waiting transfers that may start, in order: the ready hosts in
** turn, each its first transfer.  A host blocked by its own limit leaves
** the list (its next finished transfer or its rate timer brings it back);
** a transfer that needs a slot of the full session stops the round.
** Never runs a callback: corio__fetch_go only hands the transfer on.
*/
static void gate_run(corio_session *s) {
  uint64_t now = 0;
  if (s->closing || s->fetcher->closing) return;
  while (!corio__queue_empty(&s->ready)) {
    corio__host *h = host_of(corio__queue_head(&s->ready));
    corio_fetch *f = fetch_ofq(corio__queue_head(&h->waiting));
    if (host_full(s, h, f)) {
      corio__queue_remove(&h->ready);
      continue;
    }
    if (s->rate > 0) {
      if (now == 0) now = uv_hrtime();
      if (!rate_allows(s, h, now)) {
        corio__queue_remove(&h->ready);
        rate_wait(h, now);
        continue;
      }
    }
    if (session_full(s, f)) break;
    if (now == 0) now = uv_hrtime();
    corio__gate_leave(f);
    take(f, now);
    corio__queue_remove(&h->ready); /* to the back of the round */
    if (h->nwait > 0) corio__queue_insert_tail(&s->ready, &h->ready);
    corio__fetch_go(f);
  }
}

/* Whether `f` may start now, ahead of no one: then it takes its place. */
static int start_now(corio_fetch *f, uint64_t now) {
  corio_session *s = f->session;
  corio__host *h = f->host;
  if (h->nwait > 0 || host_full(s, h, f) || session_full(s, f) ||
      !rate_allows(s, h, now))
    return 0;
  take(f, now);
  return 1;
}

/* Into its host's queue, behind the others. */
static void queue_in(corio_fetch *f) {
  corio_session *s = f->session;
  corio__host *h = f->host;
  f->stage = CORIO__Q_GATE;
  corio__queue_insert_tail(&h->waiting, &f->qnode);
  h->nwait++;
  if (corio__queue_empty(&h->ready))
    corio__queue_insert_tail(&s->ready, &h->ready);
  gate_run(s); /* leaves a blocked host out, arms its rate timer */
}

/*
** A transfer's next try (fetch_retry.c) queues as a new transfer would,
** for a slot and a place in its host's rate window, with its easy handle
** set up already and no deadline of its own (its timeout is per try).
*/
int corio__gate_again(corio_fetch *f) {
  if (start_now(f, uv_hrtime())) return 1;
  queue_in(f);
  return 0;
}

int corio__gate_enter(corio_fetch *f, const corio_request *req) {
  corio_session *s = f->session;
  corio__host *h = s->any != NULL ? s->any : host_find(s);
  if (h == NULL) return CORIO_ENOMEM;
  f->host = h;
  if (start_now(f, f->t_call)) return 1;
  f->saved = request_copy(req);
  if (f->saved == NULL) return CORIO_ENOMEM;
  f->timeout_ms = timeout_ms(req->timeout);
  if (f->timeout_ms > 0) {
    f->deadline =
        corio_timer_start(s->rt, (uint64_t)f->timeout_ms, on_deadline, f);
    if (f->deadline == NULL) return CORIO_ENOMEM;
  }
  queue_in(f);
  return 0;
}

/* A started transfer is done with its slots: the next ones may start. */
void corio__gate_release(corio_fetch *f) {
  corio_session *s = f->session;
  corio__host *h = f->host;
  f->slot = 0;
  s->nslots--;
  h->nslots--;
  if (h->nwait > 0 && corio__queue_empty(&h->ready))
    corio__queue_insert_tail(&s->ready, &h->ready);
  gate_run(s);
}

/* }================================================================== */
