/*
** test-fetch-buffers.c: pooled transfer objects and body buffers, bodies
** in the caller's blocks (body_alloc), and every allocation failing in
** turn.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch_support.h"

/*
** {==================================================================
** Pooled transfer objects and body buffers, the caller's blocks, out of
** memory
** ===================================================================
*/

/* One after the other, each started from the callback of the one before
   (whose object is pooled only when that callback returns): two pooled
   objects take turns, each with the body buffer, big or not, of the
   transfer before last.  An empty body is "" whatever the buffer held. */
typedef struct {
  corio_rt *rt;
  int i;
  result r;
} serial;

static const struct {
  const char *path;
  size_t len;
  const char *pattern;
} serial_steps[] = {
    {"/bytes/1m", 1048576, "c"},
    {"/bytes/0", 0, "-"},
    {"/bytes/100k", 102400, "b"},
    {"/bytes/1k", 1024, "a"},
    {"/chunked", 1000000, "0123456789"},
    {"/hello", 12, "hello world\n"},
    {"/bytes/1m", 1048576, "c"},
    {"/hello", 12, "hello world\n"},
    {"/bytes/0", 0, "-"}, /* in the buffer the 1 MiB left: still "" */
};

static void on_serial(corio_fetch *f, int status, const corio_response *res,
                      void *ud) {
  serial *q = ud;
  char u[256];
  corio_request req;
  record(f, status, res, &q->r);
  check_body(&q->r, serial_steps[q->i].len, serial_steps[q->i].pattern);
  if (++q->i < (int)(sizeof serial_steps / sizeof serial_steps[0])) {
    corio_request_init(&req, mkurl(u, serial_steps[q->i].path));
    ASSERT_OK(corio_fetch_start(q->rt, NULL, &req, on_serial, q, NULL));
  }
}

/* Run serial_steps on a new runtime; the pool's stats at the end. */
static corio_fetch_stats run_serial(void) {
  serial q;
  char u[256];
  corio_request req;
  corio_fetch_stats st;
  memset(&q, 0, sizeof q);
  q.rt = corio_rt_new(NULL);
  corio_request_init(&req, mkurl(u, serial_steps[0].path));
  ASSERT_OK(corio_fetch_start(q.rt, NULL, &req, on_serial, &q, NULL));
  ASSERT_OK(corio_rt_run(q.rt, UV_RUN_DEFAULT));
  ASSERT_EQ(q.i, (int)(sizeof serial_steps / sizeof serial_steps[0]));
  corio_fetch_get_stats(q.rt, &st);
  result_clear(&q.r);
  ASSERT_OK(corio_rt_free(q.rt));
  return st;
}

TEST_IMPL(pooled_buffers) {
  corio_fetch_stats st = run_serial();
  ASSERT_EQ(st.pooled, 2);
  /* the last two bodies: 1 MiB kept, 12 bytes within the small buffer */
  ASSERT(st.pooled_bytes >= 1048576 && st.pooled_bytes < 2 * 1048576);
}

/* A host whose allocator keeps freed memory asks for no body pool: the
   same transfers, the same bodies, no big buffer kept. */
TEST_IMPL(no_body_pool) {
  corio_fetch_stats st;
  corio_set_body_pool(0);
  st = run_serial();
  corio_set_body_pool(CORIO_BODY_POOL_DEFAULT);
  ASSERT_EQ(st.pooled, 2);
  ASSERT_EQ(st.pooled_bytes, 0);
}

/* Bodies received in the caller's blocks (body_alloc), kept without a
   copy (corio_fetch_take_body). */
#define HEADROOM 24

typedef struct {
  long blocks;  /* alive */
  size_t bytes; /* in them */
} counted;

static void *counted_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  counted *c = ud;
  void *p;
  if (nsize == 0) {
    if (ptr != NULL) {
      c->blocks--;
      c->bytes -= osize;
    }
    free(ptr);
    return NULL;
  }
  p = realloc(ptr, nsize);
  if (p == NULL) return NULL;
  if (ptr == NULL)
    c->blocks++;
  else
    c->bytes -= osize;
  c->bytes += nsize;
  return p;
}

typedef struct {
  int take; /* take the body's block? */
  int called, status;
  size_t len;
  char *block; /* the block taken, its size */
  size_t size;
  int taken_twice; /* a second take returned a block */
} kept;

static void on_kept(corio_fetch *f, int status, const corio_response *res,
                    void *ud) {
  kept *k = ud;
  size_t size;
  k->called++;
  k->status = status;
  k->len = res->body_len;
  if (!k->take) return;
  k->block = corio_fetch_take_body(f, &k->size);
  if (k->block != NULL) ASSERT(res->body == k->block + HEADROOM);
  k->taken_twice = corio_fetch_take_body(f, &size) != NULL;
}

