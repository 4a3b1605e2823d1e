/*
** corio.h: the public C API of the corio runtime.
**
** corio runs tasks on one libuv loop, in one thread.  A task is a
** stackless continuation: a resume callback plus a `void *data`.  The
** scheduler calls the resume callback when the task is ready; the callback
** runs until the task either waits on an operation (sleep, another task,
** a fetch, ...), yields, or finishes.  The Lua binding backs each task with
** a Lua coroutine; a C host can back it with a plain state machine.
**
** Rules that hold everywhere:
** - Functions that can fail return a negative CORIO_E* code (0 on success)
**   or NULL; corio_strerror() and corio_err_name() describe a code.
** - When a function that takes a callback fails, the callback is never
**   called.
** - Every callback runs on the loop thread, from the loop, never from inside
**   the call that registered it.
** - There is no global state: two runtimes in two threads are independent.
** - Pointers passed in are borrowed unless the comment says otherwise.
*/
#ifndef CORIO_H
#define CORIO_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#if defined(CORIO_BUILDING)
#define CORIO_EXTERN __declspec(dllexport)
#else
#define CORIO_EXTERN __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define CORIO_EXTERN __attribute__((visibility("default")))
#else
#define CORIO_EXTERN
#endif

#define CORIO_VERSION_MAJOR 0
#define CORIO_VERSION_MINOR 1
#define CORIO_VERSION_PATCH 0

/* "0.1.0" */
CORIO_EXTERN const char *corio_version_string(void);

/*
** {==================================================================
** Errors
** ===================================================================
*/

/* XX(name, value, message).  Values are negative and stable. */
#define CORIO_ERRNO_MAP(XX)                                                    \
  XX(ENOMEM, -1, "not enough memory")                                          \
  XX(EINVAL, -2, "invalid argument")                                           \
  XX(ECANCELED, -3, "operation cancelled")                                     \
  XX(ETIMEDOUT, -4, "operation timed out")                                     \
  XX(EBUSY, -5, "resource busy: tasks or handles still alive")                 \
  XX(ESTATE, -6, "invalid state for this operation")                           \
  XX(EFAILED, -7, "task failed")                                               \
  XX(EIO, -8, "input/output error")                                            \
  XX(EDNS, -9, "could not resolve host name")                                  \
  XX(ECONNECT, -10, "could not connect")                                       \
  XX(ETLS, -11, "TLS error")                                                   \
  XX(ERESET, -12, "connection reset or closed before the end")                 \
  XX(EPROTO, -13, "protocol error")                                            \
  XX(ETOOLARGE, -14, "size limit exceeded")                                    \
  XX(EURL, -15, "invalid URL")                                                 \
  XX(ESCHEME, -16, "unsupported URL scheme")                                   \
  XX(EADDRINUSE, -17, "address already in use")                                \
  XX(EMFILE, -18, "too many open files")                                       \
  XX(ECLOSED, -19, "object closed")

typedef enum {
#define XX(name, value, msg) CORIO_##name = value,
  CORIO_ERRNO_MAP(XX)
#undef XX
} corio_errno;

/* Name ("ECANCELED") and message of an error code; unknown codes get
   "EUNKNOWN" / "unknown error".  Never NULL. */
CORIO_EXTERN const char *corio_err_name(int err);
CORIO_EXTERN const char *corio_strerror(int err);

/* Translate a libuv error code (UV_E*) into a corio code. */
CORIO_EXTERN int corio_translate_uv_error(int uverr);

/* }================================================================== */

/*
** {==================================================================
** Memory
** ===================================================================
*/

/* Replace the allocator used by corio (not libuv's, not libcurl's).  Call it
   before any runtime exists.  Returns 0 or CORIO_EINVAL if any is NULL. */
typedef void *(*corio_malloc_fn)(size_t size);
typedef void *(*corio_realloc_fn)(void *ptr, size_t size);
typedef void (*corio_free_fn)(void *ptr);
CORIO_EXTERN int corio_replace_allocator(corio_malloc_fn m, corio_realloc_fn r,
                                         corio_free_fn f);

/* }================================================================== */

/*
** {==================================================================
** Runtime: one per thread, owning or borrowing a uv_loop_t
** ===================================================================
*/

typedef struct corio_rt corio_rt;

/*
** Name: corio_rt_new
** Desc: Create a runtime.  `loop` NULL makes the runtime own a new loop;
**       otherwise the loop is borrowed from the host, which keeps running it
**       (corio_rt_run or its own uv_run) and closes it after corio_rt_free.
** Returns: the runtime, or NULL when out of memory or the loop fails.
*/
CORIO_EXTERN corio_rt *corio_rt_new(uv_loop_t *loop);

/*
** Name: corio_rt_free
** Desc: Close the runtime's handles, run the loop until they are closed, and
**       free it (and its loop if owned).
** Returns: 0, or CORIO_EBUSY (and nothing freed) while tasks are unfinished.
*/
CORIO_EXTERN int corio_rt_free(corio_rt *rt);

