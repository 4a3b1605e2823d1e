/*
** test-post.c: corio_rt_post, the one call another thread may make.  Every
** accepted post runs exactly once, on the loop thread; once corio_rt_free
** has begun, posts are refused with CORIO_ECLOSED and those accepted
** before run with that status.  Run it under ThreadSanitizer too:
**   cmake -S . -B build-tsan -DCORIO_TSAN=ON && cmake --build build-tsan
**   build-tsan/tests/test-post
*/
#include <pthread.h>
#include <stdatomic.h>

#include "task.h"

#define NTHREADS 4
#define NPOSTS   100000

typedef struct hammer {
  corio_rt *rt;
  pthread_t loop_thread; /* where every callback must run */
  unsigned char marks[NTHREADS * NPOSTS];
  size_t runs;      /* callbacks run (loop thread only) */
  size_t wrong;     /* callbacks run elsewhere, or with a status */
  atomic_int start; /* the threads post at once */
} hammer;

typedef struct poster {
  hammer *h;
  int id;
  int rc; /* the first failure */
} poster;

static hammer H;

static void count_post(corio_rt *rt, int status, void *data) {
  unsigned char *mark = data;
  if (status != 0 || rt != H.rt ||
      !pthread_equal(pthread_self(), H.loop_thread))
    H.wrong++;
  ++*mark;
  if (++H.runs == (size_t)NTHREADS * NPOSTS) corio_rt_stop(rt);
}

static void *post_many(void *arg) {
  poster *p = arg;
  int i, rc;
  while (!atomic_load(&p->h->start)) {
  }
  for (i = 0; i < NPOSTS; i++) {
    rc = corio_rt_post(p->h->rt, count_post, &p->h->marks[p->id * NPOSTS + i]);
    if (rc != 0 && p->rc == 0) p->rc = rc;
  }
  return NULL;
}

/* 4 threads x 100,000 posts against a loop that waits for them: each
   runs exactly once, on the loop thread, with status 0. */
TEST_IMPL(hammer_four_threads) {
  poster p[NTHREADS];
  pthread_t th[NTHREADS];
  size_t i;
  int k;
  memset(&H, 0, sizeof H);
  H.rt = corio_rt_new(NULL);
  H.loop_thread = pthread_self();
  ASSERT_NOT_NULL(H.rt);
  corio_rt_keep_alive(H.rt, 1);
  for (k = 0; k < NTHREADS; k++) {
    p[k].h = &H;
    p[k].id = k;
    p[k].rc = 0;
    ASSERT_OK(pthread_create(&th[k], NULL, post_many, &p[k]));
  }
  atomic_store(&H.start, 1);
  /* returns at corio_rt_stop, called by the last post (the test's
     timeout bounds it if posts were lost) */
  ASSERT(corio_rt_run(H.rt, UV_RUN_DEFAULT) >= 0);
  for (k = 0; k < NTHREADS; k++) {
    ASSERT_OK(pthread_join(th[k], NULL));
    ASSERT_OK(p[k].rc);
  }
  ASSERT_EQ(H.runs, (size_t)NTHREADS * NPOSTS);
  ASSERT_EQ(H.wrong, 0);
  for (i = 0; i < sizeof H.marks; i++) ASSERT_EQ(H.marks[i], 1);
  corio_rt_keep_alive(H.rt, 0);
  RT_FREE_CLEAN(H.rt);
}

/*
** Posting while corio_rt_free runs: threads post until refused.  A post
** made before the free blocks its CORIO_ECLOSED run until every thread
** saw CORIO_ECLOSED, so that none posts to freed memory.  Every accepted
** post ran exactly once: with 0 at a turn, or with CORIO_ECLOSED.
*/
static atomic_int refused;        /* threads that got CORIO_ECLOSED */
static atomic_size_t accepted;    /* posts that returned 0 */
static size_t ran_ok, ran_closed; /* loop thread only */
static int repost_rc;

static void count_status(corio_rt *rt, int status, void *data) {
  (void)data;
  if (status == 0)
    ran_ok++;
  else if (status == CORIO_ECLOSED)
    ran_closed++;
  (void)rt;
}

static void *post_until_closed(void *arg) {
  corio_rt *rt = arg;
  int rc;
  for (;;) {
    rc = corio_rt_post(rt, count_status, NULL);
    if (rc == CORIO_ECLOSED) break;
    ASSERT_OK(rc);
    atomic_fetch_add(&accepted, 1);
  }
  atomic_fetch_add(&refused, 1);
  return NULL;
}

