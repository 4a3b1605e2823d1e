/*
** ltoplevel.c: a waiting function called outside any task runs itself as
** a hidden task and runs the loop until it is done; and what the host and
** lua_close need of all tasks at once: the pending ones, cancel them all,
** abort them.
*/
#include "ltask.h"

/*
** {==================================================================
** Waiting at top level
** ==================================================================
*/

/* Run the loop until `lt` is done; a deadlock is an error. */
void lcorio_run_until_done(lua_State *L, lcorio_state *S, ltask *lt) {
  corio_task *t = lcorio_core(lt);
  while (!corio_task_done(t)) {
    int more = corio_rt_run(S->rt, UV_RUN_ONCE);
    if (more == 0 && !corio_task_done(t)) {
      /* nothing left that could ever finish it: a deadlock */
      corio_task_cancel(t);
      corio_rt_run(S->rt, UV_RUN_NOWAIT);
      if (!corio_task_done(t)) corio_task_finish(t, CORIO_TASK_CANCELLED);
      luaL_error(L, "corio: deadlock: the loop has nothing left to do, but "
                    "the awaited task can never finish");
    }
  }
}

static int check_loop_idle(lua_State *L, lcorio_state *S) {
  if (!corio_rt_running(S->rt)) return 0;
  if (corio_current_task(S->rt) != NULL && L != S->L)
    return luaL_error(L, "corio: cannot wait inside a coroutine that a task "
                         "resumes itself; use corio.spawn for concurrent work");
  return luaL_error(L, "corio: cannot wait here: the loop is already running "
                       "(in a done callback?); spawn a task instead");
}

int lcorio_toplevel(lua_State *L, lua_CFunction self) {
  lcorio_state *S = lcorio_getstate(L);
  int n = lua_gettop(L);
  ltask *lt;
  check_loop_idle(L, S);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, self, 1);
  lua_insert(L, 1);
  lt = lcorio_task_new(L, 1, n, 1);
  lcorio_run_until_done(L, S, lt);
  return lcorio_push_results(L, lt);
}

/* }================================================================== */

/*
** {==================================================================
** All tasks at once
** ==================================================================
*/

void lcorio_push_pending(lua_State *L, int hidden) {
  int n = 0;
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, LUA_REGISTRYINDEX) != 0) {
    ltask *lt = lcorio_totask(L, -1);
    if (lt != NULL && !corio_task_done(lcorio_core(lt)) &&
        (hidden || lt->id != 0)) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, -4, ++n);
    }
    lua_pop(L, 1);
  }
}

/*
** Abort every task still pending (lua_close is finalizing the state): no
** Lua runs; the runtime's waits are released so the runtime can be freed.
*/
void lcorio_task_shutdown(lua_State *L, lcorio_state *S) {
  if (S->closing || S->rt == NULL) return;
  S->closing = 1;
  lcorio_late_drop(L, S);
  lua_checkstack(L, 4);
  lua_pushnil(L); /* finishing runs no Lua now (closing): the walk holds */
  while (lua_next(L, LUA_REGISTRYINDEX) != 0) {
    ltask *lt = lcorio_totask(L, -1);
    if (lt != NULL && !corio_task_done(lcorio_core(lt)))
      corio_task_finish(lcorio_core(lt), CORIO_TASK_CANCELLED);
    lua_pop(L, 1);
  }
}

/*
** Cancel every pending task, allocating nothing: a script that failed for
** lack of memory is cancelled this way (corio_lua_cancel_all).  A task is
** only flagged and queued.  A future finishes at once and runs its done
** callbacks, which may add keys to the registry, where a walk with
** lua_next may then skip entries (it stays valid from a key still
** present, and ours stay: luaL_unref never clears one).  So futures are
** noted by ref, FUTURE_BATCH at a time, and finished between steps of the
** walk; a walk that finished any is followed by another.
*/
#define FUTURE_BATCH 256

static int is_task(lua_State *L, int mt) {
  int yes;
  if (lua_type(L, -1) != LUA_TUSERDATA || !lua_getmetatable(L, -1)) return 0;
  yes = lua_rawequal(L, -1, mt);
  lua_pop(L, 1);
  return yes;
}

static int cancel_futures(lua_State *L, const int *refs, int k) {
  int i, n = 0;
  for (i = 0; i < k; i++) {
    ltask *lt;
    lua_rawgeti(L, LUA_REGISTRYINDEX, refs[i]);
    lt = lcorio_totask(L, -1);
    /* a callback of an earlier one may have finished it */
    if (lt != NULL && lt->ref == refs[i] && !corio_task_done(lcorio_core(lt))) {
      lcorio_cancel_unstarted(L, lt, lua_gettop(L));
      n++;
    }
    lua_pop(L, 1);
  }
  return n;
}

int lcorio_cancel_all(lua_State *L) {
  int refs[FUTURE_BATCH], n = 0, k = 0, first = 1, walked_futures, mt;
  lua_checkstack(L, 6);
  lua_getfield(L, LUA_REGISTRYINDEX, LCORIO_TASK_MT);
  mt = lua_gettop(L);
  do {
    walked_futures = 0;
    lua_pushnil(L);
    while (lua_next(L, LUA_REGISTRYINDEX) != 0) {
      ltask *lt = is_task(L, mt) ? lua_touserdata(L, -1) : NULL;
      lua_pop(L, 1);
      if (lt == NULL || corio_task_done(lcorio_core(lt))) continue;
      if (!(lt->flags & LT_FUTURE)) {
        n += corio_task_cancel(lcorio_core(lt)) && first;
        continue;
      }
      refs[k++] = lt->ref;
      walked_futures = 1;
      if (k == FUTURE_BATCH) { /* the key stays on the stack meanwhile */
        n += cancel_futures(L, refs, k);
        k = 0;
      }
    }
    n += cancel_futures(L, refs, k);
    k = 0;
    first = 0;
  } while (walked_futures);
  lua_pop(L, 1); /* mt */
  return n;
}

/* }================================================================== */
