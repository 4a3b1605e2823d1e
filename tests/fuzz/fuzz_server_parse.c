/*
** fuzz_server_parse.c: libFuzzer target for corio.serve's request parsing.
** Each input goes through the parser and the connection's state machine
** (pipelining, 100-continue, limits, errors, closing) as if read from a
** client, in pieces: no network, no listening socket is ever connected.
** The connection is a socketpair whose other end only takes the answers
** in (and is closed at the end: the client leaves).  Every connection
** must close once its client has left: one that does not is a finding.
**
** Input: byte 0 picks the size of the pieces the rest arrives in (0: one
** piece, else that many bytes each), byte 1 the server (limits, inflight),
** the rest is what the client sends.
**
** Build: tests/fuzz/server_parse.cmake (CORIO_FUZZ, clang), or by hand
** from the repository root:
**   clang -g -O1 -std=c11 -D_GNU_SOURCE -DCORIO_BUILDING \
**     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
**     -Iruntime/include -Iruntime/src -I/usr/share/include/llhttp \
**     tests/fuzz/fuzz_server_parse.c $(find runtime/src -name '*.c') \
**     /usr/share/llhttp/api.c /usr/share/llhttp/http.c \
**     /usr/share/llhttp/llhttp.c \
**     $(pkg-config --cflags --libs libuv libcurl) -lm -o fuzz_server_parse
** Run:
**   ./fuzz_server_parse -max_total_time=600 CORPUS \
**     tests/fuzz/corpus/server_parse
*/
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static corio_rt *rt;
static corio_server *srv[2];

static const char *starts(const char *s, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* Read everything a request offers, then answer as its path says. */
static void handler(corio_server *s, corio_server_req *req, void *ud) {
  static const corio_server_header h = {"X-Fuzz", 6, "1", 1};
  corio_server_header hh;
  size_t len, blen, i, n = corio_server_req_header_count(req);
  const char *path = corio_server_req_path(req, &len);
  const char *body = corio_server_req_body(req, &blen);
  int major, minor;
  (void)s;
  (void)ud;
  for (i = 0; i < n; i++) {
    if (corio_server_req_header_at(req, i, &hh) != 0) abort();
    if (hh.name[hh.name_len] != '\0' || hh.value[hh.value_len] != '\0')
      abort(); /* every string is NUL-terminated */
  }
  (void)corio_server_req_header(req, "content-type", NULL);
  (void)corio_server_req_query(req, NULL);
  (void)corio_server_req_target(req, NULL);
  if (corio_server_req_method(req) == NULL) abort();
  corio_server_req_version(req, &major, &minor);
  if (major != 1 || minor > 1 || path[len] != '\0' || body[blen] != '\0')
    abort();
  if (starts(path, len, "/stream")) {
    if (corio_server_stream(req, 200, &h, 1) == 0) {
      corio_server_write(req, body, blen, NULL, NULL);
      corio_server_end(req);
    }
  } else if (starts(path, len, "/abort")) {
    corio_server_abort(req);
  } else {
    corio_server_respond(req, starts(path, len, "/204") ? 204 : 200, &h, 1,
                         body, blen);
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  corio_server_opts o;
  int i;
  (void)argc;
  (void)argv;
  rt = corio_rt_new(NULL);
  if (rt == NULL) abort();
  for (i = 0; i < 2; i++) {
    corio_server_opts_init(&o);
    o.port = 0;
    o.header_timeout_ms = o.body_timeout_ms = 2000;
    o.idle_timeout_ms = o.write_timeout_ms = 2000;
    if (i == 1) { /* small limits: 431, 413 and the overload answer */
      o.max_header_bytes = 512;
      o.max_body_bytes = 1024;
      o.max_requests_per_conn = 3;
    }
    if (corio_server_listen(rt, &o, handler, NULL, &srv[i]) != 0) abort();
  }
  return 0;
}

static void drain(int fd) {
  char buf[65536];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uv_loop_t *loop = corio_rt_loop(rt);
  corio__server_conn *c;
  corio_server *s;
  size_t piece, off, n;
  int sv[2], i;
  if (size < 2) return 0;
  piece = data[0] ? data[0] : CORIO__SERVER_SLAB;
  s = srv[data[1] & 1];
  data += 2;
  size -= 2;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
  fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
  c = corio__server_adopt(s, sv[0]);
  if (c == NULL) abort();
  for (off = 0; off < size && s->nconns > 0; off += n) {
    n = size - off < piece ? size - off : piece;
    corio__server_conn_input(c, (const char *)data + off, n);
    drain(sv[1]);
    uv_run(loop, UV_RUN_NOWAIT);
    drain(sv[1]);
  }
  close(sv[1]); /* the client leaves: the connection must close */
  for (i = 0; s->nconns > 0 && i < 1000; i++) uv_run(loop, UV_RUN_ONCE);
  if (s->nconns > 0 || !corio__queue_empty(&s->orphans)) {
    fprintf(stderr, "a connection outlived its client\n");
    abort();
  }
  return 0;
}
