/*
** lprocess.c: corio.processes.map(fn, items, {processes=n, timeout=s,
** executable=}) on worker processes, like multiprocessing.Pool.map: the
** Lua function and the parent's side of the workers, on the loop (the
** protocol and the worker's side are lprocess.h and lcorio_process_worker.c;
** the job's life on the caller's side is lpool.c's).
**
** map runs every item, then returns the array of first results in input
** order, or raises a WorkerError for the first item that failed.
**
** Each worker holds one input at a time; when it answers it gets the next.
** A worker that dies holding an input (os.exit, a signal, a crash) makes
** that input fail with its exit status, and a new worker takes its place
** while inputs are left.  With a timeout, a worker that holds an input
** longer than that (stopped, looping, blocked) is killed (SIGKILL) and the
** input fails with a TimeoutError; a new worker takes its place too.  The
** clock starts when the input is sent, or for a new worker's first input
** when the worker is ready, so its start-up does not count.  When every
** input has an outcome, the workers see the end of their input and exit;
** the caller is woken once all have been reaped.  Cancelling the caller
** kills the workers (SIGKILL); they are reaped and their handles closed as
** the loop goes on.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lpool.h"
#include "lprocess.h"

#define HUB_KEY    "corio.ProcessHub"
#define NONE       ((size_t)-1)
#define READ_CHUNK 65536

typedef struct pjob pjob;

typedef struct pworker {
  uv_process_t proc;
  uv_pipe_t pipe;
  uv_timer_t timer; /* the held input's timeout (has_timer) */
  pjob *job;
  struct pworker *next; /* the job's workers */
  size_t held;          /* the input it runs, or NONE */
  char *rbuf;           /* bytes read and not yet parsed */
  size_t rlen, rcap;
  int handles; /* open (2 or 3 after spawn, 0 when it can be freed) */
  int exited, pipe_closed, gone;
  int has_timer, ready, timed_out;
  int64_t status;
  int signal;
} pworker;

/* A job holds a reference per open libuv handle of its workers. */
struct pjob {
  lcorio_pool_job base;
  uv_loop_t *loop;
  char *exe, *bootstrap;
  size_t nprocs;    /* spawned and not reaped yet */
  int spawn_err;    /* why the last spawn failed */
  uint64_t timeout; /* ms an input may run; 0: no limit */
  pworker *workers;
};

/*
** {==================================================================
** A worker's handles
** ===================================================================
*/

static void on_handle_closed(uv_handle_t *h) {
  pworker *w = h->data;
  pjob *j = w->job;
  if (--w->handles == 0) {
    pworker **p = &j->workers;
    while (*p != w) p = &(*p)->next;
    *p = w->next;
    free(w->rbuf);
    free(w);
  }
  lcorio_pool_unref(&j->base);
}

static void close_pipe(pworker *w) {
  if (w->pipe_closed) return;
  w->pipe_closed = 1;
  uv_close((uv_handle_t *)&w->pipe, on_handle_closed);
}

static void on_written(uv_write_t *req, int status) {
  (void)status; /* a worker that died is seen by its exit */
  free(req);
}

static void send_frame(pworker *w, char type, size_t index, const char *p,
                       size_t len) {
  uv_write_t *req = malloc(sizeof *req + LPROC_HEADER);
  char *h = (char *)(req + 1);
  uv_buf_t bufs[2];
  if (req == NULL) {
    uv_process_kill(&w->proc, SIGKILL); /* it would wait forever */
    return;
  }
  lcorio_process_header(h, type, (uint32_t)index, len);
  bufs[0] = uv_buf_init(h, LPROC_HEADER);
  bufs[1] = uv_buf_init((char *)p, (unsigned)len);
  if (uv_write(req, (uv_stream_t *)&w->pipe, bufs, len > 0 ? 2 : 1,
               on_written) != 0)
    free(req);
}

static void check_gone(pworker *w);
static int spawn_worker(pjob *j);

/*
** The worker held its input past the timeout: kill it, and stop reading
** from it, so that an outcome that comes now is not taken (the input has
** failed) and it is given no other input.  Its exit fails the input.
*/
static void on_timeout(uv_timer_t *t) {
  pworker *w = t->data;
  if (w->held == NONE || w->pipe_closed) return;
  w->timed_out = 1;
  uv_process_kill(&w->proc, SIGKILL);
  close_pipe(w);
  check_gone(w); /* it may have exited already */
}

