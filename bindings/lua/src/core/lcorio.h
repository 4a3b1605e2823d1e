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

/*
** The binding's per-lua_State state: one runtime, shared by every
** coroutine of the state.  A full userdata in the registry.
*/
typedef struct lcorio_state {
  corio_rt *rt;
  int owns_rt;
  lua_State *L; /* a thread of our own for the scheduler's stack work */
  int L_ref;
  uint32_t next_id; /* Task-N */
  int closing;      /* lua_close is finalizing: run no Lua callbacks */
  int keepalive;    /* run_forever: a ref'd handle keeps the loop up */
  uv_prepare_t keep;
  lua_State *volatile running;  /* the task being resumed (Ctrl-C reads it) */
  struct lcorio_bodies *bodies; /* lbody.c; NULL: bodies are copied */
  int nomem_ref;  /* a task's error when even storing its error failed */
  int starved_kb; /* heap size when a task could not start; 0: not starved */
  size_t nomem_unretrieved;    /* failed for lack of memory, never looked at */
  struct lcorio_late_cb *late; /* lfuture.c: late done callbacks queued */
  /* lobserve.c, ltrace.c: non-zero while a trace is written or debug mode
     is on, so that the resume driver pays one branch when both are off */
  int observe;
  uint64_t slow_ns;           /* debug mode: a run this long is reported */
  struct lcorio_trace *trace; /* the trace being written, or NULL */
  uint64_t budget_ns;         /* corio.set_task_budget, in ns; 0: none */
  uint64_t slice_start;       /* uv_hrtime when the task running now resumed */
} lcorio_state;

/* ltask.c: a task or future as a Lua value. */
typedef struct ltask {
  int ref;     /* registry ref anchoring the userdata while not done */
  uint32_t id; /* Task-N; 0 for a hidden task */
  uint8_t flags;
  /* lobserve.c: what the task waits on, for dumps and traces; the function
     that spawned it is user value 2, the line of that call here */
  uint8_t wait;      /* LCORIO_W_*, LCORIO_W_NONE while it runs */
  uint8_t trace_gen; /* the trace that named its track (ltrace.c) */
  int32_t line;      /* line of the spawn call; 0: unknown */
  uint32_t wait_arg; /* a sleep's ms, a count of tasks, a method */
  uint64_t since;    /* loop time (ms) when the wait began */
  uint64_t tr_since; /* trace clock (us) when the wait began */
  /* the runtime's corio_task follows, at LTASK_CORE_OFFSET */
} ltask;

#define LT_FUTURE    0x01 /* no coroutine: completed with set_result */
#define LT_STARTED   0x02 /* the coroutine has been resumed once */
#define LT_MULTI     0x04 /* results are a table {n=...} */
#define LT_NONE      0x08 /* no results */
#define LT_RETRIEVED 0x10 /* the error was seen by someone */
#define LT_NAMED     0x20 /* name set with set_name (kept in a weak table) */
#define LT_SERVED    0x80 /* a server's handler task: lcorio_serve_push_label */

/*
** {==================================================================
** Seeing what tasks do (lobserve.c, ltrace.c)
** ===================================================================
*/

/* ltask.wait: what a task waits on; the details are in wait_arg */
enum {
  LCORIO_W_NONE = 0, /* running, or not waiting (done) */
  LCORIO_W_READY,    /* queued: spawned, or yielded (sleep 0, yield) */
  LCORIO_W_SLEEP,    /* wait_arg: ms */
  LCORIO_W_AWAIT,    /* a task or a future (the await's argument 1) */
  LCORIO_W_WAIT,     /* corio.wait: wait_arg tasks */
  LCORIO_W_GATHER,   /* wait_arg tasks */
  LCORIO_W_ASCOMP,   /* as_completed's next */
  LCORIO_W_WAIT_FOR, /* a task, with a timeout */
  LCORIO_W_FETCH,    /* wait_arg: the method (lcorio_method_code) */
  LCORIO_W_STREAM,   /* a streamed response's next chunk */
  LCORIO_W_POOL,     /* a thread or process pool's job */
  LCORIO_W_SERVER,   /* a server closing, a response being written */
  LCORIO_W_CUSTOM    /* a reason set by a Lua part (internal.wait_reason) */
};
/*
** Mark the running task as waiting on `kind` from now: a few stores, no
** allocation, no clock read but the loop's.  A reason a Lua part set for
** this wait (LCORIO_W_CUSTOM) is kept.
*/
void lcorio_wait_mark(ltask *lt, int kind, uint32_t arg);
uint32_t lcorio_method_code(const char *method); /* NULL: GET */
/*
** The reason as text ("sleep 0.2", "fetch GET http://...") in buf; co is
** the task's coroutine (a fetch's URL is on its stack) or NULL.  L is
** only read (the side table of Lua-set reasons) and left as it was.
*/
const char *lcorio_wait_reason(lua_State *L, ltask *lt, lua_State *co,
                               char *buf, size_t size);
