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
** - Two runtimes in two threads are independent: each has its own loop,
**   tasks, timers, transfers and servers.  What is shared by the whole
**   process is listed in "Process-wide settings" below: the allocator and
**   the body pool size, set before any runtime exists.
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
** Process-wide settings
** ===================================================================
**
** The only state corio shares between runtimes: plain variables, read
** by every runtime of the process without a lock.  Set them before the
** first runtime is made (corio_rt_new) or after the last one is freed;
** while any runtime exists, in any thread, both calls refuse with
** CORIO_EBUSY and change nothing.  The count of live runtimes is atomic,
** but a call racing corio_rt_new in another thread is still the host's
** mistake: set these at start-up.
*/

/*
** Name: corio_replace_allocator
** Desc: Replace the allocator of everything corio allocates (not libuv's,
**       not libcurl's).  A response of corio_fetch_blocking (which needs
**       no runtime) must be freed with the allocator that made it: free
**       it before replacing.
** Returns: 0; CORIO_EINVAL if any function is NULL; CORIO_EBUSY while a
**          runtime exists.
*/
typedef void *(*corio_malloc_fn)(size_t size);
typedef void *(*corio_realloc_fn)(void *ptr, size_t size);
typedef void (*corio_free_fn)(void *ptr);
CORIO_EXTERN int corio_replace_allocator(corio_malloc_fn m, corio_realloc_fn r,
                                         corio_free_fn f);

/*
** Name: corio_set_body_pool
** Desc: How many bytes of big response-body buffers (over 64 KiB each)
**       each runtime keeps for its next responses; 16 MiB unless set.
**       With glibc's defaults a freed big block goes back to the system,
**       and the next body faults its pages in again, one fault per 4 KiB.
**       A host whose allocator keeps freed memory (the corio executable
**       raises glibc's trim and mmap thresholds) sets 0: a buffer is then
**       freed once its callback returns, and the host's copy of the next
**       body reuses it while it is still in the cache, instead of
**       touching fresh pages.
** Returns: 0, or CORIO_EBUSY while a runtime exists.
*/
#define CORIO_BODY_POOL_DEFAULT (16 * 1024 * 1024)
CORIO_EXTERN int corio_set_body_pool(size_t bytes);

/* }================================================================== */

/*
** {==================================================================
** HTTP characters: the one rule of the client, the server and bindings
** ===================================================================
*/

/* Non-zero if the n bytes at s are an RFC 9110 token (n > 0): what a
   method or a header name may be. */
CORIO_EXTERN int corio_http_token_ok(const char *s, size_t n);

/* Non-zero if the n bytes at s may be a header value: no control
   character but tab (so no CR, LF, NUL, DEL); bytes >= 0x80 pass.  s may
   be NULL when n is 0. */
CORIO_EXTERN int corio_http_value_ok(const char *s, size_t n);

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
** Desc: Run the done callbacks still queued for a next turn (added to
**       tasks already done: corio_task_add_done), then close the runtime:
**       transfers are cancelled, sessions freed, servers still open
**       closed (see "Server" below), its handles closed; run the loop
**       until they are, and free it (and its loop if owned).
** Returns: 0, or CORIO_EBUSY with nothing torn down while tasks are
**          unfinished (those callbacks may start some), while the loop
**          is running, or, on a loop the runtime owns, while a handle
**          that is not the runtime's is open on it.  One CORIO_EBUSY only
**          comes after the teardown: a callback run by it (a server's
**          close callback) opened a handle on the owned loop or stopped
**          it; the runtime is then closed but not freed, and a second
**          call, once that handle is closed, frees it.
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

/*
** Driving the loop from another event loop.  A host with a loop of its own
** (a GUI's, Python's asyncio) can run the runtime in its own thread without
** blocking in corio_rt_run: it polls corio_rt_backend_fd for reading, and
** calls corio_rt_step once at the start, then when the fd is readable,
** when the timeout the last step gave has passed, and after starting work
** from outside a callback (a fetch, a task): libuv adds a new descriptor
** to the backend at its next turn, and a new timer counts from then.
** Everything then runs in the host's thread: no second thread, no lock to
** hand over (what a binding whose interpreter has one saves most on).
**
**   for (;;) {                        (the host's loop, in short)
**     corio_rt_step(rt, &ms);
**     poll({corio_rt_backend_fd(rt), POLLIN, and the host's own}, ms);
**   }
**
** Name: corio_rt_backend_fd
** Desc: The loop's backend descriptor (epoll's or kqueue's): readable when
**       the loop has I/O to handle, posts (corio_rt_post) included.  Poll
**       it for reading only; never read or close it.
** Returns: the fd, or -1 where the platform has none (Windows) or rt is
**          NULL.
*/
CORIO_EXTERN int corio_rt_backend_fd(const corio_rt *rt);