/* Fetch `path` on `rt` with blocks from `c`; returns its status. */
static int fetch_kept(corio_rt *rt, const char *path, size_t max_body,
                      counted *c, kept *k) {
  char u[256];
  corio_request req;
  corio_fetch *f;
  size_t size;
  corio_request_init(&req, mkurl(u, path));
  req.max_body = max_body;
  req.body_alloc = counted_alloc;
  req.body_alloc_ud = c;
  req.body_offset = HEADROOM;
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_kept, k, &f));
  ASSERT(corio_fetch_take_body(f, &size) == NULL); /* not in the callback */
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(k->called, 1);
  ASSERT_EQ(k->taken_twice, 0);
  return k->status;
}

static void check_kept(const kept *k, size_t len, const char *pattern) {
  size_t i, plen = strlen(pattern);
  ASSERT_NOT_NULL(k->block);
  ASSERT_EQ(k->len, len);
  ASSERT(k->size >= HEADROOM + len + 1);
  for (i = 0; i < len; i++)
    if (k->block[HEADROOM + i] != pattern[i % plen]) ASSERT(0 && "differs");
  ASSERT_EQ(k->block[HEADROOM + len], '\0');
}

/* Cancel from a timer, counting blocks before and after. */
typedef struct {
  uv_timer_t timer;
  corio_fetch *f;
  counted *c;
  long before, after;
  int rc;
} body_canceller;

static void on_body_cancel(uv_timer_t *t) {
  body_canceller *bc = (body_canceller *)t;
  bc->before = bc->c->blocks;
  bc->rc = corio_fetch_cancel(bc->f);
  bc->after = bc->c->blocks;
  uv_close((uv_handle_t *)t, NULL);
}

TEST_IMPL(body_alloc) {
  corio_rt *rt = corio_rt_new(NULL);
  counted c = {0, 0};
  kept k;
  result r;
  body_canceller bc;
  char u[256];
  corio_request req;
  /* a known length is received in a block of exactly its size */
  memset(&k, 0, sizeof k);
  k.take = 1;
  ASSERT_OK(fetch_kept(rt, "/bytes/100k", 0, &c, &k));
  check_kept(&k, 102400, "b");
  ASSERT_EQ(k.size, HEADROOM + 102400 + 1);
  ASSERT_EQ(c.blocks, 1); /* the caller's now */
  ASSERT_EQ(c.bytes, k.size);
  (void)counted_alloc(&c, k.block, k.size, 0);
  /* however short ("hello world\n", 12 bytes; the runtime's own buffers
     start at 256) */
  memset(&k, 0, sizeof k);
  k.take = 1;
  ASSERT_OK(fetch_kept(rt, "/hello", 0, &c, &k));
  check_kept(&k, 12, "hello world\n");
  ASSERT_EQ(k.size, HEADROOM + 12 + 1);
  (void)counted_alloc(&c, k.block, k.size, 0);
  /* an unknown length grows its block */
  memset(&k, 0, sizeof k);
  k.take = 1;
  ASSERT_OK(fetch_kept(rt, "/chunked", 0, &c, &k));
  check_kept(&k, 1000000, "0123456789");
  ASSERT_EQ(c.blocks, 1);
  (void)counted_alloc(&c, k.block, k.size, 0);
  /* not taken, failed, empty: the runtime frees it */
  memset(&k, 0, sizeof k);
  ASSERT_OK(fetch_kept(rt, "/bytes/1k", 0, &c, &k));
  ASSERT_EQ(k.len, 1024);
  ASSERT_EQ(c.blocks, 0);
  memset(&k, 0, sizeof k);
  k.take = 1;
  ASSERT_EQ(fetch_kept(rt, "/bytes/100k", 1000, &c, &k), CORIO_ETOOLARGE);
  ASSERT(k.block == NULL);
  ASSERT_EQ(c.blocks, 0);
  memset(&k, 0, sizeof k);
  k.take = 1;
  ASSERT_OK(fetch_kept(rt, "/bytes/0", 0, &c, &k));
  ASSERT(k.block == NULL);
  ASSERT_EQ(c.blocks, 0);
  /* cancelled: freed before corio_fetch_cancel returns */
  memset(&r, 0, sizeof r);
  memset(&bc, 0, sizeof bc);
  bc.c = &c;
  corio_request_init(&req, mkurl(u, "/slow")); /* "start\n", then a pause */
  req.body_alloc = counted_alloc;
  req.body_alloc_ud = &c;
  req.body_offset = HEADROOM;
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, record, &r, &bc.f));
  ASSERT_OK(uv_timer_init(corio_rt_loop(rt), &bc.timer));
  ASSERT_OK(uv_timer_start(&bc.timer, on_body_cancel, 300, 0));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_OK(bc.rc);
  ASSERT_EQ(bc.before, 1);
  ASSERT_EQ(bc.after, 0);
  ASSERT_EQ(r.status, CORIO_ECANCELED);
  result_clear(&r);
  /* a request without body_alloc has nothing to take */
  memset(&k, 0, sizeof k);
  k.take = 1;
  corio_request_init(&req, mkurl(u, "/bytes/1k"));
  ASSERT_OK(corio_fetch_start(rt, NULL, &req, on_kept, &k, NULL));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(k.len, 1024);
  ASSERT(k.block == NULL);
  ASSERT_OK(corio_rt_free(rt));
  ASSERT_EQ(c.blocks, 0);
  ASSERT_EQ(c.bytes, 0);
}

