/*
** lprocess.h: worker processes, shared by lprocess.c (the parent: the Lua
** API, spawning and feeding workers) and lcorio_process_worker.c (the child).
**
** A worker is this very program, started as `exe -e <bootstrap>`: the
** corio executable, or the Lua interpreter that loaded corio.so, which the
** bootstrap loads again by its path.  Parent and worker talk over a socket
** pair that is the worker's fd 3 (stdin is /dev/null; stdout and stderr are
** inherited, so prints show).  Messages are frames: a header (uint32 length
** of what follows it, a type byte, a uint32 item index) and a payload:
**   parent -> worker: 'F' the function's bytecode, once;
**                     'I' an input (a tuple, lcopy.h), one at a time;
**   worker -> parent: 'R' ready (the function is loaded), once;
**                     'O' the outcome of that input.
** End of input (the parent closes its end) makes the worker exit.
**
** The parent's side is lprocess.c, the worker's lcorio_process_worker.c.
*/
#ifndef LPROCESS_H
#define LPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "lcorio.h"
#include "lcopy.h"

#define LPROC_FN        'F'
#define LPROC_ITEM      'I'
#define LPROC_OUT       'O'
#define LPROC_READY     'R'
#define LPROC_HEADER    9
#define LPROC_MAX_FRAME ((size_t)1 << 30)
#define LPROC_FD        3

/* Fill a header for a payload of `len` bytes. */
void lcorio_process_header(char h[LPROC_HEADER], char type, uint32_t index,
                           size_t len);
/* Read a header: returns the payload length, or (size_t)-1 if it is
   malformed (too long). */
size_t lcorio_process_parse_header(const char h[LPROC_HEADER], char *type,
                                   uint32_t *index);

/* Push the `-e` chunk that makes a fresh interpreter a worker. */
void lcorio_process_push_bootstrap(lua_State *L);
/* The worker's loop, worker(fd); never returns.  Not in the module table:
   registry[LPROC_WORKER_KEY], where the bootstrap finds it. */
#define LPROC_WORKER_KEY "corio.processes.worker"
int lcorio_process_worker(lua_State *L);

#endif
