/*
** lprocess.h: worker processes, shared by lprocess.c (the parent: the Lua
** API, spawning and feeding workers) and lprocess_worker.c (the child).
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

/*
** A job is one processes.map call.  It is freed when its last reference
** goes, all on the loop thread: the caller's box (a userdata on the waiting
** task's stack), the armed wait, and one per open libuv handle (a pipe, a
** process, and with a timeout a timer, per worker).
*/
typedef struct pjob pjob;

/* The state's live jobs, for lua_close (a userdata in the registry). */
typedef struct phub {
  pjob *live;
} phub;

typedef struct pworker {
  uv_process_t proc;
  uv_pipe_t pipe;
  uv_timer_t timer; /* the held input's timeout (has_timer) */
  pjob *job;
  struct pworker *next; /* the job's workers */
  size_t held;          /* the input it runs, or (size_t)-1 */
  char *rbuf;           /* bytes read and not yet parsed */
  size_t rlen, rcap;
  int handles; /* open (2 or 3 after spawn, 0 when it can be freed) */
  int exited, pipe_closed, gone;
  int has_timer, ready, timed_out;
  int64_t status;
  int signal;
} pworker;

struct pjob {
  phub *hub; /* NULL once the hub is gone (lua_close) */
  pjob *live_prev, *live_next;
  int refs;
  corio_task *task; /* the waiting task; NULL when there is none */
  uv_loop_t *loop;
  char *exe, *bootstrap;
  char *fn;
  size_t fn_len;
  char *in;
  size_t *in_off; /* input i is in[in_off[i] .. in_off[i + 1]) */
  size_t nitems, next, ndone;
  lcopy_out *outs;
  size_t nprocs;  /* spawned and not reaped yet */
  int stopping;   /* cancelled: no more inputs, no new workers */
  int spawn_err;  /* why the last spawn failed */
  double timeout; /* seconds an input may run; 0: no limit */
  pworker *workers;
};

/* Drop a reference; the last one frees the job. */
void lprocess_job_unref(pjob *j);
/* Start one worker and give it the function and its first input.
   Returns 0 or a libuv code (also kept in j->spawn_err). */
int lprocess_spawn_worker(pjob *j);
/* No more inputs; kill the workers.  They are reaped as the loop goes. */
void lprocess_stop_all(pjob *j);
/* The corio_cancel_fn of a task waiting on a job. */
void lprocess_job_cancel(corio_task *task, void *job);

/* Fill a header for a payload of `len` bytes. */
void lprocess_header(char h[LPROC_HEADER], char type, uint32_t index,
                     size_t len);
/* Read a header: returns the payload length, or (size_t)-1 if it is
   malformed (too long). */
size_t lprocess_parse_header(const char h[LPROC_HEADER], char *type,
                             uint32_t *index);

/* Push the `-e` chunk that makes a fresh interpreter a worker. */
void lprocess_push_bootstrap(lua_State *L);
/* corio.processes._worker(fd): the worker's loop; never returns. */
int lprocess_worker(lua_State *L);

#endif
