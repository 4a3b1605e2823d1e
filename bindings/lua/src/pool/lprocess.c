/*
** lprocess.c: corio.processes.map(fn, items, {processes=n, timeout=s,
** executable=}) on worker processes, like multiprocessing.Pool.map: the
** Lua API (the workers are driven by lprocess_pool.c; the protocol and the
** worker's side are in lprocess.h and lprocess_worker.c).
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

/* map's options, read from the table at 3 (or none). */
typedef struct popts {
  size_t nprocs;
  const char *exe; /* NULL: this program; else held by the table */
  double timeout;  /* 0: none */
} popts;

/* Read the options into *o.  An unknown key or a bad value raises, naming
   the option, before any wait. */
static void parse_opts(lua_State *L, popts *o) {
  if (lua_isnoneornil(L, 3)) return;
  if (!lua_istable(L, 3))
    luaL_error(L, "corio.processes.map: options must be a table, not a %s",
               luaL_typename(L, 3));
  lua_pushnil(L);
  while (lua_next(L, 3) != 0) {
    const char *k;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L,
                 "corio.processes.map: option names are strings (got a %s "
                 "key)",
                 luaL_typename(L, -2));
    k = lua_tostring(L, -2);
    if (strcmp(k, "processes") == 0) {
      int isint;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (lua_type(L, -1) != LUA_TNUMBER || !isint || v < 1 || v > 1000)
        luaL_error(L,
                   "corio.processes.map: option 'processes' must be an "
                   "integer from 1 to 1000 (got %s)",
                   luaL_tolstring(L, -1, NULL));
      o->nprocs = (size_t)v;
    } else if (strcmp(k, "timeout") == 0) {
      lua_Number v = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER || !(v > 0))
        luaL_error(L,
                   "corio.processes.map: option 'timeout' must be a number "
                   "of seconds > 0 (got %s)",
                   luaL_tolstring(L, -1, NULL));
      o->timeout = (double)v;
    } else if (strcmp(k, "executable") == 0) {
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L,
                   "corio.processes.map: option 'executable' must be a "
                   "string, not a %s",
                   luaL_typename(L, -1));
      o->exe = lua_tostring(L, -1);
    } else {
      luaL_error(L, "corio.processes.map: unknown option '%s'", k);
    }
    lua_pop(L, 1);
  }
}

/* The job's executable: opts.executable, or this program. */
static void set_exe(lua_State *L, pjob *j, const char *exe) {
  char path[4096];
  size_t size = sizeof path;
  if (exe == NULL) {
    if (uv_exepath(path, &size) != 0)
      luaL_error(L, "corio: cannot find this program's path");
    exe = path;
  }
  j->exe = dup_string(L, exe);
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
  popts o = {0, NULL, 0};
  parse_opts(L, &o); /* bad options raise before any wait */
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_map);
    size_t len, i, nprocs;
    lua_Integer n = luaL_len(L, 2);
    lcopy_buf *fnb, *inb, *offb;
    pjob *j;
    phub *h;
    int rc;
    lua_settop(L, 3);
    o.nprocs = uv_available_parallelism();
    parse_opts(L, &o); /* again: the hidden task's own arguments */
    nprocs = o.nprocs;
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
    set_exe(L, j, o.exe);
    j->timeout = o.timeout;
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
