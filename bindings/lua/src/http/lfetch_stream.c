/*
** lfetch_stream.c: fetch's options `output` (the body goes to a file as
** it arrives) and `stream` (the fetch returns at the head; r:chunks()
** iterates over the body as it arrives), on the runtime's streamed
** transfers (corio_request.on_head/on_data): the runtime holds a bounded
** buffer and pauses libcurl past it, so a slow reader costs no memory.
**
** One lstream per transfer, a full userdata whose user value is the
** output (the file name, or the Lua file, kept open) and, once the
** transfer failed, its error (kept for the iterator).  It is the
** transfer's `ud`.  It stays reachable while it matters: on the fetching
** task's stack until the fetch returns, then from the response (its
** stream user value).  A response nobody holds any more is collected with
** its lstream, whose finalizer clears the transfer's `ud` and cancels it:
** a forgotten stream does not hold its connection until the timeout.
**
** `waiter` is the coroutine of the one task waiting on the lstream: for
** the head (stream), for the end (output), or for a chunk (the
** iterator).  on_data hands a chunk only to a waiting iterator; with
** none, it answers CORIO_FETCH_PAUSE and the bytes stay in the runtime
** until the next call of the iterator resumes the transfer.
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lcorio.h"

#define LCORIO_STREAM_MT "corio.Stream"

enum { W_NONE, W_HEAD, W_DONE, W_CHUNK };

/* user value of an lstream: the output */
enum { LS_OUTPUT = 1, LS_NUSER = LS_OUTPUT };

typedef struct lstream {
  lcorio_state *S;
  corio_fetch *f;     /* NULL once completed, or given up */
  lua_State *waiter;  /* the coroutine of the task waiting, or NULL */
  int wait;           /* W_*: what it waits for */
  int output;         /* output option: the body goes to fp */
  int own;            /* fp was opened here from a file name */
  int done, closed;   /* completed; closed by r:close() or a loop's end */
  int status;         /* the completion's */
  int werr;           /* errno of a failed write, 0 */
  FILE *fp;           /* output: the file written */
  luaL_Stream *lfile; /* output to an open Lua file: it */
  const char *path;   /* output to a file name: it (user value LS_OUTPUT) */
  size_t bytes;       /* handed out: written, or given to the iterator */
  int attempts;       /* of a failed transfer */
  char error[512];    /* its message, for the iterator's error */
} lstream;

static ltask *task_of(lua_State *co) {
  return *(ltask **)lua_getextraspace(co);
}

/* Wake the waiting task (its value was moved onto its stack). */
static void wake(lstream *ls) {
  lua_State *co = ls->waiter;
  ls->waiter = NULL;
  ls->wait = W_NONE;
  corio_task_wake(lcorio_core(task_of(co)), 0);
}

/* The same with `false` when even building the value failed (out of
   memory): the continuations raise Lua's memory error then. */
static void wake_nomem(lstream *ls) {
  lua_State *co = ls->waiter;
  ls->waiter = NULL;
  ls->wait = W_NONE;
  lua_pushboolean(co, 0);
  corio_task_wake(lcorio_core(task_of(co)), 0);
}

/*
** {==================================================================
** The output: a file
** ===================================================================
*/

static int out_data(corio_fetch *f, const char *p, size_t n, void *ud) {
  lstream *ls = ud;
  (void)f;
  if (ls == NULL) return 0; /* given up: dropped */
  if (ls->lfile != NULL && ls->lfile->closef == NULL) {
    ls->werr = EBADF; /* closed by someone meanwhile */
    return CORIO_EIO;
  }
  if (fwrite(p, 1, n, ls->fp) != n) {
    ls->werr = errno != 0 ? errno : EIO;
    return CORIO_EIO;
  }
  ls->bytes += n;
  return 0;
}

/*
** The transfer ended with *status: a file opened here is closed (a
** failed close fails the transfer), a Lua file flushed and left open.  A
** failed transfer removes the file it opened, when that is a regular file
** (not /dev/null or a FIFO): a file at the path means a whole body.
*/
static void out_finish(lstream *ls, int *status) {
  struct stat st;
  int regular;
  if (ls->fp == NULL) return;
  if (!ls->own) {
    if (ls->lfile->closef != NULL && fflush(ls->fp) != 0 && *status == 0) {
      ls->werr = errno;
      *status = CORIO_EIO;
    }
    ls->fp = NULL;
    return;
  }
  regular = fstat(fileno(ls->fp), &st) == 0 && S_ISREG(st.st_mode);
  if (fclose(ls->fp) != 0 && *status == 0) {
    ls->werr = errno;
    *status = CORIO_EIO;
  }
  ls->fp = NULL;
  if (*status != 0 && regular) (void)remove(ls->path);
}

