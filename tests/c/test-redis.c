/*
** test-redis.c: the Redis client (corio/redis.h) against a real
** redis-server on loopback, started by this program (once, before the
** tests, on a free port; stopped by PID at exit), and against sockets of
** the test's own that are not Redis (silent, or speaking HTTP).  The test
** that kills the server mid-command starts one of its own.  Host names:
** this program links slow_dns.c's getaddrinfo, which answers
** corio_slow_dns_name slowly and names under .invalid at once, so that
** no test asks a DNS server.
*/
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "fetch_support.h" /* free_port */
#include "slow_dns.h"

/*
** {==================================================================
** redis-server, started and stopped by PID
** ===================================================================
*/

static int g_port;     /* the shared server */
static pid_t g_pid;    /* its PID */
static pid_t g_owner;  /* the process that started it (the runner) */
static char g_url[64]; /* redis://127.0.0.1:PORT */

static int port_open(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* Start redis-server on `port` (extra: more arguments or NULL) and wait
   until it accepts connections (at most 10 s). */
static pid_t redis_start(int port, const char *extra) {
  char portbuf[16], cmd[512];
  int i;
  pid_t pid;
  snprintf(portbuf, sizeof portbuf, "%d", port);
  snprintf(cmd, sizeof cmd,
           "exec redis-server --port %d --bind 127.0.0.1 --save '' "
           "--appendonly no --daemonize no %s >/dev/null 2>&1",
           port, extra != NULL ? extra : "");
  fflush(NULL);
  pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  for (i = 0; i < 1000 && !port_open(port); i++) usleep(10 * 1000);
  ASSERT(port_open(port));
  return pid;
}

static void redis_stop(pid_t pid, int sig) {
  int st;
  if (pid <= 0) return;
  kill(pid, sig);
  waitpid(pid, &st, 0);
}

static void stop_shared(void) {
  if (getpid() == g_owner) redis_stop(g_pid, SIGTERM);
}

static void setup(void) {
  signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
  g_owner = getpid();
  g_port = free_port();
  g_pid = redis_start(g_port, NULL);
  atexit(stop_shared);
  snprintf(g_url, sizeof g_url, "redis://127.0.0.1:%d", g_port);
}

/* }================================================================== */

/*
** {==================================================================
** Recording callbacks
** ===================================================================
*/

#define MAXREC 256

typedef struct rec {
  int n; /* callbacks run */
  int status[MAXREC];
  int type[MAXREC];
  long long integer[MAXREC];
  char str[MAXREC][64];
  int order[MAXREC]; /* ud of the i-th callback */
  int in_call;       /* set while the test is inside a corio_redis_* call */
  int reentered;     /* a callback ran from inside one */
  corio_redis_cmd *cmds[MAXREC];
} rec;

static rec R;

static void on_done(corio_redis_cmd *cmd, int status,
                    const corio_redis_reply *reply, void *ud) {
  int i = (int)(intptr_t)ud;
  (void)cmd;
  if (R.in_call) R.reentered = 1;
  ASSERT(i >= 0 && i < MAXREC);
  R.order[R.n++] = i;
  R.status[i] = status;
  R.type[i] = -1;
  if (status == 0) {
    size_t len;
    const char *s = corio_redis_reply_str(reply, &len);
    R.type[i] = corio_redis_reply_type(reply);
    R.integer[i] = corio_redis_reply_integer(reply);
    if (s != NULL) snprintf(R.str[i], sizeof R.str[i], "%.*s", (int)len, s);
    ASSERT(reply != NULL);
  } else {
    ASSERT(reply == NULL);
  }
}

/* Send argv (NULL-terminated) as command number i. */
static void send_cmd(corio_redis *c, int i, const char *const *argv) {
  int argc = 0;
  while (argv[argc] != NULL) argc++;
  R.in_call = 1;
  ASSERT_OK(corio_redis_command(c, argc, argv, NULL, on_done,
                                (void *)(intptr_t)i, &R.cmds[i]));
  R.in_call = 0;
}

#define CMD(c, i, ...)                                                         \
  do {                                                                         \
    const char *argv_[] = {__VA_ARGS__, NULL};                                 \
    send_cmd((c), (i), argv_);                                                 \
  } while (0)

/* Run the loop until `n` callbacks have run (at most 20 s). */
static void run_until(corio_rt *rt, int n) {
  double t0 = test_now_();
  while (R.n < n) {
    ASSERT(test_now_() - t0 < 20);
    corio_rt_run(rt, UV_RUN_ONCE);
  }
}

static corio_redis *client(corio_rt *rt, const char *url, double timeout) {
  corio_redis *c = NULL;
  ASSERT_OK(corio_redis_new(rt, url, timeout, &c, NULL));
  return c;
}

/* }================================================================== */

TEST_IMPL(replies) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis *c = client(rt, g_url, 0);
  const char *bin[] = {"SET", "t:bin", "a\0b"};
  size_t binlen[] = {3, 5, 3};
  memset(&R, 0, sizeof R);
  CMD(c, 0, "DEL", "t:k", "t:bin");
  CMD(c, 1, "SET", "t:k", "v");
  CMD(c, 2, "GET", "t:k");
  CMD(c, 3, "GET", "t:missing");
  CMD(c, 4, "INCRBY", "t:n", "5");
  CMD(c, 5, "NOSUCHCOMMAND");
  CMD(c, 6, "EVAL", "return {1, {2, 'x', {}}, 'y'}", "0");
  ASSERT_OK(corio_redis_command(c, 3, bin, binlen, on_done, (void *)7, NULL));
  run_until(rt, 8);
  ASSERT_EQ(R.type[1], CORIO_REDIS_STATUS);
  ASSERT_STR_EQ(R.str[1], "OK");
  ASSERT_EQ(R.type[2], CORIO_REDIS_STRING);
  ASSERT_STR_EQ(R.str[2], "v");
  ASSERT_EQ(R.type[3], CORIO_REDIS_NIL);
  ASSERT_EQ(R.type[4], CORIO_REDIS_INTEGER);
  ASSERT(R.integer[4] >= 5);
  ASSERT_EQ(R.status[5], 0); /* an error reply is a reply */
  ASSERT_EQ(R.type[5], CORIO_REDIS_ERROR);
  ASSERT(strncmp(R.str[5], "ERR unknown command", 19) == 0);
  ASSERT_EQ(R.type[6], CORIO_REDIS_ARRAY);
  ASSERT_OK(R.reentered);
  corio_redis_close(c);
  RT_FREE_CLEAN(rt);
}

