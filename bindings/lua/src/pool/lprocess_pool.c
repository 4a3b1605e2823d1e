/*
** lprocess_pool.c: a processes.map job's workers on the loop: spawning
** them, feeding them one input at a time over their socket, reading their
** outcomes, and noticing when one dies (see lprocess.h).
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

#include "lprocess.h"

#define NONE       ((size_t)-1)
#define READ_CHUNK 65536

void lprocess_job_unref(pjob *j) {
  size_t i;
  if (--j->refs > 0) return;
  if (j->hub != NULL) {
    if (j->live_prev != NULL)
      j->live_prev->live_next = j->live_next;
    else
      j->hub->live = j->live_next;
    if (j->live_next != NULL) j->live_next->live_prev = j->live_prev;
  }
  for (i = 0; i < j->nitems; i++) free(j->outs[i].data);
  free(j->outs);
  free(j->exe);
  free(j->bootstrap);
  free(j->fn);
  free(j->in);
  free(j->in_off);
  free(j);
}

/* {{{ a worker's handles */
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
  lprocess_job_unref(j);
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
  lprocess_header(h, type, (uint32_t)index, len);
  bufs[0] = uv_buf_init(h, LPROC_HEADER);
  bufs[1] = uv_buf_init((char *)p, (unsigned)len);
  if (uv_write(req, (uv_stream_t *)&w->pipe, bufs, len > 0 ? 2 : 1,
               on_written) != 0)
    free(req);
}

static void check_gone(pworker *w);

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
  double ms = w->job->timeout * 1000;
  if (!w->has_timer || w->exited || !w->ready || w->held == NONE) return;
  /* at least 1 ms; a huge timeout is as good as none */
  uv_timer_start(&w->timer, on_timeout,
                 ms < 1      ? 1
                 : ms > 1e15 ? (uint64_t)1e15
                             : (uint64_t)ms,
                 0);
}
/* }}} */

/* {{{ the job's progress */
static void maybe_finish(pjob *j) {
  if (j->task == NULL || j->ndone < j->nitems || j->nprocs > 0) return;
  corio_task_wake(j->task, 0);
  j->task = NULL;
  lprocess_job_unref(j); /* the wait's */
}

/* Give the worker its next input, or let it go (end of its input). */
static void dispatch(pworker *w) {
  pjob *j = w->job;
  if (j->stopping || j->next >= j->nitems) {
    close_pipe(w);
    return;
  }
  w->held = j->next++;
  send_frame(w, LPROC_ITEM, w->held, j->in + j->in_off[w->held],
             j->in_off[w->held + 1] - j->in_off[w->held]);
  start_clock(w);
}

static void set_outcome(pjob *j, size_t i, lcopy_out o) {
  j->outs[i] = o;
  j->ndone++;
}

static void fail_rest(pjob *j) {
  char msg[200];
  snprintf(msg, sizeof msg, "corio: cannot start a worker process: %s",
           uv_strerror(j->spawn_err));
  while (j->next < j->nitems)
    set_outcome(j, j->next++, lcopy_error_outcome(msg));
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
               w->held + 1, j->timeout);
      o = lcopy_error_value_outcome("TimeoutError", "timeout", msg);
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
      o = lcopy_error_outcome(msg);
    }
    set_outcome(j, w->held, o);
    w->held = NONE;
    if (!j->stopping && j->next < j->nitems && lprocess_spawn_worker(j) != 0 &&
        j->nprocs == 0)
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
    size_t len = lprocess_parse_header(w->rbuf + used, &type, &index);
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
    set_outcome(j, w->held, o); /* no data: "produced no result" */
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

int lprocess_spawn_worker(pjob *j) {
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
  j->refs++;
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
  j->refs++;
  if (j->timeout > 0) {
    uv_timer_init(j->loop, &w->timer);
    w->timer.data = w;
    w->has_timer = 1;
    w->handles++;
    j->refs++;
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
  send_frame(w, LPROC_FN, 0, j->fn, j->fn_len);
  dispatch(w);
  return 0;
}

void lprocess_stop_all(pjob *j) {
  pworker *w;
  j->stopping = 1;
  for (w = j->workers; w != NULL; w = w->next) {
    if (!w->exited) uv_process_kill(&w->proc, SIGKILL);
    close_pipe(w);
  }
}

void lprocess_job_cancel(corio_task *task, void *job) {
  pjob *j = job;
  (void)task;
  j->task = NULL;
  lprocess_stop_all(j);
  lprocess_job_unref(j); /* the wait's */
}
/* }}} */
