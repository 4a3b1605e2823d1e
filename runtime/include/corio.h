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

/* }================================================================== */

/*
** {==================================================================
** HTTP client: libcurl's multi_socket API on the runtime's loop
** ===================================================================
**
** One transfer is a corio_fetch.  Transfers run in a session
** (corio_session), which holds a pool of keep-alive connections and the
** connection limits; every runtime has a default session made on first
** use.  All sessions of a runtime share one DNS cache and TLS session
** cache.  Only http and https are spoken, on redirects too.
**
** Costs.  A transfer in flight holds about 11 KiB of the process's memory
** (mostly libcurl's own state) plus libcurl's receive buffer: 64 KiB while
** fewer than 128 transfers are in flight in the runtime, 16 KiB under
** 1000, 1 KiB beyond (memory over speed for big bodies when the crowd is
** large; counted when libcurl starts the transfer).  At most 256
** transfers are handed to libcurl and not yet started by it; more started
** at once wait their turn, in order (a burst of 10,000 goes in over 40
** loop turns, which keeps libcurl's connect-time memory from piling up).
** Finished transfers leave their objects in a pool that keeps at most 256
** of them and their big body buffers up to corio_set_body_pool.  Idle
** keep-alive connections cost no system call while they wait (their
** sockets stay registered; see corio_fetch_stats.idle).  Sockets are made
** close-on-exec.
**
** Completion: the callback runs exactly once per started transfer, on the
** loop, never from inside corio_fetch_start or corio_fetch_cancel.  Its
** `status` is 0 when a response arrived (whatever its HTTP status: 404 and
** 502 are responses), or a negative code:
**   CORIO_EDNS       the host name did not resolve
**   CORIO_ECONNECT   the connection was refused or could not be made
**   CORIO_ETIMEDOUT  `timeout` or `connect_timeout` passed
**   CORIO_ETLS       TLS handshake or certificate verification failed
**   CORIO_ERESET     the connection closed or reset before the response
**                    was complete (short body, nothing received)
**   CORIO_EPROTO     malformed response (not HTTP, a bad status line or
**                    chunked encoding), HTTP/2 error, or more redirects
**                    than max_redirects ("Maximum (N) redirects followed")
**   CORIO_ETOOLARGE  the body exceeded max_body, or headers exceeded 1 MiB
**   CORIO_EURL       the URL (of a redirect, say) could not be parsed
**   CORIO_ESCHEME    a redirect to a scheme other than http/https
**   CORIO_ECANCELED  corio_fetch_cancel, corio_session_free, corio_rt_free
**   CORIO_ENOMEM, CORIO_EIO  out of memory, anything else
** ===================================================================
*/

typedef struct corio_fetch corio_fetch;     /* one transfer in flight */
typedef struct corio_session corio_session; /* limits + connection pool */

/* One header field.  Both strings are NUL-terminated. */
typedef struct corio_header {
  const char *name;
  const char *value;
} corio_header;

/*
** An allocator with lua_Alloc's contract: (ud, NULL, 0, n) allocates n
** bytes, (ud, p, old, n) resizes the block p of old bytes to n, (ud, p,
** old, 0) frees it and returns NULL.  NULL when out of memory (the block
** is left as it was).
*/
typedef void *(*corio_alloc_fn)(void *ud, void *ptr, size_t osize,
                                size_t nsize);

/* corio_request.http_version */
typedef enum {
  CORIO_HTTP_DEFAULT = 0, /* HTTP/2 over TLS when the server offers it,
                             HTTP/1.1 otherwise */
  CORIO_HTTP_1_0,
  CORIO_HTTP_1_1,
  CORIO_HTTP_2,     /* HTTP/2 over TLS, HTTP/1.1 upgrade attempt otherwise */
  CORIO_HTTP_2_ONLY /* HTTP/2 prior knowledge, also on cleartext */
} corio_http_version;

