/*
** fetch_c.c: the C HTTP client core under load, with no Lua on top: N GETs
** of URL, C at a time, on the default session; each completion starts the
** next request, as the peers in shared/bench/peers re-add their easy
** handles.  Prints the peers' line:
**   peer=corio_c n=N c=C ok=OK fail=FAIL secs=S rps=R
** (ok = status 0 and a 2xx response; `secs` from the first start to the
** last completion).  Peak RSS goes to stderr.
** Usage: fetch_c_bench URL N C
*/
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "corio.h"

typedef struct {
  corio_rt *rt;
  corio_request req;
  long n, started, ok, fail;
} bench;

static void on_done(corio_fetch *f, int status, const corio_response *res,
                    void *ud) {
  bench *b = ud;
  (void)f;
  if (status == 0 && res->status >= 200 && res->status < 300)
    b->ok++;
  else
    b->fail++;
  if (b->started < b->n) {
    int r = corio_fetch_start(b->rt, NULL, &b->req, on_done, b, NULL);
    b->started++;
    if (r != 0) b->fail++; /* refused: counted at once, never called */
  }
}

int main(int argc, char **argv) {
  bench b = {0};
  long c, i;
  double t0, secs;
  struct rusage ru;
  if (argc != 4) {
    fprintf(stderr, "usage: %s URL N C\n", argv[0]);
    return 2;
  }
  b.n = atol(argv[2]);
  c = atol(argv[3]);
  if (b.n <= 0 || c <= 0) {
    fprintf(stderr, "N and C must be positive\n");
    return 2;
  }
  if (c > b.n) c = b.n;
  b.rt = corio_rt_new(NULL); /* also raises the open-file limit */
  if (b.rt == NULL) {
    fprintf(stderr, "corio_rt_new failed\n");
    return 1;
  }
  corio_request_init(&b.req, argv[1]);
  b.req.timeout = 120; /* the peers' CURLOPT_TIMEOUT */
  t0 = corio_rt_time(b.rt);
  for (i = 0; i < c; i++) {
    int r = corio_fetch_start(b.rt, NULL, &b.req, on_done, &b, NULL);
    b.started++;
    if (r != 0) {
      fprintf(stderr, "start: %s\n", corio_strerror(r));
      b.fail++;
    }
  }
  (void)corio_rt_run(b.rt, UV_RUN_DEFAULT);
  secs = corio_rt_time(b.rt) - t0;
  printf("peer=corio_c n=%ld c=%ld ok=%ld fail=%ld secs=%.3f rps=%.1f\n", b.n,
         c, b.ok, b.fail, secs, (double)b.n / secs);
  fflush(stdout);
  if (corio_rt_free(b.rt) != 0) fprintf(stderr, "corio_rt_free failed\n");
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    fprintf(stderr, "peak_rss_kb=%ld\n", ru.ru_maxrss);
  return b.fail ? 1 : 0;
}
