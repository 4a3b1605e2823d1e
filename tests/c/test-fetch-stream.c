/*
** test-fetch-stream.c: streamed transfers (corio_request.on_head/on_data):
** the order of the callbacks, the bytes handed out, a slow consumer that
** pauses (the runtime's buffer stays bounded), cancelling and failing
** from on_data, max_body, a reset mid-body, redirects and retries, and
** what is refused.
*/
#include <netinet/in.h>

#include "fetch_support.h"

/* What a streamed transfer's callbacks saw. */
typedef struct {
  corio_fetch *f;
  int heads, datas, done;
  long head_status;     /* on_head's res->status */
  int done_before_head; /* the completion came first: never */
  int data_before_head; /* nor on_data */
  int after_done;       /* any callback after the completion: never */
  char *buf;            /* the bytes, concatenated */
  size_t len, cap;
  int status;      /* the completion's */
  size_t bytes;    /* its res->bytes */
  size_t body_len; /* its res->body_len: 0 */
  long http;
  int attempts;
  int pause;     /* on_data answers CORIO_FETCH_PAUSE when set */
  int cancel_at; /* on_data cancels at this call (0: never) */
  int fail_at;   /* on_data fails with CORIO_EIO at this call */
  int keep;      /* keep the bytes in buf */
  char head_ctype[64];
} sink;

static void on_head(corio_fetch *f, const corio_response *res, void *ud) {
  sink *s = ud;
  size_t i;
  (void)f;
  if (s->done) s->after_done++;
  s->heads++;
  s->head_status = res->status;
  for (i = 0; i < res->nheaders; i++)
    if (strcasecmp(res->headers[i].name, "Content-Type") == 0)
      snprintf(s->head_ctype, sizeof s->head_ctype, "%s",
               res->headers[i].value);
}

static int on_data(corio_fetch *f, const char *p, size_t n, void *ud) {
  sink *s = ud;
  if (s->done) s->after_done++;
  if (s->heads == 0) s->data_before_head++;
  if (s->pause) return CORIO_FETCH_PAUSE;
  s->datas++;
  if (s->cancel_at == s->datas) ASSERT_OK(corio_fetch_cancel(f));
  if (s->fail_at == s->datas) return CORIO_EIO;
  if (s->keep) {
    if (s->len + n > s->cap) {
      s->cap = (s->len + n) * 2;
      s->buf = realloc(s->buf, s->cap);
      ASSERT_NOT_NULL(s->buf);
    }
    memcpy(s->buf + s->len, p, n);
  }
  s->len += n;
  return 0;
}

static void on_done(corio_fetch *f, int status, const corio_response *res,
                    void *ud) {
  sink *s = ud;
  (void)f;
  if (s->heads == 0 && status == 0) s->done_before_head++;
  s->done++;
  s->status = status;
  s->bytes = res->bytes;
  s->body_len = res->body_len;
  s->http = res->status;
  s->attempts = res->attempts;
}

static void stream_req(corio_request *req, const char *url) {
  corio_request_init(req, url);
  req->on_head = on_head;
  req->on_data = on_data;
}

/* Run one streamed request on its own runtime to its end. */
static void stream1(const corio_request *req, sink *s) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_fetch_stats st;
  ASSERT_OK(corio_fetch_start(rt, NULL, req, on_done, s, &s->f));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(s->done, 1);
  ASSERT_EQ(s->after_done, 0);
  ASSERT_EQ(s->done_before_head, 0);
  ASSERT_EQ(s->data_before_head, 0);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.active, 0);
  ASSERT_EQ(st.streamed, 0);
  ASSERT_OK(corio_rt_free(rt));
}

static void check_bytes(const sink *s, size_t len, char c) {
  size_t i;
  ASSERT_EQ(s->len, len);
  for (i = 0; i < len; i++)
    if (s->buf[i] != c) ASSERT(0 && "wrong byte");
}

/*
** {==================================================================
** The bytes and the order of the callbacks
** ===================================================================
*/

