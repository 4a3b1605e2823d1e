/*
** lwait.c: the functions that wait: sleep, await, wait, gather,
** as_completed, wait_for, timeout.  Each arms a wait on the running task and
** yields with a continuation (lua_yieldk), so waits work inside pcall,
** metamethods and for-in iterators; at top level each runs the loop instead
** (LCORIO_WAIT_PROLOGUE).
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lcorio.h"

#define LCORIO_AS_COMPLETED_MT "corio.AsCompleted"
#define LCORIO_DEADLINE_MT     "corio.Deadline"

/* an optional timeout in seconds -> ms, or -1 for none */
static int64_t opt_timeout_ms(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return -1;
  return (int64_t)lcorio_checkseconds(L, arg);
}

/*
** {==================================================================
** sleep
** ==================================================================
*/
static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lcorio_wait_status(L) == CORIO_ECANCELED) return lcorio_cancelled(L);
  lua_settop(L, 2);
  return 1;
}

static int l_sleep(lua_State *L) {
  uint64_t ms = lcorio_checkseconds(L, 1);
  LCORIO_WAIT_PROLOGUE(L, lt, l_sleep);
  lcorio_check(L, corio_sleep(lcorio_core(lt), ms), "sleep");
  lcorio_wait_mark(lt, ms == 0 ? LCORIO_W_READY : LCORIO_W_SLEEP, (uint32_t)ms);
  return lcorio_yield(L, 0, sleep_k);
}

/* }================================================================== */

/*
** {==================================================================
** await
** ==================================================================
*/
static int await_k(lua_State *L, int status, lua_KContext ctx) {
  ltask *target;
  (void)status;
  (void)ctx;
  status = lcorio_wait_status(L);
  target = lcorio_totask(L, 1);
  if (status == CORIO_ECANCELED) {
    corio_task_cancel(lcorio_core(target)); /* as asyncio: cancel inwards */
    return lcorio_cancelled(L);
  }
  lua_settop(L, 1);
  return lcorio_push_results(L, target);
}

static int await_inline_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L) - 1;
}

static int l_await(lua_State *L) {
  ltask *target;
  int nargs;
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  /*
  ** Inside a task, awaiting a coroutine object runs it right there, in
  ** this task, as Python's `await coro` does: nothing else runs until it
  ** waits on something.  (A blocking call in it is still serial: the
  ** article's lesson.)
  */
  if (lcorio_current(L) != NULL && (nargs = lcorio_coro_take(L, 1)) >= 0) {
    lua_callk(L, nargs, LUA_MULTRET, 0, await_inline_k);
    return await_inline_k(L, LUA_OK, 0);
  }
  target = lcorio_ensure_task(L, 1);
  if (corio_task_done(lcorio_core(target)))
    return lcorio_push_results(L, target);
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_await);
    if (lt == target) return luaL_error(L, "corio: a task cannot await itself");
    lcorio_check(L, corio_task_await(lcorio_core(lt), lcorio_core(target)),
                 "await");
    lcorio_wait_mark(lt, LCORIO_W_AWAIT, 0);
    return lcorio_yield(L, 0, await_k);
  }
}

/* }================================================================== */

/*
** A list of tasks being waited on: the tasks (as Lua values, converted from
** coroutine objects) in a table, and the runtime's pointers in a userdata.
** Pushes the table and the userdata; returns the count.
*/
typedef struct tlist {
  size_t n;
  corio_task *t[1];
} tlist;

static size_t push_tlist(lua_State *L, int list, lua_Integer first,
                         lua_Integer last, const char *fn) {
  lua_Integer i;
  size_t n = last >= first ? (size_t)(last - first + 1) : 0;
  tlist *tl;
  int tbl;
  lua_createtable(L, (int)n, 0);
  tbl = lua_gettop(L);
  tl = lua_newuserdatauv(L, sizeof(tlist) + n * sizeof(corio_task *), 0);
  tl->n = n;
  for (i = first; i <= last; i++) {
    ltask *lt;
    if (list != 0)
      lua_geti(L, list, i);
    else
      lua_pushvalue(L, (int)i);
    if (lcorio_totask(L, -1) == NULL && lua_type(L, -1) != LUA_TFUNCTION &&
        luaL_testudata(L, -1, LCORIO_CORO_MT) == NULL)
      luaL_error(L,
                 "%s: item %I must be a task, future, coroutine object or "
                 "function (got %s)",
                 fn, (LUAI_UACINT)(i - first + 1), luaL_typename(L, -1));
    lt = lcorio_ensure_task(L, -1);
    tl->t[i - first] = lcorio_core(lt);
    lua_rawseti(L, tbl, i - first + 1);
  }
  return n;
}