/* The held input's clock: started when it is sent to a ready worker, or
   when the worker it was sent to becomes ready. */
static void start_clock(pworker *w) {
  if (!w->has_timer || w->exited || !w->ready || w->held == NONE) return;
  uv_timer_start(&w->timer, on_timeout, w->job->timeout, 0);
}
/* }================================================================== */

/*
** {==================================================================
** The job's progress
** ===================================================================
*/

/* Every input has an outcome and every worker was reaped: wake the
   caller. */
static void maybe_finish(pjob *j) {
  if (j->base.ndone == j->base.nitems && j->nprocs == 0)
    lcorio_pool_wake(&j->base);
}

/* Give the worker its next input, or let it go (end of its input). */
static void dispatch(pworker *w) {
  pjob *j = w->job;
  const size_t *off = j->base.in_off;
  if (!lcorio_pool_take(&j->base, &w->held)) {
    close_pipe(w);
    return;
  }
  send_frame(w, LPROC_ITEM, w->held, j->base.in + off[w->held],
             off[w->held + 1] - off[w->held]);
  start_clock(w);
}

static void fail_rest(pjob *j) {
  char msg[200];
  snprintf(msg, sizeof msg,
           "corio.processes.map: cannot start a worker process: %s",
           uv_strerror(j->spawn_err));
  size_t i;
  while (lcorio_pool_take(&j->base, &i))
    lcorio_pool_done(&j->base, i, lcorio_copy_error_outcome(msg));
}

/* Both the exit and the end of the pipe were seen: nothing more will
   come from this worker, so what it held failed. */
static void check_gone(pworker *w) {
  pjob *j = w->job;
  char msg[200];
  if (!w->exited || !w->pipe_closed || w->gone) return;
  w->gone = 1;
  if (w->held != NONE) {
    lcopy_out o;
    if (w->timed_out) {
      snprintf(msg, sizeof msg,
               "corio: item %zu ran past its timeout (%g s); its worker "
               "process was killed",
               w->held + 1, (double)j->timeout / 1000);
      o = lcorio_copy_error_value_outcome("TimeoutError", "timeout", msg);
    } else {
      if (w->signal != 0)
        snprintf(msg, sizeof msg,
                 "corio: worker process was killed by signal %d while "
                 "running item %zu",
                 w->signal, w->held + 1);
      else
        snprintf(msg, sizeof msg,
                 "corio: worker process exited with status %d while "
                 "running item %zu",
                 (int)w->status, w->held + 1);
      o = lcorio_copy_error_outcome(msg);
    }
    lcorio_pool_done(&j->base, w->held, o);
    w->held = NONE;
    if (!j->base.stopping && j->base.next < j->base.nitems &&
        spawn_worker(j) != 0 && j->nprocs == 0)
      fail_rest(j);
  }
  maybe_finish(j);
}

static void on_proc_exit(uv_process_t *p, int64_t status, int signal) {
  pworker *w = p->data;
  w->exited = 1;
  w->status = status;
  w->signal = signal;
  w->job->nprocs--;
  uv_close((uv_handle_t *)p, on_handle_closed);
  if (w->has_timer) uv_close((uv_handle_t *)&w->timer, on_handle_closed);
  check_gone(w);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  pworker *w = h->data;
  (void)suggested;
  if (w->rcap - w->rlen < READ_CHUNK) {
    char *p = realloc(w->rbuf, w->rlen + READ_CHUNK);
    if (p == NULL) { /* libuv reports UV_ENOBUFS */
      *buf = uv_buf_init(NULL, 0);
      return;
    }
    w->rbuf = p;
    w->rcap = w->rlen + READ_CHUNK;
  }
  *buf = uv_buf_init(w->rbuf + w->rlen, (unsigned)(w->rcap - w->rlen));
}

