/*
** rt.c: the runtime object: owns or borrows a uv_loop_t, runs it, and
** refuses to go away while tasks are unfinished.
*/
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "core.h"

long corio_raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return CORIO_EIO;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return CORIO_EIO;
  }
  return rl.rlim_cur == RLIM_INFINITY ? (long)INT32_MAX : (long)rl.rlim_cur;
}

corio_rt *corio_rt_new(uv_loop_t *loop) {
  corio_rt *rt = corio__calloc(1, sizeof *rt);
  if (rt == NULL) return NULL;
  if (loop == NULL) {
    if (uv_loop_init(&rt->own_loop) != 0) {
      corio__free(rt);
      return NULL;
    }
    rt->loop = &rt->own_loop;
    rt->owns_loop = 1;
  } else {
    rt->loop = loop;
  }
  /* many transfers at once need many descriptors; failure is not fatal */
  (void)corio_raise_fd_limit();
  corio__sched_init(rt);
  corio__timers_init(rt);
  return rt;
}

void corio__closing(corio_rt *rt) {
  rt->nhandles++;
}

void corio__closed(corio_rt *rt) {
  rt->nhandles--;
}

static void on_handle_closed(uv_handle_t *h) {
  corio__closed(h->data);
}

/* Close one of the runtime's own handles; corio_rt_free waits for it. */
static void close_own(corio_rt *rt, uv_handle_t *h) {
  if (uv_is_closing(h)) return;
  h->data = rt;
  corio__closing(rt);
  uv_close(h, on_handle_closed);
}

int corio_rt_free(corio_rt *rt) {
  int i;
  if (rt == NULL) return 0;
  if (rt->ntasks > 0 || rt->running) return CORIO_EBUSY;
  for (i = 0; i < CORIO__PART_COUNT; i++)
    if (rt->part[i].shutdown != NULL) rt->part[i].shutdown(rt);
  corio__timers_close(rt);
  corio__sched_close(rt);
  close_own(rt, (uv_handle_t *)&rt->idle);
  close_own(rt, (uv_handle_t *)&rt->check);
  close_own(rt, (uv_handle_t *)&rt->uvtimer);
  /* only our handles' close callbacks must run; a borrowed loop may hold
     the host's handles too, so run until ours are gone, not until empty */
  while (rt->nhandles > 0) uv_run(rt->loop, UV_RUN_ONCE);
  if (rt->owns_loop) {
    /* closes whatever a careless op left behind rather than leaking it */
    uv_run(rt->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(rt->loop) != 0) return CORIO_EBUSY;
  }
  corio__free(rt);
  return 0;
}

uv_loop_t *corio_rt_loop(corio_rt *rt) {
  return rt->loop;
}

int corio_rt_run(corio_rt *rt, uv_run_mode mode) {
  int r;
  if (rt->running) return CORIO_EBUSY;
  rt->running = 1;
  r = uv_run(rt->loop, mode);
  rt->running = 0;
  return r != 0;
}

void corio_rt_stop(corio_rt *rt) {
  uv_stop(rt->loop);
}

int corio_rt_running(const corio_rt *rt) {
  return rt->running;
}

uint64_t corio_rt_now(const corio_rt *rt) {
  return uv_now(rt->loop);
}

double corio_rt_time(const corio_rt *rt) {
  (void)rt;
  return (double)uv_hrtime() / 1e9;
}

void corio_rt_get_stats(const corio_rt *rt, corio_rt_stats *out) {
  memset(out, 0, sizeof *out);
  out->tasks = rt->ntasks;
  out->ready = rt->nready;
  out->sleeping = rt->heap_len;
}

void *corio_rt_get_data(const corio_rt *rt) {
  return rt->data;
}

void corio_rt_set_data(corio_rt *rt, void *data) {
  rt->data = data;
}