/*
** {==================================================================
** wait
** ==================================================================
*/
static const char *const wait_opts[] = {"return_when", "timeout", NULL};

static corio_wait_mode check_mode(lua_State *L, int opts) {
  static const char *const names[] = {"ALL_COMPLETED", "FIRST_COMPLETED",
                                      "FIRST_EXCEPTION", NULL};
  return (corio_wait_mode)lcorio_opt_enum(L, opts, "corio.wait", "return_when",
                                          CORIO_WAIT_ALL_COMPLETED, names);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  size_t i, n;
  tlist *tl;
  (void)ctx;
  (void)status;
  status = lcorio_wait_status(L);
  if (status == CORIO_ECANCELED) return lcorio_cancelled(L);
  /* 1 tasks, 2 opts, 3 task table, 4 tlist */
  tl = lua_touserdata(L, 4);
  n = tl->n;
  lua_createtable(L, (int)n, 0);
  lua_createtable(L, 0, 0);
  for (i = 0; i < n; i++) {
    int into = corio_task_done(tl->t[i]) ? 5 : 6;
    lua_rawgeti(L, 3, (lua_Integer)i + 1);
    lua_rawseti(L, into, (lua_Integer)luaL_len(L, into) + 1);
  }
  return 2;
}

static int l_wait(lua_State *L) {
  corio_wait_mode mode;
  int64_t timeout;
  tlist *tl;
  luaL_checktype(L, 1, LUA_TTABLE);
  lcorio_opts_check(L, 2, "corio.wait", wait_opts);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_newtable(L);
  }
  lua_settop(L, 2);
  mode = check_mode(L, 2);
  timeout = lcorio_opt_seconds(L, 2, "corio.wait", "timeout", -1, 0);
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_wait);
    push_tlist(L, 1, 1, luaL_len(L, 1), "corio.wait");
    tl = lua_touserdata(L, 4);
    lcorio_check(L, corio_wait(lcorio_core(lt), tl->t, tl->n, mode, timeout),
                 "wait");
    lcorio_wait_mark(lt, LCORIO_W_WAIT, (uint32_t)tl->n);
    return lcorio_yield(L, 0, wait_k);
  }
}

/* }================================================================== */