/* Record the spawn site of the task at tidx (the caller's line and
   function), with L the thread that called spawn. */
void lcorio_note_spawn(lua_State *L, ltask *lt, int tidx);
/* Push the function of the first Lua frame up from the running C function
   and return its line now; 0, nothing pushed, when there is none. */
int lcorio_push_caller(lua_State *L);
/* Make the function at the top (popped) and its `line` the spawn site of
   the task lt at tidx (an absolute index): for a task spawned where no Lua
   frame says where (a server's handler task: the line of its corio.serve
   call). */
void lcorio_set_spawn_site(lua_State *L, ltask *lt, int tidx, int line);
/*
** The name of a server's handler task (LT_SERVED) without a name of its
** own: its request line, "GET /path?query", read when asked for from the
** task's coroutine `co` (lserve_req.c), so that a request pays nothing for
** it.  Pushes it and returns 1, or returns 0 (nothing pushed).  Unlike a
** set_name name, it does not make the task's trace group: its spawn site
** (the corio.serve call) stays that.
*/
int lcorio_serve_push_label(lua_State *L, lua_State *co);
/*
** The resume driver calls these around a run when S->observe is set:
** begin returns the trace clock (ns) at the start, end reports a slow run
** (debug mode) and writes the run and wait slices (trace).
*/
uint64_t lcorio_observe_begin(lua_State *L, lcorio_state *S, ltask *lt,
                              int tidx, lua_State *co);
void lcorio_observe_end(lua_State *L, lcorio_state *S, ltask *lt, int tidx,
                        lua_State *co, int rc, uint64_t begin);
void lcorio_observe_open(lua_State *L); /* corio.all_tasks, dump_tasks, ... */
void lcorio_observe_close(lua_State *L, lcorio_state *S); /* lua_close */
int lcorio_internal_wait_reason(lua_State *L); /* internal.wait_reason */
/* Debug mode: note where the object at idx was made; report it when it
   is collected while still open (its __gc calls this). */
void lcorio_debug_opened(lua_State *L, int idx);
void lcorio_debug_unclosed(lua_State *L, int idx, const char *what);

/* ltrace.c: the Chrome trace-event writer. */
typedef struct lcorio_trace lcorio_trace;
int lcorio_trace_start(lua_State *L, lcorio_state *S, const char *path);
void lcorio_trace_stop(lcorio_state *S);
/* uv_hrtime() `ns` on the trace's clock: us since its start, at least 1
   (0 stands for "no time" in ltask.tr_since) */
uint64_t lcorio_trace_us(const lcorio_trace *tr, uint64_t ns);
/*
** A run of the task at tidx: with end 0, its start at ts (the wait that
** ends there becomes a slice); else the run [ts, end] as a slice.
*/
void lcorio_trace_task(lua_State *L, lcorio_state *S, ltask *lt, int tidx,
                       lua_State *co, uint64_t ts, uint64_t end);
void lcorio_trace_fetch(lcorio_state *S, ltask *lt, int status,
                        const corio_response *res, const char *url);
/*
** Pool items (threads.map, processes.map, to_thread): each input's run,
** uv_hrtime at its hand-out and at its outcome (0: never ran), drawn on
** as many worker tracks as ran at once.
*/
typedef struct lcorio_span {
  uint64_t start, end;
} lcorio_span;
void lcorio_trace_pool(lcorio_state *S, const char *what,
                       const lcorio_span *spans, size_t n);
/* A server request answered with `status`, its handler task `lt` started
   at uv_hrtime `t0`: a slice on the task's track. */
void lcorio_trace_request(lcorio_state *S, ltask *lt, const char *method,
                          const char *path, size_t path_len, int status,
                          uint64_t t0);

