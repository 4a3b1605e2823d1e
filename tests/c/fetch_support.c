/*
** fetch_support.c: the nginx and the helpers of the test-fetch-*.c
** programs (see fetch_support.h).
*/
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fetch_support.h"

/*
** {==================================================================
** The nginx server
** ===================================================================
*/

static char ngx_base[64]; /* "http://127.0.0.1:PORT" */
static char ngx_dir[256]; /* its state directory */
int ngx_port, ngx_tls_port;
static volatile pid_t ngx_pid;
static pid_t ngx_owner; /* the process that started it: it alone stops it */

/* A loopback port nobody listens on right now. */
int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;
  ASSERT(fd >= 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
  ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static const char *support_dir(void) {
  const char *d = getenv("CORIO_TEST_SUPPORT");
  return d != NULL ? d : "tests/support";
}

static void ngx_stop(void) {
  char cmd[1024];
  if (ngx_pid <= 0 || getpid() != ngx_owner) return; /* a test's child */
  snprintf(cmd, sizeof cmd, "'%s/nginx.sh' stop %d '%s' >/dev/null",
           support_dir(), ngx_port, ngx_dir);
  if (system(cmd) != 0) kill(ngx_pid, SIGTERM);
  ngx_pid = 0;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", ngx_dir); /* the state dir */
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", ngx_dir);
}

/* A failed ASSERT aborts, a timeout terminates, a user interrupts, a bug
   crashes: stop nginx by PID on the way out, then let the signal do what
   it did before (the sanitizer's report of a crash, say).  Only the
   process that started nginx stops it: a test that fails in its own child
   process (task.h) leaves it to the tests after. */
static const int fatal_signals[] = {SIGABRT, SIGSEGV, SIGFPE,
                                    SIGBUS,  SIGTERM, SIGINT};
#define NFATAL (sizeof fatal_signals / sizeof fatal_signals[0])
static struct sigaction fatal_before[NFATAL];

static void on_abort(int sig) {
  size_t i;
  if (ngx_pid > 0 && getpid() == ngx_owner) kill(ngx_pid, SIGQUIT);
  for (i = 0; i < NFATAL; i++)
    if (fatal_signals[i] == sig) sigaction(sig, &fatal_before[i], NULL);
  raise(sig);
}

static void stop_nginx_on_fatal_signals(void) {
  struct sigaction sa;
  size_t i;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_abort;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < NFATAL; i++)
    sigaction(fatal_signals[i], &sa, &fatal_before[i]);
}

const char *base(void) {
  char cmd[1024], line[256];
  FILE *p;
  int attempt, pid = 0;
  if (ngx_pid > 0) return ngx_base;
  /* loopback only: a proxy from the environment must not get in the way */
  unsetenv("http_proxy");
  unsetenv("HTTP_PROXY");
  unsetenv("https_proxy");
  unsetenv("HTTPS_PROXY");
  unsetenv("all_proxy");
  unsetenv("ALL_PROXY");
  for (attempt = 0; attempt < 5 && pid <= 0; attempt++) {
    ngx_port = free_port();
    ngx_tls_port = free_port();
    snprintf(ngx_dir, sizeof ngx_dir, "%s/corio-test-fetch-%d-%d",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid(),
             ngx_port);
    snprintf(cmd, sizeof cmd, "NGINX_OWNER=%d '%s/nginx.sh' start %d '%s' %d",
             (int)getpid(), support_dir(), ngx_port, ngx_dir, ngx_tls_port);
    p = popen(cmd, "r");
    ASSERT_NOT_NULL(p);
    while (fgets(line, sizeof line, p) != NULL)
      if (sscanf(line, "pid %d", &pid) == 1) break;
    while (fgets(line, sizeof line, p) != NULL) continue;
    if (pclose(p) != 0) pid = 0;
  }
  ASSERT(pid > 0);
  ngx_pid = pid;
  ngx_owner = getpid();
  stop_nginx_on_fatal_signals();
  atexit(ngx_stop);
  snprintf(ngx_base, sizeof ngx_base, "http://127.0.0.1:%d", ngx_port);
  return ngx_base;
}

void fetch_setup(void) {
  (void)base();
}

/* base() + path in `buf` (256 bytes). */
char *mkurl(char *buf, const char *path) {
  snprintf(buf, 256, "%s%s", base(), path);
  return buf;
}

/* }================================================================== */

/*
** {==================================================================
** Helpers
** ===================================================================
*/

/* header_data holds the fields of `headers`, in one block, and no more */
static void check_header_data(const corio_response *res) {
  const char *p = res->header_data;
  size_t i;
  if (res->nheaders == 0) {
    ASSERT(p == NULL);
    ASSERT_EQ(res->header_data_len, 0);
    return;
  }
  ASSERT_NOT_NULL(p);
  for (i = 0; i < res->nheaders; i++) {
    size_t n = strlen(res->headers[i].name) + 1;
    size_t v = strlen(res->headers[i].value) + 1;
    ASSERT(memcmp(p, res->headers[i].name, n) == 0);
    p += n;
    ASSERT(memcmp(p, res->headers[i].value, v) == 0);
    p += v;
  }
  ASSERT_EQ((size_t)(p - res->header_data), res->header_data_len);
}