/* A nested array, walked from the callback. */
static int nested_ok;
static void on_nested(corio_redis_cmd *cmd, int status,
                      const corio_redis_reply *r, void *ud) {
  const corio_redis_reply *inner;
  size_t len;
  (void)cmd;
  (void)ud;
  ASSERT_OK(status);
  ASSERT_EQ(corio_redis_reply_len(r), 3);
  ASSERT_EQ(corio_redis_reply_integer(corio_redis_reply_at(r, 0)), 1);
  inner = corio_redis_reply_at(r, 1);
  ASSERT_EQ(corio_redis_reply_type(inner), CORIO_REDIS_ARRAY);
  ASSERT_EQ(corio_redis_reply_len(inner), 3);
  ASSERT_STR_EQ(corio_redis_reply_str(corio_redis_reply_at(inner, 1), &len),
                "x");
  ASSERT_EQ(corio_redis_reply_len(corio_redis_reply_at(inner, 2)), 0);
  ASSERT(corio_redis_reply_at(r, 3) == NULL);
  ASSERT(corio_redis_reply_str(r, &len) == NULL && len == 0);
  nested_ok = 1;
}

TEST_IMPL(nested_arrays) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis *c = client(rt, g_url, 0);
  const char *argv[] = {"EVAL", "return {1, {2, 'x', {}}, 'y'}", "0"};
  ASSERT_OK(corio_redis_command(c, 3, argv, NULL, on_nested, NULL, NULL));
  corio_rt_run(rt, UV_RUN_DEFAULT); /* returns: the idle connection does
                                       not hold the loop */
  ASSERT_EQ(nested_ok, 1);
  corio_redis_close(c);
  RT_FREE_CLEAN(rt);
}

