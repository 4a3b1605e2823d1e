/*
** ltask.h: what the files of task/ share, and no one else: the layout of
** a task userdata, the side tables, completion.  Other binding code uses
** the task API of lcorio.h.
*/
#ifndef LTASK_H
#define LTASK_H

#include "lcorio.h"

/* the runtime's corio_task follows the ltask header, aligned */
#define LCORIO_CORE_OFFSET ((sizeof(ltask) + 15) & ~(size_t)15)
#define LT_BAREYIELD       0x40 /* last yield was a plain coroutine.yield */

/* weak-keyed side tables in the registry, for rare per-task data */
#define LCORIO_NAMES_KEY     "corio.names"     /* task -> name (set_name) */
#define LCORIO_CALLBACKS_KEY "corio.donecb"    /* task -> {cb, ...} */
#define LCORIO_CANCELMSG_KEY "corio.cancelmsg" /* task -> cancel message */
/* side[key][task at idx], pushed; returns its type */
int lcorio_side_get(lua_State *L, const char *key, int idx);
/* side[key][task at idx] = the value at the top (popped) */
void lcorio_side_set(lua_State *L, const char *key, int idx);

/* A coroutine object: user value 1 is a thread holding fn and its args. */
typedef struct lcoro {
  int consumed; /* turned into a task */
  int warned;   /* "never awaited" said once */
} lcoro;
int lcorio_async_call(lua_State *L); /* the function corio.async returns */
/* corio.set_task_budget(seconds | nil): ltask.c (a CPU budget per task) */
int lcorio_set_task_budget(lua_State *L);

/* The open state, or raise "runtime is closed". */
lcorio_state *lcorio_open_state(lua_State *L);
/*
** Push a task for the function at fidx with nargs arguments after it (or,
** fidx 0, for the coroutine at the top, popped).  hidden: no Task-N.
*/
ltask *lcorio_task_new(lua_State *L, int fidx, int nargs, int hidden);

/*
** Store the outcome (`n` values at the top, popped) in the task at tidx,
** finish the runtime task (waiters and done callbacks run) and drop the
** anchor.
*/
void lcorio_complete(lua_State *L, ltask *lt, int tidx, corio_task_state st,
                     int n);
/*
** Complete a cancelled task that holds no frame to unwind (never ran, or
** a future) without allocating.
*/
void lcorio_cancel_unstarted(lua_State *L, ltask *lt, int tidx);
void lcorio_push_cancelled(lua_State *L, int tidx); /* its CancelledError */
void lcorio_push_error(lua_State *L, ltask *lt, int tidx); /* stored error */

void lcorio_push_name(lua_State *L, ltask *lt, int tidx); /* "Task-N" */
int lcorio_task_tostring(lua_State *L);                   /* __tostring */
/* Push the task's function from its coroutine co (0: none, nothing). */
int lcorio_push_task_function(lua_State *L, lua_State *co);
/* Push "name at source:line" of the function at idx. */
void lcorio_push_funcname(lua_State *L, int idx);

void lcorio_coro_open(lua_State *L); /* lcoro.c: its functions, metatable */

#endif
