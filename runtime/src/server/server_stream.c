/*
** server_stream.c: responses whose body is not known in advance.
** corio_server_stream sends the head ("Transfer-Encoding: chunked", or for an
** HTTP/1.0 client no length and a close after the body), each
** corio_server_write one chunk, corio_server_end the last chunk.  Every piece
** is copied into a write request of its own, so the host's buffer is free
** at once; the callback of a write tells the host when it has left (its
** pace: the backpressure), and is dropped once the host gave the request
** back (end or abort), since `ud` may be gone by then.
*/
#include <stdio.h>
#include <string.h>

#include "server.h"

typedef struct corio__server_swrite swrite;
struct corio__server_swrite {
  uv_write_t w;
  corio__server_conn *c;
  corio__queue node; /* the connection's writes in flight (c->swrites) */
  corio_server_write_fn cb;
  void *ud;
  int last; /* the end of the body: the request is done once it is out */
  char data[];
};

static void on_swrite(uv_write_t *w, int status) {
  swrite *sw = corio__container_of(w, swrite, w);
  corio__server_conn *c = sw->c;
  corio_server_write_fn cb = sw->cb;
  void *ud = sw->ud;
  int last = sw->last;
  corio__queue_remove(&sw->node);
  corio__free(sw);
  c->nwrites--;
  if (status < 0)
    corio__server_conn_close(c); /* also how a cancelled write ends */
  else if (!(c->flags & CORIO__SERVER_CLOSING))
    corio__server_timer_set(c, c->nwrites > 0 ? CORIO__SERVER_T_WRITE
                                              : CORIO__SERVER_T_NONE);
  if (cb != NULL) cb(status < 0 ? CORIO_ECLOSED : 0, ud);
  if (last && status >= 0 && c->nwrites == 0 &&
      !(c->flags & CORIO__SERVER_CLOSING))
    corio__server_after_response(c);
}

/* Queue `a` then `b` then `tail` (any may be empty) as one write. */
static int queue(corio__server_conn *c, const char *a, size_t alen,
                 const char *b, size_t blen, const char *tail,
                 corio_server_write_fn cb, void *ud, int last) {
  size_t tlen = tail != NULL ? strlen(tail) : 0;
  swrite *sw = corio__malloc(sizeof *sw + alen + blen + tlen);
  uv_buf_t buf;
  if (sw == NULL) {
    corio__server_conn_close(c);
    return CORIO_ENOMEM;
  }
  if (alen) memcpy(sw->data, a, alen);
  if (blen) memcpy(sw->data + alen, b, blen);
  if (tlen) memcpy(sw->data + alen + blen, tail, tlen);
  sw->c = c;
  sw->cb = cb;
  sw->ud = ud;
  sw->last = last;
  buf = uv_buf_init(sw->data, (unsigned)(alen + blen + tlen));
  if (uv_write(&sw->w, (uv_stream_t *)&c->tcp, &buf, 1, on_swrite) != 0) {
    corio__free(sw);
    corio__server_conn_close(c);
    return CORIO_ECLOSED;
  }
  corio__queue_insert_tail(&c->swrites, &sw->node);
  c->nwrites++;
  corio__server_timer_set(c, CORIO__SERVER_T_WRITE);
  return 0;
}

/* The host gives the request back: no more callbacks into it. */
static void drop_callbacks(corio__server_conn *c) {
  corio__queue *q;
  corio__queue_foreach(q, &c->swrites) {
    corio__queue_data(q, swrite, node)->cb = NULL;
  }
}

int corio_server_stream(corio_server_req *req, int status,
                        const corio_server_header *headers, size_t nheaders) {
  corio__server_conn *c = req->conn;
  int r, keep, no_body;
  if (c->rstate != CORIO__SERVER_USER) return CORIO_ESTATE;
  if (c->flags & CORIO__SERVER_CLOSING) return CORIO_ECLOSED;
  if ((r = corio__server_check_answer(c, status, headers, nheaders, NULL, 0)) !=
      0)
    return r;
  no_body = status == 204 || status == 304 || c->req.method == HTTP_HEAD;
  keep = corio__server_keep_open(c) && (no_body || c->req.minor >= 1);
  if (!keep) c->flags |= CORIO__SERVER_CLOSE_AFTER;
  c->flags &= ~(CORIO__SERVER_NO_BODY | CORIO__SERVER_CHUNKED);
  if (no_body)
    c->flags |= CORIO__SERVER_NO_BODY;
  else if (c->req.minor >= 1)
    c->flags |= CORIO__SERVER_CHUNKED;
  r = corio__server_serialize(c, status, headers, nheaders, NULL, 0, keep,
                              (c->flags & CORIO__SERVER_CHUNKED) ? 1 : 2);
  if (r != 0) return r;
  r = queue(c, c->out.base, c->out.len, NULL, 0, NULL, NULL, NULL, 0);
  c->out.len = 0;
  if (r == 0) c->rstate = CORIO__SERVER_STREAM; /* else still the host's */
  return r;
}

int corio_server_write(corio_server_req *req, const char *data, size_t len,
                       corio_server_write_fn cb, void *ud) {
  corio__server_conn *c = req->conn;
  char size[24];
  if (c->rstate != CORIO__SERVER_STREAM) return CORIO_ESTATE;
  if (data == NULL && len > 0) return CORIO_EINVAL;
  if (c->flags & CORIO__SERVER_CLOSING) return CORIO_ECLOSED;
  if (len == 0 || (c->flags & CORIO__SERVER_NO_BODY)) /* nothing to frame */
    return queue(c, NULL, 0, NULL, 0, NULL, cb, ud, 0);
  if (!(c->flags & CORIO__SERVER_CHUNKED))
    return queue(c, data, len, NULL, 0, NULL, cb, ud, 0);
  snprintf(size, sizeof size, "%zx\r\n", len);
  return queue(c, size, strlen(size), data, len, "\r\n", cb, ud, 0);
}

int corio_server_end(corio_server_req *req) {
  corio__server_conn *c = req->conn;
  int chunked = (c->flags & CORIO__SERVER_CHUNKED) != 0;
  if (c->rstate != CORIO__SERVER_STREAM) return CORIO_ESTATE;
  if (c->srv != NULL) c->srv->inflight--;
  drop_callbacks(c);
  corio__server_req_shrink(req);
  if (c->flags & CORIO__SERVER_CLOSING) {
    c->rstate = CORIO__SERVER_IDLE;
    corio__server_conn_release(c); /* frees an orphan */
    return CORIO_ECLOSED;
  }
  c->rstate = CORIO__SERVER_WRITE;
  return queue(c, chunked ? "0\r\n\r\n" : NULL, chunked ? 5 : 0, NULL, 0, NULL,
               NULL, NULL, 1);
}

/* corio_server_abort of a streamed request (server_write.c) */
void corio__server_stream_drop(corio__server_conn *c) {
  drop_callbacks(c);
}