static void wait_for_threads(corio_rt *rt, int status, void *data) {
  struct timespec d = {0, 1000000};
  int i;
  (void)data;
  ASSERT_EQ(status, CORIO_ECLOSED);
  ran_closed++;
  /* posting from a callback run by the teardown is refused too */
  repost_rc = corio_rt_post(rt, count_status, NULL);
  for (i = 0; i < 20000 && atomic_load(&refused) < NTHREADS; i++)
    nanosleep(&d, NULL);
  ASSERT_EQ(atomic_load(&refused), NTHREADS);
}

TEST_IMPL(post_during_close) {
  corio_rt *rt = corio_rt_new(NULL);
  pthread_t th[NTHREADS];
  int k, turns;
  atomic_store(&refused, 0);
  atomic_store(&accepted, 0);
  ran_ok = ran_closed = 0;
  for (k = 0; k < NTHREADS; k++)
    ASSERT_OK(pthread_create(&th[k], NULL, post_until_closed, rt));
  /* some turns with posts arriving, then the free with some queued */
  for (turns = 0; turns < 50; turns++) corio_rt_run(rt, UV_RUN_NOWAIT);
  ASSERT_OK(corio_rt_post(rt, wait_for_threads, NULL));
  RT_FREE_CLEAN(rt);
  for (k = 0; k < NTHREADS; k++) ASSERT_OK(pthread_join(th[k], NULL));
  ASSERT_EQ(repost_rc, CORIO_ECLOSED);
  ASSERT(ran_closed >= 1);
  ASSERT_EQ(ran_ok + ran_closed, atomic_load(&accepted) + 1);
}

/* A post queued on a loop that never ran again runs from corio_rt_free,
   with CORIO_ECLOSED: a `data` it owns is released (ASan sees a leak
   otherwise). */
static void free_owned(corio_rt *rt, int status, void *data) {
  (void)rt;
  ASSERT_EQ(status, CORIO_ECLOSED);
  ran_closed++;
  free(data);
}

TEST_IMPL(queued_posts_run_at_free) {
  corio_rt *rt = corio_rt_new(NULL);
  ran_closed = 0;
  ASSERT_OK(corio_rt_post(rt, free_owned, malloc(32)));
  ASSERT_OK(corio_rt_post(rt, free_owned, malloc(32)));
  RT_FREE_CLEAN(rt);
  ASSERT_EQ(ran_closed, 2);
}

static int order[4], norder;

static void record(corio_rt *rt, int status, void *data) {
  int v = (int)(intptr_t)data;
  ASSERT_EQ(status, 0);
  order[norder++] = v;
  /* posted from a callback: the next turn, not this batch */
  if (v == 1) ASSERT_OK(corio_rt_post(rt, record, (void *)(intptr_t)3));
}

/* Never inside the call; in order; a re-post waits for the next turn;
   waiting for posts keeps the loop alive only when asked to. */
TEST_IMPL(post_rules) {
  corio_rt *rt = corio_rt_new(NULL);
  norder = 0;
  ASSERT_EQ(corio_rt_post(NULL, record, NULL), CORIO_EINVAL);
  ASSERT_EQ(corio_rt_post(rt, NULL, NULL), CORIO_EINVAL);
  ASSERT_OK(corio_rt_post(rt, record, (void *)(intptr_t)1));
  ASSERT_OK(corio_rt_post(rt, record, (void *)(intptr_t)2));
  ASSERT_EQ(norder, 0);
  /* a loop with nothing else to do does not even poll for them */
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(norder, 0);
  corio_rt_keep_alive(rt, 1);
  ASSERT(corio_rt_run(rt, UV_RUN_NOWAIT) >= 0);
  ASSERT_EQ(norder, 2);
  ASSERT_EQ(order[0], 1);
  ASSERT_EQ(order[1], 2);
  ASSERT(corio_rt_run(rt, UV_RUN_NOWAIT) >= 0);
  ASSERT_EQ(norder, 3);
  ASSERT_EQ(order[2], 3);
  /* nothing to do: without keep-alive, waiting for posts is not work */
  corio_rt_keep_alive(rt, 0);
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  RT_FREE_CLEAN(rt);
}

TEST_MAIN(TEST_ENTRY(hammer_four_threads) TEST_ENTRY(post_during_close)
              TEST_ENTRY(queued_posts_run_at_free) TEST_ENTRY(post_rules))
