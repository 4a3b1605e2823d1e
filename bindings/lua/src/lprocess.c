/*
** lprocess.c: corio.processes.map(fn, items, {processes=n, executable=})
** on worker processes, like multiprocessing.Pool.map: the Lua API (the
** workers are driven by lprocess_pool.c; the protocol and the worker's
** side are in lprocess.h and lprocess_worker.c).
**
** map runs every item, then returns the array of first results in input
** order, or raises a WorkerError for the first item that failed.
*/
#include <stdlib.h>
#include <string.h>

#include "lprocess.h"

#define BOX_MT  "corio.ProcessJob"
#define HUB_KEY "corio.ProcessHub"

/* {{{ the Lua side */
static int box_gc(lua_State *L) {
  pjob **box = lua_touserdata(L, 1);
  if (*box != NULL) lprocess_job_unref(*box);
  *box = NULL;
  return 0;
}

/* lua_close: kill every worker.  Jobs stay until their handles close. */
static int hub_gc(lua_State *L) {
  phub *h = lua_touserdata(L, 1);
  pjob *j;
  while ((j = h->live) != NULL) {
    h->live = j->live_next;
    j->hub = NULL;
    lprocess_stop_all(j);
  }
  return 0;
}

static phub *get_hub(lua_State *L) {
  phub *h;
  if (lua_getfield(L, LUA_REGISTRYINDEX, HUB_KEY) == LUA_TUSERDATA) {
    h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return h;
  }
  lua_pop(L, 1);
  h = lua_newuserdatauv(L, sizeof *h, 0);
  h->live = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, hub_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, HUB_KEY);
  return h;
}

static char *dup_string(lua_State *L, const char *s) {
  char *p = malloc(strlen(s) + 1);
  if (p == NULL) luaL_error(L, "not enough memory");
  return strcpy(p, s);
}

static int map_k(lua_State *L, int status, lua_KContext ctx) {
  pjob *j;
  (void)status;
  if (lcorio_wait_status(L) == CORIO_ECANCELED) return lcorio_cancelled(L);
  j = *(pjob **)lua_touserdata(L, (int)ctx);
  return lcopy_push_map(L, j->outs, j->nitems, "corio.processes.map");
}

static size_t opt_processes(lua_State *L, size_t dflt) {
  lua_Integer n;
  if (lua_isnoneornil(L, 3)) return dflt;
  luaL_checktype(L, 3, LUA_TTABLE);
  if (lua_getfield(L, 3, "processes") == LUA_TNIL) {
    lua_pop(L, 1);
    return dflt;
  }
  n = lua_tointeger(L, -1);
  if (!lua_isinteger(L, -1) || n < 1 || n > 1000)
    luaL_error(L, "corio: processes must be an integer from 1 to 1000");
  lua_pop(L, 1);
  return (size_t)n;
}

/* The job's executable: opts.executable, or this program. */
static void set_exe(lua_State *L, pjob *j) {
  char path[4096];
  size_t size = sizeof path;
  if (!lua_isnoneornil(L, 3) && lua_getfield(L, 3, "executable") != LUA_TNIL) {
    j->exe = dup_string(L, luaL_checkstring(L, -1));
    lua_pop(L, 1);
    return;
  }
  if (!lua_isnoneornil(L, 3)) lua_pop(L, 1);
  if (uv_exepath(path, &size) != 0)
    luaL_error(L, "corio: cannot find this program's path");
  j->exe = dup_string(L, path);
}

static pjob *push_job(lua_State *L, size_t nitems) {
  pjob **box = lua_newuserdatauv(L, sizeof *box, 0);
  pjob *j;
  *box = NULL;
  luaL_setmetatable(L, BOX_MT);
  j = *box = calloc(1, sizeof *j);
  if (j == NULL) luaL_error(L, "not enough memory");
  j->refs = 1;
  j->nitems = nitems;
  j->outs = calloc(nitems, sizeof *j->outs);
  if (j->outs == NULL) luaL_error(L, "not enough memory");
  return j;
}

static int l_map(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TTABLE);
  opt_processes(L, 1); /* bad options raise before any wait */
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_map);
    size_t len, i, nprocs = opt_processes(L, uv_available_parallelism());
    lua_Integer n = luaL_len(L, 2);
    lcopy_buf *fnb, *inb, *offb;
    pjob *j;
    phub *h;
    int rc;
    lua_settop(L, 3);
    if (n <= 0 || n >= (lua_Integer)UINT32_MAX) {
      luaL_argcheck(L, n <= 0, 2, "too many items");
      lua_createtable(L, 0, 1);
      lua_pushinteger(L, 0);
      lua_setfield(L, -2, "n");
      return 1;
    }
    fnb = lcopy_newbuf(L);
    inb = lcopy_newbuf(L);
    offb = lcopy_newbuf(L);
    lcopy_dump_fn(L, 1, fnb, "a process");
    if (fnb->len > LPROC_MAX_FRAME)
      luaL_error(L, "corio: the function is too large to send");
    lcopy_encode_items(L, 2, n, inb, offb, LPROC_MAX_FRAME);
    h = get_hub(L);
    j = push_job(L, (size_t)n);
    set_exe(L, j);
    lprocess_push_bootstrap(L);
    j->bootstrap = dup_string(L, lua_tostring(L, -1));
    lua_pop(L, 1);
    j->loop = corio_rt_loop(lcorio_upstate(L)->rt);
    j->fn = lcopy_take(fnb, &j->fn_len);
    j->in = lcopy_take(inb, &len);
    j->in_off = (size_t *)(void *)lcopy_take(offb, &len);
    if (nprocs > (size_t)n) nprocs = (size_t)n;
    for (i = 0; i < nprocs; i++) lprocess_spawn_worker(j);
    if (j->nprocs == 0) {
      lprocess_stop_all(j);
      return luaL_error(L, "corio: cannot start a worker process (%s): %s",
                        j->exe, uv_strerror(j->spawn_err));
    }
    j->hub = h;
    j->live_next = h->live;
    if (h->live != NULL) h->live->live_prev = j;
    h->live = j;
    /* the wait's reference, taken before suspend may call the cancel */
    j->refs++;
    j->task = lcorio_core(lt);
    rc = corio_task_suspend(j->task, lprocess_job_cancel, j);
    if (rc < 0) {
      lprocess_job_cancel(j->task, j);
      lcorio_check(L, rc, "processes.map");
    }
    return lcorio_yield(L, lua_gettop(L), map_k);
  }
}
/* }}} */

static const luaL_Reg funcs[] = {
    {"map", l_map}, {"_worker", lprocess_worker}, {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_process_open(lua_State *L) {
  lua_newtable(L); /* corio.processes */
  lua_pushvalue(L, -2);
  lcorio_setfuncs(L, funcs);
  lua_pop(L, 1);
  lua_setfield(L, -3, "processes");
  if (luaL_newmetatable(L, BOX_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