/* 200 commands at once: one connection, replies in order, few writes. */
TEST_IMPL(pipelining) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis *c = client(rt, g_url, 0);
  corio_redis_stats st;
  int i;
  memset(&R, 0, sizeof R);
  CMD(c, 0, "DEL", "t:pipe");
  for (i = 1; i < 200; i++) CMD(c, i, "INCR", "t:pipe");
  run_until(rt, 200);
  for (i = 1; i < 200; i++) {
    ASSERT_EQ(R.order[i], i);
    ASSERT_EQ(R.integer[i], i);
  }
  corio_redis_get_stats(c, &st);
  ASSERT_EQ(st.connects, 1);
  ASSERT_EQ(st.commands, 201); /* PING first */
  ASSERT(st.writes <= 3);
  ASSERT_EQ(st.pending, 0);
  ASSERT_EQ(st.connected, 1);
  corio_redis_close(c);
  RT_FREE_CLEAN(rt);
}

/*
** A cancelled command's reply is read and dropped: the next command gets
** its own reply, and the cancelled one's callback runs once, with
** CORIO_ECANCELED, not from inside corio_redis_cancel.
*/
TEST_IMPL(cancel) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis *c = client(rt, g_url, 0);
  memset(&R, 0, sizeof R);
  CMD(c, 0, "SET", "t:c", "first");
  run_until(rt, 1);
  CMD(c, 1, "BLPOP", "t:never", "0.2");
  CMD(c, 2, "GET", "t:c");
  CMD(c, 3, "ECHO", "third");
  R.in_call = 1;
  ASSERT_OK(corio_redis_cancel(R.cmds[2]));
  ASSERT_EQ(corio_redis_cancel(R.cmds[2]), CORIO_ESTATE);
  R.in_call = 0;
  ASSERT_EQ(R.n, 1);
  run_until(rt, 4);
  ASSERT_EQ(R.order[1], 2); /* at the next turn, before the replies */
  ASSERT_EQ(R.status[2], CORIO_ECANCELED);
  ASSERT_STR_EQ(R.str[3], "third");
  ASSERT_OK(R.reentered);
  corio_redis_close(c);
  RT_FREE_CLEAN(rt);
}

TEST_IMPL(refused_then_reconnects) {
  corio_rt *rt = corio_rt_new(NULL);
  int port = free_port();
  char url[64];
  corio_redis *c;
  corio_redis_stats st;
  pid_t pid;
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
  c = client(rt, url, 5);
  memset(&R, 0, sizeof R);
  CMD(c, 0, "PING");
  CMD(c, 1, "PING");
  run_until(rt, 2);
  ASSERT_EQ(R.status[0], CORIO_ECONNECT);
  ASSERT_EQ(R.status[1], CORIO_ECONNECT);
  ASSERT(strstr(corio_redis_last_error(c), "refused") != NULL);
  pid = redis_start(port, NULL);
  CMD(c, 2, "PING");
  run_until(rt, 3);
  ASSERT_EQ(R.status[2], 0);
  ASSERT_STR_EQ(R.str[2], "PONG");
  corio_redis_get_stats(c, &st);
  ASSERT_EQ(st.connects, 2);
  corio_redis_close(c);
  RT_FREE_CLEAN(rt);
  redis_stop(pid, SIGTERM);
}

/* The server dies with commands in flight: they fail with CORIO_ERESET;
   once it is back, the next command reconnects. */
TEST_IMPL(server_killed) {
  corio_rt *rt = corio_rt_new(NULL);
  int port = free_port(), i;
  char url[64];
  corio_redis *c;
  pid_t pid = redis_start(port, NULL);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  c = client(rt, url, 5);
  memset(&R, 0, sizeof R);
  CMD(c, 0, "PING");
  run_until(rt, 1);
  CMD(c, 1, "BLPOP", "t:never", "10");
  CMD(c, 2, "PING"); /* behind the BLPOP */
  for (i = 0; i < 5; i++) corio_rt_run(rt, UV_RUN_NOWAIT); /* sent */
  redis_stop(pid, SIGKILL);
  run_until(rt, 3);
  ASSERT_EQ(R.status[1], CORIO_ERESET);
  ASSERT_EQ(R.status[2], CORIO_ERESET);
  ASSERT(*corio_redis_last_error(c) != '\0');
  pid = redis_start(port, NULL);
  CMD(c, 3, "ECHO", "back");
  run_until(rt, 4);
  ASSERT_EQ(R.status[3], 0);
  ASSERT_STR_EQ(R.str[3], "back");
  corio_redis_close(c);
  RT_FREE_CLEAN(rt);
  redis_stop(pid, SIGTERM);
}

