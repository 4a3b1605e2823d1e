/*
** lprocess_worker.c: the worker process's side (see lprocess.h).  A
** worker does one thing at a time, so it talks with plain blocking read
** and write; its own loop is free for the function's waits (corio.sleep
** at top level runs it).
*/
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "corio_lua.h"
#include "lcopy.h"
#include "lprocess.h"

void lcorio_process_header(char h[LPROC_HEADER], char type, uint32_t index,
                           size_t len) {
  uint32_t n = (uint32_t)(len + 5);
  memcpy(h, &n, 4);
  h[4] = type;
  memcpy(h + 5, &index, 4);
}

size_t lcorio_process_parse_header(const char h[LPROC_HEADER], char *type,
                                   uint32_t *index) {
  uint32_t n;
  memcpy(&n, h, 4);
  *type = h[4];
  memcpy(index, h + 5, 4);
  if (n < 5 || n - 5 > LPROC_MAX_FRAME) return (size_t)-1;
  return n - 5;
}

/*
** The worker runs `lua -e <this>`.  Under the corio executable the module
** is built in and already loaded; under lua5.4 it is loaded from the path
** of the corio.so this code is in (dladdr), whatever package.cpath says.
*/
void lcorio_process_push_bootstrap(lua_State *L) {
  Dl_info info;
  const char *so = "";
  if (dladdr((void *)luaopen_corio, &info) != 0 && info.dli_fname != NULL)
    so = info.dli_fname;
  lua_pushfstring(L,
                  "local c = package.loaded.corio or "
                  "assert(package.loadlib([==[%s]==], 'luaopen_corio'))() "
                  "package.loaded.corio = c corio = c "
                  "debug.getregistry()['%s'](%d)",
                  so, LPROC_WORKER_KEY, LPROC_FD);
}

/*
** {==================================================================
** Blocking I/O on the parent's socket
** ===================================================================
*/

static int read_all(int fd, char *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Read one frame; its payload in *buf (malloc'd, grown as needed).
   Returns 0, or -1 at the end of input or on a broken frame. */
static int read_frame(int fd, char **buf, size_t *cap, char *type,
                      uint32_t *index, size_t *len) {
  char h[LPROC_HEADER];
  if (read_all(fd, h, sizeof h) != 0) return -1;
  *len = lcorio_process_parse_header(h, type, index);
  if (*len == (size_t)-1) return -1;
  if (*len > *cap) {
    char *p = realloc(*buf, *len);
    if (p == NULL) return -1;
    *buf = p;
    *cap = *len;
  }
  return *len == 0 ? 0 : read_all(fd, *buf, *len);
}
/* }================================================================== */

/* Leave now: the parent reads our outcomes, not our exit, and whatever the
   function left behind (tasks, handles) must not keep us alive. */
static void leave(int status) {
  fflush(NULL);
  _exit(status);
}

int lcorio_process_worker(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1), loaded;
  char *buf = NULL, type, h[LPROC_HEADER];
  size_t cap = 0, len;
  uint32_t index;
  const char *failed = NULL;
  /* processes the function starts must not hold our socket open */
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (read_frame(fd, &buf, &cap, &type, &index, &len) != 0 || type != LPROC_FN)
    leave(2);
  lua_settop(L, 1);
  /* the function at 2, or why it did not load (kept there: anchored) */
  loaded = lcorio_copy_load_fn(L, buf, len) == LUA_OK;
  if (!loaded) failed = lua_tostring(L, 2);
  /* the parent's timeouts count from here: starting is not running */
  lcorio_process_header(h, LPROC_READY, 0, 0);
  if (write_all(fd, h, sizeof h) != 0) leave(1);
  while (read_frame(fd, &buf, &cap, &type, &index, &len) == 0) {
    lcopy_out o;
    if (type != LPROC_ITEM) leave(2);
    o = loaded ? lcorio_copy_run(L, 2, buf, len, 1)
               : lcorio_copy_error_outcome(failed ? failed : "cannot load");
    if (o.data != NULL && o.len > LPROC_MAX_FRAME) {
      free(o.data);
      o = lcorio_copy_error_outcome(
          "corio: the result is too large to send back "
          "(over 1 GiB)");
    }
    if (o.data == NULL) leave(3);
    lcorio_process_header(h, LPROC_OUT, index, o.len);
    if (write_all(fd, h, sizeof h) != 0 || write_all(fd, o.data, o.len) != 0)
      leave(1);
    free(o.data);
  }
  free(buf);
  leave(0);
  return 0;
}
