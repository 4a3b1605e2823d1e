/*
** two_threads.c: two runtimes in two threads, each with its own loop, its
** own server and its own task.  Each thread fetches from the *other*
** thread's server, so both loops must turn at the same time.  The threads
** share nothing but two atomic words each (the server's port, "my fetches
** are done"), which each task polls with corio_sleep: no corio call ever
** crosses a thread.
**
**   cc two_threads.c $(pkg-config --cflags --libs corio) -pthread \
**      -o two_threads
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "corio.h"

#define FETCHES     50
#define DEADLINE_MS 20000 /* the example gives up rather than hang */

typedef struct peer {
  const char *name;
  struct peer *other;
  atomic_int port; /* published once the server listens */
  atomic_int done; /* set once this peer's fetches are over */
  /* the rest belongs to the peer's own thread */
  corio_server *srv;
  corio_task *task;
  int step, fetched, ok, served;
  int waiting; /* the task waits for the fetches */
  uint64_t start;
  int result; /* 0 when everything went right */
} peer;

/* {==================================================================
** The server: answers with the name of the thread that serves
** =================================================================== */

static void on_request(corio_server *s, corio_server_req *req, void *ud) {
  peer *p = ud;
  (void)s;
  p->served++; /* only this thread's loop runs this */
  corio_server_respond(req, 200, NULL, 0, p->name, strlen(p->name));
}

/* }================================================================== */

/* {==================================================================
** The task: wait for the other's server, fetch from it, wait for the
** other to finish with ours, close
** =================================================================== */

/* The peer, not the task, is each transfer's `ud`: it outlives them all. */
static void on_fetched(corio_fetch *f, int status, const corio_response *res,
                       void *ud) {
  peer *p = ud;
  (void)f;
  if (status == 0 && res->status == 200 &&
      strcmp(res->body, p->other->name) == 0)
    p->ok++;
  if (++p->fetched == FETCHES && p->waiting) {
    p->waiting = 0;
    corio_task_wake(p->task, 0);
  }
}

/* The wait's cleanup if the task is cancelled: stop waiting (corio_rt_free
   cancels the transfers still running). */
static void stop_waiting(corio_task *t, void *op) {
  peer *p = op;
  (void)t;
  p->waiting = 0;
}

static int late(corio_task *t, peer *p) {
  return corio_rt_now(corio_task_rt(t)) - p->start > DEADLINE_MS;
}

static void run(corio_task *t, int status) {
  peer *p = corio_task_get_data(t);
  corio_rt *rt = corio_task_rt(t);
  int i, port;
  (void)status;
  switch (p->step) {
  case 0: /* the other server's port */
    port = atomic_load(&p->other->port);
    if (port == 0 && !late(t, p)) {
      corio_sleep(t, 2);
      return;
    }
    p->step = 1;
    if (port == 0) p->fetched = FETCHES; /* too late: no fetch */
    for (i = 0; i < FETCHES && port != 0; i++) {
      corio_request req;
      char url[64];
      snprintf(url, sizeof url, "http://127.0.0.1:%d/%d", port, i);
      corio_request_init(&req, url);
      req.timeout = 10;
      if (corio_fetch_start(rt, NULL, &req, on_fetched, p, NULL) != 0)
        p->fetched++; /* refused: no callback will come */
    }
    /* every transfer ends in on_fetched: the last one wakes the task */
    p->waiting = p->fetched < FETCHES;
    if (p->waiting)
      corio_task_suspend(t, stop_waiting, p);
    else
      corio_task_yield(t);
    return;
  case 1: /* ours are done: say so, then serve until the other's are */
    atomic_store(&p->done, 1);
    if (!atomic_load(&p->other->done) && !late(t, p)) {
      corio_sleep(t, 2);
      return;
    }
    p->result = p->ok == FETCHES && atomic_load(&p->other->done) ? 0 : 1;
    corio_server_close(p->srv, 0, NULL, NULL);
    corio_task_finish(t, CORIO_TASK_FINISHED);
  }
}

/* }================================================================== */

static void *thread_main(void *arg) {
  peer *p = arg;
  corio_rt *rt = corio_rt_new(NULL); /* this thread's runtime and loop */
  corio_task *t;
  p->result = 1;
  if (rt == NULL) return NULL;
  if (corio_server_listen(rt, NULL, on_request, p, &p->srv) != 0) {
    atomic_store(&p->done, 1); /* the other must not wait for us */
    corio_rt_free(rt);
    return NULL;
  }
  p->start = corio_rt_now(rt);
  atomic_store(&p->port, corio_server_port(p->srv));
  t = p->task = corio_task_new(rt, run, p);
  if (t != NULL) {
    while (!corio_task_done(t)) corio_rt_run(rt, UV_RUN_ONCE);
    corio_task_free(t);
  }
  if (corio_rt_free(rt) != 0) p->result = 1;
  return NULL;
}

int main(void) {
  peer a, b;
  pthread_t ta, tb;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.name = "A";
  b.name = "B";
  a.other = &b;
  b.other = &a;
  atomic_init(&a.port, 0);
  atomic_init(&b.port, 0);
  atomic_init(&a.done, 0);
  atomic_init(&b.done, 0);
  if (pthread_create(&ta, NULL, thread_main, &a) != 0 ||
      pthread_create(&tb, NULL, thread_main, &b) != 0)
    return 1;
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  printf("thread A: %d/%d from B's server, served %d\n", a.ok, FETCHES,
         a.served);
  printf("thread B: %d/%d from A's server, served %d\n", b.ok, FETCHES,
         b.served);
  return a.result == 0 && b.result == 0 ? 0 : 1;
}