#define CORIO_FETCH_TIMEOUT         300.0 /* default total timeout, seconds */
#define CORIO_FETCH_CONNECT_TIMEOUT 30.0  /* default connect timeout */
#define CORIO_FETCH_MAX_REDIRECTS   10    /* default redirect limit */

/*
** A request.  Fill it after corio_request_init (which sets the defaults);
** every pointer is borrowed for the duration of the call that takes the
** request only: corio_fetch_start copies all of it.
**
**   url              http:// or https:// URL (required)
**   method           NULL: GET, or POST when body is set.  "HEAD" sends no
**                    body back.  Any other token is sent as is.
**   headers/nheaders extra request headers, sent in order; a name given
**                    here replaces libcurl's own (Host, User-Agent,
**                    Accept, Content-Type...); an empty value sends the
**                    header with an empty value.
**   body/body_len    request body (body_len bytes, may hold NULs); with a
**                    body and no Content-Type header,
**                    "application/octet-stream" is sent
**   timeout          total seconds for the whole transfer, including time
**                    spent queued behind the session's connection limits;
**                    0: CORIO_FETCH_TIMEOUT; < 0: none
**   connect_timeout  seconds for DNS + connect + TLS;
**                    0: CORIO_FETCH_CONNECT_TIMEOUT; < 0: none
**   follow_redirects non-zero: follow 3xx Location (default on)
**   max_redirects    limit when following (default 10, must be >= 0)
**   max_body         largest body accepted, in bytes; 0: no limit
**   verify_tls       non-zero: verify the peer certificate and host name
**                    (default on)
**   http_version     a corio_http_version
**   proxy            NULL: libcurl's default (the http_proxy/https_proxy/
**                    no_proxy environment); "": no proxy; else a proxy URL
**                    ("http://host:port", "socks5h://host:port")
**   body_alloc       NULL: the response body is received in a buffer of
**                    the runtime's.  Else the allocator of the block it is
**                    received in, at body_offset bytes from the block's
**                    start, which the callback may keep without a copy
**                    (corio_fetch_take_body); body_alloc_ud is its `ud`.
**                    It must work until the callback has run, or until
**                    corio_fetch_cancel returns: a cancelled transfer
**                    frees its block at once.
*/
typedef struct corio_request {
  const char *url;
  const char *method;
  const corio_header *headers;
  size_t nheaders;
  const char *body;
  size_t body_len;
  double timeout;
  double connect_timeout;
  int follow_redirects;
  int max_redirects;
  size_t max_body;
  int verify_tls;
  int http_version;
  const char *proxy;
  corio_alloc_fn body_alloc;
  void *body_alloc_ud;
  size_t body_offset;
} corio_request;

/* Set every field of `req` to its default and req->url to `url`. */
CORIO_EXTERN void corio_request_init(corio_request *req, const char *url);

/*
** A response, as the completion callback sees it.  Owned by corio: every
** pointer in it is valid only until the callback returns.
**
**   status        HTTP status of the last response (0 if none arrived)
**   headers       the header fields of the last response (after redirects
**                 and 1xx responses), in the order received, names and
**                 values as sent (folded lines joined with a space,
**                 surrounding blanks trimmed); repeated fields stay
**                 separate entries
**   body          the body, body_len bytes, followed by a NUL that
**                 body_len does not count (never NULL)
**   url           the URL of the last request (after redirects)
**   http_version  "1.0", "1.1", "2", "3", or "" when unknown
**   timing        seconds: dns, connect and tls are the durations of those
**                 phases of the last connection (0 for a reused one); ttfb
**                 and total run from the start of the transfer to the first
**                 response byte and to the end
**   error         NULL on success; on failure a message (libcurl's when it
**                 has one).  On failure the other fields hold what was
**                 received so far.
*/
typedef struct corio_fetch_timing {
  double dns, connect, tls, ttfb, total;
} corio_fetch_timing;