/* Open the output file of the lstream at the top; raise naming it. */
static void out_open(lua_State *L, lstream *ls, int output, const char *url) {
  if (lua_type(L, output) == LUA_TSTRING) {
    ls->path = lua_tostring(L, output);
    ls->fp = fopen(ls->path, "wb");
    if (ls->fp == NULL) {
      lua_pushfstring(L, "cannot open '%s' for writing: %s", ls->path,
                      strerror(errno));
      lcorio_push_fetch_error(L, CORIO_EIO, lua_tostring(L, -1), url);
      lua_error(L);
    }
    ls->own = 1;
  } else {
    ls->lfile = luaL_checkudata(L, output, LUA_FILEHANDLE);
    if (ls->lfile->closef == NULL) {
      lcorio_push_fetch_error(L, CORIO_EIO, "the output file is closed", url);
      lua_error(L);
    }
    ls->fp = ls->lfile->f;
  }
}

/* out_open in protected mode: [ls, output, url] */
static int protected_open(lua_State *L) {
  out_open(L, lua_touserdata(L, 1), 2, lua_tostring(L, 3));
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** The transfer's callbacks (on the loop, outside libcurl)
** ===================================================================
*/

typedef struct pushed {
  lstream *ls;
  const corio_response *res;
  int status;
  const char *data;
  size_t len;
} pushed;

/* The head: a response without a body, holding the lstream (the value
   under the url and session on the waiting task's stack). */
static int push_head(lua_State *L) {
  pushed *d = lua_touserdata(L, 1);
  lua_State *co = d->ls->waiter;
  lua_pushnil(L); /* body */
  lcorio_push_response(L, d->res, co, 1);
  lua_pushvalue(co, 3);
  lua_xmove(co, L, 1);
  lcorio_response_set_stream(L, -2);
  lua_xmove(L, co, 1);
  return 0;
}

static void st_head(corio_fetch *f, const corio_response *res, void *ud) {
  lstream *ls = ud;
  pushed d;
  (void)f;
  if (ls == NULL || ls->wait != W_HEAD || ls->S->closing) return;
  d.ls = ls;
  d.res = res;
  if (lcorio_protect(ls->S->L, push_head, &d) != LUA_OK) {
    wake_nomem(ls);
    return;
  }
  wake(ls);
}

static int push_chunk(lua_State *L) {
  pushed *d = lua_touserdata(L, 1);
  lua_pushlstring(L, d->data, d->len);
  lua_xmove(L, d->ls->waiter, 1);
  return 0;
}

static int st_data(corio_fetch *f, const char *p, size_t n, void *ud) {
  lstream *ls = ud;
  pushed d;
  (void)f;
  if (ls == NULL || ls->S->closing) return 0;        /* given up: dropped */
  if (ls->wait != W_CHUNK) return CORIO_FETCH_PAUSE; /* nobody reads now */
  d.ls = ls;
  d.data = p;
  d.len = n;
  if (lcorio_protect(ls->S->L, push_chunk, &d) != LUA_OK) {
    wake_nomem(ls);
    return CORIO_FETCH_PAUSE;
  }
  ls->bytes += n;
  wake(ls);
  return 0;
}

/* The FetchError of the failed transfer (its url: `url`). */
static void push_failure(lua_State *L, const lstream *ls, const char *url) {
  corio_response res;
  memset(&res, 0, sizeof res);
  res.error = ls->error;
  res.attempts = ls->attempts;
  lcorio_push_fetch_failure(L, ls->status, &res, url);
}

/*
** What the waiting task gets at the end: for the fetch of an output, the
** response or the error; for a stream that failed before its head, the
** error; for an iterator, nil (its continuation finds the error).
*/
static int push_done(lua_State *L) {
  pushed *d = lua_touserdata(L, 1);
  lstream *ls = d->ls;
  lua_State *co = ls->waiter;
  if (ls->wait == W_CHUNK) {
    lua_pushnil(L);
  } else if (ls->status != 0) {
    push_failure(L, ls, *d->res->url ? d->res->url : lua_tostring(co, 1));
  } else {
    lua_pushnil(L); /* body */
    lcorio_push_response(L, d->res, co, 1);
  }
  lua_xmove(L, co, 1);
  return 0;
}

/* The message of a failed transfer, kept: a write names the file. */
static void keep_failure(lstream *ls, const corio_response *res) {
  const char *why = strerror(ls->werr ? ls->werr : EIO);
  ls->attempts = res->attempts;
  if (ls->status == CORIO_EIO && ls->werr != 0 && ls->path != NULL)
    snprintf(ls->error, sizeof ls->error, "cannot write to '%s': %s", ls->path,
             why);
  else if (ls->status == CORIO_EIO && ls->werr != 0)
    snprintf(ls->error, sizeof ls->error, "cannot write to the output file: %s",
             why);
  else
    snprintf(ls->error, sizeof ls->error, "%s",
             res->error != NULL ? res->error : corio_strerror(ls->status));
}

static void st_done(corio_fetch *f, int status, const corio_response *res,
                    void *ud) {
  lstream *ls = ud;
  pushed d;
  (void)f;
  if (ls == NULL) return;
  ls->f = NULL;
  ls->done = 1;
  if (ls->output) out_finish(ls, &status);
  /* a stream closed by its reader ends without an error */
  ls->status = ls->closed && status == CORIO_ECANCELED ? 0 : status;
  if (ls->status != 0) keep_failure(ls, res);
  if (ls->S->closing || ls->waiter == NULL) return; /* lua_close: no Lua */
  d.ls = ls;
  d.res = res;
  if (lcorio_protect(ls->S->L, push_done, &d) != LUA_OK) {
    wake_nomem(ls);
    return;
  }
  wake(ls);
}

/* The task waiting on the lstream is cancelled: the transfer goes too. */
static void on_cancel_wait(corio_task *t, void *op) {
  lstream *ls = op;
  (void)t;
  ls->waiter = NULL;
  ls->wait = W_NONE;
  if (ls->f != NULL) (void)corio_fetch_cancel(ls->f);
}

/*
** The finalizer: a stream nobody holds any more.  The transfer forgets
** the lstream (its late callbacks find no `ud`) and is cancelled; a file
** opened here is closed and removed (the body is not whole).
*/
static int ls_gc(lua_State *L) {
  lstream *ls = luaL_checkudata(L, 1, LCORIO_STREAM_MT);
  if (!lcorio_collecting(L)) return 0;
  if (ls->f != NULL) {
    int status = CORIO_ECANCELED;
    corio_fetch_set_data(ls->f, NULL);
    (void)corio_fetch_cancel(ls->f);
    ls->f = NULL;
    if (ls->output) out_finish(ls, &status);
  }
  return 0;
}

/* }================================================================== */

/*
** {==================================================================
** Starting: the fetch waits for the head (stream) or the end (output)
** ===================================================================
*/

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  (void)status;
  if (lcorio_wait_status(L) == CORIO_ECANCELED) return lcorio_cancelled(L);
  if (lua_type(L, -1) == LUA_TBOOLEAN) /* out of memory */
    return luaL_error(L, "not enough memory");
  if (lua_type(L, -1) != LUA_TUSERDATA) return lua_error(L); /* FetchError */
  return 1;
}

