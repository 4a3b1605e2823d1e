/*
** fetch_stream.c: streamed transfers (corio_request.on_data).  The body
** is handed to on_data as it arrives instead of being collected, with a
** bounded buffer in between.
**
** libcurl's write and header callbacks only record (docs/reliability.md,
** rule 1): the bytes go into the transfer's `body` buffer, which here
** holds what on_data has not taken yet, and the transfer is linked in the
** fetcher's pump list.  The pump runs from the fetcher's idle handle, on
** the loop and outside libcurl, and calls on_head, on_data and at last the
** completion callback.  Two pauses, kept apart:
** - the user's (on_data said CORIO_FETCH_PAUSE, or corio_fetch_pause):
**   on_data is not called until corio_fetch_resume; bytes keep arriving
**   into the buffer;
** - libcurl's: once the buffer holds CORIO_FETCH_STREAM_BUFFER bytes, the
**   write callback answers CURL_WRITEFUNC_PAUSE (libcurl keeps that one
**   write and stops reading the socket).  The pump lifts it with
**   curl_easy_pause once the buffer is empty, from the idle handle, never
**   inside a libcurl callback, then kicks the shard with a socket_action
**   on CURL_SOCKET_TIMEOUT: with multi_socket, an unpaused transfer whose
**   socket has no new event would otherwise wait for its next timer.
** So the memory a transfer holds is the buffer plus one write.
*/
#include <string.h>

#include "fetch.h"

#define STREAM_MAX ((size_t)CORIO_FETCH_STREAM_BUFFER)

void corio__stream_setup(corio_fetch *f, const corio_request *req) {
  f->on_head = req->on_data != NULL ? req->on_head : NULL;
  f->on_data = req->on_data;
  f->follow = req->follow_redirects != 0;
  f->sflags = 0;
  f->hlocation = 0;
  f->hstatus = 0;
  f->received = f->delivered = 0;
  f->done_status = 0;
  f->done_code = CURLE_OK;
}

/* Something to hand out: into the pump list, once. */
static void pump_link(corio_fetch *f) {
  corio__fetcher *ft = f->fetcher;
  if (ft == NULL || !corio__queue_empty(&f->snode)) return;
  corio__queue_insert_tail(&ft->pumps, &f->snode);
  if (!ft->closing) uv_idle_start(&ft->idle, corio__fetcher_on_idle);
}

static void head_seen(corio_fetch *f) {
  f->sflags |= CORIO__S_HEAD;
  pump_link(f);
}

/*
** {==================================================================
** libcurl's side: record only
** ===================================================================
*/

size_t corio__stream_on_write(corio_fetch *f, const char *p, size_t len) {
  if (f->sflags & CORIO__S_DISCARD) return len; /* a try to be retried */
  if (f->max_body > 0 && len > f->max_body - f->received) {
    f->err = CORIO_ETOOLARGE;
    return 0; /* short write: CURLE_WRITE_ERROR */
  }
  if (!(f->sflags & CORIO__S_HEAD)) head_seen(f); /* body bytes: it is final */
  if (f->body.len >= STREAM_MAX) {
    f->sflags |= CORIO__S_CURL_PAUSED;
    return CURL_WRITEFUNC_PAUSE; /* libcurl keeps these bytes */
  }
  if (corio__fbuf_reserve(&f->body, len) != 0) {
    f->err = CORIO_ENOMEM;
    return 0;
  }
  memcpy(f->body.p + f->body.len, p, len);
  f->body.len += len;
  f->received += len;
  pump_link(f);
  return len;
}

/*
** The blank line that ends a head.  It is the final one unless it is a
** 1xx, a proxy's answer to CONNECT (libcurl's response code is not
** its status then), or a redirect libcurl is about to follow.  A status
** to be retried is not handed out: its body is dropped and the next try
** comes.
*/
void corio__stream_head_end(corio_fetch *f) {
  long code = 0;
  if (f->sflags & (CORIO__S_HEAD | CORIO__S_DISCARD)) return;
  (void)curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
  if (f->hstatus < 200 || code != f->hstatus) return;
  if (f->follow && f->hstatus >= 300 && f->hstatus < 400 && f->hlocation)
    return;
  if (corio__retry_status(f, code)) {
    f->sflags |= CORIO__S_DISCARD;
    return;
  }
  head_seen(f);
}

/* }================================================================== */

/*
** {==================================================================
** The loop's side: the pump
** ===================================================================
*/

