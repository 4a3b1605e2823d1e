/*
** lthread.c: corio.to_thread(fn, ...) and corio.threads.map(fn, items,
** {threads=n}): fn runs on OS threads, each with a Lua state of its own
** (standard libraries and `corio` as globals), while the calling task waits
** and the loop goes on (see lthread.h for the machinery).
**
** fn travels as bytecode: its globals are the worker's, and any other
** upvalue is refused.  Arguments and results are copied (lcopy.h).  Each
** call gets fresh threads and states; a map's worker keeps its state (and
** globals) from one item to the next.
**
** Cancelling the caller cannot interrupt a thread: inputs not started are
** dropped, those running finish, their results are dropped, the threads are
** joined and their states closed.  lua_close of the calling state waits
** for running inputs the same way.
*/
#include <stdint.h>
#include <string.h>

#include "lthread.h"

#define BOX_MT      "corio.ThreadJob"
#define MAX_THREADS 10000

/* The caller's reference to its job: a userdata on the waiting task's
   stack, so the job's memory goes when that stack does. */
static int box_gc(lua_State *L) {
  tjob **box = lua_touserdata(L, 1);
  if (*box != NULL) lthread_job_unref(*box);
  *box = NULL;
  return 0;
}

static tjob *push_job(lua_State *L, size_t nitems) {
  tjob **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, BOX_MT);
  if ((*box = lthread_job_new(nitems)) == NULL)
    luaL_error(L, "not enough memory");
  return *box;
}

/*
** Start the job (its box at the top of the stack) and make the running task
** wait for it.  The function's bytes are in fnb, the inputs' in inb, their
** offsets in offb.
*/
static int run_job(lua_State *L, ltask *lt, tjob *j, lcopy_buf *fnb,
                   lcopy_buf *inb, lcopy_buf *offb, size_t nthreads,
                   lua_KFunction k) {
  size_t len;
  int rc;
  j->fn = lcopy_take(fnb, &j->fn_len);
  j->in = lcopy_take(inb, &len);
  j->in_off = (size_t *)(void *)lcopy_take(offb, &len);
  rc = lthread_job_start(lthread_hub(L), j, nthreads);
  if (rc < 0)
    return luaL_error(L, "corio: cannot start a thread: %s", uv_strerror(rc));
  /* the wait's reference, taken before suspend may call the cancel */
  j->refs++;
  j->task = lcorio_core(lt);
  rc = corio_task_suspend(j->task, lthread_job_cancel, j);
  if (rc < 0) {
    lthread_job_cancel(j->task, j);
    lcorio_check(L, rc, "threads");
  }
  return lcorio_yield(L, lua_gettop(L), k);
}

static void add_offset(lua_State *L, lcopy_buf *offb, size_t off) {
  lcopy_addbytes(L, offb, &off, sizeof off);
}

/* {{{ to_thread */
static int to_thread_k(lua_State *L, int status, lua_KContext ctx) {
  tjob *j;
  (void)status;
  if (lcorio_wait_status(L) == CORIO_ECANCELED) return lcorio_cancelled(L);
  j = *(tjob **)lua_touserdata(L, (int)ctx);
  return lcopy_push_outcome(L, &j->outs[0]);
}

static int l_to_thread(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_to_thread);
    int n = lua_gettop(L);
    lcopy_buf *fnb = lcopy_newbuf(L), *inb = lcopy_newbuf(L),
              *offb = lcopy_newbuf(L);
    lcopy_dump_fn(L, 1, fnb, "a thread");
    lcopy_encode_tuple(L, inb, 2, n - 1, "args[%I]");
    add_offset(L, offb, 0);
    add_offset(L, offb, inb->len);
    return run_job(L, lt, push_job(L, 1), fnb, inb, offb, 1, to_thread_k);
  }
}
/* }}} */

/* {{{ threads.map */
static int map_k(lua_State *L, int status, lua_KContext ctx) {
  tjob *j;
  (void)status;
  if (lcorio_wait_status(L) == CORIO_ECANCELED) return lcorio_cancelled(L);
  j = *(tjob **)lua_touserdata(L, (int)ctx);
  return lcopy_push_map(L, j->outs, j->nitems, "corio.threads.map");
}

/* min(32, cpus + 4), as Python's ThreadPoolExecutor */
static size_t default_threads(void) {
  size_t n = (size_t)uv_available_parallelism() + 4;
  return n < 32 ? n : 32;
}

/*
** map's options, the table at 3 (or none): {threads=n}.  An unknown key or
** a bad value raises, naming the option, before any wait.  There is no
** timeout: a thread cannot be killed, so an item past it would run on,
** and be joined, anyway; processes.map kills its workers and has one.
*/
static size_t opt_threads(lua_State *L, size_t dflt) {
  size_t n = dflt;
  if (lua_isnoneornil(L, 3)) return dflt;
  if (!lua_istable(L, 3))
    luaL_error(L, "corio.threads.map: options must be a table, not a %s",
               luaL_typename(L, 3));
  lua_pushnil(L);
  while (lua_next(L, 3) != 0) {
    const char *k;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L,
                 "corio.threads.map: option names are strings (got a %s "
                 "key)",
                 luaL_typename(L, -2));
    k = lua_tostring(L, -2);
    if (strcmp(k, "threads") == 0) {
      int isint;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (lua_type(L, -1) != LUA_TNUMBER || !isint || v < 1 || v > MAX_THREADS)
        luaL_error(L,
                   "corio.threads.map: option 'threads' must be an integer "
                   "from 1 to %d (got %s)",
                   MAX_THREADS, luaL_tolstring(L, -1, NULL));
      n = (size_t)v;
    } else if (strcmp(k, "timeout") == 0) {
      luaL_error(L, "corio.threads.map: option 'timeout' is only supported "
                    "by corio.processes.map (a thread cannot be killed)");
    } else {
      luaL_error(L, "corio.threads.map: unknown option '%s'", k);
    }
    lua_pop(L, 1);
  }
  return n;
}

static int l_map(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TTABLE);
  opt_threads(L, 1); /* bad options raise before any wait */
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_map);
    size_t nthreads = opt_threads(L, default_threads());
    lua_Integer n = luaL_len(L, 2);
    lcopy_buf *fnb, *inb, *offb;
    lua_settop(L, 3);
    if (n <= 0) {
      lua_createtable(L, 0, 1);
      lua_pushinteger(L, 0);
      lua_setfield(L, -2, "n");
      return 1;
    }
    fnb = lcopy_newbuf(L);
    inb = lcopy_newbuf(L);
    offb = lcopy_newbuf(L);
    lcopy_dump_fn(L, 1, fnb, "a thread");
    lcopy_encode_items(L, 2, n, inb, offb, (size_t)-1);
    if (nthreads > (size_t)n) nthreads = (size_t)n;
    return run_job(L, lt, push_job(L, (size_t)n), fnb, inb, offb, nthreads,
                   map_k);
  }
}
/* }}} */

static const luaL_Reg funcs[] = {{"to_thread", l_to_thread}, {NULL, NULL}};
static const luaL_Reg thread_funcs[] = {{"map", l_map}, {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_thread_open(lua_State *L) {
  lcorio_setfuncs(L, funcs);
  lua_newtable(L); /* corio.threads */
  lua_pushvalue(L, -2);
  lcorio_setfuncs(L, thread_funcs);
  lua_pop(L, 1);
  lua_setfield(L, -3, "threads");
  if (luaL_newmetatable(L, BOX_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