/* }================================================================== */

/* upvalue 1 of every module function is the state */
#define lcorio_upstate(L)                                                      \
  ((lcorio_state *)lua_touserdata(L, lua_upvalueindex(1)))

lcorio_state *lcorio_getstate(lua_State *L);

/*
** Binding code that runs on the loop (a transfer completing, a task to
** resume) runs inside libuv's and libcurl's frames, where a Lua error must
** not unwind (docs/reliability.md rule 14).  lcorio_protect runs fn(L) with
** `ud` as
** its light userdata argument in protected mode and returns lua_pcall's
** status (the error is popped).  An error there is in practice Lua out of
** memory: lcorio_push_memory_error pushes, without allocating, the error
** value a failed task then gets ({"not enough memory", traceback=...}).
*/
int lcorio_protect(lua_State *L, lua_CFunction fn, void *ud);
void lcorio_push_memory_error(lua_State *L, lcorio_state *S);
void lcorio_setfuncs(lua_State *L, const luaL_Reg *l); /* state as upvalue */

/*
** Finalizers.  A metatable's __index is a table of methods (or a function
** reading one) that holds no metamethod, so obj.__gc is not the finalizer.
** A script can still reach a finalizer through the debug library and call
** it, twice, on any value, while the object is in use: each finalizer
** checks its argument's type, frees nothing a live object needs unless
** lcorio_collecting says the collector (or lua_close) called it, and
** clears what it frees, so that a second call does nothing.
*/
int lcorio_collecting(lua_State *L);

/*
** {==================================================================
** Tasks (task/): the internal API.  C code makes, cancels and completes
** tasks through these, never through the module's Lua functions (which a
** script may replace).
** ===================================================================
*/

/*
** Push a new task running the function at fidx with the nargs values
** after it as arguments (a coroutine object at fidx: its own function and
** arguments; nargs is ignored).  Raises if the runtime is closed.
*/
ltask *lcorio_spawn(lua_State *L, int fidx, int nargs);
/* corio.spawn's own argument check, then lcorio_spawn: argument `arg` is
   the function or coroutine object, every argument after it goes along. */
ltask *lcorio_spawn_args(lua_State *L, int arg);
/* Push a new future (done only by set_result, set_exception or cancel). */
ltask *lcorio_future(lua_State *L);
/*
** Cancel the task or future at tidx, with `msg` (NULL: "task cancelled")
** as its CancelledError's message; 0 if it was done already.  A future is
** done on return; a task gets its error at its next wait.
*/
int lcorio_cancel(lua_State *L, int tidx, const char *msg);
/*
** Finish the future at tidx with the n values at the top (popped), or
** with the error value at the top (popped; a traceback of L is kept).
** CORIO_EINVAL (and the values popped) if it is not a pending future.
*/
int lcorio_set_result(lua_State *L, int tidx, int n);
int lcorio_set_exception(lua_State *L, int tidx);

corio_task *lcorio_core(ltask *lt);
ltask *lcorio_ltask(corio_task *t);
ltask *lcorio_checktask(lua_State *L, int idx);
ltask *lcorio_totask(lua_State *L, int idx);
ltask *lcorio_current(lua_State *L); /* the task running L, or NULL */
ltask *lcorio_ensure_task(lua_State *L, int idx); /* replaces idx with it */
/*
** If idx is a coroutine object not scheduled yet, mark it scheduled, push
** its function and arguments and return the argument count; else -1.
*/
int lcorio_coro_take(lua_State *L, int idx);
int lcorio_push_results(lua_State *L, ltask *lt); /* returns nresults or
                                                     raises the error */
void lcorio_push_task(lua_State *L, ltask *lt);
/* Push an array of the tasks not done yet (hidden ones too if asked). */
void lcorio_push_pending(lua_State *L, int hidden);
int lcorio_cancel_all(lua_State *L);
void lcorio_task_open(lua_State *L);
void lcorio_task_shutdown(lua_State *L, lcorio_state *S); /* lua_close */
/* lfuture.c: take back the late done callbacks still queued (closing) */
typedef struct lcorio_late_cb lcorio_late_cb;
void lcorio_late_drop(lua_State *L, lcorio_state *S);

/* }================================================================== */

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

