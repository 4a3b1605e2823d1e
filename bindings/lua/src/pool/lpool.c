/*
** lpool.c: a pool job's life on the caller's side, shared by threads and
** processes (see lpool.h): the job and its box, the state's hubs, copying
** the function and inputs in, waiting, and turning the outcomes back into
** results or a WorkerError.
*/
#include <stdint.h>
#include <stdlib.h>

#include "lpool.h"

/*
** {==================================================================
** Jobs
** ===================================================================
*/

void lcorio_pool_unref(lcorio_pool_job *j) {
  size_t i;
  if (--j->refs > 0) return;
  lcorio_pool_unlink(j);
  if (j->ops->free != NULL) j->ops->free(j);
  if (j->outs != NULL)
    for (i = 0; i < j->nitems; i++) free(j->outs[i].data);
  free(j->outs);
  free(j->spans);
  free(j->fn);
  free(j->in);
  free(j->in_off);
  free(j);
}

int lcorio_pool_take(lcorio_pool_job *j, size_t *i) {
  if (j->stopping || j->next >= j->nitems) return 0;
  *i = j->next++;
  if (j->spans != NULL) j->spans[*i].start = uv_hrtime();
  return 1;
}

void lcorio_pool_done(lcorio_pool_job *j, size_t i, lcopy_out o) {
  if (j->spans != NULL) j->spans[i].end = uv_hrtime();
  j->outs[i] = o;
  j->ndone++;
}

void lcorio_pool_wake(lcorio_pool_job *j) {
  if (j->task == NULL) return;
  corio_task_wake(j->task, 0);
  j->task = NULL;
  lcorio_pool_unref(j); /* the wait's */
}

/* The corio_cancel_fn of a task waiting on a job: no more inputs are
   handed out; what runs is stopped or dropped, as the kind can. */
static void job_cancel(corio_task *task, void *job) {
  lcorio_pool_job *j = job;
  (void)task;
  j->task = NULL;
  j->ops->stop(j);
  lcorio_pool_unref(j); /* the wait's */
}

/* The caller's reference to its job: a userdata on the waiting task's
   stack, so the job's memory goes when that stack does. */
static int box_gc(lua_State *L) {
  lcorio_pool_job **box = lua_touserdata(L, 1);
  if (*box != NULL) lcorio_pool_unref(*box);
  *box = NULL;
  return 0;
}

static lcorio_pool_job *push_job(lua_State *L, const lcorio_pool_ops *ops,
                                 size_t nitems) {
  lcorio_pool_job **box = lua_newuserdatauv(L, sizeof *box, 0), *j;
  *box = NULL;
  luaL_setmetatable(L, LCORIO_POOL_JOB_MT);
  if ((j = *box = calloc(1, ops->size)) == NULL)
    luaL_error(L, "not enough memory");
  j->ops = ops;
  j->refs = 1;
  j->nitems = nitems;
  if ((j->outs = calloc(nitems ? nitems : 1, sizeof *j->outs)) == NULL)
    luaL_error(L, "not enough memory");
  if (lcorio_getstate(L)->trace != NULL) /* out of memory: not traced */
    j->spans = calloc(nitems ? nitems : 1, sizeof *j->spans);
  return j;
}

/* Push the job's box and give it the buffers' bytes. */
static lcorio_pool_job *make_job(lua_State *L, const lcorio_pool_ops *ops,
                                 size_t nitems, lcopy_buf *fnb, lcopy_buf *inb,
                                 lcopy_buf *offb) {
  lcorio_pool_job *j = push_job(L, ops, nitems);
  size_t len;
  j->fn = lcorio_copy_take(fnb, &j->fn_len);
  j->in = lcorio_copy_take(inb, &len);
  j->in_off = (size_t *)(void *)lcorio_copy_take(offb, &len);
  return j;
}

static lcorio_pool_hub *get_hub(lua_State *L, const lcorio_pool_ops *ops);

static void dump_fn(lua_State *L, const lcorio_pool_ops *ops, lcopy_buf *b) {
  lcorio_copy_dump_fn(L, 1, b, ops->to);
  if (b->len > ops->max_len)
    luaL_error(L, "corio: the function is too large to send");
}

lcorio_pool_job *lcorio_pool_map_job(lua_State *L, const lcorio_pool_ops *ops) {
  lua_Integer n = luaL_len(L, 2);
  lcopy_buf *fnb, *inb, *offb;
  lua_settop(L, 3);
  if (n <= 0) {
    lua_createtable(L, 0, 1);
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "n");
    return NULL;
  }
  luaL_argcheck(L, (lua_Unsigned)n <= ops->max_items, 2, "too many items");
  get_hub(L, ops); /* raises when closing, before making a finalizer */
  fnb = lcorio_copy_newbuf(L);
  inb = lcorio_copy_newbuf(L);
  offb = lcorio_copy_newbuf(L);
  dump_fn(L, ops, fnb);
  lcorio_copy_encode_items(L, 2, n, inb, offb, ops->max_len);
  return make_job(L, ops, (size_t)n, fnb, inb, offb);
}

