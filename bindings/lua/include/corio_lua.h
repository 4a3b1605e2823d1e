/*
** corio_lua.h: embedding corio's Lua module in a host program.
*/
#ifndef CORIO_LUA_H
#define CORIO_LUA_H

#include <lua.h>

#include "corio.h"

/* Open the module: leaves the `corio` table on the stack (luaL_requiref
   it, or let `require "corio"` find it). */
int luaopen_corio(lua_State *L);

/* Make the module use the host's runtime instead of creating its own.
   Call before luaopen_corio; the host frees the runtime after lua_close. */
void corio_lua_set_runtime(lua_State *L, corio_rt *rt);

/* The runtime the module of this state runs on (NULL before it opens). */
corio_rt *corio_lua_runtime(lua_State *L);

/* Cancel every task of the state (Ctrl-C): each gets CancelledError at its
   wait, so its cleanup runs when the loop runs next; the Lua code running
   in worker threads (to_thread, threads.map) is interrupted, its items
   fail.  Returns how many tasks. */
int corio_lua_cancel_all(lua_State *L);

/* Push a sequence of the state's pending tasks, those the script made (a
   wait's own hidden tasks aside): what Ctrl-C lists.  May raise (memory). */
void corio_lua_push_pending(lua_State *L);

/* A message handler for lua_pcall: the error as a string, with a
   traceback (an error object is shown through its __tostring). */
int corio_lua_traceback(lua_State *L);

/* Where the module publishes the task it is resuming (NULL between tasks).
   A Ctrl-C handler reads it to stop a busy loop the way lua.c does: the
   loop cannot turn while Lua code runs, so the handler itself sets a hook
   (lua_sethook is async-signal-safe) on that coroutine and on the main
   thread.  The slot lives as long as the state. */
lua_State *volatile *corio_lua_running(lua_State *L);

/* Run the loop until no task is left (what the corio executable does after
   the script).  Returns 0, or the CORIO_E* code of a failure. */
int corio_lua_run_pending(lua_State *L);

/*
** Seeing what tasks do.  dump_tasks writes every pending task (name, spawn
** site, what it waits on and for how long, traceback) to stderr: what the
** corio executable does on SIGQUIT; call it on the loop thread, between
** runs (it returns lua_pcall's status).  trace_start writes a Chrome
** trace-event file (0, or a negative CORIO_E* code); trace_stop completes
** it.  timeline renders such a trace as an SVG chart (0, or non-zero with
** the error message printed).
*/
int corio_lua_dump_tasks(lua_State *L);
int corio_lua_trace_start(lua_State *L, const char *path);
void corio_lua_trace_stop(lua_State *L);
int corio_lua_timeline(lua_State *L, const char *trace, const char *svg);

#endif