/*
** Yield the running task after a wait was armed.  The continuation finds
** the wait's status (0, or a CORIO_E* code) with lcorio_wait_status.
*/
int lcorio_yield(lua_State *L, lua_KContext ctx, lua_KFunction k);
int lcorio_wait_status(lua_State *L);
/* Raise the running task's CancelledError (with its cancel message). */
int lcorio_cancelled(lua_State *L);
/* Raise for a failed corio_* call that armed nothing. */
int lcorio_check(lua_State *L, int rc, const char *what);

/*
** {==================================================================
** Options and durations (lopts.c)
** ===================================================================
*/

/*
** The one seconds-to-milliseconds rule: round up (a timeout never fires
** early; a positive duration is at least 1 ms), clamped to LCORIO_MS_MAX
** (about 49.7 days, as good as forever, and it fits an unsigned field).
** 0, negative and NaN give 0: the getters refuse negative and NaN first.
*/
#define LCORIO_MS_MAX ((uint64_t)0xFFFFFFFFu)
uint64_t lcorio_seconds_to_ms(double s);
/* A positional argument of seconds (>= 0) as milliseconds. */
uint64_t lcorio_checkseconds(lua_State *L, int arg);
/*
** A positional argument that names a file: a string (or a number, as
** io.open takes) without a NUL byte, which fopen would silently cut at.
*/
const char *lcorio_checkpath(lua_State *L, int arg);

/*
** Option tables.  lcorio_opts_check(L, idx, fn, names) accepts none or nil
** at idx (no options: returns 0) or a table whose every key is one of the
** NULL-terminated `names` (returns its absolute index); anything else
** raises "fn: unknown option 'x'", "fn: option names are strings (got a
** number key)" or "fn: options must be a table, not a string".
**
** The getters take that index (0: no options, so the default) and the
** option's name; each returns the default when the option is absent and
** raises "fn: option 'name' must be ... (got ...)" on a bad value.
** Strings are borrowed from the option table, and hold no NUL byte.
** lcorio_opt_push pushes the
** option's value and returns 1, or pushes nothing and returns 0 when it is
** absent; its type must be `type` (LUA_TNONE: any).  lcorio_opt_enum
** returns the index of the string in `names`.  lcorio_opt_seconds returns
** milliseconds (lcorio_seconds_to_ms); flags: LCORIO_SECONDS_POSITIVE
** refuses 0, LCORIO_SECONDS_NONE also takes false or math.huge, for "no
** limit", returned as -1.
*/
#define LCORIO_SECONDS_POSITIVE 0x1
#define LCORIO_SECONDS_NONE     0x2 /* refuses 0 too */
int lcorio_opts_check(lua_State *L, int idx, const char *fn,
                      const char *const names[]);
/* The same check on the table at idx, returning the set of the options it
   holds (bit i: names[i], for the first 32): a function called for every
   request reads only those. */
unsigned lcorio_opts_scan(lua_State *L, int idx, const char *fn,
                          const char *const names[]);
int lcorio_opt_push(lua_State *L, int opts, const char *fn, const char *name,
                    int type);
lua_Number lcorio_opt_number(lua_State *L, int opts, const char *fn,
                             const char *name, lua_Number def, lua_Number min,
                             lua_Number max);
lua_Integer lcorio_opt_integer(lua_State *L, int opts, const char *fn,
                               const char *name, lua_Integer def,
                               lua_Integer min, lua_Integer max);
int lcorio_opt_boolean(lua_State *L, int opts, const char *fn, const char *name,
                       int def);
const char *lcorio_opt_string(lua_State *L, int opts, const char *fn,
                              const char *name, const char *def);
int lcorio_opt_enum(lua_State *L, int opts, const char *fn, const char *name,
                    int def, const char *const names[]);
int64_t lcorio_opt_seconds(lua_State *L, int opts, const char *fn,
                           const char *name, int64_t def, int flags);

/* }================================================================== */

/* lerror.c: error values {name=, kind=, message=, ...}. */
void lcorio_error_open(lua_State *L);
void lcorio_chunks_open(lua_State *L); /* lchunks.c: the Lua-written parts */
void lcorio_pusherror(lua_State *L, const char *name, const char *kind,
                      const char *fmt, ...);