/*
** Out of memory (docs/reliability.md fault 16), as curl's torture tests do it:
** corio's Nth allocation fails, for N = 1, 2, ... until a run needs no
** failure.  Each run either fetches the body whole or reports CORIO_ENOMEM
** (from corio_fetch_start or in the callback), frees its runtime, and
** gives back every descriptor; the sanitizer and valgrind runs check that
** nothing leaks.  (libcurl's and libuv's own allocations are not counted.)
*/
static long alloc_countdown = -1; /* fail when it reaches 0; -1: never */

static int alloc_fails(void) {
  if (alloc_countdown < 0) return 0;
  return alloc_countdown-- == 0;
}

static void *failing_malloc(size_t n) {
  return alloc_fails() ? NULL : malloc(n);
}

static void *failing_realloc(void *p, size_t n) {
  return alloc_fails() ? NULL : realloc(p, n);
}

/* One fetch on `rt` (session `s`, NULL: the default one): 0 with the body
   whole (`len` bytes of `pattern`), or CORIO_ENOMEM. */
static int fetch_or_nomem(corio_rt *rt, corio_session *s,
                          const corio_request *req, size_t len,
                          const char *pattern) {
  result r;
  int rc;
  memset(&r, 0, sizeof r);
  rc = corio_fetch_start(rt, s, req, record, &r, NULL);
  if (rc == 0) {
    ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
    ASSERT_EQ(r.called, 1);
    rc = r.status;
  }
  if (rc == 0)
    check_body(&r, len, pattern);
  else
    ASSERT_EQ(rc, CORIO_ENOMEM);
  result_clear(&r);
  return rc;
}

TEST_IMPL(out_of_memory) {
  char u[256], u2[256];
  corio_header h[1] = {{"X-Test", "torture"}};
  corio_request req, redir;
  result r;
  int before, n, failed = 0;
  ASSERT_OK(get("/hello", &r)); /* process-wide set-up first, as above */
  result_clear(&r);
  before = count_fds();
  /* a header and a body bigger than the pooled buffers; a redirect */
  corio_request_init(&req, mkurl(u, "/bytes/100k"));
  req.headers = h;
  req.nheaders = 1;
  corio_request_init(&redir, mkurl(u2, "/redirect/1"));
  ASSERT_OK(corio_replace_allocator(failing_malloc, failing_realloc, free));
  for (n = 0; n < 1000; n++) {
    corio_rt *rt;
    corio_session *s;
    alloc_countdown = n;
    rt = corio_rt_new(NULL);
    if (rt == NULL) {
      failed++;
      continue;
    }
    /* on the default session, twice (the second reuses the pooled
       transfer and the connection), then on a session of its own */
    if (fetch_or_nomem(rt, NULL, &req, 102400, "b") != 0) failed++;
    if (fetch_or_nomem(rt, NULL, &redir, 12, "hello world\n") != 0) failed++;
    s = corio_session_new(rt, NULL);
    if (s == NULL || fetch_or_nomem(rt, s, &req, 102400, "b") != 0) failed++;
    ASSERT_OK(corio_rt_free(rt));
    ASSERT_EQ(count_fds(), before);
    if (alloc_countdown >= 0) break; /* no allocation failed: all tried */
  }
  alloc_countdown = -1;
  ASSERT_OK(corio_replace_allocator(malloc, realloc, free));
  fprintf(stderr, "  %d allocations failed in turn; %d fetches out of memory\n",
          n, failed);
  ASSERT(n < 1000);
  ASSERT(failed > 0);
}

/* }================================================================== */

/* clang-format off */
TEST_MAIN_SETUP(fetch_setup,
  TEST_ENTRY(pooled_buffers)
  TEST_ENTRY(no_body_pool)
  TEST_ENTRY(body_alloc)
  TEST_ENTRY(out_of_memory)
)
/* clang-format on */
