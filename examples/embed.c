/*
** embed.c: a C host on corio, no Lua.  One server answers on a free port;
** one task sleeps, fetches from that server, and finishes; a done callback
** reports.  The task is a plain state machine: its resume callback runs
** one step per wake-up and, before returning, arms exactly one wait or
** finishes the task.
**
** Build (from the repository root, after building corio into build/):
**   cc examples/embed.c -Iruntime/include build/runtime/libcorio.a \
**      $(pkg-config --cflags --libs libuv libcurl) -lm \
**      -o embed
*/
#include <stdio.h>
#include <string.h>

#include "corio.h"

/* The task's own state, reached through corio_task_get_data. */
typedef struct job {
  corio_server *srv;
  char url[64];
  int step;
  long http_status;
  char body[64];
} job;

/* {==================================================================
** The server: answers every request at once
** =================================================================== */

static void on_request(corio_server *s, corio_server_req *req, void *ud) {
  static const corio_server_header h[] = {
      {"Content-Type", 12, "text/plain", 10}};
  char body[64];
  int n = snprintf(body, sizeof body, "hello, %s\n",
                   corio_server_req_path(req, NULL));
  (void)s;
  (void)ud;
  corio_server_respond(req, 200, h, 1, body, (size_t)n); /* copies everything */
}

/* }================================================================== */

/* {==================================================================
** The task
** =================================================================== */

/* Completion of the fetch: runs on the loop, never inside
   corio_fetch_start.  `res` is valid only until this returns. */
static void on_fetched(corio_fetch *f, int status, const corio_response *res,
                       void *ud) {
  corio_task *t = ud;
  job *j;
  (void)f;
  if (t == NULL) return; /* the task was cancelled and stopped waiting */
  j = corio_task_get_data(t);
  if (status == 0) {
    j->http_status = res->status;
    snprintf(j->body, sizeof j->body, "%.*s", (int)res->body_len, res->body);
  }
  corio_task_wake(t, status); /* the task resumes with `status` */
}

/* The wait's cleanup, run if the task is cancelled while it fetches. */
static void cancel_fetch(corio_task *t, void *op) {
  (void)t;
  corio_fetch_set_data(op, NULL); /* its late callback finds nobody */
  (void)corio_fetch_cancel(op);
}

static void finish(corio_task *t, job *j, corio_task_state st) {
  corio_server_close(j->srv, 0, NULL, NULL); /* nothing left to serve */
  corio_task_finish(t, st);
}

static void run(corio_task *t, int status) {
  job *j = corio_task_get_data(t);
  corio_request req;
  corio_fetch *f;
  int rc;
  if (status == CORIO_ECANCELED) {
    finish(t, j, CORIO_TASK_CANCELLED);
    return;
  }
  switch (j->step++) {
  case 0: /* first run: wait 10 ms */
    corio_sleep(t, 10);
    return;
  case 1: /* start a fetch and wait for it */
    corio_request_init(&req, j->url);
    rc = corio_fetch_start(corio_task_rt(t), NULL, &req, on_fetched, t, &f);
    if (rc == 0) rc = corio_task_suspend(t, cancel_fetch, f);
    if (rc != 0) {
      fprintf(stderr, "fetch: %s\n", corio_strerror(rc));
      finish(t, j, CORIO_TASK_FAILED);
    }
    return;
  default: /* the fetch is done: status says how */
    if (status != 0) {
      fprintf(stderr, "fetch: %s\n", corio_strerror(status));
      finish(t, j, CORIO_TASK_FAILED);
      return;
    }
    printf("%ld %s", j->http_status, j->body);
    finish(t, j, CORIO_TASK_FINISHED);
  }
}

static void on_done(corio_task *t, void *ud) {
  (void)ud;
  printf("task done, state %d\n", (int)corio_task_get_state(t));
}

/* }================================================================== */

int main(void) {
  corio_rt *rt = corio_rt_new(NULL); /* owns its loop */
  corio_task *t;
  job j;
  int rc;
  if (rt == NULL) return 1;
  memset(&j, 0, sizeof j);
  rc = corio_server_listen(rt, NULL, on_request, NULL, &j.srv); /* port 0 */
  if (rc != 0) {
    fprintf(stderr, "listen: %s\n", corio_strerror(rc));
    return 1;
  }
  snprintf(j.url, sizeof j.url, "http://127.0.0.1:%d/embed",
           corio_server_port(j.srv));
  t = corio_task_new(rt, run, &j); /* queued: runs at the loop's next turn */
  if (t == NULL || corio_task_add_done(t, on_done, NULL) != 0) return 1;
  /* Run until the task is done: an idle keep-alive connection may keep
     libcurl's timer armed, so "until the loop is empty" could be later. */
  while (!corio_task_done(t)) corio_rt_run(rt, UV_RUN_ONCE);
  rc = corio_task_get_state(t) == CORIO_TASK_FINISHED ? 0 : 1;
  corio_task_free(t);
  if (corio_rt_free(rt) != 0) return 1; /* closes connections, session */
  return rc;
}