/* push the error, then raise it: `return lcorio_raise(L, ...);` */
#define lcorio_raise(L, ...) (lcorio_pusherror((L), __VA_ARGS__), lua_error(L))
int lcorio_iserror(lua_State *L, int idx, const char *name);
int lcorio_traceback_handler(lua_State *L);            /* msgh for lua_pcall */
void lcorio_report(lua_State *L, const char *context); /* error at top */

/* Each adds its functions to the module table at -2 (state at -1). */
void lcorio_wait_open(lua_State *L);   /* lwait.c */
void lcorio_loop_open(lua_State *L);   /* lloop.c */
void lcorio_fetch_open(lua_State *L);  /* lfetch.c: fetch, sessions */
void lcorio_serve_open(lua_State *L);  /* lserve.c: corio.serve */
void lcorio_thread_open(lua_State *L); /* lthread.c: to_thread, threads */
/* Stop the Lua code of every worker thread at its next instruction (its
   item fails): what cancelling everything (Ctrl-C, SIGTERM) does to the
   threads, which a cancel alone lets finish.  Never raises. */
void lcorio_thread_interrupt_all(lua_State *L);
void lcorio_process_open(lua_State *L); /* lprocess.c: processes */
void lcorio_redis_open(lua_State *L);   /* lredis.c: corio.redis */

/*
** The HTTP client (lfetch.c, lfetch_request.c, lfetch_response.c,
** lfetch_blocking.c, lsession.c).
*/
#define LCORIO_SESSION_MT  "corio.Session"
#define LCORIO_RESPONSE_MT "corio.Response"
#define LCORIO_HEADERS_MT  "corio.Headers"

/*
** A session as a Lua value.  User values: 1 default headers (a table of
** checked name -> value strings, or nil), 2 base_url (string or nil),
** 3 retries (the option as given, checked, or nil).
*/
typedef struct lsession {
  corio_session *s; /* NULL once closed */
  double timeout;   /* default total timeout in seconds; 0: none set */
  int nheaders;     /* entries in user value 1 */
} lsession;

/*
** A request being built from Lua options.  Its strings are borrowed from
** the Lua stack: keep the stack until the request has been started.
*/
#define LCORIO_REQ_SMALL 16
typedef struct lcorio_req {
  corio_request req;
  lsession *session; /* the session argument or opts.session; NULL: none */
  int session_idx;   /* its stack index, 0 if none */
  int output;        /* stack index of opts.output (a name or a file), 0 */
  int stream;        /* opts.stream */
  corio_header small[LCORIO_REQ_SMALL]; /* headers, when they fit */
} lcorio_req;

/*
** Read url (replaced at `url` by the final URL once base_url is applied),
** options at `opts` (0 or nil: none) and the session at `session` (0:
** none) into r; `method` is the default method (NULL: GET, or POST with a
** body).  `fn` names the function in error messages.  Pushes values.
*/
void lcorio_request_parse(lua_State *L, lcorio_req *r, int url, int opts,
                          int session, const char *method, const char *fn);
/*
** Raise the FetchError of a request refused by corio_fetch_start or
** corio_fetch_blocking.
*/
int lcorio_request_refused(lua_State *L, int rc, const char *url,
                           const char *fn);
lsession *lcorio_checksession(lua_State *L, int idx); /* open ones only */
/*
** Raise unless the strings at name and value make a header that can be
** sent (a token; no CR, LF, NUL or other control character).
*/
void lcorio_header_check(lua_State *L, int name, int value, const char *what);

/*
** lheaders.c: header tables (lowercase names, any-case lookup, repeats
** joined with ", ", set-cookie a list).  new pushes an empty one; add
** adds a field to the one at t.
*/
void lcorio_headers_new(lua_State *L, int nfields);
void lcorio_headers_add(lua_State *L, int t, const char *name, size_t nlen,
                        const char *value, size_t vlen);
void lcorio_headers_open(lua_State *L); /* its metatable */

/*
** Replace the body string at the top of L with a response object for
** `res`.  The URL string at (from, url_idx) is reused when it equals the
** final URL (from may be L; url_idx 0: none).
*/
void lcorio_push_response(lua_State *L, const corio_response *res,
                          lua_State *from, int url_idx);

