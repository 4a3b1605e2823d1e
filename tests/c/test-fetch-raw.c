/*
** test-fetch-raw.c: a hostile server: raw responses from a thread (no
** nginx), for what nginx never sends, such as a folded first field line.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch_support.h"

/*
** {==================================================================
** A hostile server: raw responses from a thread, so that
** corio_fetch_blocking can be tried against it too
** ===================================================================
*/

#define RAW_CLIENTS 16

/* Answers each request by its path: "/fold" gets a response whose first
   field line is an obs-fold continuation (nothing to continue), anything
   else a 200 with a few fields.  Keeps connections open. */
typedef struct {
  int lfd, port;
  int stop[2]; /* a byte on stop[1] ends the thread */
  pthread_t thread;
  int fd[RAW_CLIENTS];
  char buf[RAW_CLIENTS][2048];
  size_t len[RAW_CLIENTS];
  int accepted, served; /* read by the test after the thread ended */
} raw_server;

static const char raw_ok[] = "HTTP/1.1 200 OK\r\nX-First: any value\r\n"
                             "Content-Length: 2\r\n\r\nok";
static const char raw_hop[] = "HTTP/1.1 302 Found\r\nLocation: /fold\r\n"
                              "Content-Length: 0\r\n\r\n";
/* NULs in a name, in a value and in a folded line */
static const char raw_nul[] = "HTTP/1.1 200 OK\r\nX-N\0l: a\0b\r\n \0c\r\n"
                              "X-After: d\r\nContent-Length: 2\r\n\r\nok";
static const char raw_fold[] = "HTTP/1.1 302 Found\r\n Location: /r\r\n"
                               "Content-Length: 0\r\n\r\n";

static void raw_drop(raw_server *rs, int i) {
  close(rs->fd[i]);
  rs->fd[i] = -1;
  rs->len[i] = 0;
}

/* Serve every complete request in client i's buffer. */
static void raw_serve(raw_server *rs, int i) {
  char *end;
  while ((end = strstr(rs->buf[i], "\r\n\r\n")) != NULL) {
    size_t used = (size_t)(end + 4 - rs->buf[i]);
    const char *reply = raw_ok;
    if (strncmp(rs->buf[i], "GET /fold ", 10) == 0) reply = raw_fold;
    if (strncmp(rs->buf[i], "GET /hop ", 9) == 0) reply = raw_hop;
    if (strncmp(rs->buf[i], "GET /nul ", 9) == 0) reply = raw_nul;
    size_t n = reply == raw_nul ? sizeof raw_nul - 1 : strlen(reply);
    if (send(rs->fd[i], reply, n, MSG_NOSIGNAL) != (ssize_t)n) {
      raw_drop(rs, i);
      return;
    }
    rs->served++;
    memmove(rs->buf[i], rs->buf[i] + used, rs->len[i] - used + 1);
    rs->len[i] -= used;
  }
}

static void *raw_main(void *ud) {
  raw_server *rs = ud;
  for (;;) {
    struct pollfd p[RAW_CLIENTS + 2];
    int i, n = 2;
    p[0].fd = rs->stop[0];
    p[1].fd = rs->lfd;
    p[0].events = p[1].events = POLLIN;
    for (i = 0; i < RAW_CLIENTS; i++) {
      p[n].fd = rs->fd[i]; /* -1: ignored by poll */
      p[n++].events = POLLIN;
    }
    if (poll(p, (nfds_t)n, 10000) <= 0) break; /* bounded: 10 s of silence */
    if (p[0].revents) break;
    if (p[1].revents & POLLIN) {
      int c = accept(rs->lfd, NULL, NULL);
      for (i = 0; c >= 0 && i < RAW_CLIENTS && rs->fd[i] >= 0; i++) continue;
      if (c >= 0 && i == RAW_CLIENTS) close(c);
      if (c >= 0 && i < RAW_CLIENTS) {
        rs->fd[i] = c;
        rs->len[i] = 0;
        rs->accepted++;
      }
    }
    for (i = 0; i < RAW_CLIENTS; i++) {
      ssize_t got;
      if (rs->fd[i] < 0 || !p[i + 2].revents) continue;
      got = recv(rs->fd[i], rs->buf[i] + rs->len[i],
                 sizeof rs->buf[i] - 1 - rs->len[i], 0);
      if (got <= 0) {
        raw_drop(rs, i);
        continue;
      }
      rs->len[i] += (size_t)got;
      rs->buf[i][rs->len[i]] = '\0';
      raw_serve(rs, i);
      if (rs->fd[i] >= 0 && rs->len[i] == sizeof rs->buf[i] - 1)
        raw_drop(rs, i); /* a request that big is not ours */
    }
  }
  return NULL;
}