typedef struct corio_response {
  long status;
  const corio_header *headers;
  size_t nheaders;
  const char *body;
  size_t body_len;
  const char *url;
  const char *http_version;
  corio_fetch_timing timing;
  const char *error;
} corio_response;

/*
** Completion callback: `status` is 0 or a negative code (see above), `res`
** is never NULL.  `f` is valid until the callback returns, then reused.
*/
typedef void (*corio_fetch_cb)(corio_fetch *f, int status,
                               const corio_response *res, void *ud);

/*
** Name: corio_fetch_start
** Desc: Start a transfer in session `s` (NULL: the runtime's default
**       session).  The request is validated and copied; the caller may
**       free it as soon as this returns.  `cb(f, status, res, ud)` runs
**       once when the transfer completes, fails or is cancelled.  Refused
**       at once (the callback is never called, nothing is allocated):
**       - CORIO_EINVAL: rt, req, req->url or cb NULL; a method or header
**         name that is not an HTTP token (so no CR, LF, space or NUL); a
**         header value with CR, LF or another control character; body
**         NULL with body_len > 0; a NaN timeout; max_redirects < 0 while
**         following; an unknown http_version; a session of another
**         runtime;
**       - CORIO_EURL: a URL libcurl cannot parse, or with CR, LF, spaces
**         or other control characters;
**       - CORIO_ESCHEME: a scheme other than http or https;
**       - CORIO_ECLOSED: the session or the runtime is being freed;
**       - CORIO_ENOMEM.
** Returns: 0 and *out (when out is not NULL) set to the transfer, or one of
**          the codes above.
*/
CORIO_EXTERN int corio_fetch_start(corio_rt *rt, corio_session *s,
                                   const corio_request *req, corio_fetch_cb cb,
                                   void *ud, corio_fetch **out);

/*
** Name: corio_fetch_cancel
** Desc: Stop a transfer in whatever phase it is (DNS, connect, TLS, send,
**       receive): its connection is closed and its memory released, and
**       its callback runs once with CORIO_ECANCELED at the next turn of the
**       loop (not from inside this call).  A response that would have
**       arrived later is dropped.
** Returns: 0; CORIO_ESTATE if the transfer already completed or was
**          cancelled (its callback is then already queued or running).
*/
CORIO_EXTERN int corio_fetch_cancel(corio_fetch *f);

/*
** Name: corio_fetch_take_body
** Desc: From the callback of a transfer whose request gave a body_alloc:
**       keep the block its body was received in instead of copying the
**       body.  res->body stays where it is: at the request's body_offset
**       in the block, followed by a NUL.  The block is the caller's from
**       then on, to free with body_alloc(ud, block, *size, 0).
** Returns: the block, with its size in *size; NULL when there is none to
**          take (no body_alloc, no body byte received, not called from the
**          callback, or taken already).
*/
CORIO_EXTERN void *corio_fetch_take_body(corio_fetch *f, size_t *size);

/* The callback's `ud`, and a way to change it before completion. */
CORIO_EXTERN void *corio_fetch_get_data(const corio_fetch *f);
CORIO_EXTERN void corio_fetch_set_data(corio_fetch *f, void *data);

/*
** Sessions.  max_connections caps the open connections of the session
** (transfers beyond it wait in a queue, and their timeout runs while they
** wait); max_per_host caps them per host:port; max_idle is how many idle
** keep-alive connections are kept (0: libcurl's default, 4 x the number of
** transfers).  0 means no limit for the first two.  The default session
** has max_connections = max_idle = CORIO_FETCH_DEFAULT_MAX_CONNECTIONS
** (max_idle at most half the open-file limit) and no per-host limit: after
** a burst its idle connections stay open until reused, closed by the
** server, or older than libcurl's limit (118 s).  A socket that cannot be
** opened for lack of descriptors fails the transfer with CORIO_ECONNECT
** and a message that says so.
*/
#define CORIO_FETCH_DEFAULT_MAX_CONNECTIONS 16384