/*
** lbody.c: bodies as strings without a copy.  open wraps the state's
** allocator, close unwraps it (after the last transfer); request asks for
** the body in a block that push_body can hand to Lua as the string (from
** the transfer's callback, in protected mode: it may raise out of memory;
** small bodies are copied).
*/
typedef struct lcorio_bodies lcorio_bodies;
void lcorio_bodies_open(lua_State *L, lcorio_state *S);
void lcorio_bodies_close(lua_State *L, lcorio_state *S);
unsigned lcorio_small_alloc_failures(const lcorio_state *S);
void lcorio_bodies_request(const lcorio_state *S, corio_request *req);
void lcorio_push_body(lua_State *L, lcorio_state *S, corio_fetch *f,
                      const corio_response *res);
/* Push a FetchError for a failed transfer (status < 0). */
void lcorio_push_fetch_error(lua_State *L, int status, const char *message,
                             const char *url);
/* The same for a completed transfer's failure: its message says after how
   many tries, and the error has `attempts`. */
void lcorio_push_fetch_failure(lua_State *L, int status,
                               const corio_response *res, const char *url);
/*
** Parse the `retries` option at idx (n retries, a table, or false for
** none) into *r, naming `fn` in errors.  May push a value (the statuses
** array) that must stay on the stack until the request is started.
*/
void lcorio_retry_parse(lua_State *L, int idx, const char *fn, corio_retry *r);
/*
** Push corio.FetchError: one prototype per kind, to compare errors with
** (err == corio.FetchError.timeout).
*/
void lcorio_push_fetch_errors(lua_State *L);
/*
** Push the form table at idx, urlencoded (lfetch_form.c); `what` starts
** the error messages ("corio.fetch: option 'form'").
*/
void lcorio_push_form(lua_State *L, int idx, const char *what);
/*
** lurl.c: push the n bytes at s percent-decoded ('+' as a space when
** `plus`); push a query string as a table ({a = {"1", "2"}, b = "x y"}).
*/
void lcorio_push_decoded(lua_State *L, const char *s, size_t n, int plus);
void lcorio_push_query(lua_State *L, const char *q, size_t n);
/* Push u's href (parts 0) or its parts as a table (parts 1), and free u
   (raising only after it is freed). */
void lcorio_push_url(lua_State *L, corio_url *u, int parts);
void lcorio_url_open(lua_State *L);
/*
** ljson.c: JSON on lua-cjson.  encode/decode push the value at idx encoded
** or decoded, or raise "<what>: <cjson's message>"; lcorio_json_try
** ("encode" or "decode") pushes the result or the message and returns
** lua_pcall's status, for code that must not raise.
*/
void lcorio_json_encode(lua_State *L, int idx, const char *what);
void lcorio_json_decode(lua_State *L, int idx, const char *what);
int lcorio_json_try(lua_State *L, const char *name, int idx);
void lcorio_json_open(lua_State *L);
/*
** Start the request whose url and options are at 1 and 2 (and session at
** `session`, 0 if none), make the running task `lt` wait for it, and
** yield; the task gets the response, or raises a FetchError or its
** CancelledError.
*/
int lcorio_fetch_wait(lua_State *L, ltask *lt, int session, const char *method,
                      const char *fn);
void lcorio_response_open(lua_State *L); /* metatables; needs no runtime */
/*
** A streamed response (lfetch_stream.c).  set_stream pops the lstream at
** the top into the response at idx; push_stream pushes it (nil if the
** response does not stream); set_body makes the string at the top its
** body (left on the stack).  lcorio_fetch_stream is lcorio_fetch_wait for
** a request with the options output or stream; the others are the
** response's methods on a stream (chunks, close, text) and its `bytes`
** (-1: not a stream).
*/
void lcorio_response_set_stream(lua_State *L, int idx);
void lcorio_response_push_stream(lua_State *L, int idx);
void lcorio_response_set_body(lua_State *L, int idx);
int lcorio_fetch_stream(lua_State *L, ltask *lt, lcorio_req *r, const char *fn);
int lcorio_stream_chunks(lua_State *L);
int lcorio_stream_close(lua_State *L);
int lcorio_stream_text(lua_State *L);
lua_Integer lcorio_stream_bytes(lua_State *L, int idx);
void lcorio_stream_open(lua_State *L);
void lcorio_session_open(lua_State *L); /* corio.session */
/*
** Push the corio.blocking table: blocking get/post/fetch, which need no
** runtime, so a state that runs no loop (a worker thread) can use them.
*/
void lcorio_blocking_push(lua_State *L);

#endif