int lcorio_fetch_stream(lua_State *L, ltask *lt, lcorio_req *r,
                        const char *fn) {
  lcorio_state *S = lcorio_upstate(L);
  lstream *ls;
  int rc, idx;
  ls = lua_newuserdatauv(L, sizeof *ls, LS_NUSER);
  memset(ls, 0, sizeof *ls);
  ls->S = S;
  ls->output = r->output != 0;
  luaL_setmetatable(L, LCORIO_STREAM_MT);
  idx = lua_gettop(L);
  if (ls->output) {
    lua_pushvalue(L, r->output); /* anchors the name or the file */
    lua_setiuservalue(L, idx, LS_OUTPUT);
  }
  r->req.on_head = ls->output ? NULL : st_head;
  r->req.on_data = ls->output ? out_data : st_data;
  rc = corio_fetch_start(S->rt, r->session != NULL ? r->session->s : NULL,
                         &r->req, st_done, ls, &ls->f);
  if (rc < 0) return lcorio_request_refused(L, rc, r->req.url, fn);
  if (ls->output) { /* now: a refused request truncates no file */
    int top = lua_gettop(L);
    lua_pushcfunction(L, protected_open);
    lua_pushlightuserdata(L, ls);
    lua_pushvalue(L, r->output);
    lua_pushvalue(L, 1);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
      corio_fetch_set_data(ls->f, NULL);
      (void)corio_fetch_cancel(ls->f);
      ls->f = NULL;
      return lua_error(L);
    }
    lua_settop(L, top);
  }
  rc = corio_task_suspend(lcorio_core(lt), on_cancel_wait, ls);
  if (rc < 0) {
    on_cancel_wait(lcorio_core(lt), ls);
    return lcorio_check(L, rc, fn);
  }
  ls->waiter = L;
  ls->wait = ls->output ? W_DONE : W_HEAD;
  /* [url, session or nil, lstream] while it waits */
  if (r->session_idx != 0)
    lua_pushvalue(L, r->session_idx);
  else
    lua_pushnil(L);
  lua_replace(L, 2);
  lua_pushvalue(L, idx);
  lua_replace(L, 3);
  lua_settop(L, 3);
  lcorio_wait_mark(lt, LCORIO_W_STREAM, 0);
  return lcorio_yield(L, 0, wait_k);
}