TEST_IMPL(stream_chunks_make_the_body) {
  char u[256];
  corio_request req;
  sink s;
  memset(&s, 0, sizeof s);
  s.keep = 1;
  stream_req(&req, mkurl(u, "/bytes/1m"));
  stream1(&req, &s);
  ASSERT_EQ(s.status, 0);
  ASSERT_EQ(s.heads, 1);
  ASSERT_EQ(s.head_status, 200);
  ASSERT_STR_EQ(s.head_ctype, "application/octet-stream");
  ASSERT(s.datas >= 1);
  check_bytes(&s, 1048576, 'c');
  ASSERT_EQ(s.bytes, 1048576); /* handed out */
  ASSERT_EQ(s.body_len, 0);    /* not collected */
  free(s.buf);
  /* chunked, of unknown length; an empty body; HEAD */
  memset(&s, 0, sizeof s);
  s.keep = 1;
  stream_req(&req, mkurl(u, "/chunked"));
  stream1(&req, &s);
  ASSERT_EQ(s.status, 0);
  ASSERT_EQ(s.len, 1000000);
  ASSERT(memcmp(s.buf, "0123456789", 10) == 0);
  free(s.buf);
  memset(&s, 0, sizeof s);
  stream_req(&req, mkurl(u, "/bytes/0"));
  stream1(&req, &s);
  ASSERT_EQ(s.status, 0);
  ASSERT_EQ(s.heads, 1);
  ASSERT_EQ(s.datas, 0);
  ASSERT_EQ(s.bytes, 0);
  memset(&s, 0, sizeof s);
  stream_req(&req, mkurl(u, "/bytes/1k"));
  req.method = "HEAD";
  stream1(&req, &s);
  ASSERT_EQ(s.status, 0);
  ASSERT_EQ(s.heads, 1);
  ASSERT_EQ(s.head_status, 200);
  ASSERT_EQ(s.datas, 0);
}

/* Redirects: the head handed out is the last one's. */
TEST_IMPL(stream_head_after_redirects) {
  char u[256];
  corio_request req;
  sink s;
  memset(&s, 0, sizeof s);
  s.keep = 1;
  stream_req(&req, mkurl(u, "/redirect/3"));
  stream1(&req, &s);
  ASSERT_EQ(s.status, 0);
  ASSERT_EQ(s.heads, 1);
  ASSERT_EQ(s.head_status, 200);
  ASSERT_EQ(s.len, 12);
  ASSERT(memcmp(s.buf, "hello world\n", 12) == 0);
  free(s.buf);
  memset(&s, 0, sizeof s); /* not followed: the 302 is the response */
  stream_req(&req, mkurl(u, "/redirect/3"));
  req.follow_redirects = 0;
  stream1(&req, &s);
  ASSERT_EQ(s.status, 0);
  ASSERT_EQ(s.heads, 1);
  ASSERT_EQ(s.head_status, 302);
}

/*
** The head and the first bytes come while the server still sends: /slow
** sends "start", then waits 10 s.  Cancelled from on_data: the completion
** says so, at the next turn, and nothing else is called.
*/
TEST_IMPL(stream_head_before_the_end) {
  corio_rt *rt = corio_rt_new(NULL);
  char u[256];
  corio_request req;
  corio_fetch_stats st;
  sink s;
  double t0 = now();
  memset(&s, 0, sizeof s);
  s.cancel_at = 1;
  stream_req(&req, mkurl(u, "/slow"));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_done, &s, &s.f));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT(now() - t0 < 9); /* long before the server's end */
  ASSERT_EQ(s.heads, 1);
  ASSERT_EQ(s.datas, 1);
  ASSERT_EQ(s.done, 1);
  ASSERT_EQ(s.status, CORIO_ECANCELED);
  ASSERT_EQ(s.after_done, 0);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.active, 0);
  ASSERT_EQ(st.sockets, 0); /* the connection went with it */
  ASSERT_OK(corio_rt_free(rt));
}

/* }================================================================== */

/*
** {==================================================================
** A slow consumer: pause, resume, a bounded buffer
** ===================================================================
*/

typedef struct {
  uv_timer_t timer;
  corio_rt *rt;
  sink *s;
  size_t max_streamed;
  int ticks, paused_seen;
} consumer;

/* Every tick: take one offer (resume, then pause again at the next). */
static void on_tick(uv_timer_t *t) {
  consumer *c = (consumer *)t;
  corio_fetch_stats st;
  corio_fetch_get_stats(c->rt, &st);
  if (st.streamed > c->max_streamed) c->max_streamed = st.streamed;
  if (st.paused > 0) c->paused_seen++;
  c->ticks++;
  if (c->s->done || c->ticks > 20000) {
    uv_close((uv_handle_t *)t, NULL);
    return;
  }
  c->s->pause = 0;
  (void)corio_fetch_resume(c->s->f);
}