/* The loop this runtime runs on. */
CORIO_EXTERN uv_loop_t *corio_rt_loop(corio_rt *rt);

/*
** Name: corio_rt_run
** Desc: Run the loop.  mode is UV_RUN_DEFAULT (until nothing is left to do
**       or corio_rt_stop), UV_RUN_ONCE or UV_RUN_NOWAIT.  Not reentrant:
**       never call it from a callback.
** Returns: 0 when nothing is left to do, 1 when work remains, CORIO_EBUSY
**          when called while the loop is already running.
*/
CORIO_EXTERN int corio_rt_run(corio_rt *rt, uv_run_mode mode);

/* Make the running corio_rt_run return at the end of this iteration. */
CORIO_EXTERN void corio_rt_stop(corio_rt *rt);

/* Non-zero while corio_rt_run is on the stack. */
CORIO_EXTERN int corio_rt_running(const corio_rt *rt);

/* The loop's time in milliseconds (uv_now) and a monotonic clock in
   seconds with sub-millisecond resolution. */
CORIO_EXTERN uint64_t corio_rt_now(const corio_rt *rt);
CORIO_EXTERN double corio_rt_time(const corio_rt *rt);

/* Live counts. */
typedef struct corio_rt_stats {
  size_t tasks;    /* tasks created and not finished */
  size_t ready;    /* tasks waiting in the ready queue */
  size_t sleeping; /* tasks in corio_sleep, plus armed corio_timers */
} corio_rt_stats;
CORIO_EXTERN void corio_rt_get_stats(const corio_rt *rt, corio_rt_stats *out);

/* The host's slot. */
CORIO_EXTERN void *corio_rt_get_data(const corio_rt *rt);
CORIO_EXTERN void corio_rt_set_data(corio_rt *rt, void *data);

/* Raise this process's open-file soft limit to its hard limit (done by
   corio_rt_new too).  Returns the new soft limit, or a negative code. */
CORIO_EXTERN long corio_raise_fd_limit(void);

/* }================================================================== */

/*
** {==================================================================
** Tasks
** ===================================================================
*/

typedef struct corio_task corio_task;

typedef enum {
  CORIO_TASK_PENDING = 0, /* created, waiting to run or waiting on an op */
  CORIO_TASK_RUNNING,     /* inside its resume callback right now */
  CORIO_TASK_FINISHED,    /* returned normally */
  CORIO_TASK_FAILED,      /* raised an error */
  CORIO_TASK_CANCELLED    /* finished by cancellation */
} corio_task_state;

/*
** Resume callback: the scheduler calls it when the task is ready to go on.
** `status` is 0 on a normal wake-up (first run, op completed), or the
** negative code that ended the wait: CORIO_ECANCELED after
** corio_task_cancel, CORIO_ETIMEDOUT for a wait's timeout.  Before
** returning, the callback must do exactly one of: start a wait (corio_sleep,
** corio_task_await, corio_wait, corio_task_suspend, an op), call
** corio_task_yield, or call corio_task_finish.
*/
typedef void (*corio_resume_fn)(corio_task *task, int status);

/* Size of a task, for callers that supply the memory themselves. */
CORIO_EXTERN size_t corio_task_size(void);

/*
** Name: corio_task_init
** Desc: Make a task in caller-supplied memory of corio_task_size() bytes
**       (suitably aligned for pointers) and schedule its first run.  The
**       memory must stay valid until the task is finished and its done
**       callbacks have run.  `resume` NULL makes a future: it never runs and
**       is completed from outside with corio_task_finish.
** Returns: the task (== mem).
*/
CORIO_EXTERN corio_task *corio_task_init(corio_rt *rt, void *mem,
                                         corio_resume_fn resume, void *data);

/* corio_task_init in memory from corio's allocator; free it with
   corio_task_free once finished.  NULL when out of memory. */
CORIO_EXTERN corio_task *corio_task_new(corio_rt *rt, corio_resume_fn resume,
                                        void *data);

/* Free a task made with corio_task_new.  CORIO_EBUSY if not finished. */
CORIO_EXTERN int corio_task_free(corio_task *task);

CORIO_EXTERN corio_rt *corio_task_rt(const corio_task *task);
CORIO_EXTERN corio_task_state corio_task_get_state(const corio_task *task);

/* Non-zero once the task is finished, failed or cancelled. */
CORIO_EXTERN int corio_task_done(const corio_task *task);

/* Non-zero once corio_task_cancel was called and not yet consumed. */
CORIO_EXTERN int corio_task_cancelling(const corio_task *task);

/* The task whose resume callback is running now, or NULL. */
CORIO_EXTERN corio_task *corio_current_task(const corio_rt *rt);

CORIO_EXTERN void *corio_task_get_data(const corio_task *task);
CORIO_EXTERN void corio_task_set_data(corio_task *task, void *data);

/*
** Name: corio_task_finish
** Desc: Set the final state (FINISHED, FAILED or CANCELLED) and run the
**       done callbacks in the order they were added.  Called by the task's
**       own resume callback, or on a future from anywhere on the loop
**       thread.  A wait still armed is cancelled first (its cleanup runs).
** Returns: 0, CORIO_ESTATE if already done, CORIO_EINVAL for a bad state.
*/
CORIO_EXTERN int corio_task_finish(corio_task *task, corio_task_state state);