static void raw_start(raw_server *rs) {
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  int i, one = 1;
  memset(rs, 0, sizeof *rs);
  for (i = 0; i < RAW_CLIENTS; i++) rs->fd[i] = -1;
  rs->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT(rs->lfd >= 0);
  ASSERT_OK(setsockopt(rs->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(rs->lfd, (struct sockaddr *)&a, sizeof a));
  ASSERT_OK(getsockname(rs->lfd, (struct sockaddr *)&a, &alen));
  ASSERT_OK(listen(rs->lfd, 16));
  rs->port = ntohs(a.sin_port);
  ASSERT_OK(pipe2(rs->stop, O_CLOEXEC));
  ASSERT_OK(pthread_create(&rs->thread, NULL, raw_main, rs));
}

static void raw_stop(raw_server *rs) {
  int i;
  ASSERT_EQ(write(rs->stop[1], "x", 1), 1);
  ASSERT_OK(pthread_join(rs->thread, NULL));
  for (i = 0; i < RAW_CLIENTS; i++)
    if (rs->fd[i] >= 0) raw_drop(rs, i);
  close(rs->lfd);
  close(rs->stop[0]);
  close(rs->stop[1]);
}

/* One GET of http://host:port/path in session `s` of `rt`, run to its
   end; returns the callback's status. */
static int raw_get(corio_rt *rt, corio_session *s, const raw_server *rs,
                   const char *host, const char *path, result *r) {
  char u[256];
  corio_request req;
  memset(r, 0, sizeof *r);
  snprintf(u, sizeof u, "http://%s:%d%s", host, rs->port, path);
  corio_request_init(&req, u);
  ASSERT_OK(corio_fetch_start(rt, s, &req, record, r, NULL));
  ASSERT_OK(corio_rt_run(rt, UV_RUN_DEFAULT));
  ASSERT_EQ(r->called, 1);
  return r->status;
}

/* Any response, then one whose first field line is folded: libcurl 7.88
   keeps a pointer to the last field of a handle's previous transfer and
   would extend that freed field (heap-use-after-free, a crash without
   ASan) if corio reused the easy handle.  The second fails as a protocol
   error, as with corio_fetch_blocking; the next one succeeds.  `host2`
   and `s2` say where the second goes. */
static void fold_after(const char *host2, int other_session) {
  corio_rt *rt = corio_rt_new(NULL);
  corio_session *s2 = other_session ? corio_session_new(rt, NULL) : NULL;
  raw_server rs;
  result r;
  int round;
  raw_start(&rs);
  for (round = 0; round < 3; round++) {
    ASSERT_OK(raw_get(rt, NULL, &rs, "127.0.0.1", "/first", &r));
    ASSERT_EQ(r.http, 200);
    ASSERT_STR_EQ(r.body, "ok");
    ASSERT_STR_EQ(header(&r, "X-First"), "any value");
    result_clear(&r);
    ASSERT_EQ(raw_get(rt, s2, &rs, host2, "/fold", &r), CORIO_EPROTO);
    ASSERT(r.error[0] != '\0');
    result_clear(&r);
  }
  ASSERT_OK(raw_get(rt, s2, &rs, host2, "/again", &r));
  ASSERT_STR_EQ(r.body, "ok");
  result_clear(&r);
  if (s2 != NULL) ASSERT_OK(corio_session_free(s2));
  ASSERT_OK(corio_rt_free(rt));
  raw_stop(&rs);
  ASSERT_EQ(rs.served, 7);
}

TEST_IMPL(folded_first_field) {
  fold_after("127.0.0.1", 0);
}

TEST_IMPL(folded_first_field_other_host) {
  fold_after("localhost", 0);
  fold_after("localhost", 1);
}

/* Within one transfer libcurl keeps every hop's fields until the
   handle's next transfer: a folded first line after a redirect extends a
   live field of the hop before (its Location: libcurl follows no
   further), and the fold has nothing to continue in our own fields. */
TEST_IMPL(folded_first_field_after_redirect) {
  corio_rt *rt = corio_rt_new(NULL);
  raw_server rs;
  result r;
  raw_start(&rs);
  ASSERT_OK(raw_get(rt, NULL, &rs, "127.0.0.1", "/first", &r));
  result_clear(&r);
  ASSERT_OK(raw_get(rt, NULL, &rs, "127.0.0.1", "/hop", &r));
  ASSERT_EQ(r.http, 302);
  ASSERT(strstr(r.url, "/fold") != NULL);
  ASSERT_EQ(r.nheaders, 1);
  ASSERT_STR_EQ(header(&r, "Content-Length"), "0");
  result_clear(&r);
  ASSERT_OK(raw_get(rt, NULL, &rs, "127.0.0.1", "/again", &r));
  result_clear(&r);
  ASSERT_OK(corio_rt_free(rt));
  raw_stop(&rs);
  ASSERT_EQ(rs.served, 4);
}

/* A NUL in a name, a value or a folded line: libcurl refuses the
   response ("Nul byte in header"), so no name or value corio hands out
   holds one, and header_data (corio/fetch.h) splits at its NULs exactly:
   the Python binding relies on it. */
TEST_IMPL(nul_in_fields) {
  corio_rt *rt = corio_rt_new(NULL);
  raw_server rs;
  result r;
  raw_start(&rs);
  ASSERT_EQ(raw_get(rt, NULL, &rs, "127.0.0.1", "/nul", &r), CORIO_EPROTO);
  ASSERT(strstr(r.error, "Nul byte") != NULL);
  result_clear(&r);
  ASSERT_OK(raw_get(rt, NULL, &rs, "127.0.0.1", "/after", &r));
  ASSERT_STR_EQ(r.body, "ok");
  result_clear(&r);
  ASSERT_OK(corio_rt_free(rt));
  raw_stop(&rs);
}

/* corio_fetch_blocking says the same of the same response. */
TEST_IMPL(folded_first_field_blocking) {
  raw_server rs;
  corio_request req;
  corio_response *res = NULL;
  char u[256];
  raw_start(&rs);
  snprintf(u, sizeof u, "http://127.0.0.1:%d/fold", rs.port);
  corio_request_init(&req, u);
  ASSERT_EQ(corio_fetch_blocking(&req, &res), CORIO_EPROTO);
  ASSERT_NOT_NULL(res);
  ASSERT_NOT_NULL(res->error);
  corio_response_free(res);
  raw_stop(&rs);
}

/* }================================================================== */

/* clang-format off */
TEST_MAIN(
  TEST_ENTRY(folded_first_field)
  TEST_ENTRY(folded_first_field_other_host)
  TEST_ENTRY(folded_first_field_after_redirect)
  TEST_ENTRY(folded_first_field_blocking)
  TEST_ENTRY(nul_in_fields)
)
/* clang-format on */