static int on_data_once(corio_fetch *f, const char *p, size_t n, void *ud) {
  sink *s = ud;
  int r = on_data(f, p, n, ud);
  s->pause = 1; /* the next offer waits for the next tick */
  return r;
}

TEST_IMPL(stream_slow_consumer_is_bounded) {
  corio_rt *rt = corio_rt_new(NULL);
  char u[256];
  corio_request req;
  consumer c;
  sink s;
  memset(&s, 0, sizeof s);
  memset(&c, 0, sizeof c);
  s.pause = 1;
  c.rt = rt;
  c.s = &s;
  stream_req(&req, mkurl(u, "/bytes/32m"));
  req.on_data = on_data_once;
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_done, &s, &s.f));
  ASSERT_OK(uv_timer_init(corio_rt_loop(rt), &c.timer));
  ASSERT_OK(uv_timer_start(&c.timer, on_tick, 1, 1));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(s.done, 1);
  ASSERT_EQ(s.status, 0);
  ASSERT_EQ(s.len, 33554432);
  ASSERT_EQ(s.bytes, 33554432);
  ASSERT(c.paused_seen > 0); /* libcurl was paused... */
  /* ...and the runtime never held more than its buffer and one read */
  ASSERT(c.max_streamed <= CORIO_FETCH_STREAM_BUFFER + 64 * 1024);
  ASSERT(c.max_streamed >= CORIO_FETCH_STREAM_BUFFER / 2);
  ASSERT_OK(corio_rt_free(rt));
}

/* pause and resume are for streamed transfers in flight only. */
TEST_IMPL(stream_pause_resume_refused) {
  corio_rt *rt = corio_rt_new(NULL);
  char u[256];
  corio_request req;
  result r;
  memset(&r, 0, sizeof r);
  ASSERT_EQ(corio_fetch_pause(NULL), CORIO_EINVAL);
  ASSERT_EQ(corio_fetch_resume(NULL), CORIO_EINVAL);
  corio_request_init(&req, mkurl(u, "/hello"));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r, &r.f));
  ASSERT_EQ(corio_fetch_pause(r.f), CORIO_EINVAL); /* not streamed */
  ASSERT_EQ(corio_fetch_resume(r.f), CORIO_EINVAL);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(r.status, 0);
  result_clear(&r);
  ASSERT_OK(corio_rt_free(rt));
}

/* }================================================================== */

/*
** {==================================================================
** Failures
** ===================================================================
*/

TEST_IMPL(stream_fail_from_on_data) {
  corio_rt *rt;
  char u[256];
  corio_request req;
  corio_fetch_stats st;
  sink s;
  memset(&s, 0, sizeof s);
  s.fail_at = 1;
  stream_req(&req, mkurl(u, "/bytes/32m"));
  rt = corio_rt_new(NULL);
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_done, &s, &s.f));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(s.done, 1);
  ASSERT_EQ(s.status, CORIO_EIO);
  ASSERT_EQ(s.datas, 1);
  ASSERT_EQ(s.after_done, 0);
  corio_fetch_get_stats(rt, &st);
  ASSERT_EQ(st.active, 0);
  ASSERT_EQ(st.sockets, 0);
  ASSERT_OK(corio_rt_free(rt));
}

TEST_IMPL(stream_max_body) {
  char u[256];
  corio_request req;
  sink s;
  /* a known length over the limit: refused before the head */
  memset(&s, 0, sizeof s);
  stream_req(&req, mkurl(u, "/bytes/1m"));
  req.max_body = 100000;
  stream1(&req, &s);
  ASSERT_EQ(s.status, CORIO_ETOOLARGE);
  ASSERT_EQ(s.len, 0);
  /* an unknown length: the bytes up to the limit, then the error */
  memset(&s, 0, sizeof s);
  stream_req(&req, mkurl(u, "/chunked"));
  req.max_body = 500000;
  stream1(&req, &s);
  ASSERT_EQ(s.status, CORIO_ETOOLARGE);
  ASSERT_EQ(s.heads, 1);
  ASSERT(s.len <= 500000);
  ASSERT_EQ(s.bytes, s.len);
  /* exactly the limit is fine */
  memset(&s, 0, sizeof s);
  stream_req(&req, mkurl(u, "/bytes/1k"));
  req.max_body = 1024;
  stream1(&req, &s);
  ASSERT_EQ(s.status, 0);
  ASSERT_EQ(s.len, 1024);
}

