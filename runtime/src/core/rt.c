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
  if (corio__post_init(rt) != 0) {
    if (rt->owns_loop) (void)uv_loop_close(rt->loop);
    corio__free(rt);
    return NULL;
  }
  corio__sched_init(rt);
  corio__timers_init(rt);
  rt->nopen = 4; /* idle, check, uvtimer, post_async */
  corio__rt_born();
  return rt;
}

void corio__opened(corio_rt *rt) {
  rt->nopen++;
}

void corio__closing(corio_rt *rt) {
  rt->nhandles++;
}

void corio__closed(corio_rt *rt) {
  rt->nhandles--;
  rt->nopen--;
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

static void count_open(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) ++*(size_t *)arg;
}

/*
** A handle someone else left open on the loop the runtime owns: the loop
** could not be closed, so nothing may be torn down.  Every handle of the
** runtime's own is counted in `nopen` (opened, until its close callback),
** and `nhandles` of them are closing: the rest of the loop's open handles
** are foreign.  Handles already closing finish in the teardown's run.
*/
static int foreign_handles(corio_rt *rt) {
  size_t open = 0;
  uv_walk(rt->loop, count_open, &open);
  return open > (size_t)(rt->nopen - rt->nhandles);
}

/*
** Every reason to refuse is checked before anything is torn down, so that
** CORIO_EBUSY leaves the runtime whole.  First the done callbacks still
** queued for a next turn run (corio_task_add_done promised them); they
** may start tasks, which makes the runtime busy again.
*/
int corio_rt_free(corio_rt *rt) {
  int i;
  if (rt == NULL) return 0;
  if (rt->ntasks > 0 || rt->running) return CORIO_EBUSY;
  corio__soon_flush(rt);
  if (rt->ntasks > 0) return CORIO_EBUSY;
  if (rt->owns_loop && foreign_handles(rt)) return CORIO_EBUSY;
  /* from here on posts are refused; those already queued run now, told
     so by CORIO_ECLOSED, and must not start tasks (corio.h) */
  corio__post_close(rt);
  if (rt->ntasks > 0) return CORIO_EBUSY;
  for (i = 0; i < CORIO__PART_COUNT; i++)
    if (rt->part[i].shutdown != NULL) rt->part[i].shutdown(rt);
  corio__timers_close(rt);
  close_own(rt, (uv_handle_t *)&rt->idle);
  close_own(rt, (uv_handle_t *)&rt->check);
  close_own(rt, (uv_handle_t *)&rt->uvtimer);
  close_own(rt, (uv_handle_t *)&rt->post_async);
  /* only our handles' close callbacks must run; a borrowed loop may hold
     the host's handles too, so run until ours are gone, not until empty */
  while (rt->nhandles > 0) uv_run(rt->loop, UV_RUN_ONCE);
  if (rt->owns_loop) {
    /* requests still active (a host's uv_fs, a resolver) finish here */
    uv_run(rt->loop, UV_RUN_DEFAULT);
    /* fails only if a callback run by this teardown (a server's close
       callback) left a handle open on the loop: see corio.h */
    if (uv_loop_close(rt->loop) != 0) return CORIO_EBUSY;
  }
  corio__post_free(rt);
  corio__rt_gone();
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

/*
** One non-blocking turn for a host that polls the backend fd itself.
** uv_run(UV_RUN_NOWAIT) does nothing at all on a loop that is not alive:
** a post (whose async handle is unref'ed) would then leave the backend fd
** readable and never consume its wakeup, and the host's poll would spin.
** So the async handle is ref'ed for the turn: the turn always polls (with
** a zero timeout), and the wakeup is taken.
*/
int corio_rt_step(corio_rt *rt, int *timeout_ms) {
  uv_handle_t *post;
  int held, alive;
  if (timeout_ms != NULL) *timeout_ms = -1;
  if (rt == NULL) return CORIO_EINVAL;
  if (rt->running) return CORIO_EBUSY;
  post = (uv_handle_t *)&rt->post_async;
  held = uv_has_ref(post);
  uv_ref(post);
  rt->running = 1;
  (void)uv_run(rt->loop, UV_RUN_NOWAIT);
  rt->running = 0;
  if (!held) uv_unref(post);
  alive = uv_loop_alive(rt->loop);
  /* not alive, uv_backend_timeout says 0 ("nothing to wait for"): the
     host would call again at once, forever; -1 is what it means here */
  if (timeout_ms != NULL && alive) *timeout_ms = uv_backend_timeout(rt->loop);
  return alive;
}

int corio_rt_backend_fd(const corio_rt *rt) {
  return rt != NULL ? uv_backend_fd(rt->loop) : -1;
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
