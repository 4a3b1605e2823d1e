/*
** corio/fetch.h: the HTTP client, part of the public C API.
** Included by corio.h; include corio.h, not this file.
*/
#ifndef CORIO_FETCH_API_H
#define CORIO_FETCH_API_H

#ifndef CORIO_H /* which opens extern "C" for C++ */
#error "include corio.h, which includes this file"
#endif

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

/*
** Retries (corio_request.retry).  A transfer whose method is one of
** `methods` is tried again, up to `attempts` tries in all, when it fails
** with CORIO_ECONNECT, CORIO_ERESET or CORIO_ETIMEDOUT, or when its
** response has one of `statuses`.  Before try n + 1 it waits a random
** delay, uniform in [0, min(max_backoff, backoff * 2^(n-1))] seconds
** ("full jitter"), or, after a response with a Retry-After header
** (seconds or an HTTP-date), that long, at most max_backoff.  The request
** (body included) is sent again as it was; each try has its own timeout.
** When the tries run out, the callback gets the last outcome: the last
** response (its status is not an error) or the last error.
** corio_response.attempts says how many tries were made.  Cancelling a
** transfer that waits between two tries cancels it at once.
**
**   attempts     tries in all (0 or 1: one try, no retry; the default)
**   backoff      seconds, >= 0: the first delay's bound, doubled per try
**   max_backoff  seconds, >= 0: bound of every delay, Retry-After's too
**   statuses     nstatuses HTTP statuses (100 to 599) worth a retry;
**                NULL: 429, 502, 503 and 504
**   methods      nmethods methods, compared exactly; NULL: GET, HEAD, PUT,
**                DELETE and OPTIONS (the idempotent ones).  A request
**                without a method counts as GET, or POST with a body.
*/
#define CORIO_RETRY_BACKOFF     0.5  /* default backoff, seconds */
#define CORIO_RETRY_MAX_BACKOFF 30.0 /* default max_backoff, seconds */

typedef struct corio_retry {
  int attempts;
  double backoff;
  double max_backoff;
  const int *statuses;
  size_t nstatuses;
  const char *const *methods;
  size_t nmethods;
} corio_retry;

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
**                    A body whose length the response announced
**                    (Content-Length, up to 64 MiB) gets a block of exactly
**                    body_offset + length + 1 bytes, the NUL included,
**                    asked for once; another grows by doubling.
**                    It must work until the callback has run, or until
**                    corio_fetch_cancel returns: a cancelled transfer
**                    frees its block at once.
**   retry            see corio_retry above (default: one try)
**   on_head/on_data  stream the body instead of collecting it (see
**                    "Streaming" above); NULL: collected (the default)
*/
/*
** Streaming (corio_request.on_data).  With on_data set, the body is not
** collected: its bytes are handed to on_data as they arrive, and the
** completion's res->body is "" (res->bytes says how many were handed).
** Every callback runs on the loop, outside libcurl's own callbacks, with
** the transfer's `ud`, in this order: on_head once, on_data zero or more
** times, then the completion callback, always last; each may call
** corio_fetch_cancel (nothing more is called then but the completion, at
** the next turn).
**
**   on_head  (may be NULL) the final response's status and headers are
**            in (after redirects and 1xx): `res` as the completion sees
**            it, without a body; valid until on_head returns.  A status
**            worth a retry (corio_retry) is not handed out unless it is
**            the last try; once on_head has run, no retry is made.
**   on_data  `len` > 0 bytes of the body, valid until it returns.  It
**            returns 0 (taken), CORIO_FETCH_PAUSE (not taken: offered
**            again after corio_fetch_resume) or a negative code, which
**            fails the transfer with it (CORIO_EIO for a failed write:
**            the completion's status is that code).
**
** Memory stays bounded: the runtime holds at most about
** CORIO_FETCH_STREAM_BUFFER bytes of a transfer not taken yet (one read
** more at most); past that it pauses the transfer in libcurl, so the
** server's sends wait in the socket buffers.  A transfer that ends
** (success or failure) while bytes wait keeps them for on_data: the
** completion comes after the last one is taken.  The transfer's
** `timeout` runs while it is paused (< 0: none).  max_body counts the
** bytes received.  body_alloc is not used.  Not for corio_fetch_blocking
** (CORIO_EINVAL); on_head without on_data is CORIO_EINVAL.
*/
#define CORIO_FETCH_PAUSE         1
#define CORIO_FETCH_STREAM_BUFFER (256 * 1024)

struct corio_response;
typedef void (*corio_fetch_head_cb)(corio_fetch *f,
                                    const struct corio_response *res, void *ud);
