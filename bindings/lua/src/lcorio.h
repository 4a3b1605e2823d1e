/*
** lcorio.h: what the binding's files share.  Every Lua detail of corio
** lives under bindings/lua; the runtime sees only corio.h.
*/
#ifndef LCORIO_H
#define LCORIO_H

#include <lua.h>
#include <lauxlib.h>

#include "corio.h"

#define LCORIO_TASK_MT   "corio.Task"
#define LCORIO_CORO_MT   "corio.Coroutine"
#define LCORIO_ERROR_MT  "corio.Error"
#define LCORIO_STATE_KEY "corio.State"

/* The binding's per-lua_State state: one runtime, shared by every
   coroutine of the state.  A full userdata in the registry. */
typedef struct lcorio_state {
  corio_rt *rt;
  int owns_rt;
  lua_State *L; /* a thread of our own for the scheduler's stack work */
  int L_ref;
  uint32_t next_id; /* Task-N */
  int closing;      /* lua_close is finalizing: run no Lua callbacks */
  int keepalive;    /* run_forever: a ref'd handle keeps the loop up */
  uv_prepare_t keep;
} lcorio_state;

/* ltask.c: a task or future as a Lua value. */
typedef struct ltask {
  int ref;     /* registry ref anchoring the userdata while not done */
  uint32_t id; /* Task-N; 0 for a hidden task */
  uint8_t flags;
  /* the runtime's corio_task follows, at LTASK_CORE_OFFSET */
} ltask;

#define LT_FUTURE    0x01 /* no coroutine: completed with set_result */
#define LT_STARTED   0x02 /* the coroutine has been resumed once */
#define LT_MULTI     0x04 /* results are a table {n=...} */
#define LT_NONE      0x08 /* no results */
#define LT_RETRIEVED 0x10 /* the error was seen by someone */
#define LT_NAMED     0x20 /* name set with set_name (kept in a weak table) */

/* upvalue 1 of every module function is the state */
#define lcorio_upstate(L)                                                      \
  ((lcorio_state *)lua_touserdata(L, lua_upvalueindex(1)))

lcorio_state *lcorio_getstate(lua_State *L);
void lcorio_setfuncs(lua_State *L, const luaL_Reg *l); /* state as upvalue */

/* tasks */
corio_task *lcorio_core(ltask *lt);
ltask *lcorio_ltask(corio_task *t);
ltask *lcorio_checktask(lua_State *L, int idx);
ltask *lcorio_totask(lua_State *L, int idx);
ltask *lcorio_current(lua_State *L); /* the task running L, or NULL */
ltask *lcorio_ensure_task(lua_State *L, int idx); /* replaces idx with it */
int lcorio_push_results(lua_State *L, ltask *lt); /* returns nresults or
                                                     raises the error */
void lcorio_push_task(lua_State *L, ltask *lt);
/* Push an array of the tasks not done yet (hidden ones too if asked). */
void lcorio_push_pending(lua_State *L, int hidden);
void lcorio_task_open(lua_State *L);
void lcorio_task_shutdown(lua_State *L, lcorio_state *S); /* lua_close */

/*
** A waiting function starts with LCORIO_WAIT_PROLOGUE(L, self): inside a
** task it goes on (lt is the running task); at top level it runs `self`
** with the same arguments as a hidden task and runs the loop until that is
** done, returning its results; while the loop is running outside any task
** (a done callback, a coroutine a task resumes itself) it raises.
*/
int lcorio_toplevel(lua_State *L, lua_CFunction self);
void lcorio_run_until_done(lua_State *L, lcorio_state *S, ltask *lt);
#define LCORIO_WAIT_PROLOGUE(L, lt, self)                                      \
  ltask *lt = lcorio_current(L);                                               \
  if (lt == NULL) return lcorio_toplevel(L, self)

/* Yield the running task after a wait was armed.  The continuation finds
   the wait's status (0, or a CORIO_E* code) with lcorio_wait_status. */
int lcorio_yield(lua_State *L, lua_KContext ctx, lua_KFunction k);
int lcorio_wait_status(lua_State *L);
/* Raise the running task's CancelledError (with its cancel message). */
int lcorio_cancelled(lua_State *L);
/* Raise for a failed corio_* call that armed nothing. */
int lcorio_check(lua_State *L, int rc, const char *what);

/* lerror.c: error values {name=, kind=, message=, ...}. */
void lcorio_error_open(lua_State *L);
void lcorio_pusherror(lua_State *L, const char *name, const char *kind,
                      const char *fmt, ...);
int lcorio_raise(lua_State *L, const char *name, const char *kind,
                 const char *fmt, ...);
int lcorio_iserror(lua_State *L, int idx, const char *name);
int lcorio_traceback_handler(lua_State *L);            /* msgh for lua_pcall */
void lcorio_report(lua_State *L, const char *context); /* error at top */

/* Each adds its functions to the module table at -2 (state at -1). */
void lcorio_wait_open(lua_State *L);    /* lwait.c */
void lcorio_loop_open(lua_State *L);    /* lloop.c */
void lcorio_fetch_open(lua_State *L);   /* lfetch.c: fetch, sessions */
void lcorio_serve_open(lua_State *L);   /* lserve.c: corio.serve */
void lcorio_thread_open(lua_State *L);  /* lthread.c: to_thread, threads */
void lcorio_process_open(lua_State *L); /* lprocess.c: processes */

#endif