/* Take the complete frames out of the buffer; 0 if one is malformed. */
static int parse_frames(pworker *w) {
  pjob *j = w->job;
  size_t used = 0;
  while (!w->pipe_closed && w->rlen - used >= LPROC_HEADER) {
    char type;
    uint32_t index;
    size_t len = lcorio_process_parse_header(w->rbuf + used, &type, &index);
    lcopy_out o;
    if (len == (size_t)-1) return 0;
    if (type == LPROC_READY && !w->ready && len == 0) {
      used += LPROC_HEADER;
      w->ready = 1;
      start_clock(w);
      continue;
    }
    if (type != LPROC_OUT || w->held != index) return 0;
    if (w->rlen - used - LPROC_HEADER < len) break;
    if (w->has_timer) uv_timer_stop(&w->timer);
    o.len = len;
    o.data = malloc(len ? len : 1);
    if (o.data != NULL) memcpy(o.data, w->rbuf + used + LPROC_HEADER, len);
    used += LPROC_HEADER + len;
    lcorio_pool_done(&j->base, w->held, o); /* no data: "produced no result" */
    w->held = NONE;
    dispatch(w);
  }
  memmove(w->rbuf, w->rbuf + used, w->rlen - used);
  w->rlen -= used;
  return 1;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pworker *w = s->data;
  (void)buf;
  if (nread > 0) {
    w->rlen += (size_t)nread;
    if (parse_frames(w)) {
      maybe_finish(w->job);
      return;
    }
    uv_process_kill(&w->proc, SIGKILL); /* a broken worker */
  }
  if (nread != 0) {
    close_pipe(w);
    check_gone(w);
  }
}

/* Start one worker and give it the function and its first input.
   Returns 0 or a libuv code (also kept in j->spawn_err). */
static int spawn_worker(pjob *j) {
  pworker *w = calloc(1, sizeof *w);
  uv_process_options_t o;
  uv_stdio_container_t stdio[LPROC_FD + 1];
  char *args[4];
  int rc;
  if (w == NULL) return j->spawn_err = UV_ENOMEM;
  w->job = j;
  w->held = NONE;
  w->next = j->workers;
  j->workers = w;
  uv_pipe_init(j->loop, &w->pipe, 0);
  w->pipe.data = w;
  w->handles = 1;
  j->base.refs++;
  memset(&o, 0, sizeof o);
  memset(stdio, 0, sizeof stdio);
  args[0] = j->exe;
  args[1] = "-e";
  args[2] = j->bootstrap;
  args[3] = NULL;
  o.file = j->exe;
  o.args = args;
  o.exit_cb = on_proc_exit;
  o.stdio = stdio;
  o.stdio_count = LPROC_FD + 1;
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = 1;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  stdio[LPROC_FD].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
  stdio[LPROC_FD].data.stream = (uv_stream_t *)&w->pipe;
  rc = uv_spawn(j->loop, &w->proc, &o);
  /* the process handle is initialized even when the spawn failed */
  w->proc.data = w;
  w->handles = 2;
  j->base.refs++;
  if (j->timeout > 0) {
    uv_timer_init(j->loop, &w->timer);
    w->timer.data = w;
    w->has_timer = 1;
    w->handles++;
    j->base.refs++;
  }
  if (rc != 0) {
    w->exited = w->gone = 1;
    close_pipe(w);
    uv_close((uv_handle_t *)&w->proc, on_handle_closed);
    if (w->has_timer) uv_close((uv_handle_t *)&w->timer, on_handle_closed);
    return j->spawn_err = rc;
  }
  j->nprocs++;
  uv_read_start((uv_stream_t *)&w->pipe, on_alloc, on_read);
  send_frame(w, LPROC_FN, 0, j->base.fn, j->base.fn_len);
  dispatch(w);
  return 0;
}
/* }================================================================== */

/*
** {==================================================================
** The hub and the job's operations
** ===================================================================
*/

static void hub_free(lcorio_pool_hub *h) {
  free(h);
}

static lcorio_pool_hub *hub_new(lua_State *L, uv_loop_t *loop) {
  lcorio_pool_hub *h = calloc(1, sizeof *h);
  (void)loop;
  if (h == NULL) luaL_error(L, "not enough memory");
  h->close = hub_free;
  return h;
}

static int job_start(lua_State *L, lcorio_pool_job *base, size_t n) {
  pjob *j = (pjob *)base;
  size_t i;
  for (i = 0; i < n; i++) spawn_worker(j);
  if (j->nprocs > 0) return (int)j->nprocs;
  {
    /* the executable as given, shortened: it may be anything */
    char msg[400];
    snprintf(msg, sizeof msg,
             "corio.processes.map: cannot start a worker process "
             "(executable '%.200s'%s): %s",
             j->exe, strlen(j->exe) > 200 ? "..." : "",
             uv_strerror(j->spawn_err));
    lua_pushstring(L, msg);
  }
  return j->spawn_err;
}