int corio__stream_finish(corio_fetch *f, int status, CURLcode code) {
  if (status != 0 && !(f->sflags & CORIO__S_HEAD) && f->body.len == 0)
    return 0; /* failed before its head: nothing to hand out first */
  f->sflags |= CORIO__S_FINISHED | CORIO__S_HEAD;
  f->sflags &= (uint8_t)~CORIO__S_CURL_PAUSED;
  f->done_status = status;
  f->done_code = code;
  pump_link(f);
  return 1;
}

/*
** Hand out what waits: the head, the bytes (unless the user paused), then
** lift libcurl's pause once they are taken; at the end, the completion.
** Any callback may cancel the transfer (or free its session, which
** cancels it): then it is left alone.
*/
static void pump_one(corio_fetch *f) {
  corio__shard *sh = f->shard;
  int kick = 0, r;
  for (;;) {
    if ((f->sflags & (CORIO__S_HEAD | CORIO__S_HEAD_DONE)) == CORIO__S_HEAD) {
      f->sflags |= CORIO__S_HEAD_DONE;
      if (f->on_head != NULL) {
        corio__fetch_finish(f, 0, CURLE_OK);
        f->on_head(f, &f->res, f->ud);
        if (f->state != CORIO__F_ACTIVE) return;
      }
    }
    if (f->body.len > 0 && !(f->sflags & CORIO__S_USER_PAUSED)) {
      size_t n = f->body.len;
      r = f->on_data(f, f->body.p, n, f->ud);
      if (f->state != CORIO__F_ACTIVE) return;
      if (r == CORIO_FETCH_PAUSE) {
        f->sflags |= CORIO__S_USER_PAUSED;
      } else if (r < 0) {
        corio__fetch_complete(f, r, CURLE_OK);
        return;
      } else {
        f->delivered += n;
        f->body.len = 0;
      }
    }
    if (f->body.len == 0 && (f->sflags & CORIO__S_CURL_PAUSED)) {
      f->sflags &= (uint8_t)~CORIO__S_CURL_PAUSED;
      /* may call the write callback at once with the bytes it kept */
      (void)curl_easy_pause(f->easy, CURLPAUSE_CONT);
      kick = 1;
      if (f->body.len > 0 && !(f->sflags & CORIO__S_USER_PAUSED)) continue;
    }
    break;
  }
  if ((f->sflags & CORIO__S_FINISHED) && f->body.len == 0) {
    corio__fetch_complete(f, f->done_status, f->done_code);
    return;
  }
  if (kick) {
    corio__shard_action(sh, CURL_SOCKET_TIMEOUT, 0);
    corio__shard_check(sh);
  }
}

/* From the fetcher's idle handle: this turn's list only (a transfer
   that gets more bytes meanwhile waits for the next turn). */
void corio__stream_pump(corio__fetcher *ft) {
  corio__queue batch;
  corio__queue_move(&ft->pumps, &batch);
  while (!corio__queue_empty(&batch)) {
    corio__queue *q = corio__queue_head(&batch);
    corio__queue_remove(q);
    pump_one(corio__queue_data(q, corio_fetch, snode));
  }
}

/* }================================================================== */

/*
** {==================================================================
** Public calls
** ===================================================================
*/

static int stream_check(const corio_fetch *f) {
  if (f == NULL || f->on_data == NULL) return CORIO_EINVAL;
  return f->state == CORIO__F_ACTIVE ? 0 : CORIO_ESTATE;
}

int corio_fetch_pause(corio_fetch *f) {
  int r = stream_check(f);
  if (r == 0) f->sflags |= CORIO__S_USER_PAUSED;
  return r;
}

int corio_fetch_resume(corio_fetch *f) {
  int r = stream_check(f);
  if (r != 0) return r;
  f->sflags &= (uint8_t)~CORIO__S_USER_PAUSED;
  pump_link(f);
  return 0;
}

/* Walks the transfers: for corio_fetch_get_stats, not a hot path. */
void corio__stream_stats(const corio__fetcher *ft, corio_fetch_stats *out) {
  const corio__queue *q, *a;
  corio__queue_foreach(q, &ft->sessions) {
    const corio_session *s = corio__queue_data(q, corio_session, node);
    corio__queue_foreach(a, &s->active) {
      const corio_fetch *f = corio__queue_data(a, corio_fetch, node);
      if (f->on_data == NULL) continue;
      out->streamed += f->body.len;
      if (f->sflags & CORIO__S_CURL_PAUSED) out->paused++;
    }
  }
}

/* }================================================================== */