/*
** {==================================================================
** gather
** ==================================================================
*/
static int is_plain_table(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  if (lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

/* a task's first result, or its error raised (for lua_pcall) */
static int first_result(lua_State *L) {
  ltask *lt = lcorio_checktask(L, 1);
  int n;
  lua_settop(L, 1);
  n = lcorio_push_results(L, lt);
  if (n == 0) return 0;
  lua_pushvalue(L, -n); /* the first of the n results at the top */
  return 1;
}

static int gather_k(lua_State *L, int status, lua_KContext ctx) {
  int return_exceptions = (int)ctx;
  size_t i, n;
  tlist *tl;
  (void)status;
  status = lcorio_wait_status(L);
  /* 1 task table, 2 tlist */
  tl = lua_touserdata(L, 2);
  n = tl->n;
  if (status == CORIO_ECANCELED) { /* as asyncio: cancel the children */
    for (i = 0; i < n; i++) corio_task_cancel(tl->t[i]);
    return lcorio_cancelled(L);
  }
  if (!return_exceptions) /* raise the first error, in argument order */
    for (i = 0; i < n; i++)
      if (corio_task_get_state(tl->t[i]) >= CORIO_TASK_FAILED) {
        lua_rawgeti(L, 1, (lua_Integer)i + 1);
        return lcorio_push_results(L, lcorio_totask(L, -1));
      }
  lua_createtable(L, (int)n, 1);
  for (i = 0; i < n; i++) {
    lua_pushcfunction(L, first_result);
    lua_rawgeti(L, 1, (lua_Integer)i + 1);
    lua_pcall(L, 1, 1, 0); /* an error value takes the result's place */
    lua_rawseti(L, 3, (lua_Integer)i + 1);
  }
  lua_pushinteger(L, (lua_Integer)n);
  lua_setfield(L, 3, "n");
  return 1;
}

/*
** gather(t1, t2, ... [, opts]) or gather({t1, t2, ...} [, opts]); opts is a
** trailing plain table: {return_exceptions = true}.
*/
static int l_gather(lua_State *L) {
  int n, return_exceptions = 0;
  tlist *tl;
  LCORIO_WAIT_PROLOGUE(L, lt, l_gather);
  n = lua_gettop(L);
  if (n >= 2 && is_plain_table(L, n)) {
    static const char *const names[] = {"return_exceptions", NULL};
    lcorio_opts_check(L, n, "corio.gather", names);
    return_exceptions =
        lcorio_opt_boolean(L, n, "corio.gather", "return_exceptions", 0);
    lua_settop(L, --n);
  }
  if (n == 1 && is_plain_table(L, 1))
    push_tlist(L, 1, 1, luaL_len(L, 1), "corio.gather");
  else
    push_tlist(L, 0, 1, n, "corio.gather");
  lua_rotate(L, 1, 2); /* the task table and the tlist first */
  lua_settop(L, 2);
  tl = lua_touserdata(L, 2);
  lcorio_check(L,
               corio_wait(lcorio_core(lt), tl->t, tl->n,
                          return_exceptions ? CORIO_WAIT_ALL_COMPLETED
                                            : CORIO_WAIT_FIRST_EXCEPTION,
                          -1),
               "gather");
  lcorio_wait_mark(lt, LCORIO_W_GATHER, (uint32_t)tl->n);
  return lcorio_yield(L, return_exceptions, gather_k);
}

/* }================================================================== */

/*
** {==================================================================
** as_completed
** ==================================================================
*/

/*
** The iterator's state: the tasks in a table (user value 1), the order in
** which they completed (a queue of indices filled by done callbacks), and
** a future the iterator waits on while the queue is empty.  Each task's
** done callback gets its own entry, so a completion finds its index at once
** (and a task listed twice completes twice).
*/
typedef struct ascomp ascomp;
typedef struct asc_entry {
  ascomp *a;
  corio_task *t;
} asc_entry;

struct ascomp {
  corio_rt *rt;
  size_t n, head, tail, remaining;
  uint64_t deadline;  /* loop time in ms; UINT64_MAX for none */
  corio_task *signal; /* finished by the next completion */
  asc_entry *tasks;   /* n, in input order */
  uint32_t *done;     /* n slots: input indices in completion order */
};

static void asc_on_done(corio_task *t, void *ud) {
  asc_entry *e = ud;
  ascomp *a = e->a;
  (void)t;
  a->done[a->tail++] = (uint32_t)(e - a->tasks);
  a->remaining--;
  if (a->signal != NULL && !corio_task_done(a->signal))
    corio_task_finish(a->signal, CORIO_TASK_FINISHED);
}

static void asc_release(ascomp *a) {
  size_t i;
  if (a->tasks == NULL) return;
  for (i = 0; i < a->n; i++)
    if (!corio_task_done(a->tasks[i].t))
      corio_task_remove_done(a->tasks[i].t, asc_on_done, &a->tasks[i]);
  if (a->signal != NULL) {
    if (!corio_task_done(a->signal))
      corio_task_finish(a->signal, CORIO_TASK_CANCELLED);
    corio_task_free(a->signal);
    a->signal = NULL;
  }
  free(a->tasks);
  free(a->done);
  a->tasks = NULL;
}

/*
** A script calling this while an iteration waits must not free the
** signal that it waits on: only the collector releases.
*/
static int asc_gc(lua_State *L) {
  ascomp *a = luaL_testudata(L, 1, LCORIO_AS_COMPLETED_MT);
  lcorio_state *S = lcorio_getstate(L);
  if (a != NULL && S != NULL && S->rt != NULL && lcorio_collecting(L))
    asc_release(a);
  return 0;
}

/* pop the next completed task, pushing it */
static int asc_pop(lua_State *L, ascomp *a, int state) {
  uint32_t i = a->done[a->head++];
  lua_getiuservalue(L, state, 1);
  lua_rawgeti(L, -1, (lua_Integer)i + 1);
  return 1;
}

static int asc_k(lua_State *L, int status, lua_KContext ctx) {
  ascomp *a = luaL_checkudata(L, 1, LCORIO_AS_COMPLETED_MT);
  (void)ctx;
  (void)status;
  status = lcorio_wait_status(L);
  if (!corio_task_done(a->signal)) /* timed out or cancelled */
    corio_task_finish(a->signal, CORIO_TASK_CANCELLED);
  corio_task_free(a->signal);
  a->signal = NULL;
  if (status == CORIO_ECANCELED) return lcorio_cancelled(L);
  if (status == CORIO_ETIMEDOUT || a->head == a->tail)
    return lcorio_raise(L, "TimeoutError", "timeout", "as_completed timed out");
  return asc_pop(L, a, 1);
}

static int asc_next(lua_State *L) {
  ascomp *a = luaL_checkudata(L, 1, LCORIO_AS_COMPLETED_MT);
  int64_t left = -1;
  lua_settop(L, 1);
  if (a->head < a->tail) return asc_pop(L, a, 1);
  if (a->remaining == 0) return 0;
  if (a->deadline != UINT64_MAX) {
    uint64_t now = corio_rt_now(a->rt);
    left = a->deadline > now ? (int64_t)(a->deadline - now) : 0;
  }
  {
    LCORIO_WAIT_PROLOGUE(L, lt, asc_next);
    a->signal = corio_task_new(a->rt, NULL, NULL);
    if (a->signal == NULL) return luaL_error(L, "not enough memory");
    lcorio_check(L,
                 corio_wait(lcorio_core(lt), &a->signal, 1,
                            CORIO_WAIT_ALL_COMPLETED, left),
                 "as_completed");
    lcorio_wait_mark(lt, LCORIO_W_ASCOMP, (uint32_t)a->remaining);
    return lcorio_yield(L, 0, asc_k);
  }
}

static int l_as_completed(lua_State *L) {
  lcorio_state *S = lcorio_upstate(L);
  ascomp *a;
  size_t i, n;
  tlist *tl;
  int64_t timeout = -1;
  luaL_checktype(L, 1, LUA_TTABLE);
  {
    static const char *const names[] = {"timeout", NULL};
    int opts = lcorio_opts_check(L, 2, "corio.as_completed", names);
    timeout =
        lcorio_opt_seconds(L, opts, "corio.as_completed", "timeout", -1, 0);
  }
  lua_settop(L, 1);
  n = push_tlist(L, 1, 1, luaL_len(L, 1),
                 "corio.as_completed"); /* 2 table, 3 tlist */
  tl = lua_touserdata(L, 3);
  a = lua_newuserdatauv(L, sizeof *a, 1);
  memset(a, 0, sizeof *a);
  luaL_setmetatable(L, LCORIO_AS_COMPLETED_MT);
  a->rt = S->rt;
  a->n = n;
  a->deadline =
      timeout < 0 ? UINT64_MAX : corio_rt_now(S->rt) + (uint64_t)timeout;
  a->tasks = malloc((n ? n : 1) * sizeof *a->tasks);
  a->done = malloc((n ? n : 1) * sizeof *a->done);
  if (a->tasks == NULL || a->done == NULL) {
    free(a->tasks);
    free(a->done);
    a->tasks = NULL;
    return luaL_error(L, "not enough memory");
  }
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  for (i = 0; i < n; i++) {
    a->tasks[i].a = a;
    a->tasks[i].t = tl->t[i];
  }
  for (i = 0; i < n; i++) {
    if (corio_task_done(a->tasks[i].t)) {
      a->done[a->tail++] = (uint32_t)i; /* already done: input order */
    } else {
      a->remaining++;
      if (corio_task_add_done(a->tasks[i].t, asc_on_done, &a->tasks[i]) != 0)
        return luaL_error(L, "not enough memory");
    }
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, asc_next, 1);
  lua_insert(L, -2);
  return 2; /* iterator, state */
}

/* }================================================================== */

/*
** {==================================================================
** wait_for
** ==================================================================
*/
static int wait_for_k(lua_State *L, int status, lua_KContext ctx) {
  ltask *target;
  (void)status;
  status = lcorio_wait_status(L);
  target = lcorio_totask(L, 1);
  if (status == CORIO_ECANCELED) {
    corio_task_cancel(lcorio_core(target));
    return lcorio_cancelled(L);
  }
  if (ctx == 0 && status == CORIO_ETIMEDOUT) {
    /* cancel it and wait until its cleanup has run */
    ltask *lt = lcorio_current(L);
    corio_task_cancel(lcorio_core(target));
    lcorio_check(L, corio_task_await(lcorio_core(lt), lcorio_core(target)),
                 "wait_for");
    return lcorio_yield(L, 1, wait_for_k);
  }
  if (ctx == 1 &&
      corio_task_get_state(lcorio_core(target)) != CORIO_TASK_FINISHED) {
    if (corio_task_get_state(lcorio_core(target)) == CORIO_TASK_CANCELLED)
      target->flags |= LT_RETRIEVED;
    return lcorio_raise(L, "TimeoutError", "timeout",
                        "wait_for timed out after %s s", lua_tostring(L, 2));
  }
  lua_settop(L, 1);
  return lcorio_push_results(L, target);
}

static int l_wait_for(lua_State *L) {
  ltask *target;
  int64_t timeout;
  luaL_checkany(L, 1);
  timeout = opt_timeout_ms(L, 2);
  lua_settop(L, 2);
  target = lcorio_ensure_task(L, 1);
  if (corio_task_done(lcorio_core(target))) {
    lua_settop(L, 1);
    return lcorio_push_results(L, target);
  }
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_wait_for);
    corio_task *t = lcorio_core(target);
    lcorio_check(
        L,
        corio_wait(lcorio_core(lt), &t, 1, CORIO_WAIT_ALL_COMPLETED, timeout),
        "wait_for");
    lcorio_wait_mark(lt, LCORIO_W_WAIT_FOR, 0);
    return lcorio_yield(L, 0, wait_for_k);
  }
}