/* A listener of our own: silent (accepts, never answers), or HTTP. */
static void on_peer_closed(uv_handle_t *h) {
  free(h);
}

static void on_http_written(uv_write_t *w, int status) {
  (void)status;
  uv_close((uv_handle_t *)w->handle, on_peer_closed);
  free(w);
}

static void on_conn(uv_stream_t *srv, int status) {
  uv_tcp_t *peer = malloc(sizeof *peer);
  static char http[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  ASSERT_OK(status);
  uv_tcp_init(srv->loop, peer);
  ASSERT_OK(uv_accept(srv, (uv_stream_t *)peer));
  if (srv->data != NULL) {
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t b = uv_buf_init(http, sizeof http - 1);
    uv_write(w, (uv_stream_t *)peer, &b, 1, on_http_written);
  } else {
    srv->data = peer; /* silent: kept until the test closes it */
  }
}

static int listen_on(uv_loop_t *loop, uv_tcp_t *srv, int http) {
  struct sockaddr_in a;
  struct sockaddr_storage got;
  int len = sizeof got;
  uv_tcp_init(loop, srv);
  srv->data = http ? (void *)1 : NULL;
  uv_ip4_addr("127.0.0.1", 0, &a);
  ASSERT_OK(uv_tcp_bind(srv, (struct sockaddr *)&a, 0));
  ASSERT_OK(uv_listen((uv_stream_t *)srv, 16, on_conn));
  uv_tcp_getsockname(srv, (struct sockaddr *)&got, &len);
  return ntohs(((struct sockaddr_in *)&got)->sin_port);
}

TEST_IMPL(connect_timeout) {
  corio_rt *rt = corio_rt_new(NULL);
  uv_tcp_t srv;
  char url[64];
  corio_redis *c;
  int port = listen_on(corio_rt_loop(rt), &srv, 0);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  c = client(rt, url, 0.2);
  memset(&R, 0, sizeof R);
  CMD(c, 0, "PING");
  run_until(rt, 1);
  ASSERT_EQ(R.status[0], CORIO_ETIMEDOUT);
  ASSERT(strstr(corio_redis_last_error(c), "within 0.2 s") != NULL);
  corio_redis_close(c);
  if (srv.data != NULL) uv_close(srv.data, on_peer_closed);
  uv_close((uv_handle_t *)&srv, NULL);
  corio_rt_run(rt, UV_RUN_DEFAULT);
  RT_FREE_CLEAN(rt);
}

TEST_IMPL(not_redis) {
  corio_rt *rt = corio_rt_new(NULL);
  uv_tcp_t srv;
  char url[64];
  corio_redis *c;
  int port = listen_on(corio_rt_loop(rt), &srv, 1);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  c = client(rt, url, 5);
  memset(&R, 0, sizeof R);
  CMD(c, 0, "PING");
  run_until(rt, 1);
  ASSERT_EQ(R.status[0], CORIO_EPROTO);
  ASSERT(strstr(corio_redis_last_error(c), "not a Redis server") != NULL);
  corio_redis_close(c);
  uv_close((uv_handle_t *)&srv, NULL);
  corio_rt_run(rt, UV_RUN_DEFAULT);
  RT_FREE_CLEAN(rt);
}

/* close fails what is pending with CORIO_ECLOSED, after it returns. */
TEST_IMPL(close_pending) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis *c = client(rt, g_url, 0);
  int fds;
  memset(&R, 0, sizeof R);
  CMD(c, 0, "PING");
  run_until(rt, 1);
  fds = count_fds();
  CMD(c, 1, "BLPOP", "t:never", "10");
  CMD(c, 2, "PING");
  corio_rt_run(rt, UV_RUN_NOWAIT);
  R.in_call = 1;
  corio_redis_close(c);
  R.in_call = 0;
  ASSERT_EQ(R.n, 1);
  run_until(rt, 3);
  ASSERT_EQ(R.status[1], CORIO_ECLOSED);
  ASSERT_EQ(R.status[2], CORIO_ECLOSED);
  ASSERT_OK(R.reentered);
  corio_rt_run(rt, UV_RUN_DEFAULT);
  ASSERT(count_fds() < fds); /* the connection's socket is gone */
  RT_FREE_CLEAN(rt);
}