static void add_offset(lua_State *L, lcopy_buf *offb, size_t off) {
  lcorio_copy_addbytes(L, offb, &off, sizeof off);
}

lcorio_pool_job *lcorio_pool_call_job(lua_State *L,
                                      const lcorio_pool_ops *ops) {
  int n = lua_gettop(L);
  lcopy_buf *fnb, *inb, *offb;
  lcorio_pool_job *j;
  get_hub(L, ops); /* raises when closing, before making a finalizer */
  fnb = lcorio_copy_newbuf(L);
  inb = lcorio_copy_newbuf(L);
  offb = lcorio_copy_newbuf(L);
  dump_fn(L, ops, fnb);
  lcorio_copy_encode_tuple(L, inb, 2, n - 1, "args[%I]");
  add_offset(L, offb, 0);
  add_offset(L, offb, inb->len);
  j = make_job(L, ops, 1, fnb, inb, offb);
  j->single = 1;
  return j;
}
/* }================================================================== */

/*
** {==================================================================
** Hubs
** ===================================================================
*/

static void link_job(lcorio_pool_hub *h, lcorio_pool_job *j) {
  j->hub = h;
  j->live_prev = NULL;
  j->live_next = h->live;
  if (h->live != NULL)
    h->live->live_prev = j;
  else if (h->keep != NULL)
    uv_ref(h->keep);
  h->live = j;
}

void lcorio_pool_unlink(lcorio_pool_job *j) {
  lcorio_pool_hub *h = j->hub;
  if (h == NULL) return;
  if (j->live_prev != NULL)
    j->live_prev->live_next = j->live_next;
  else
    h->live = j->live_next;
  if (j->live_next != NULL) j->live_next->live_prev = j->live_prev;
  j->live_prev = j->live_next = NULL;
  j->hub = NULL;
  /* no job running: the loop may end (a ref'd handle never lets it) */
  if (h->live == NULL && h->keep != NULL) uv_unref(h->keep);
}

/*
** The state is closing (lua_close) or collected: every job stops taking
** inputs first (threads, which cannot be interrupted, are joined by
** detach, and would run on meanwhile), then each leaves the hub.  A job
** whose task still waits stays alive: the task's shutdown cancels it.
*/
static int hub_gc(lua_State *L) {
  lcorio_pool_hub **box = lua_touserdata(L, 1), *h = *box;
  lcorio_pool_job *j;
  if (h == NULL) return 0;
  *box = NULL;
  for (j = h->live; j != NULL; j = j->live_next) j->ops->stop(j);
  while ((j = h->live) != NULL) {
    lcorio_pool_unlink(j);
    if (j->ops->detach != NULL) j->ops->detach(j);
  }
  h->close(h);
  return 0;
}

/*
** The state's hub of this kind, made on first use.  Once lua_close has
** collected it, no job may start: a job made now would have no one to
** stop its workers, and its box, made while the state closes, would
** never be finalized.
*/
static lcorio_pool_hub *get_hub(lua_State *L, const lcorio_pool_ops *ops) {
  lcorio_pool_hub **box, *h;
  lcorio_state *S;
  if (lua_getfield(L, LUA_REGISTRYINDEX, ops->hub_key) == LUA_TUSERDATA) {
    h = *(lcorio_pool_hub **)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (h == NULL) luaL_error(L, "corio: the runtime is closing");
    return h;
  }
  lua_pop(L, 1);
  S = lcorio_getstate(L);
  if (S == NULL || S->rt == NULL) luaL_error(L, "corio: runtime is closed");
  box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, LCORIO_POOL_HUB_MT);
  h = *box = ops->hub_new(L, corio_rt_loop(S->rt));
  lua_setfield(L, LUA_REGISTRYINDEX, ops->hub_key);
  return h;
}
/* }================================================================== */

/*
** {==================================================================
** Back in the caller
** ===================================================================
*/

/* A copied corio error value lost its metatable on the way: give it back,
   so that `err == corio.TimeoutError` still works. */
static void restore_error(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) return;
  lua_getfield(L, idx, "name");
  lua_getfield(L, idx, "kind");
  if (lua_type(L, -1) == LUA_TSTRING && lua_type(L, -2) == LUA_TSTRING) {
    luaL_getmetatable(L, LCORIO_ERROR_MT);
    lua_setmetatable(L, idx);
  }
  lua_pop(L, 2);
}

/* Push the outcome's values; returns how many and whether it failed (then
   the error value and the traceback are pushed). */