/* The bytes that came are handed out, then the error. */
TEST_IMPL(stream_reset_mid_body) {
  corio_rt *rt = corio_rt_new(NULL);
  short_server ss;
  char u[64];
  corio_request req;
  sink s;
  memset(&s, 0, sizeof s);
  s.keep = 1;
  short_server_start(&ss, corio_rt_loop(rt), u, sizeof u);
  stream_req(&req, u);
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_done, &s, &s.f));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(s.done, 1);
  ASSERT_EQ(s.status, CORIO_ERESET);
  ASSERT_EQ(s.heads, 1);
  ASSERT_EQ(s.len, 10);
  ASSERT(memcmp(s.buf, "0123456789", 10) == 0);
  ASSERT_EQ(s.after_done, 0);
  free(s.buf);
  ASSERT_OK(corio_rt_free(rt));
}

/* A status worth a retry is not handed out, except on the last try. */
TEST_IMPL(stream_retry_status) {
  char u[256];
  corio_request req;
  sink s;
  memset(&s, 0, sizeof s);
  s.keep = 1;
  stream_req(&req, mkurl(u, "/status/502"));
  req.retry.attempts = 3;
  req.retry.backoff = 0.01;
  req.retry.max_backoff = 0.02;
  stream1(&req, &s);
  ASSERT_EQ(s.status, 0);
  ASSERT_EQ(s.attempts, 3);
  ASSERT_EQ(s.heads, 1);
  ASSERT_EQ(s.head_status, 502);
  ASSERT_EQ(s.len, 12);
  ASSERT(memcmp(s.buf, "bad gateway\n", 12) == 0);
  free(s.buf);
  /* refused before the head: retried as any transfer */
  memset(&s, 0, sizeof s);
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", free_port());
  stream_req(&req, u);
  req.retry.attempts = 2;
  req.retry.backoff = 0.01;
  stream1(&req, &s);
  ASSERT_EQ(s.status, CORIO_ECONNECT);
  ASSERT_EQ(s.attempts, 2);
  ASSERT_EQ(s.heads, 0);
}

TEST_IMPL(stream_refused) {
  corio_rt *rt = corio_rt_new(NULL);
  char u[256];
  corio_request req;
  corio_response *res = NULL;
  sink s;
  memset(&s, 0, sizeof s);
  corio_request_init(&req, mkurl(u, "/hello"));
  req.on_head = on_head; /* without on_data */
  ASSERT_EQ(corio_fetch_start(rt, NULL, &req, on_done, &s, NULL), CORIO_EINVAL);
  stream_req(&req, mkurl(u, "/hello"));
  ASSERT_EQ(corio_fetch_blocking(&req, &res), CORIO_EINVAL);
  ASSERT(res == NULL);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(s.done, 0);
  ASSERT_OK(corio_rt_free(rt));
}

/* corio_rt_free with a paused stream holding bytes: cancelled, freed. */
TEST_IMPL(stream_freed_while_paused) {
  corio_rt *rt = corio_rt_new(NULL);
  char u[256];
  corio_request req;
  corio_fetch_stats st;
  sink s;
  int i;
  memset(&s, 0, sizeof s);
  s.pause = 1;
  stream_req(&req, mkurl(u, "/bytes/32m"));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_done, &s, &s.f));
  for (i = 0; i < 10000; i++) { /* until libcurl is paused */
    corio_rt_run(rt, UV_RUN_ONCE);
    corio_fetch_get_stats(rt, &st);
    if (st.paused > 0) break;
  }
  ASSERT_EQ(st.paused, 1);
  ASSERT(st.streamed >= CORIO_FETCH_STREAM_BUFFER);
  ASSERT_EQ(s.done, 0);
  ASSERT_OK(corio_rt_free(rt));
  ASSERT_EQ(s.done, 1);
  ASSERT_EQ(s.status, CORIO_ECANCELED);
}

/* }================================================================== */

/* clang-format off */
TEST_MAIN_SETUP(fetch_setup,
  TEST_ENTRY(stream_chunks_make_the_body)
  TEST_ENTRY(stream_head_after_redirects)
  TEST_ENTRY(stream_head_before_the_end)
  TEST_ENTRY(stream_slow_consumer_is_bounded)
  TEST_ENTRY(stream_pause_resume_refused)
  TEST_ENTRY(stream_fail_from_on_data)
  TEST_ENTRY(stream_max_body)
  TEST_ENTRY(stream_reset_mid_body)
  TEST_ENTRY(stream_retry_status)
  TEST_ENTRY(stream_refused)
  TEST_ENTRY(stream_freed_while_paused)
)
/* clang-format on */
