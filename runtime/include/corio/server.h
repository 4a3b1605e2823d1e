/*
** corio/server.h: the HTTP server, part of the public C API.
** Included by corio.h; include corio.h, not this file.
*/
#ifndef CORIO_SERVER_API_H
#define CORIO_SERVER_API_H

#ifndef CORIO_H /* which opens extern "C" for C++ */
#error "include corio.h, which includes this file"
#endif

/*
** {==================================================================
** Server: HTTP/1.1 on the loop
** ===================================================================
**
** A server owns one TCP listener and its connections, and parses requests
** with llhttp.  Each complete request (head and whole body) is handed
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
  size_t max_header_bytes; /* the head, counted as the target plus each
                              header's name and value and 4 bytes, else
                              431 [16 KiB]; its bytes on the wire (method,
                              version, whitespace too) may be twice that,
                              and no more than 64 KiB over it, else 431 */
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

/* The request target as sent: "/a/b?x=1", or absolute-form
   ("http://h:8080/a/b?x=1", an http or https URL with a host and no
   userinfo: 400 otherwise). */
CORIO_EXTERN const char *corio_server_req_target(const corio_server_req *req,
                                                 size_t *len);

/* The target's path ("/a/b") and its query without the '?' ("x=1", or ""
   when there is none); of an absolute-form target, as libcurl's URL API
   reads them, the fragment dropped. */
CORIO_EXTERN const char *corio_server_req_path(const corio_server_req *req,
                                               size_t *len);
CORIO_EXTERN const char *corio_server_req_query(const corio_server_req *req,
                                                size_t *len);

/* Headers in the order received (trailers of a chunked body are dropped).
   For an absolute-form target, Host holds the target's host (and port, if
   written), whatever the client sent in it, as RFC 9112 3.2.2 wants; an
   HTTP/1.0 request without Host gets one, last.
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

#endif /* CORIO_SERVER_API_H */