typedef struct corio_session_opts {
  size_t max_connections;
  size_t max_per_host;
  size_t max_idle;
} corio_session_opts;

/*
** Name: corio_session_new
** Desc: Make a session with its own connection pool and limits (`o` NULL:
**       no limits).
** Returns: the session, or NULL when out of memory or the runtime is being
**          freed.
*/
CORIO_EXTERN corio_session *corio_session_new(corio_rt *rt,
                                              const corio_session_opts *o);

/*
** Name: corio_session_free
** Desc: Cancel the session's transfers (each callback runs with
**       CORIO_ECANCELED at the next turn of the loop), close its
**       connections and free it.  May be called from a completion
**       callback.  Sessions still alive are freed by corio_rt_free.
** Returns: 0, or CORIO_EINVAL for the default session.
*/
CORIO_EXTERN int corio_session_free(corio_session *s);

/* The runtime's default session (made now if needed; NULL when out of
   memory). */
CORIO_EXTERN corio_session *corio_session_default(corio_rt *rt);

CORIO_EXTERN void *corio_session_get_data(const corio_session *s);
CORIO_EXTERN void corio_session_set_data(corio_session *s, void *data);

/* Live counts for corio.stats(). */
typedef struct corio_fetch_stats {
  size_t active;       /* transfers started and not yet completed */
  size_t sockets;      /* connection sockets open: busy, and idle keep-alive
                          ones (libcurl's caches keep them open while no
                          transfer uses them); a connection being made
                          can have two for a while (IPv6 and IPv4) */
  size_t sessions;     /* sessions, the default one included */
  size_t pooled;       /* idle transfer objects (buffers) kept for reuse */
  size_t pooled_bytes; /* of big body buffers they keep (corio_set_body_pool) */
  size_t idle;         /* idle keep-alive connections of all sessions
                          (counted in `sockets`) */
  size_t watched;      /* sockets polled for transfers in flight: busy
                          connections and resolver wakeups (not idle ones) */
} corio_fetch_stats;
CORIO_EXTERN void corio_fetch_get_stats(const corio_rt *rt,
                                        corio_fetch_stats *out);

/*
** Name: corio_fetch_blocking
** Desc: Perform `req` with curl_easy_perform on the calling thread and wait
**       for it: no runtime, no loop.  Inside a running loop it stops every
**       other task until it returns (corio.blocking.get exists to show
**       exactly that mistake).  Same validation and same defaults as
**       corio_fetch_start; no connection reuse between calls.
** Returns: 0 or a negative code as the callback's status.  *out is set to a
**          response owned by the caller (free it with corio_response_free)
**          whenever the request was attempted, success or not; it is NULL
**          when the request was refused before that.
*/
CORIO_EXTERN int corio_fetch_blocking(const corio_request *req,
                                      corio_response **out);

/* Free a response from corio_fetch_blocking.  NULL is ignored. */
CORIO_EXTERN void corio_response_free(corio_response *res);

/* }================================================================== */

/*
** {==================================================================
** Server: HTTP/1.1 on the loop
** ===================================================================
**
** A server owns one TCP listener and its connections, and parses requests
** with http_parser.  Each complete request (head and whole body) is handed
** to the request callback; the host answers it with corio_server_respond,
** either inside the callback or later (from a timer, a task, ...).  A
** connection hands out one request at a time: pipelined requests wait, in
** order, until the one before has been answered.  The server answers
** protocol failures itself, without calling the callback: 400 (malformed),
** 408 (head or body too slow), 413 (body too large), 431 (head too large),
** each followed by closing the connection, and `overload_status` past
** `max_inflight` (the connection stays open).
**
** Timeouts cost no libuv handle per connection: all of a server's
** deadlines share one uv_timer_t.
**
** A host that forgets a server is not stuck with it: corio_rt_free closes
** every server still open as corio_server_close(s, 0, NULL, NULL) would
** (a server already closing keeps its callback, which runs), and frees the
** requests nobody answered; pointers to those are invalid afterwards.
*/