/*
** Name: corio_rt_step
** Desc: Run one turn of the loop without blocking (corio_rt_run's
**       UV_RUN_NOWAIT, except that the turn always polls for I/O, even
**       when nothing keeps the loop alive: a post's wakeup is consumed,
**       and the fd stops being readable).  Then set *timeout_ms (when not
**       NULL) to how long the host may wait on the fd before the next
**       step: 0 means step again without waiting (ready work, a timer
**       due), -1 no limit (no timer armed; only the fd can bring work).
**       Not reentrant, as corio_rt_run.
** Returns: 1 while work remains (transfers, timers, tasks: the loop is
**          alive), 0 when nothing is left, CORIO_EBUSY (*timeout_ms -1)
**          when called while the loop is running, CORIO_EINVAL if rt is
**          NULL.
*/
CORIO_EXTERN int corio_rt_step(corio_rt *rt, int *timeout_ms);

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

/*
** Posted callback: runs on the loop thread with `status` 0, at the loop's
** next turn; or with CORIO_ECLOSED from inside corio_rt_free, when the
** runtime began closing before that turn came.  With CORIO_ECLOSED it
** must only release what `data` holds: start no task (corio_rt_free
** would then return CORIO_EBUSY) and no fetch (it would be cancelled).
*/
typedef void (*corio_post_fn)(corio_rt *rt, int status, void *data);

/*
** Name: corio_rt_post
** Desc: The one call another thread may make (any thread, the loop's
**       own included): queue `fn(rt, status, data)` to run on the loop
**       thread at its next turn.  Posts run in the order they were made
**       (per posting thread; posts of different threads interleave in
**       the order they took the runtime's lock).  A callback that posts
**       again runs at the following turn, not in the same batch.  The
**       loop wakes even while it waits for I/O; a loop that is not
**       running runs the callbacks when it runs next.  Waiting for posts
**       is not work by itself (see corio_rt_keep_alive): a loop with
**       nothing else to do returns from corio_rt_run without polling.
**       `data` is the caller's: corio never reads or frees it, and each
**       accepted post
**       calls `fn` exactly once, so `fn` may own and free it.  Posting
**       to a runtime that corio_rt_free has freed is undefined: the host
**       stops its threads' posts (they got CORIO_ECLOSED, or were
**       joined) before corio_rt_free can return.
** Returns: 0; CORIO_EINVAL if rt or fn is NULL; CORIO_ECLOSED once
**          corio_rt_free has begun tearing the runtime down (it passed
**          its CORIO_EBUSY checks): `fn` is then never called; those
**          accepted before run from corio_rt_free with CORIO_ECLOSED;
**          CORIO_ENOMEM.
*/
CORIO_EXTERN int corio_rt_post(corio_rt *rt, corio_post_fn fn, void *data);

/*
** Name: corio_rt_keep_alive
** Desc: Whether waiting for posts keeps the loop alive.  Off by default:
**       corio_rt_run(rt, UV_RUN_DEFAULT) returns once nothing else is left
**       to do.  On, it waits for posts until corio_rt_stop (called from a
**       posted callback, say): what a thread that only serves another
**       thread's requests (a binding's loop thread) runs.  Loop thread
**       only.
*/
CORIO_EXTERN void corio_rt_keep_alive(corio_rt *rt, int on);

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

/*
** How many cancellation requests (corio_task_cancel) the task has had and
** not withdrawn (corio_task_uncancel), delivered or not: asyncio's
** Task.cancelling().  A deadline that cancels the task itself compares it
** with the count it saw at its start to tell its own cancel from one that
** came from outside in the same turn.
*/
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

/*
** Withdraw one cancellation request (asyncio's uncancel): the count goes
** down by one, and when it reaches 0 a request not yet delivered is
** dropped.  Returns the requests left.
*/
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
**
** A cancel requested while the task ran does not make corio_task_suspend
** call `cancel`: the wait is armed, the task is queued with
** CORIO_ECANCELED, and `cancel` runs from the loop just before the task
** is resumed.  Until then the op is armed as usual: an owner that
** completes it and wakes the task first released it, so `cancel` does
** not run (the task still gets CORIO_ECANCELED).
*/
typedef void (*corio_cancel_fn)(corio_task *task, void *op);
CORIO_EXTERN int corio_task_suspend(corio_task *task, corio_cancel_fn cancel,
                                    void *op);
CORIO_EXTERN int corio_task_wake(corio_task *task, int status);

/* The op given to corio_task_suspend while the task waits on it, or NULL. */
CORIO_EXTERN void *corio_task_op(const corio_task *task);

/*
** Done callbacks run exactly once, with the task done, in the order added,
** on the loop: when the task is done; on a task already done, at the next
** turn, or from corio_rt_free if the runtime is freed before that turn (a
** `ud` the callback owns is always released).  corio_task_remove_done
** removes every registration of (cb, ud) still to run, those queued for
** the next turn included, and returns how many.
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

/*
** The one rule for a duration given in seconds, which the runtime and
** the bindings follow: rounded up to the next millisecond, so that a wait
** never ends before it was asked to, and a positive duration is at least
** 1 ms.  0, a negative duration and NaN give 0 (callers refuse them as
** they see fit).
*/
CORIO_EXTERN uint64_t corio_seconds_to_ms(double s);

/* }================================================================== */

/* the HTTP client, the server, URLs and Redis, in headers of their own */
#include "corio/fetch.h"
#include "corio/server.h"
#include "corio/url.h"
#include "corio/redis.h"

#ifdef __cplusplus
}
#endif

#endif /* CORIO_H */
