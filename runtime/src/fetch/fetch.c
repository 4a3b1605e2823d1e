/*
** fetch.c: one HTTP transfer's object: made, recycled for the pool (its
** buffers kept, its easy handle not) and freed; and corio_fetch_blocking,
** the easy_perform twin.  The request is set up in fetch_request.c, the
** response collected and handed out in fetch_response.c, the loop glue
** (multi_socket, sessions, cancellation) is in fetch_multi.c.
*/
#include <limits.h>
#include <string.h>

#include "fetch.h"

/* What a pooled object keeps of its buffers between transfers. */
#define KEEP_ARENA   (16 * 1024)
#define KEEP_HBUF    (16 * 1024)
#define KEEP_HEADERS 64

/*
** {==================================================================
** The pooled object
** ===================================================================
*/

static void buf_trim(corio__fbuf *b, size_t keep) {
  if (b->cap > keep) {
    corio__free(b->p);
    b->p = NULL;
    b->cap = 0;
  }
  b->len = 0;
  if (b->p != NULL) b->p[0] = '\0'; /* an empty body is "" too */
}

corio_fetch *corio__fetch_obj_new(void) {
  corio_fetch *f = corio__calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  f->opened[0] = f->opened[1] = -1;
  corio__queue_init(&f->node);
  corio__queue_init(&f->qnode);
  corio__queue_init(&f->snode);
  return f;
}

/*
** Ready `f` for its next transfer: the easy handle goes (the next
** transfer gets a new one, corio__fetch_obj_easy), big buffers are
** released; the body buffer is kept if it is ours and holds at most
** `keep_body` bytes.
**
** Why not keep the easy handle (curl_easy_reset): libcurl 7.88 keeps a
** pointer to the last header field it stored for a handle (for obs-fold
** continuation lines) when it frees those fields at the handle's next
** transfer.  A response whose first field line is folded then extends a
** freed block: any server could crash the process on its second fetch
** (upstream fixed it in 8.1, "headers: clear (possibly) lingering pointer
** in init"; Debian 12 ships 7.88).  curl_easy_reset does not clear it; a
** new handle starts clean.  The cost is small: connections, DNS and TLS
** sessions live in the multi and the share, not in the handle; init and
** cleanup cost slightly more than a reset, for the same requests per
** second (bench/NOTES.md, "A new easy handle").  Not made to depend on
** the libcurl version: a distribution may backport the fix without
** changing the number, or not, and the fast path would be the one never
** tested here.
*/
void corio__fetch_obj_recycle(corio_fetch *f, size_t keep_body) {
  curl_easy_cleanup(f->easy);
  f->easy = NULL;
  buf_trim(&f->arena, KEEP_ARENA);
  if (f->body_alloc != NULL) {
    corio__fetch_body_free(f);
    f->body_alloc = NULL;
    f->body_ud = NULL;
    f->body_off = 0;
  }
  buf_trim(&f->body, keep_body);
  buf_trim(&f->hbuf, KEEP_HBUF);
  if (f->hoff_cap > 2 * KEEP_HEADERS) {
    corio__free(f->hoff);
    f->hoff = NULL;
    f->hoff_cap = 0;
  }
  if (f->harr_cap > KEEP_HEADERS) {
    corio__free(f->harr);
    f->harr = NULL;
    f->harr_cap = 0;
  }
  f->nh = 0;
  f->hbytes = 0;
  f->err = 0;
  f->sock_errno = 0;
  f->opened[0] = f->opened[1] = -1;
  f->max_body = 0;
  f->nap = NULL;
  f->tries = f->max_tries = 0;
  f->cb = NULL;
  f->ud = NULL;
  f->session = NULL;
  f->shard = NULL;
  f->host = NULL;
  f->deadline = NULL;
  corio__free(f->saved);
  f->saved = NULL;
  f->timeout_ms = 0;
  f->t_call = f->t_start = 0;
  f->slot = 0;
  corio__queue_init(&f->node);
  corio__queue_init(&f->qnode);
  corio__queue_init(&f->snode);
  f->on_head = NULL;
  f->on_data = NULL;
  f->sflags = 0;
  f->received = f->delivered = 0;
  f->stage = CORIO__Q_NONE;
  f->h1 = 0;
  f->state = CORIO__F_IDLE;
  f->errbuf[0] = '\0';
  memset(&f->res, 0, sizeof f->res);
}

/* Give `f` its easy handle (a recycled one a new one: see
   corio__fetch_obj_recycle). */
int corio__fetch_obj_easy(corio_fetch *f) {
  if (f->easy == NULL) f->easy = curl_easy_init();
  return f->easy != NULL ? 0 : CORIO_ENOMEM;
}

void corio__fetch_obj_free(corio_fetch *f) {
  if (f == NULL) return;
  if (f->easy != NULL) curl_easy_cleanup(f->easy);
  corio__free(f->arena.p);
  corio__fetch_body_free(f);
  corio__free(f->hbuf.p);
  corio__free(f->hoff);
  corio__free(f->harr);
  corio__free(f->saved);
  corio__free(f);
}

/* }================================================================== */

/*
** {==================================================================
** The blocking twin
** ===================================================================
*/

int corio_fetch_blocking(const corio_request *req, corio_response **out) {
  CURLU *urlh;
  corio_fetch *f;
  CURLcode code;
  uint64_t rng;
  int64_t ms;
  int r;
  if (out == NULL) return CORIO_EINVAL;
  *out = NULL;
  if (req != NULL && req->on_data != NULL) return CORIO_EINVAL; /* no loop */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return CORIO_ENOMEM;
  urlh = curl_url();
  if (urlh == NULL) {
    curl_global_cleanup();
    return CORIO_ENOMEM;
  }
  r = corio__fetch_check(req, urlh);
  curl_url_cleanup(urlh);
  if (r == 0) {
    f = corio__fetch_obj_new();
    if (f == NULL) r = CORIO_ENOMEM;
  }
  if (r == 0 && corio__fetch_obj_easy(f) != 0) {
    corio__fetch_obj_free(f);
    r = CORIO_ENOMEM;
  }
  if (r == 0) {
    r = corio__fetch_setup(f, req);
    if (r != 0) corio__fetch_obj_free(f);
  }
  if (r != 0) {
    curl_global_cleanup();
    return r;
  }
  rng = corio__retry_seed(f);
  f->t_call = f->t_start = uv_hrtime();
  for (;;) {
    code = curl_easy_perform(f->easy);
    r = corio__fetch_code(f, code);
    ms = corio__retry_delay(f, r, &rng);
    if (ms < 0) break;
    uv_sleep(ms > UINT_MAX ? UINT_MAX : (unsigned int)ms);
    if (corio__retry_renew(f) != 0) break; /* the last outcome stands */
  }
  corio__fetch_finish(f, r, code);
  *out = &f->res;
  return r;
}

void corio_response_free(corio_response *res) {
  if (res == NULL) return;
  corio__fetch_obj_free(corio__container_of(res, corio_fetch, res));
  curl_global_cleanup();
}

/* }================================================================== */
