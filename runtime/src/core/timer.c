/*
** timer.c: every deadline of a runtime (sleeping tasks, corio_timers, wait
** timeouts) lives in one binary min-heap, behind one uv_timer_t.  A sleeping
** task costs one heap slot, not a libuv handle.
*/
#include <math.h>

#include "core.h"

#define TAG_TASK ((uintptr_t)1)

static int earlier(const corio__tnode *a, const corio__tnode *b) {
  if (a->due != b->due) return a->due < b->due;
  return (int32_t)(a->seq - b->seq) < 0; /* FIFO, wrap-safe */
}

static corio__tnode *node_of(corio__tnode *entry) {
  return (corio__tnode *)((uintptr_t)entry & ~TAG_TASK);
}

static corio__tnode *at(corio_rt *rt, size_t i) {
  return node_of(rt->heap[i]);
}

static void put(corio_rt *rt, size_t i, corio__tnode *entry) {
  rt->heap[i] = entry;
  node_of(entry)->index = (uint32_t)i;
}

static void sift_up(corio_rt *rt, size_t i) {
  corio__tnode *e = rt->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(node_of(e), at(rt, parent))) break;
    put(rt, i, rt->heap[parent]);
    i = parent;
  }
  put(rt, i, e);
}

static void sift_down(corio_rt *rt, size_t i) {
  corio__tnode *e = rt->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, min = l;
    if (l >= rt->heap_len) break;
    if (r < rt->heap_len && earlier(at(rt, r), at(rt, l))) min = r;
    if (!earlier(at(rt, min), node_of(e))) break;
    put(rt, i, rt->heap[min]);
    i = min;
  }
  put(rt, i, e);
}

static void on_uvtimer(uv_timer_t *h);

/* Keep uv_timer armed for the earliest deadline. */
static void rearm(corio_rt *rt) {
  uint64_t due, now;
  if (rt->heap_len == 0) {
    if (rt->armed_due != UINT64_MAX) uv_timer_stop(&rt->uvtimer);
    rt->armed_due = UINT64_MAX;
    return;
  }
  due = at(rt, 0)->due;
  if (due == rt->armed_due) return;
  now = uv_now(rt->loop);
  uv_timer_start(&rt->uvtimer, on_uvtimer, due > now ? due - now : 0, 0);
  rt->armed_due = due;
}

static void remove_at(corio_rt *rt, size_t i) {
  corio__tnode *last = rt->heap[--rt->heap_len];
  if (i < rt->heap_len) {
    put(rt, i, last);
    sift_down(rt, i);
    sift_up(rt, node_of(last)->index);
  }
}

static void on_uvtimer(uv_timer_t *h) {
  corio_rt *rt = h->data;
  uint64_t now = uv_now(rt->loop);
  rt->armed_due = UINT64_MAX;
  while (rt->heap_len > 0 && at(rt, 0)->due <= now) {
    corio__tnode *e = rt->heap[0];
    remove_at(rt, 0);
    if ((uintptr_t)e & TAG_TASK) {
      corio_task *t = corio__container_of(node_of(e), corio_task, u.sleep);
      corio__task_sleep_expired(t);
    } else {
      corio_timer *tm = (corio_timer *)e;
      corio_timer_fn cb = tm->cb;
      tm->cb = NULL; /* fired: corio_timer_stop from the callback is a no-op */
      cb(tm, tm->ud);
      corio__free(tm);
    }
  }
  rearm(rt);
}

void corio__timers_init(corio_rt *rt) {
  uv_timer_init(rt->loop, &rt->uvtimer);
  rt->uvtimer.data = rt;
  rt->armed_due = UINT64_MAX;
}

void corio__timers_close(corio_rt *rt) {
  /* only corio_timers can be left (tasks are finished): free them */
  while (rt->heap_len > 0) {
    corio__tnode *e = rt->heap[rt->heap_len - 1];
    rt->heap_len--;
    if (!((uintptr_t)e & TAG_TASK)) corio__free(e);
  }
  corio__free(rt->heap);
  rt->heap = NULL;
  rt->heap_cap = 0;
  if (rt->armed_due != UINT64_MAX) uv_timer_stop(&rt->uvtimer);
  rt->armed_due = UINT64_MAX;
}

int corio__tnode_add(corio_rt *rt, corio__tnode *node, uint64_t ms, int tag) {
  if (rt->heap_len == rt->heap_cap) {
    size_t cap = rt->heap_cap ? rt->heap_cap * 2 : 64;
    corio__tnode **h = corio__realloc(rt->heap, cap * sizeof *h);
    if (h == NULL) return CORIO_ENOMEM;
    rt->heap = h;
    rt->heap_cap = cap;
  }
  node->due = uv_now(rt->loop) + ms;
  node->seq = rt->timer_seq++;
  rt->heap_len++;
  put(rt, rt->heap_len - 1,
      (corio__tnode *)((uintptr_t)node | (tag ? TAG_TASK : 0)));
  sift_up(rt, rt->heap_len - 1);
  if (node->due < rt->armed_due) rearm(rt);
  return 0;
}

void corio__tnode_remove(corio_rt *rt, corio__tnode *node) {
  remove_at(rt, node->index);
  /* the armed deadline may be gone: a stale one would keep the loop alive */
  rearm(rt);
}

corio_timer *corio_timer_start(corio_rt *rt, uint64_t ms, corio_timer_fn cb,
                               void *ud) {
  corio_timer *tm;
  if (cb == NULL) return NULL;
  tm = corio__malloc(sizeof *tm);
  if (tm == NULL) return NULL;
  tm->rt = rt;
  tm->cb = cb;
  tm->ud = ud;
  if (corio__tnode_add(rt, &tm->node, ms, 0) != 0) {
    corio__free(tm);
    return NULL;
  }
  return tm;
}

void corio_timer_stop(corio_timer *tm) {
  if (tm == NULL || tm->cb == NULL) return;
  corio__tnode_remove(tm->rt, &tm->node);
  corio__free(tm);
}

/*
** s * 1000 is inexact for most decimal fractions (1.1 * 1000 is
** 1100.0000000000002): a nanosecond of slack keeps such an artefact from
** adding a whole millisecond.
*/
uint64_t corio_seconds_to_ms(double s) {
  double ms;
  if (!(s > 0)) return 0; /* NaN too */
  ms = ceil(s * 1000.0 - 1e-6);
  if (ms >= 18446744073709551615.0) return UINT64_MAX;
  return ms < 1 ? 1 : (uint64_t)ms;
}