/* }================================================================== */

/*
** {==================================================================
** timeout(seconds, fn, ...): fn runs in this task under a deadline
** ==================================================================
*/
typedef struct deadline {
  corio_timer *timer; /* NULL once fired or stopped */
  corio_task *task;
  int fired;
  int base; /* the task's cancel requests when the deadline began */
} deadline;

static void on_deadline(corio_timer *tm, void *ud) {
  deadline *d = ud;
  (void)tm;
  d->timer = NULL;
  d->fired = 1;
  corio_task_cancel(d->task);
}

static int deadline_gc(lua_State *L) {
  deadline *d = luaL_testudata(L, 1, LCORIO_DEADLINE_MT);
  lcorio_state *S = lcorio_getstate(L);
  if (d == NULL || !lcorio_collecting(L)) return 0; /* the timeout goes on */
  if (d->timer != NULL && S != NULL && S->rt != NULL)
    corio_timer_stop(d->timer);
  d->timer = NULL;
  return 0;
}

static int timeout_k(lua_State *L, int status, lua_KContext ctx) {
  deadline *d = lua_touserdata(L, (int)ctx);
  int fired = d->fired;
  if (d->timer != NULL) corio_timer_stop(d->timer);
  d->timer = NULL;
  if (status == LUA_OK || status == LUA_YIELD) {
    if (fired) corio_task_uncancel(d->task); /* never delivered */
    return lua_gettop(L) - (int)ctx;
  }
  /*
  ** Our cancel, withdrawn: with no other request left than those before
  ** the deadline began, it was ours that fn met; one that came from
  ** outside meanwhile (even in the turn the deadline fired) goes on up.
  */
  if (fired && lcorio_iserror(L, -1, "CancelledError") &&
      corio_task_uncancel(d->task) <= d->base)
    return lcorio_raise(L, "TimeoutError", "timeout", "timed out after %s s",
                        lua_tostring(L, 1));
  return lua_error(L);
}