typedef int (*corio_fetch_data_cb)(corio_fetch *f, const char *data, size_t len,
                                   void *ud);

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
  corio_retry retry;
  corio_fetch_head_cb on_head;
  corio_fetch_data_cb on_data;
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
**   http_version  "1.0", "1.1", "2", "3", or "" when unknown: a static
**                 string, valid for as long as the library is loaded (a
**                 binding may decode each one once, by its address)
**   timing        seconds: dns, connect and tls are the durations of those
**                 phases of the last connection (0 for a reused one); ttfb
**                 and total run from the start of the transfer to the first
**                 response byte and to the end
**                 (after its wait in the session's queue); queue is the
**                 time from the call to the start of the last try (waits
**                 for a connection slot or the session's rate, and with
**                 retries the earlier tries and the pauses between them),
**                 start when that try started, on corio_rt_time's clock
**                 (0 if it never did)
**   error         NULL on success; on failure a message (libcurl's when it
**                 has one).  On failure the other fields hold what was
**                 received so far.
**   attempts      tries made (1 without retries; see corio_retry), the
**                 one that gave this outcome included
**   bytes         body bytes received: body_len, or for a streamed
**                 transfer the bytes handed to on_data
**   header_data   the fields of `headers` once more, in one block: each
**                 name and each value followed by a NUL, in order,
**                 header_data_len bytes in all (NULL and 0 without
**                 fields).  A binding copies them all in one call, and
**                 splits them when they are read: no name or value holds
**                 a NUL (libcurl refuses such a response, a protocol
**                 error)
*/
typedef struct corio_fetch_timing {
  double dns, connect, tls, ttfb, total;
  double queue, start;
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
  int attempts;
  size_t bytes;
  const char *header_data;
  size_t header_data_len;
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
**         following; an unknown http_version; retry.attempts < 0, a
**         negative or NaN backoff or max_backoff, a status outside 100 to
**         599, statuses or methods NULL with a count > 0, a method that
**         is not an HTTP token; a session of another runtime;
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

/*
** Name: corio_fetch_pause, corio_fetch_resume
** Desc: For a streamed transfer (on_data): pause stops the calls to
**       on_data (bytes that arrive meanwhile wait in the runtime, up to
**       CORIO_FETCH_STREAM_BUFFER, then libcurl is paused too), as
**       on_data's CORIO_FETCH_PAUSE does; resume offers the waiting bytes
**       again and lets libcurl go on, at the next turn of the loop (never
**       from inside this call).  Both may be called from the callbacks.
** Returns: 0; CORIO_EINVAL if the transfer does not stream; CORIO_ESTATE
**          if it has completed or was cancelled.
*/
CORIO_EXTERN int corio_fetch_pause(corio_fetch *f);
CORIO_EXTERN int corio_fetch_resume(corio_fetch *f);

/* The callback's `ud`, and a way to change it before completion. */
CORIO_EXTERN void *corio_fetch_get_data(const corio_fetch *f);
CORIO_EXTERN void corio_fetch_set_data(corio_fetch *f, void *data);

/*
** Sessions.  max_connections caps the open connections of the session
** (transfers beyond it wait in a queue, and their timeout runs while they
** wait; an HTTP/1 transfer needs a connection of its own, one that may
** multiplex waits in libcurl if it must); max_per_host caps them per
** host:port; max_idle is how many idle keep-alive connections are kept
** (0: as many as max_connections lets be open, or without it as the
** default session keeps, at most half the open-file limit either way;
** libcurl's own default, 4 x the transfers in flight, closed connections
** as soon as fewer ran, and the next burst connected again); rate is how many
** transfers to one host:port may start in any one second (a sliding
** window; they wait in the same queue).  0 means no limit for
** max_connections, max_per_host and rate.  The queue is in order for one
** host, round robin between hosts.  The default session has
** max_connections = CORIO_FETCH_DEFAULT_MAX_CONNECTIONS, max_idle 0 and
** no per-host limit: after a burst its idle connections stay open until
** reused, closed by the server, or older than libcurl's limit (118 s).
** A socket that cannot be opened for lack of descriptors fails the
** transfer with CORIO_ECONNECT and a message that says so.
*/
#define CORIO_FETCH_DEFAULT_MAX_CONNECTIONS 16384

typedef struct corio_session_opts {
  size_t max_connections;
  size_t max_per_host;
  size_t max_idle;
  size_t rate; /* starts per host in any one second, 0: no limit */
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
  size_t streamed;     /* body bytes of streamed transfers held by the
                          runtime, not taken by on_data yet */
  size_t paused;       /* streamed transfers paused in libcurl (their
                          held bytes reached CORIO_FETCH_STREAM_BUFFER) */
} corio_fetch_stats;
CORIO_EXTERN void corio_fetch_get_stats(const corio_rt *rt,
                                        corio_fetch_stats *out);

/*
** Name: corio_fetch_blocking
** Desc: Perform `req` with curl_easy_perform on the calling thread and wait
**       for it: no runtime, no loop.  Inside a running loop it stops every
**       other task until it returns (corio.blocking.get exists to show
**       exactly that mistake).  Same validation and same defaults as
**       corio_fetch_start; no connection reuse between calls.  Retries
**       (req->retry) sleep the calling thread between tries.  A request
**       that streams (on_data) is refused with CORIO_EINVAL.
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

#endif /* CORIO_FETCH_API_H */