/* }================================================================== */

/*
** {==================================================================
** Reading: the iterator, close, the rest as a string
** ===================================================================
*/

/* The lstream of the streamed response at idx, or NULL. */
static lstream *stream_of(lua_State *L, int idx) {
  lstream *ls;
  lcorio_response_push_stream(L, idx);
  ls = luaL_testudata(L, -1, LCORIO_STREAM_MT);
  lua_pop(L, 1);
  return ls;
}

/* The end: raise the error the transfer failed with, or push nil. */
static int chunk_end(lua_State *L, lstream *ls) {
  if (ls->done && ls->status != 0) {
    lua_getfield(L, 1, "url");
    push_failure(L, ls, lua_tostring(L, -1));
    return lua_error(L);
  }
  lua_pushnil(L);
  return 1;
}

static int next_k(lua_State *L, int status, lua_KContext ctx) {
  lstream *ls = stream_of(L, 1);
  (void)status;
  (void)ctx;
  if (lcorio_wait_status(L) == CORIO_ECANCELED) return lcorio_cancelled(L);
  if (lua_type(L, -1) == LUA_TSTRING) return 1;
  if (lua_type(L, -1) == LUA_TBOOLEAN)
    return luaL_error(L, "not enough memory");
  return chunk_end(L, ls);
}

/* iterator(r): the next chunk, nil at the end; raises the transfer's
   error (once the bytes before it were read) */
static int l_next(lua_State *L) {
  lstream *ls;
  int rc;
  LCORIO_WAIT_PROLOGUE(L, lt, l_next);
  lua_settop(L, 1);
  ls = stream_of(L, 1);
  if (ls == NULL) return luaL_error(L, "response:chunks(): not a stream");
  if (ls->closed || ls->f == NULL) return chunk_end(L, ls);
  if (ls->waiter != NULL)
    return luaL_error(L, "response:chunks(): another task is reading it");
  rc = corio_task_suspend(lcorio_core(lt), on_cancel_wait, ls);
  if (rc < 0) return lcorio_check(L, rc, "response:chunks()");
  ls->waiter = L;
  ls->wait = W_CHUNK;
  (void)corio_fetch_resume(ls->f); /* its bytes come at the next turn */
  lcorio_wait_mark(lt, LCORIO_W_STREAM, 0);
  return lcorio_yield(L, 0, next_k);
}

/*
** r:chunks() -> iterator, r, nil, r: the fourth value is to-be-closed in
** a generic for, so leaving the loop early (break, error) closes the
** response, which aborts the transfer.
*/
int lcorio_stream_chunks(lua_State *L) {
  lstream *ls = stream_of(L, 1);
  if (ls == NULL)
    return luaL_error(L, "response:chunks(): the response was not fetched "
                         "with stream = true (its body is r.body)");
  lua_pushcfunction(L, l_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  lua_pushvalue(L, 1);
  return 4;
}

/* r:close(): stop a streamed transfer still running (a no-op otherwise). */
int lcorio_stream_close(lua_State *L) {
  lstream *ls = stream_of(L, 1);
  if (ls == NULL || ls->closed) return 0;
  ls->closed = 1;
  if (ls->f != NULL) (void)corio_fetch_cancel(ls->f);
  return 0;
}

/* Body bytes of the streamed response at idx read so far; -1: not one. */
lua_Integer lcorio_stream_bytes(lua_State *L, int idx) {
  lstream *ls = stream_of(L, idx);
  return ls != NULL ? (lua_Integer)ls->bytes : -1;
}

/*
** r:text() of a stream: the rest of the body, read with the iterator,
** then kept as r.body.  Stack: r, the chunks so far (a table), then the
** iterator's last result.
*/
static int text_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  for (;;) {
    if (lua_gettop(L) == 3) {
      if (lua_isnil(L, 3)) break;
      lua_rawseti(L, 2, (lua_Integer)lua_rawlen(L, 2) + 1);
    }
    lua_pushcfunction(L, l_next);
    lua_pushvalue(L, 1);
    lua_callk(L, 1, 1, 0, text_k);
  }
  lua_pop(L, 1);
  {
    luaL_Buffer b;
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, 2);
    luaL_buffinit(L, &b);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, 2, i);
      luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
  }
  lcorio_response_set_body(L, 1);
  return 1;
}

int lcorio_stream_text(lua_State *L) {
  lua_settop(L, 1);
  lua_newtable(L);
  return text_k(L, LUA_OK, 0);
}

void lcorio_stream_open(lua_State *L) {
  if (luaL_newmetatable(L, LCORIO_STREAM_MT)) {
    lua_pushcfunction(L, ls_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}

/* }================================================================== */