typedef struct corio_server corio_server;
typedef struct corio_server_req corio_server_req;

/* A header line.  Strings need not be NUL-terminated: the lengths count. */
typedef struct corio_server_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} corio_server_header;

/* Options.  Zero-fill (or corio_server_opts_init) and set what you need: a
   zero field takes the default in brackets. */
typedef struct corio_server_opts {
  const char *host;        /* IP address or name to bind ["127.0.0.1"] */
  int port;                /* 0 picks a free port: see corio_server_port */
  int backlog;             /* listen(2) backlog [511] */
  size_t max_header_bytes; /* request line plus headers, else 431 [16 KiB] */
  size_t max_body_bytes;   /* decoded request body, else 413 [8 MiB] */
  unsigned max_requests_per_conn; /* then "Connection: close" [unlimited] */
  unsigned max_connections;       /* open at once; past it a new connection
                                     is accepted and closed at once [10000] */
  unsigned max_inflight;      /* requests handed out and not yet answered; past
                                 it, answer overload_status instead [unlimited] */
  int overload_status;        /* [503] */
  unsigned header_timeout_ms; /* the whole head must arrive within it, from
                                 its first byte (from accept for the first
                                 request); else 408 and close [10000] */
  unsigned body_timeout_ms;   /* longest silence while a body arrives; else
                                 408 and close [30000] */
  unsigned idle_timeout_ms;   /* keep-alive connection with no request in
                                 progress: closed [60000] */
  unsigned write_timeout_ms;  /* a response the peer does not take in:
                                 connection cut [60000] */
} corio_server_opts;

/* Fill `o` with the defaults (the same as zero-filling it). */
CORIO_EXTERN void corio_server_opts_init(corio_server_opts *o);

/*
** Request callback: `req` is complete (head and body).  It belongs to the
** server; the callee must answer it exactly once with corio_server_respond,
** now or later.  `ud` is the server's data slot (corio_server_get_data).
*/
typedef void (*corio_server_request_fn)(corio_server *s, corio_server_req *req,
                                        void *ud);

/*
** Name: corio_server_listen
** Desc: Bind `o->host`:`o->port` (o may be NULL for all defaults), listen,
**       and call `cb` for every request from now on.  `ud` becomes the
**       server's data slot.  A host name is resolved synchronously.
** Returns: 0 and the server in *out, or CORIO_EINVAL (bad option or host),
**          CORIO_EADDRINUSE, CORIO_EMFILE, CORIO_ENOMEM, CORIO_EDNS,
**          CORIO_EIO.  On failure nothing is left to close.
*/
CORIO_EXTERN int corio_server_listen(corio_rt *rt, const corio_server_opts *o,
                                     corio_server_request_fn cb, void *ud,
                                     corio_server **out);

/* The port actually bound (useful after port 0), or a negative code. */
CORIO_EXTERN int corio_server_port(const corio_server *s);

CORIO_EXTERN corio_rt *corio_server_rt(const corio_server *s);
CORIO_EXTERN void *corio_server_get_data(const corio_server *s);
CORIO_EXTERN void corio_server_set_data(corio_server *s, void *data);

typedef struct corio_server_stats {
  size_t connections; /* open now */
  size_t inflight;    /* handed to the callback, not answered yet */
  uint64_t requests;  /* complete requests received, rejected included */
  uint64_t rejected;  /* answered with overload_status */
} corio_server_stats;
CORIO_EXTERN void corio_server_get_stats(const corio_server *s,
                                         corio_server_stats *out);

typedef void (*corio_server_closed_fn)(corio_server *s, void *ud);

