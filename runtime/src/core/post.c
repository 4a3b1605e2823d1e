/*
** post.c: corio_rt_post, the one call another thread may make.  Posts go
** into an array under a mutex; a uv_async_t wakes the loop, whose callback
** swaps the array for an empty one and runs the whole batch, since
** uv_async_send coalesces: many sends before the loop wakes give one
** callback.  Only the post that makes the array non-empty sends; the drain
** empties it under the same mutex, so the next post sends again.
**
** The send happens under the mutex, and corio_rt_free marks the runtime
** closed under it before closing the handle: no thread can send on a
** handle being closed.  What was posted before that mark is run by
** corio_rt_free itself, with CORIO_ECLOSED, so no `data` is lost.
*/
#include "core.h"

static void run_batch(corio_rt *rt, int status) {
  corio__post *batch;
  size_t n, cap, i;
  uv_mutex_lock(&rt->post_mu);
  /* swap: producers fill the spare array while this batch runs */
  batch = rt->posts;
  n = rt->nposts;
  cap = rt->posts_cap;
  rt->posts = rt->post_spare;
  rt->posts_cap = rt->post_spare_cap;
  rt->nposts = 0;
  rt->post_spare = NULL; /* this batch's array, given back below */
  rt->post_spare_cap = 0;
  uv_mutex_unlock(&rt->post_mu);
  for (i = 0; i < n; i++) batch[i].fn(rt, status, batch[i].data);
  uv_mutex_lock(&rt->post_mu);
  if (rt->post_spare == NULL) { /* keep the larger array for next time */
    rt->post_spare = batch;
    rt->post_spare_cap = cap;
    batch = NULL;
  }
  uv_mutex_unlock(&rt->post_mu);
  corio__free(batch);
}

static void on_async(uv_async_t *h) {
  run_batch(h->data, 0);
}

int corio__post_init(corio_rt *rt) {
  if (uv_mutex_init(&rt->post_mu) != 0) return CORIO_ENOMEM;
  if (uv_async_init(rt->loop, &rt->post_async, on_async) != 0) {
    uv_mutex_destroy(&rt->post_mu);
    return CORIO_ENOMEM;
  }
  rt->post_async.data = rt;
  uv_unref((uv_handle_t *)&rt->post_async); /* see corio_rt_keep_alive */
  return 0;
}

void corio__post_close(corio_rt *rt) {
  uv_mutex_lock(&rt->post_mu);
  rt->post_closed = 1;
  uv_mutex_unlock(&rt->post_mu);
  /* new posts are refused now, so one batch is all there is (a callback
     posting again gets CORIO_ECLOSED) */
  run_batch(rt, CORIO_ECLOSED);
}

void corio__post_free(corio_rt *rt) {
  corio__free(rt->posts);
  corio__free(rt->post_spare);
  uv_mutex_destroy(&rt->post_mu);
}

int corio_rt_post(corio_rt *rt, corio_post_fn fn, void *data) {
  int rc = 0;
  if (rt == NULL || fn == NULL) return CORIO_EINVAL;
  uv_mutex_lock(&rt->post_mu);
  if (rt->post_closed) {
    rc = CORIO_ECLOSED;
  } else {
    if (rt->nposts == rt->posts_cap) {
      size_t cap = rt->posts_cap != 0 ? rt->posts_cap * 2 : 64;
      corio__post *p = corio__realloc(rt->posts, cap * sizeof *p);
      if (p == NULL)
        rc = CORIO_ENOMEM;
      else {
        rt->posts = p;
        rt->posts_cap = cap;
      }
    }
    if (rc == 0) {
      rt->posts[rt->nposts].fn = fn;
      rt->posts[rt->nposts].data = data;
      if (rt->nposts++ == 0) uv_async_send(&rt->post_async);
    }
  }
  uv_mutex_unlock(&rt->post_mu);
  return rc;
}

void corio_rt_keep_alive(corio_rt *rt, int on) {
  if (on)
    uv_ref((uv_handle_t *)&rt->post_async);
  else
    uv_unref((uv_handle_t *)&rt->post_async);
}