/* A callback may close its own client; later commands are refused. */
static void on_close_self(corio_redis_cmd *cmd, int status,
                          const corio_redis_reply *r, void *ud) {
  corio_redis *c = corio_redis_cmd_client(cmd);
  const char *argv[] = {"PING"};
  (void)r;
  (void)ud;
  ASSERT_OK(status);
  corio_redis_close(c);
  ASSERT_EQ(corio_redis_command(c, 1, argv, NULL, on_done, NULL, NULL),
            CORIO_ECLOSED);
}

TEST_IMPL(close_from_callback) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis *c = client(rt, g_url, 0);
  const char *argv[] = {"PING"};
  memset(&R, 0, sizeof R);
  ASSERT_OK(corio_redis_command(c, 1, argv, NULL, on_close_self, NULL, NULL));
  CMD(c, 1, "ECHO", "after"); /* pipelined behind: closed with it */
  corio_rt_run(rt, UV_RUN_DEFAULT);
  ASSERT_EQ(R.n, 1);
  ASSERT_EQ(R.status[1], CORIO_ECLOSED);
  RT_FREE_CLEAN(rt);
}

/* corio_rt_free closes the clients left open. */
TEST_IMPL(rt_free_closes) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis *c = client(rt, g_url, 0);
  memset(&R, 0, sizeof R);
  CMD(c, 0, "PING");
  run_until(rt, 1);
  CMD(c, 1, "BLPOP", "t:never", "10");
  corio_rt_run(rt, UV_RUN_NOWAIT);
  RT_FREE_CLEAN(rt);
  ASSERT_EQ(R.n, 2);
  ASSERT_EQ(R.status[1], CORIO_ECLOSED);
}

TEST_IMPL(urls) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis *c = NULL;
  const char *why = NULL;
  ASSERT_EQ(corio_redis_new(rt, "http://127.0.0.1:1", 0, &c, &why),
            CORIO_ESCHEME);
  ASSERT_EQ(corio_redis_new(rt, "redis://127.0.0.1:99999", 0, &c, &why),
            CORIO_EURL);
  ASSERT_NOT_NULL(why);
  ASSERT_EQ(corio_redis_new(rt, "redis://127.0.0.1/x", 0, &c, &why),
            CORIO_EURL);
  ASSERT(strstr(why, "database") != NULL);
  ASSERT_EQ(corio_redis_new(rt, "not a url", 0, &c, &why), CORIO_EURL);
  ASSERT_EQ(corio_redis_new(rt, g_url, 0.0 / 0.0, &c, &why), CORIO_EINVAL);
  ASSERT(c == NULL);
  /* a host that does not resolve fails its command, at the next turn */
  c = client(rt, "redis://nohost.invalid:6379", 1);
  memset(&R, 0, sizeof R);
  CMD(c, 0, "PING");
  ASSERT_EQ(R.n, 0);
  run_until(rt, 1);
  ASSERT_EQ(R.status[0], CORIO_EDNS);
  corio_redis_close(c);
  RT_FREE_CLEAN(rt);
}

/* SELECT from the URL's path; AUTH from its password. */
TEST_IMPL(select_and_auth) {
  corio_rt *rt = corio_rt_new(NULL);
  char url[96];
  corio_redis *c0 = client(rt, g_url, 0), *c3, *bad, *good;
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", g_port);
  c3 = client(rt, url, 0);
  memset(&R, 0, sizeof R);
  CMD(c3, 0, "SET", "t:db3", "here");
  run_until(rt, 1);
  CMD(c0, 1, "EXISTS", "t:db3");
  CMD(c3, 2, "EXISTS", "t:db3");
  run_until(rt, 3);
  ASSERT_EQ(R.integer[1], 0);
  ASSERT_EQ(R.integer[2], 1);
  CMD(c0, 3, "CONFIG", "SET", "requirepass", "p@ss w");
  run_until(rt, 4);
  snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", g_port);
  bad = client(rt, url, 0);
  snprintf(url, sizeof url, "redis://:p%%40ss%%20w@127.0.0.1:%d/3", g_port);
  good = client(rt, url, 0);
  CMD(bad, 4, "PING");
  CMD(good, 5, "GET", "t:db3");
  run_until(rt, 6);
  ASSERT_EQ(R.status[4], CORIO_ECONNECT);
  ASSERT(strstr(corio_redis_last_error(bad), ": AUTH: ") != NULL);
  ASSERT_EQ(R.status[5], 0);
  ASSERT_STR_EQ(R.str[5], "here");
  CMD(good, 6, "CONFIG", "SET", "requirepass", "");
  run_until(rt, 7);
  ASSERT_EQ(R.status[6], 0);
  corio_redis_close(c0);
  corio_redis_close(c3);
  corio_redis_close(bad);
  corio_redis_close(good);
  RT_FREE_CLEAN(rt);
}