/*
** Name: corio_server_close
** Desc: Graceful shutdown.  The listener closes at once (new connections
**       are refused) and idle connections are closed.  Connections in the
**       middle of a request may go on until `deadline_ms`: their request
**       still reaches the callback and corio_server_respond still works; each
**       closes after its response ("Connection: close").  At the deadline
**       whatever is left is cut (0: cut everything now); requests still
**       held then stay valid and must still be answered (respond returns
**       CORIO_ECLOSED).  `cb` (may be NULL) runs once every handle of the
**       server is closed; the server is freed when it returns.
** Returns: 0, or CORIO_ESTATE if the server is already closing (cb is then
**          never called).
*/
CORIO_EXTERN int corio_server_close(corio_server *s, uint64_t deadline_ms,
                                    corio_server_closed_fn cb, void *ud);

/*
** Name: corio_server_on_disconnect
** Desc: Call `cb(s, req, ud)` (ud: the server's data slot) when the client
**       of a request the host holds (handed out, not answered yet) goes
**       away: the connection was reset, a write to it failed, or a
**       timeout or the close deadline cut it.  A FIN alone is not that:
**       a client may shut down its writing side after its request and
**       wait for the answer, which is then sent (with "Connection:
**       close"); a client that closed entirely is noticed only once a
**       write to it fails.
**       At most once per request, on the loop, never from inside a corio
**       call of the host's.  The request stays valid and must still be
**       answered (corio_server_respond or corio_server_abort), typically after
**       cancelling the work it started.  NULL removes the callback.
*/
typedef void (*corio_server_disconnect_fn)(corio_server *s,
                                           corio_server_req *req, void *ud);
CORIO_EXTERN void corio_server_on_disconnect(corio_server *s,
                                             corio_server_disconnect_fn cb);

/*
** Request getters.  Every string returned is owned by the request,
** NUL-terminated, and valid until corio_server_respond is called on it; `len`
** arguments may be NULL.  Strings are raw bytes from the wire (no
** percent-decoding).
*/

/* "GET", "POST", ... */
CORIO_EXTERN const char *corio_server_req_method(const corio_server_req *req);

/* The request target as sent: "/a/b?x=1" (or absolute-form). */
CORIO_EXTERN const char *corio_server_req_target(const corio_server_req *req,
                                                 size_t *len);

/* The target's path ("/a/b") and its query without the '?' ("x=1", or ""
   when there is none). */
CORIO_EXTERN const char *corio_server_req_path(const corio_server_req *req,
                                               size_t *len);
CORIO_EXTERN const char *corio_server_req_query(const corio_server_req *req,
                                                size_t *len);

/* Headers in the order received (trailers of a chunked body are dropped).
   corio_server_req_header_at fills *out and returns 0, or CORIO_EINVAL when
   i >= count; the strings in *out are NUL-terminated. */
CORIO_EXTERN size_t corio_server_req_header_count(const corio_server_req *req);
CORIO_EXTERN int corio_server_req_header_at(const corio_server_req *req,
                                            size_t i, corio_server_header *out);

/* Value of the first header called `name` (any case), or NULL. */
CORIO_EXTERN const char *corio_server_req_header(const corio_server_req *req,
                                                 const char *name, size_t *len);

/* The decoded body (chunked or Content-Length); "" when there is none. */
CORIO_EXTERN const char *corio_server_req_body(const corio_server_req *req,
                                               size_t *len);

/* The peer's address: "127.0.0.1:50312", "[::1]:50312". */
CORIO_EXTERN const char *corio_server_req_remote(const corio_server_req *req);

/* HTTP version of the request: 1.1 gives *major 1, *minor 1. */
CORIO_EXTERN void corio_server_req_version(const corio_server_req *req,
                                           int *major, int *minor);

/* Non-zero if the client asked to keep the connection open. */
CORIO_EXTERN int corio_server_req_keep_alive(const corio_server_req *req);

/* Non-zero once the connection is gone (the client left, a timeout, or the
   server's close deadline): the answer will go nowhere. */
CORIO_EXTERN int corio_server_req_closed(const corio_server_req *req);

