/*
** curl_keep.c: raw libcurl, as shared/bench's curl_multi peer, but each
** response's body is collected in memory until the transfer completes, as
** corio (and every peer that hands a body to its caller) does.  The
** curl_multi peer throws each chunk away in its write callback; comparing
** corio with both tells what corio costs beyond libcurl and what
** collecting a body costs by itself (bench/NOTES.md, "corio against raw
** libcurl").
**
** N GETs of URL, C at a time, one multi, curl_multi_poll; a completed
** handle is reused for the next request, and so is its buffer: the
** cheapest way to collect, a lower bound (a client that hands each body
** over allocates one per response; done naively, malloc and free of 100
** KiB per response, glibc gives the pages back and faults them in again:
** `CURL_KEEP_FREE=1` shows that, 23 page faults a response).  A body of
** announced length is reserved at once (as corio does), else it grows by
** doubling.
** Prints: peer=curl_keep n=N c=C ok=OK fail=FAIL secs=S rps=R
** Usage: curl_keep URL N C
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

typedef struct {
  CURL *easy;
  char *p;
  size_t len, cap;
} body;

static size_t keep(char *data, size_t size, size_t n, void *ud) {
  body *b = ud;
  size_t len = size * n;
  if (b->len + len + 1 > b->cap) {
    curl_off_t cl = -1;
    size_t cap = b->cap ? b->cap : 256;
    char *p;
    while (cap < b->len + len + 1) cap *= 2;
    if (b->len == 0 &&
        curl_easy_getinfo(b->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) ==
            CURLE_OK &&
        cl > 0 && (size_t)cl + 1 > cap)
      cap = (size_t)cl + 1;
    p = realloc(b->p, cap);
    if (p == NULL) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, len);
  b->len += len;
  b->p[b->len] = '\0';
  return len;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int free_each; /* CURL_KEEP_FREE: a new buffer per response */

/* Start a request on b's handle. */
static void start(CURLM *multi, body *b) {
  if (free_each) {
    free(b->p);
    b->p = NULL;
    b->cap = 0;
  }
  b->len = 0;
  curl_multi_add_handle(multi, b->easy);
}

int main(int argc, char **argv) {
  long n, c, i, started = 0, ok = 0, fail = 0;
  CURLM *multi;
  body *bodies;
  double t0, secs;
  if (argc != 4 || (n = atol(argv[2])) <= 0 || (c = atol(argv[3])) <= 0) {
    fprintf(stderr, "usage: curl_keep URL N C\n");
    return 2;
  }
  if (c > n) c = n;
  free_each = getenv("CURL_KEEP_FREE") != NULL;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  multi = curl_multi_init();
  bodies = calloc((size_t)c, sizeof *bodies);
  if (multi == NULL || bodies == NULL) return 1;
  for (i = 0; i < c; i++) {
    CURL *e = curl_easy_init();
    bodies[i].easy = e;
    curl_easy_setopt(e, CURLOPT_URL, argv[1]);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &bodies[i]);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &bodies[i]);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
    start(multi, &bodies[i]);
    started++;
  }
  t0 = now();
  while (ok + fail < n) {
    int running, left;
    CURLMsg *m;
    curl_multi_perform(multi, &running);
    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
      long status = 0;
      body *b;
      if (m->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&b);
      curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      if (m->data.result == CURLE_OK && status >= 200 && status < 300)
        ok++;
      else
        fail++;
      curl_multi_remove_handle(multi, m->easy_handle);
      if (started < n) {
        start(multi, b);
        started++;
      }
    }
    if (ok + fail < n) curl_multi_poll(multi, NULL, 0, 1000, NULL);
  }
  secs = now() - t0;
  printf("peer=curl_keep n=%ld c=%ld ok=%ld fail=%ld secs=%.3f rps=%.1f\n", n,
         c, ok, fail, secs, (double)n / secs);
  for (i = 0; i < c; i++) {
    curl_easy_cleanup(bodies[i].easy);
    free(bodies[i].p);
  }
  free(bodies);
  curl_multi_cleanup(multi);
  curl_global_cleanup();
  return fail == 0 ? 0 : 1;
}