/*
** {==================================================================
** Host names: looked up off the loop
** ===================================================================
*/

/* A 50 ms repeating timer: the longest gap between its ticks. */
typedef struct ticker {
  uv_timer_t timer;
  uint64_t last, max_gap; /* ns */
  int ticks;
} ticker;

static void on_ticker(uv_timer_t *h) {
  ticker *t = h->data;
  uint64_t now = uv_hrtime();
  if (now - t->last > t->max_gap) t->max_gap = now - t->last;
  t->last = now;
  t->ticks++;
}

static void ticker_start(corio_rt *rt, ticker *t) {
  memset(t, 0, sizeof *t);
  uv_timer_init(corio_rt_loop(rt), &t->timer);
  t->timer.data = t;
  t->last = uv_hrtime(); /* a stall before the first tick counts too */
  uv_timer_start(&t->timer, on_ticker, 50, 50);
}

static void ticker_stop(corio_rt *rt, ticker *t) {
  on_ticker(&t->timer); /* a stall after the last tick counts too */
  uv_close((uv_handle_t *)&t->timer, NULL);
  corio_rt_run(rt, UV_RUN_NOWAIT);
}

static void on_waited(uv_timer_t *h) {
  uv_close((uv_handle_t *)h, NULL);
}

static void url_of(char *url, size_t size, const char *host, int port) {
  snprintf(url, size, "redis://%s:%d", host, port);
}

/*
** A lookup that takes 1 s: the loop keeps turning meanwhile (hiredis'
** own getaddrinfo stopped it for that second, before any tick), and the
** commands sent during the lookup go out after the handshake, in order;
** one cancelled meanwhile is never sent.
*/
TEST_IMPL(slow_lookup_loop_turns) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis_stats st;
  char url[96];
  corio_redis *c;
  ticker t;
  double t0;
  url_of(url, sizeof url, corio_slow_dns_name, g_port);
  c = client(rt, url, 5);
  memset(&R, 0, sizeof R);
  ticker_start(rt, &t);
  t0 = test_now_();
  CMD(c, 0, "SET", "t:slow", "v");
  CMD(c, 1, "GET", "t:slow");
  CMD(c, 2, "GET", "t:slow");
  ASSERT_OK(corio_redis_cancel(R.cmds[1]));
  ASSERT(test_now_() - t0 < 0.5); /* the calls return at once */
  run_until(rt, 3);
  ticker_stop(rt, &t);
  /* the lookup did take its second: the ticks went on through it */
  ASSERT(test_now_() - t0 >= CORIO_SLOW_DNS_MS / 1000.0 * 0.9);
  ASSERT(t.ticks >= 5);
  ASSERT(t.max_gap < 300 * 1000000ULL);
  ASSERT_EQ(R.order[0], 1);
  ASSERT_EQ(R.status[1], CORIO_ECANCELED);
  ASSERT_EQ(R.status[0], 0);
  ASSERT_STR_EQ(R.str[0], "OK");
  ASSERT_EQ(R.status[2], 0);
  ASSERT_STR_EQ(R.str[2], "v");
  corio_redis_get_stats(c, &st);
  ASSERT_EQ(st.connects, 1);
  ASSERT_EQ(st.commands, 3); /* PING, SET, GET: not the cancelled one */
  ASSERT_EQ(st.connected, 1);
  ASSERT_EQ(st.pending, 0);
  corio_redis_close(c);
  RT_FREE_CLEAN(rt);
}

/* A name that does not resolve: CORIO_EDNS, naming the host. */
TEST_IMPL(unresolvable_name) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis *c = client(rt, "redis://nonexistent.invalid:6379", 5);
  memset(&R, 0, sizeof R);
  CMD(c, 0, "PING");
  CMD(c, 1, "PING");
  run_until(rt, 2);
  ASSERT_EQ(R.status[0], CORIO_EDNS);
  ASSERT_EQ(R.status[1], CORIO_EDNS);
  ASSERT(strstr(corio_redis_last_error(c), "nonexistent.invalid:6379: ") ==
         corio_redis_last_error(c));
  corio_redis_close(c);
  RT_FREE_CLEAN(rt);
}