/*
** Name: corio_task_cancel
** Desc: Request cancellation.  A task waiting on an op has the op's cleanup
**       run and is resumed with CORIO_ECANCELED; a ready task is resumed with
**       CORIO_ECANCELED instead of 0; a running task gets CORIO_ECANCELED at
**       its next wait.  A future is finished as CANCELLED at once.
** Returns: 1 if the request was taken, 0 if the task is already done.
*/
CORIO_EXTERN int corio_task_cancel(corio_task *task);

/* Undo a cancellation request not yet delivered (asyncio's uncancel).
   Returns 1 if there was one. */
CORIO_EXTERN int corio_task_uncancel(corio_task *task);

/* Put the running task back at the end of the ready queue. */
CORIO_EXTERN int corio_task_yield(corio_task *task);

/*
** Name: corio_sleep
** Desc: Make the running task wait `ms` milliseconds.  No libuv handle per
**       sleeping task: all sleeps share one timer.  Equal deadlines wake in
**       the order the sleeps were started.
** Returns: 0, or CORIO_ESTATE if the task is not running.
*/
CORIO_EXTERN int corio_sleep(corio_task *task, uint64_t ms);

/*
** Name: corio_task_await
** Desc: Make the running task wait until `target` is done (resumed with 0),
**       or until cancelled.  `target` must stay valid until then.  If
**       `target` is already done, the task is resumed at the next turn.
** Returns: 0, CORIO_ESTATE (task not running), CORIO_EINVAL (target==task),
**          CORIO_ENOMEM.
*/
CORIO_EXTERN int corio_task_await(corio_task *task, corio_task *target);

typedef enum {
  CORIO_WAIT_ALL_COMPLETED = 0,
  CORIO_WAIT_FIRST_COMPLETED,
  CORIO_WAIT_FIRST_EXCEPTION /* a target FAILED (cancelled does not count) */
} corio_wait_mode;

/*
** Name: corio_wait
** Desc: Make the running task wait on `n` targets until `mode` is met, or
**       `timeout_ms` passes (resumed with CORIO_ETIMEDOUT; negative means no
**       timeout), or it is cancelled.  The targets array and the targets
**       must stay valid until the task is resumed.  Nothing is cancelled on
**       timeout: each target's state says what is done.
** Returns: 0, CORIO_ESTATE, CORIO_ENOMEM.
*/
CORIO_EXTERN int corio_wait(corio_task *task, corio_task *const *targets,
                            size_t n, corio_wait_mode mode, int64_t timeout_ms);

/*
** Pending operations defined outside the scheduler (fetch, accept, pool
** work, a binding's own waits) use these two calls.  corio_task_suspend
** makes the running task wait; `cancel` is the op's cleanup, called once
** if the task is cancelled while waiting (it must release the op; the task
** is then resumed with CORIO_ECANCELED).  corio_task_wake ends the wait:
** the task is queued and resumed with `status`.
*/
typedef void (*corio_cancel_fn)(corio_task *task, void *op);
CORIO_EXTERN int corio_task_suspend(corio_task *task, corio_cancel_fn cancel,
                                    void *op);
CORIO_EXTERN int corio_task_wake(corio_task *task, int status);

/* The op given to corio_task_suspend while the task waits on it, or NULL. */
CORIO_EXTERN void *corio_task_op(const corio_task *task);

/*
** Done callbacks run once, when the task is done, in the order added, on the
** loop; on a task already done the callback runs at the next turn.
** corio_task_remove_done removes every registration of (cb, ud) still to
** run and returns how many.
*/
typedef void (*corio_done_fn)(corio_task *task, void *ud);
CORIO_EXTERN int corio_task_add_done(corio_task *task, corio_done_fn cb,
                                     void *ud);
CORIO_EXTERN int corio_task_remove_done(corio_task *task, corio_done_fn cb,
                                        void *ud);

/* }================================================================== */

/*
** {==================================================================
** Timers: callbacks after a delay, on the runtime's shared timer
** ===================================================================
*/

typedef struct corio_timer corio_timer;
typedef void (*corio_timer_fn)(corio_timer *timer, void *ud);

/* Call `cb(timer, ud)` once, `ms` milliseconds from now.  The timer is
   freed after the callback returns.  NULL when out of memory. */
CORIO_EXTERN corio_timer *corio_timer_start(corio_rt *rt, uint64_t ms,
                                            corio_timer_fn cb, void *ud);

/* Disarm and free a timer whose callback has not run yet. */
CORIO_EXTERN void corio_timer_stop(corio_timer *timer);

/* }================================================================== */

/* @@ FETCH SECTION @@ (HTTP client: curl multi_socket on the loop) */

/* @@ SERVER SECTION @@ (HTTP/1.1 server on the loop) */

#ifdef __cplusplus
}
#endif

#endif /* CORIO_H */