/* No more inputs; kill the workers.  They are reaped as the loop goes. */
static void job_stop(lcorio_pool_job *base) {
  pjob *j = (pjob *)base;
  pworker *w;
  base->stopping = 1;
  for (w = j->workers; w != NULL; w = w->next) {
    if (!w->exited) uv_process_kill(&w->proc, SIGKILL);
    close_pipe(w);
  }
}

static void job_free(lcorio_pool_job *base) {
  pjob *j = (pjob *)base;
  free(j->exe);
  free(j->bootstrap);
}

static const lcorio_pool_ops process_ops = {
    .what = "corio.processes.map",
    .to = "a process",
    .hub_key = HUB_KEY,
    .size = sizeof(pjob),
    .max_items = UINT32_MAX - 1, /* an index is a uint32 in a frame */
    .max_len = LPROC_MAX_FRAME,
    .hub_new = hub_new,
    .start = job_start,
    .stop = job_stop,
    .free = job_free, /* no detach: stop killed the workers */
};
/* }================================================================== */

/*
** {==================================================================
** The Lua function
** ===================================================================
*/

static char *dup_string(lua_State *L, const char *s) {
  char *p = malloc(strlen(s) + 1);
  if (p == NULL) luaL_error(L, "not enough memory");
  return strcpy(p, s);
}

/* map's options, read from the table at 3 (or none). */
typedef struct popts {
  size_t nprocs;
  const char *exe;  /* NULL: this program; else held by the table */
  uint64_t timeout; /* ms; 0: none */
} popts;

static const char *const opt_names[] = {"processes", "timeout", "executable",
                                        NULL};

/* Read the options into *o (its fields are the defaults).  An unknown key
   or a bad value raises, naming the option, before any wait. */
static void parse_opts(lua_State *L, popts *o) {
  const char *fn = "corio.processes.map";
  int opts = lcorio_opts_check(L, 3, fn, opt_names);
  o->nprocs = (size_t)lcorio_opt_integer(L, opts, fn, "processes",
                                         (lua_Integer)o->nprocs, 1, 1000);
  o->timeout = (uint64_t)lcorio_opt_seconds(L, opts, fn, "timeout", 0,
                                            LCORIO_SECONDS_POSITIVE);
  o->exe = lcorio_opt_string(L, opts, fn, "executable", NULL);
}

/* The job's executable: opts.executable, or this program. */
static void set_exe(lua_State *L, pjob *j, const char *exe) {
  char path[4096];
  size_t size = sizeof path;
  if (exe == NULL) {
    if (uv_exepath(path, &size) != 0)
      luaL_error(L, "corio: cannot find this program's path");
    exe = path;
  }
  j->exe = dup_string(L, exe);
}

static int l_map(lua_State *L) {
  popts o = {1, NULL, 0};
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TTABLE);
  parse_opts(L, &o); /* bad options raise before any wait */
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_map);
    pjob *j;
    o.nprocs = uv_available_parallelism();
    parse_opts(L, &o); /* again: the hidden task's own arguments */
    j = (pjob *)lcorio_pool_map_job(L, &process_ops);
    if (j == NULL) return 1; /* no item: {n = 0} */
    set_exe(L, j, o.exe);
    j->timeout = o.timeout;
    lcorio_process_push_bootstrap(L);
    j->bootstrap = dup_string(L, lua_tostring(L, -1));
    lua_pop(L, 1);
    j->loop = corio_rt_loop(lcorio_upstate(L)->rt);
    return lcorio_pool_run(L, lt, &j->base, o.nprocs);
  }
}
/* }================================================================== */

static const luaL_Reg funcs[] = {{"map", l_map}, {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_process_open(lua_State *L) {
  lua_newtable(L); /* corio.processes */
  lua_pushvalue(L, -2);
  lcorio_setfuncs(L, funcs);
  lua_pop(L, 1);
  lua_setfield(L, -3, "processes");
  /* the worker's loop is no public function (it exits the process on bad
     input): the bootstrap finds it in the registry */
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, lcorio_process_worker, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, LPROC_WORKER_KEY);
  lcorio_pool_open(L);
}
