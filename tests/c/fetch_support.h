/*
** fetch_support.h: what the test-fetch-*.c programs share: a private
** loopback nginx (tests/support/nginx.sh, started once per program by
** fetch_setup, inherited by the per-test child processes, stopped at exit
** by PID) and the helpers that run one request and copy out what its
** callback saw.  Built once, as a small static library (fetch_support.c).
*/
#ifndef CORIO_TEST_FETCH_SUPPORT_H
#define CORIO_TEST_FETCH_SUPPORT_H

#include <sys/types.h>

#include "task.h"

/*
** {==================================================================
** The nginx server
** ===================================================================
*/

extern int ngx_port, ngx_tls_port; /* valid once base() has returned */

/* A loopback port nobody listens on right now. */
int free_port(void);

/* "http://127.0.0.1:PORT" of the nginx, started on first use. */
const char *base(void);

/* base() + path in `buf` (256 bytes). */
char *mkurl(char *buf, const char *path);

/* TEST_MAIN_SETUP's setup: start nginx once, before the tests fork. */
void fetch_setup(void);

/* }================================================================== */

/*
** {==================================================================
** Helpers
** ===================================================================
*/

#define MAXH 32

/* What one callback saw, copied out of the borrowed response. */
typedef struct {
  int called;
  int status;
  int attempts;
  long http;
  char *body;
  size_t body_len;
  size_t nheaders;
  char hname[MAXH][64], hvalue[MAXH][128];
  char url[256];
  char version[8];
  char error[256];
  corio_fetch_timing timing;
  corio_fetch *f;
  double done_at;
} result;

/* A corio_fetch_cb filling the `result` in `ud`. */
void record(corio_fetch *f, int status, const corio_response *res, void *ud);
void result_clear(result *r);

/* The value of the first header named `name`, or NULL. */
const char *header(const result *r, const char *name);

/* Seconds on the monotonic clock. */
double now(void);

/* Run one request on its own runtime; returns the callback's status. */
int fetch1(const corio_request *req, result *r);

/* fetch1 of a GET of base() + path. */
int get(const char *path, result *r);

/* Status 0, HTTP 200, and `len` bytes of `pattern` repeated. */
void check_body(const result *r, size_t len, const char *pattern);

/* How many transfers ended which way (a corio_fetch_cb: on_tally). */
typedef struct {
  int ok, failed, other;
  double last;
} tally;

void on_tally(corio_fetch *f, int status, const corio_response *res, void *ud);

/* }================================================================== */

/*
** A raw server on the loop that answers one request with Content-Length:
** 1000, sends 10 bytes ("0123456789") and closes: a body cut short.
** short_server_start fills ss (zeroed first) and writes its URL to url.
*/
typedef struct short_server {
  uv_tcp_t server, client;
  uv_write_t wr;
  int accepted;
} short_server;
void short_server_start(short_server *ss, uv_loop_t *loop, char *url,
                        size_t url_size);

#endif