void record(corio_fetch *f, int status, const corio_response *res, void *ud) {
  result *r = ud;
  size_t i;
  ASSERT_NOT_NULL(res);
  ASSERT_NOT_NULL(res->body);
  ASSERT_EQ(res->body[res->body_len], '\0');
  if (r->f != NULL) ASSERT(r->f == f);
  r->called++;
  r->status = status;
  r->http = res->status;
  r->attempts = res->attempts;
  free(r->body);
  r->body = malloc(res->body_len + 1);
  memcpy(r->body, res->body, res->body_len + 1);
  r->body_len = res->body_len;
  r->nheaders = res->nheaders;
  check_header_data(res);
  for (i = 0; i < res->nheaders && i < MAXH; i++) {
    snprintf(r->hname[i], sizeof r->hname[i], "%s", res->headers[i].name);
    snprintf(r->hvalue[i], sizeof r->hvalue[i], "%s", res->headers[i].value);
  }
  snprintf(r->url, sizeof r->url, "%s", res->url);
  snprintf(r->version, sizeof r->version, "%s", res->http_version);
  snprintf(r->error, sizeof r->error, "%s", res->error ? res->error : "");
  r->timing = res->timing;
  r->done_at = (double)uv_hrtime() / 1e9;
  if (status != 0)
    ASSERT_NOT_NULL(res->error);
  else
    ASSERT(res->error == NULL);
}

void result_clear(result *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}

/* The value of the first header named `name`, or NULL. */
const char *header(const result *r, const char *name) {
  size_t i;
  for (i = 0; i < r->nheaders && i < MAXH; i++)
    if (strcasecmp(r->hname[i], name) == 0) return r->hvalue[i];
  return NULL;
}

double now(void) {
  return (double)uv_hrtime() / 1e9;
}

/* Run one request on its own runtime; returns the callback's status. */
int fetch1(const corio_request *req, result *r) {
  corio_rt *rt = corio_rt_new(NULL);
  ASSERT_NOT_NULL(rt);
  memset(r, 0, sizeof *r);
  ASSERT_OK(corio_fetch_start(rt, NULL, req, record, r, &r->f));
  ASSERT_NOT_NULL(r->f);
  ASSERT_EQ(r->called, 0); /* never from inside start */
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(r->called, 1);
  ASSERT_OK(corio_rt_free(rt));
  return r->status;
}

int get(const char *path, result *r) {
  char u[256];
  corio_request req;
  corio_request_init(&req, mkurl(u, path));
  return fetch1(&req, r);
}

void check_body(const result *r, size_t len, const char *pattern) {
  size_t i, plen = strlen(pattern);
  ASSERT_OK(r->status);
  ASSERT_EQ(r->http, 200);
  ASSERT_EQ(r->body_len, len);
  for (i = 0; i < len; i++)
    if (r->body[i] != pattern[i % plen]) ASSERT(0 && "body differs");
}

void on_tally(corio_fetch *f, int status, const corio_response *res, void *ud) {
  tally *t = ud;
  (void)f;
  if (status != 0)
    t->failed++;
  else if (res->status == 200)
    t->ok++;
  else
    t->other++;
  t->last = now();
}

/* }================================================================== */

/*
** {==================================================================
** A server that cuts its body short
** ===================================================================
*/

static void on_ss_closed(uv_handle_t *h) {
  (void)h;
}

static void ss_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf) {
  static char mem[4096];
  (void)h;
  (void)n;
  *buf = uv_buf_init(mem, sizeof mem);
}

static void ss_written(uv_write_t *w, int status) {
  short_server *ss = w->data;
  (void)status;
  uv_close((uv_handle_t *)&ss->client, on_ss_closed);
}

static void ss_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  short_server *ss = s->data;
  static char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
                        "Content-Type: text/plain\r\n\r\n0123456789";
  uv_buf_t b = uv_buf_init(reply, sizeof reply - 1);
  (void)buf;
  if (n <= 0) return;
  uv_read_stop(s);
  ss->wr.data = ss;
  ASSERT_OK(uv_write(&ss->wr, s, &b, 1, ss_written));
}

static void ss_connection(uv_stream_t *server, int status) {
  short_server *ss = server->data;
  ASSERT_OK(status);
  ASSERT_OK(uv_tcp_init(server->loop, &ss->client));
  ASSERT_OK(uv_accept(server, (uv_stream_t *)&ss->client));
  ss->client.data = ss;
  ss->accepted++;
  ASSERT_OK(uv_read_start((uv_stream_t *)&ss->client, ss_alloc, ss_read));
  uv_close((uv_handle_t *)&ss->server, on_ss_closed); /* one is enough */
}

void short_server_start(short_server *ss, uv_loop_t *loop, char *url,
                        size_t url_size) {
  struct sockaddr_in a;
  int len = sizeof a;
  memset(ss, 0, sizeof *ss);
  ASSERT_OK(uv_ip4_addr("127.0.0.1", 0, &a));
  ASSERT_OK(uv_tcp_init(loop, &ss->server));
  ss->server.data = ss;
  ASSERT_OK(uv_tcp_bind(&ss->server, (struct sockaddr *)&a, 0));
  ASSERT_OK(uv_tcp_getsockname(&ss->server, (struct sockaddr *)&a, &len));
  ASSERT_OK(uv_listen((uv_stream_t *)&ss->server, 8, ss_connection));
  snprintf(url, url_size, "http://127.0.0.1:%d/short", ntohs(a.sin_port));
}

/* }================================================================== */