static int l_timeout(lua_State *L) {
  uint64_t ms = lcorio_checkseconds(L, 1);
  deadline *d;
  lcorio_state *S;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  {
    LCORIO_WAIT_PROLOGUE(L, lt, l_timeout);
    int ctx;
    S = lcorio_upstate(L);
    d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    luaL_setmetatable(L, LCORIO_DEADLINE_MT);
    d->task = lcorio_core(lt);
    d->base = corio_task_cancelling(d->task);
    d->timer = corio_timer_start(S->rt, ms, on_deadline, d);
    if (d->timer == NULL) return luaL_error(L, "not enough memory");
    lua_insert(L, 2); /* seconds, deadline, fn, args... */
    ctx = 2;
    return timeout_k(
        L, lua_pcallk(L, lua_gettop(L) - 3, LUA_MULTRET, 0, ctx, timeout_k),
        ctx);
  }
}

/* }================================================================== */

static const luaL_Reg funcs[] = {{"sleep", l_sleep},
                                 {"await", l_await},
                                 {"wait", l_wait},
                                 {"gather", l_gather},
                                 {"as_completed", l_as_completed},
                                 {"wait_for", l_wait_for},
                                 {"timeout", l_timeout},
                                 {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_wait_open(lua_State *L) {
  lcorio_setfuncs(L, funcs);
  luaL_getmetatable(L, LCORIO_TASK_MT); /* task:await(), a method */
  lua_getfield(L, -1, "__index");
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, l_await, 1);
  lua_setfield(L, -2, "await");
  lua_pop(L, 2);
  if (luaL_newmetatable(L, LCORIO_AS_COMPLETED_MT)) {
    lua_pushcfunction(L, asc_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LCORIO_DEADLINE_MT)) {
    lua_pushcfunction(L, deadline_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