static int push_decoded(lua_State *L, const lcopy_out *o, int *failed) {
  int n;
  if (o->data == NULL || o->len < 1) {
    *failed = 1;
    lua_pushliteral(L, "corio: the worker produced no result");
    lua_pushliteral(L, "");
    return 2;
  }
  *failed = o->data[0] != 'r';
  n = lcorio_copy_decode_tuple(L, o->data + 1, o->len - 1);
  if (*failed) {
    if (n != 2) luaL_error(L, "corio: malformed message (error outcome)");
    restore_error(L, -2);
  }
  return n;
}

/* A call's end: push its results and return how many, or raise its error
   value (a missing outcome raises too). */
static int push_outcome(lua_State *L, const lcopy_out *o) {
  int failed, n = push_decoded(L, o, &failed);
  if (!failed) return n;
  lua_pop(L, 1); /* the traceback: to_thread raises the value as it was */
  return lua_error(L);
}

/*
** A map's end: push the array of each input's first result (with n), or
** raise a WorkerError for the first input (in order) that failed: its
** message names the item; fields index, cause, traceback, results (what
** the others returned) and errors ({[index] = cause}).  `what` names the
** caller in the message ("corio.threads.map").
*/
static int push_map(lua_State *L, const lcopy_out *outs, size_t n,
                    const char *what) {
  size_t i, first = n;
  int results, errors, failed, k;
  lua_createtable(L, n > INT32_MAX ? 0 : (int)n, 1);
  results = lua_gettop(L);
  lua_newtable(L);
  errors = results + 1;
  for (i = 0; i < n; i++) {
    k = push_decoded(L, &outs[i], &failed);
    if (failed) {
      if (first == n) first = i; /* keep its error value and traceback */
      lua_pushvalue(L, -2);
      lua_rawseti(L, errors, (lua_Integer)i + 1);
      if (first != i) lua_pop(L, 2);
    } else {
      if (k > 0) {
        lua_settop(L, lua_gettop(L) - k + 1); /* only the first result */
        lua_rawseti(L, results, (lua_Integer)i + 1);
      }
    }
  }
  lua_pushinteger(L, (lua_Integer)n);
  lua_setfield(L, results, "n");
  if (first == n) {
    lua_settop(L, results);
    return 1;
  }
  /* results, errors, cause, traceback */
  lcorio_pusherror(L, "WorkerError", "worker", "%s: item %I failed: %s", what,
                   (lua_Integer)first + 1, luaL_tolstring(L, errors + 1, NULL));
  lua_pushinteger(L, (lua_Integer)first + 1);
  lua_setfield(L, -2, "index");
  lua_pushvalue(L, errors + 1);
  lua_setfield(L, -2, "cause");
  lua_pushvalue(L, errors + 2);
  lua_setfield(L, -2, "traceback");
  lua_pushvalue(L, results);
  lua_setfield(L, -2, "results");
  lua_pushvalue(L, errors);
  lua_setfield(L, -2, "errors");
  return lua_error(L);
}

/* The waiting task's continuation; the job's box is at ctx. */
static int job_k(lua_State *L, int status, lua_KContext ctx) {
  lcorio_pool_job *j;
  (void)status;
  if (lcorio_wait_status(L) == CORIO_ECANCELED) return lcorio_cancelled(L);
  j = *(lcorio_pool_job **)lua_touserdata(L, (int)ctx);
  if (j->spans != NULL && lcorio_upstate(L)->trace != NULL)
    lcorio_trace_pool(lcorio_upstate(L), j->ops->what, j->spans, j->nitems);
  if (j->single) return push_outcome(L, &j->outs[0]);
  return push_map(L, j->outs, j->nitems, j->ops->what);
}

int lcorio_pool_run(lua_State *L, ltask *lt, lcorio_pool_job *j, size_t n) {
  int box = lua_gettop(L), rc;
  link_job(get_hub(L, j->ops), j);
  if (n > j->nitems) n = j->nitems;
  rc = j->ops->start(L, j, n);
  if (rc < 0) {
    j->ops->stop(j);
    lcorio_pool_unlink(j);
    return lua_error(L); /* the message start pushed */
  }
  /* the wait's reference, taken before suspend may call the cancel */
  j->refs++;
  j->task = lcorio_core(lt);
  rc = corio_task_suspend(j->task, job_cancel, j);
  if (rc < 0) {
    job_cancel(j->task, j);
    lcorio_check(L, rc, j->ops->what);
  }
  lua_settop(L, box);
  lcorio_wait_mark(lt, LCORIO_W_POOL, (uint32_t)j->nitems);
  return lcorio_yield(L, box, job_k);
}
/* }================================================================== */

void lcorio_pool_open(lua_State *L) {
  if (luaL_newmetatable(L, LCORIO_POOL_JOB_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LCORIO_POOL_HUB_MT)) {
    lua_pushcfunction(L, hub_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