/*
** The timeout covers the lookup: a 0.3 s timeout on a lookup of 1 s
** fails at 0.3 s; the answer that comes later is dropped (no connection,
** no second callback).  A second command starts a lookup of its own,
** then the client is closed while it runs.
*/
TEST_IMPL(lookup_timeout) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis_stats st;
  uv_timer_t wait;
  char url[96];
  corio_redis *c;
  double t0, took;
  url_of(url, sizeof url, corio_slow_dns_name, g_port);
  c = client(rt, url, 0.3);
  memset(&R, 0, sizeof R);
  t0 = test_now_();
  CMD(c, 0, "PING");
  run_until(rt, 1);
  took = test_now_() - t0;
  ASSERT_EQ(R.status[0], CORIO_ETIMEDOUT);
  ASSERT(took >= 0.25 && took < 0.9);
  ASSERT(strstr(corio_redis_last_error(c), corio_slow_dns_name) != NULL);
  ASSERT(strstr(corio_redis_last_error(c), "within 0.3 s") != NULL);
  /* past the lookup's end (1 s): its answer arrives, unused */
  uv_timer_init(corio_rt_loop(rt), &wait);
  uv_timer_start(&wait, on_waited, 1000, 0);
  corio_rt_run(rt, UV_RUN_DEFAULT);
  corio_redis_get_stats(c, &st);
  ASSERT_EQ(R.n, 1);
  ASSERT_EQ(st.connects, 1);
  ASSERT_EQ(st.connected, 0);
  ASSERT_EQ(st.commands, 0);
  CMD(c, 1, "PING");
  corio_rt_run(rt, UV_RUN_NOWAIT);
  corio_redis_close(c);
  run_until(rt, 2);
  ASSERT_EQ(R.status[1], CORIO_ECLOSED);
  RT_FREE_CLEAN(rt); /* waits for the lookup's thread */
}

/*
** Closing clients, and freeing the runtime, with lookups in flight: five
** at once, so that one waits for a thread of libuv's pool (4) and is
** taken back by uv_cancel while the others run on.  Their commands fail
** with CORIO_ECLOSED; nothing leaks (LeakSanitizer in --sanitize).
*/
TEST_IMPL(close_during_lookup) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_redis *c[5];
  char url[96];
  double t0;
  int i;
  url_of(url, sizeof url, corio_slow_dns_name, g_port);
  memset(&R, 0, sizeof R);
  t0 = test_now_();
  for (i = 0; i < 5; i++) {
    c[i] = client(rt, url, 5);
    CMD(c[i], i, "PING");
  }
  ASSERT(test_now_() - t0 < 0.5); /* no lookup on the loop thread */
  corio_rt_run(rt, UV_RUN_NOWAIT);
  corio_redis_close(c[0]);
  corio_redis_close(c[4]);
  run_until(rt, 2);
  ASSERT_EQ(R.status[0], CORIO_ECLOSED);
  ASSERT_EQ(R.status[4], CORIO_ECLOSED);
  RT_FREE_CLEAN(rt); /* closes the other three */
  ASSERT_EQ(R.n, 5);
  for (i = 0; i < 5; i++) ASSERT_EQ(R.status[i], CORIO_ECLOSED);
  ASSERT(test_now_() - t0 < 5);
}

/* }================================================================== */

/* clang-format off */
TEST_MAIN_SETUP(setup,
  TEST_ENTRY(replies) TEST_ENTRY(nested_arrays) TEST_ENTRY(pipelining)
  TEST_ENTRY(cancel) TEST_ENTRY(refused_then_reconnects)
  TEST_ENTRY(server_killed) TEST_ENTRY(connect_timeout) TEST_ENTRY(not_redis)
  TEST_ENTRY(close_pending) TEST_ENTRY(close_from_callback)
  TEST_ENTRY(rt_free_closes) TEST_ENTRY(urls) TEST_ENTRY(select_and_auth)
  TEST_ENTRY(slow_lookup_loop_turns) TEST_ENTRY(unresolvable_name)
  TEST_ENTRY(lookup_timeout) TEST_ENTRY(close_during_lookup))
/* clang-format on */