/* The server, or NULL if it was closed and freed since. */
CORIO_EXTERN corio_server *corio_server_req_server(const corio_server_req *req);

/* The host's slot, NULL for every new request. */
CORIO_EXTERN void *corio_server_req_get_data(const corio_server_req *req);
CORIO_EXTERN void corio_server_req_set_data(corio_server_req *req, void *data);

/*
** Name: corio_server_respond
** Desc: Answer `req` with `status` (200..999), the
**       `nheaders` headers (borrowed; the array may be NULL when 0) and the
**       body (borrowed, may be NULL when len is 0; it may point into the
**       request).  Everything is copied before the call returns.  The server
**       sets Content-Length, Date, and Connection when it closes; user
**       Content-Length and Transfer-Encoding headers are dropped, and a user
**       "Connection: close" closes after the response.  No body is sent for
**       HEAD, 1xx, 204 and 304.  The request is consumed by this call in
**       every case: do not touch it afterwards.
** Returns: 0; CORIO_EINVAL for a bad status, a header name that is not a
**          token or a value with a control character other than tab
**          (corio_http_token_ok, corio_http_value_ok): a 500 is sent instead;
**          CORIO_ECLOSED when the connection is gone (nothing is sent);
**          CORIO_ESTATE if the request was already answered while its
**          connection is still open.
*/
CORIO_EXTERN int corio_server_respond(corio_server_req *req, int status,
                                      const corio_server_header *headers,
                                      size_t nheaders, const char *body,
                                      size_t len);

/*
** Streaming: a body sent as it is made.  corio_server_stream sends the
** status line and headers (as corio_server_respond checks them) with
** "Transfer-Encoding: chunked" (an HTTP/1.0 client gets no length, and
** the connection closes after the body; HEAD, 204 and 304 get no body,
** whatever is written); each corio_server_write sends one chunk;
** corio_server_end sends the last chunk and gives the request back,
** like corio_server_respond.  Until then the request is the host's, and
** counts as in flight.
**
** corio_server_write copies `data` (it is free when the call returns) and
** calls `cb(status, ud)` (may be NULL) once the chunk has gone to the
** kernel (0) or could not (CORIO_ECLOSED): wait for it before writing
** more to go at the client's pace.  Callbacks still due when the host
** gives the request back (end or abort) are not called.
**
** corio_server_stream returns 0; CORIO_EINVAL (bad status or header),
** CORIO_ECLOSED (the connection is gone) or CORIO_ENOMEM, after which
** nothing was sent and the request is still to be answered; CORIO_ESTATE
** if it was answered or streamed already.  corio_server_write returns 0,
** CORIO_ECLOSED (cb not called), CORIO_ESTATE (not streaming).
** corio_server_end returns 0, CORIO_ECLOSED (the request is given back all
** the same), CORIO_ESTATE (not streaming).
*/
typedef void (*corio_server_write_fn)(int status, void *ud);
CORIO_EXTERN int corio_server_stream(corio_server_req *req, int status,
                                     const corio_server_header *headers,
                                     size_t nheaders);
CORIO_EXTERN int corio_server_write(corio_server_req *req, const char *data,
                                    size_t len, corio_server_write_fn cb,
                                    void *ud);
CORIO_EXTERN int corio_server_end(corio_server_req *req);

/*
** Name: corio_server_abort
** Desc: Give `req` back without answering it: its connection is closed
**       (a client still there sees the connection end without a
**       response).  For work cancelled because the client left, or a
**       handler that wants to drop the connection.  Consumes the request
**       like corio_server_respond.
** Returns: 0; CORIO_ECLOSED when the connection was already gone;
**          CORIO_ESTATE if the request was already answered.  A streamed
**          request may be aborted too (its client sees a truncated body).
*/
CORIO_EXTERN int corio_server_abort(corio_server_req *req);

/* }================================================================== */

#ifdef __cplusplus
}
#endif

#endif /* CORIO_H */
