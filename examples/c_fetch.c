/*
** c_fetch.c: 100 fetches at once from C, with corio.h alone (no Lua, no
** tasks).  A corio server on a free port of 127.0.0.1 answers /item/N
** with "item N"; the program starts 100 transfers, each with a completion
** callback, runs the loop until every one has completed, checks each body
** and prints a summary.
**
**   cc c_fetch.c $(pkg-config --cflags --libs corio) -o c_fetch
**   ./c_fetch [count]
**   # 100 fetches: 100 ok, 0 failed, 690 bytes in 0.009 s
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corio.h"

typedef struct run {
  corio_server *srv;
  int count, done, ok, failed;
  size_t bytes;
} run;

/* What each transfer's callback gets: the run and the item it asked for. */
typedef struct item {
  run *r;
  int n;
} item;

/* {==================================================================
** The server: /item/N -> "item N"
** =================================================================== */

static void on_request(corio_server *s, corio_server_req *req, void *ud) {
  static const corio_server_header h[] = {
      {"Content-Type", 12, "text/plain", 10}};
  const char *path = corio_server_req_path(req, NULL);
  char body[64];
  int n;
  (void)s;
  (void)ud;
  if (strncmp(path, "/item/", 6) != 0) {
    corio_server_respond(req, 404, h, 1, "no such item", 12);
    return;
  }
  n = snprintf(body, sizeof body, "item %s", path + 6);
  corio_server_respond(req, 200, h, 1, body, (size_t)n); /* copies it */
}

/* }================================================================== */

/* {==================================================================
** The client: one callback per transfer
** =================================================================== */

/* Runs on the loop once the transfer is over, never inside
   corio_fetch_start; `res` lives until it returns. */
static void on_fetched(corio_fetch *f, int status, const corio_response *res,
                       void *ud) {
  item *it = ud;
  run *r = it->r;
  char want[32];
  (void)f;
  snprintf(want, sizeof want, "item %d", it->n);
  if (status == 0 && res->status == 200 && strcmp(res->body, want) == 0) {
    r->ok++;
    r->bytes += res->body_len;
  } else {
    r->failed++;
    fprintf(stderr, "item %d: %s (HTTP %ld)\n", it->n,
            status != 0 ? corio_strerror(status) : "wrong answer", res->status);
  }
  if (++r->done == r->count)
    corio_server_close(r->srv, 0, NULL, NULL); /* nothing left to serve */
}

/* }================================================================== */

int main(int argc, char **argv) {
  corio_rt *rt = corio_rt_new(NULL); /* owns its loop */
  run r;
  item *items;
  double t0;
  int i, rc;
  memset(&r, 0, sizeof r);
  r.count = argc > 1 ? atoi(argv[1]) : 100;
  if (rt == NULL || r.count < 1 || r.count > 100000) return 1;
  items = calloc((size_t)r.count, sizeof *items);
  if (items == NULL) return 1;
  rc = corio_server_listen(rt, NULL, on_request, NULL, &r.srv); /* port 0 */
  if (rc != 0) {
    fprintf(stderr, "listen: %s\n", corio_strerror(rc));
    return 1;
  }
  t0 = corio_rt_time(rt);
  for (i = 0; i < r.count; i++) {
    corio_request req;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/item/%d",
             corio_server_port(r.srv), i);
    corio_request_init(&req, url); /* copied by corio_fetch_start */
    req.timeout = 30;
    items[i].r = &r;
    items[i].n = i;
    rc = corio_fetch_start(rt, NULL, &req, on_fetched, &items[i], NULL);
    if (rc != 0) { /* the callback will not run */
      fprintf(stderr, "fetch %d: %s\n", i, corio_strerror(rc));
      r.failed++;
      if (++r.done == r.count) corio_server_close(r.srv, 0, NULL, NULL);
    }
  }
  /* every transfer runs at once; the default session pools connections */
  while (r.done < r.count) corio_rt_run(rt, UV_RUN_ONCE);
  printf("%d fetches: %d ok, %d failed, %zu bytes in %.3f s\n", r.count, r.ok,
         r.failed, r.bytes, corio_rt_time(rt) - t0);
  rc = corio_rt_free(rt); /* closes idle connections, frees the server */
  free(items);
  return rc == 0 && r.ok == r.count ? 0 : 1;
}
