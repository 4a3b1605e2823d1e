/*
** corio/redis.h: a Redis client on the runtime's loop, part of the public
** C API.  Included by corio.h; include corio.h, not this file.
*/
#ifndef CORIO_REDIS_API_H
#define CORIO_REDIS_API_H

#ifndef CORIO_H /* which opens extern "C" for C++ */
#error "include corio.h, which includes this file"
#endif

/*
** {==================================================================
** Redis client: hiredis' asynchronous API and its libuv adapter
** ===================================================================
**
** A client (corio_redis) is one connection to one server, shared by every
** caller: commands are pipelined (sent without waiting for the replies of
** the earlier ones) and replies are matched to commands in order, so a
** hundred tasks calling at once cost one connection and about one round
** trip.  The connection is made by the first command, not by
** corio_redis_new, and made again by the first command after it was lost:
** the client never reconnects on its own.  Each new connection sends AUTH
** (when the URL has a password) and SELECT (when it names a database other
** than 0), or PING, before the commands queued on it; its timeout covers
** the name lookup, the TCP connect and that first reply, so a server that
** accepts and never answers fails as surely as one that refuses.
**
** Completion: the callback runs exactly once per started command, on the
** loop, never from inside corio_redis_command, corio_redis_cancel or
** corio_redis_close.  Its `status` is 0 when a reply arrived (an error
** reply too: its type is CORIO_REDIS_ERROR; "OOM command not allowed..."
** is one), or a negative code, with corio_redis_last_error saying more:
**   CORIO_EDNS       the host name did not resolve; the commands queued
**                    on the connection fail so
**   CORIO_ECONNECT   the connection could not be made (refused, AUTH or
**                    SELECT failed); the commands queued on it fail so
**   CORIO_ETIMEDOUT  the connection was not made within the timeout (the
**                    name lookup included)
**   CORIO_ERESET     the connection was lost with the command in flight
**                    (the server closed it or died): whether the server
**                    ran the command is unknown
**   CORIO_EPROTO     the peer's bytes are not Redis' protocol (a server
**                    that is not Redis); the connection is dropped
**   CORIO_ECANCELED  corio_redis_cancel
**   CORIO_ECLOSED    corio_redis_close, or corio_rt_free
**   CORIO_ENOMEM
**
** Cancelling a command cannot take back what was sent: its reply, when it
** comes, is read and dropped, so the replies of the commands after it stay
** matched.  Lost connections fail only the commands in flight on them.
**
** Host names are looked up off the loop, with uv_getaddrinfo on libuv's
** thread pool (4 threads unless UV_THREADPOOL_SIZE says more), so a slow
** DNS server delays only the connection that waits for it; a numeric
** address is used as it is, with no lookup.  Of a name's addresses the
** first IPv4 one is used, else the first IPv6 one (hiredis' own choice),
** and only that one is tried.
**
** Costs and limits.  hiredis writes with write(2): a host must ignore
** SIGPIPE (the corio executable does), or a server that closes first
** kills the process.  hiredis allocates with malloc, not with
** corio_replace_allocator's functions.
** No TLS (rediss://), no RESP3, no pub/sub (a SUBSCRIBE reply is not
** matched to a command: do not send one).
** ===================================================================
*/

typedef struct corio_redis corio_redis;             /* a client */
typedef struct corio_redis_cmd corio_redis_cmd;     /* a command in flight */
typedef struct corio_redis_reply corio_redis_reply; /* a reply (opaque) */

typedef enum {
  CORIO_REDIS_NIL = 0, /* a nil bulk string or nil array */
  CORIO_REDIS_STRING,  /* a bulk string (binary safe) */
  CORIO_REDIS_STATUS,  /* a status ("OK", "PONG") */
  CORIO_REDIS_INTEGER,
  CORIO_REDIS_ARRAY, /* elements, each a reply, nested as deep as sent */
  CORIO_REDIS_ERROR  /* an error reply ("ERR unknown command ...") */
} corio_redis_type;

/*
** Replies: valid until the callback that got them returns.
** corio_redis_reply_str gives the bytes of a STRING, STATUS or ERROR
** (followed by a NUL that *len does not count; NULL for the other
** types); corio_redis_reply_len the elements of an ARRAY (0 for the
** others); corio_redis_reply_at element i (NULL out of range).
*/
CORIO_EXTERN corio_redis_type
corio_redis_reply_type(const corio_redis_reply *r);
CORIO_EXTERN const char *corio_redis_reply_str(const corio_redis_reply *r,
                                               size_t *len);
CORIO_EXTERN long long corio_redis_reply_integer(const corio_redis_reply *r);
CORIO_EXTERN size_t corio_redis_reply_len(const corio_redis_reply *r);
CORIO_EXTERN const corio_redis_reply *
corio_redis_reply_at(const corio_redis_reply *r, size_t i);

/*
** Completion callback: `reply` is NULL unless status is 0.  `cmd` is
** valid until the callback returns.
*/
typedef void (*corio_redis_cb)(corio_redis_cmd *cmd, int status,
                               const corio_redis_reply *reply, void *ud);

#define CORIO_REDIS_TIMEOUT      10.0 /* default connect timeout, seconds */
#define CORIO_REDIS_DEFAULT_PORT 6379

/*
** Name: corio_redis_new
** Desc: Make a client for `url`, "redis://[[user]:password@]host[:port]
**       [/db]" (port 6379 and database 0 unless given; the password
**       percent-decoded; a user is sent to AUTH as Redis 6's ACL
**       user).  Parsed by corio_url_parse; no I/O yet, no lookup.
**       `timeout` is the connect timeout in seconds (0:
**       CORIO_REDIS_TIMEOUT; < 0: none).
** Returns: 0 and *out set; CORIO_EURL (malformed: `why`, if not NULL,
**          says how; a path that is not a database number), CORIO_ESCHEME
**          (not redis://), CORIO_EINVAL (NULL argument, NaN timeout),
**          CORIO_ECLOSED (the runtime is being freed), CORIO_ENOMEM.
*/
CORIO_EXTERN int corio_redis_new(corio_rt *rt, const char *url, double timeout,
                                 corio_redis **out, const char **why);

/*
** Name: corio_redis_command
** Desc: Send a command of `argc` arguments (argv[i] is argvlen[i] bytes,
**       binary safe; argvlen NULL: NUL-terminated strings), connecting
**       first if the client has no connection.  Copied: the caller may
**       free the arguments when this returns.  `cb(cmd, status, reply,
**       ud)` runs once (see above).
** Returns: 0 and *out (if not NULL) set; CORIO_EINVAL (argc < 1, NULL
**          argument), CORIO_ECLOSED (the client is closed), CORIO_ENOMEM.
**          A connection that fails, even at once, is no error here: the
**          callback gets it, on the loop.
*/
CORIO_EXTERN int corio_redis_command(corio_redis *c, int argc,
                                     const char *const *argv,
                                     const size_t *argvlen, corio_redis_cb cb,
                                     void *ud, corio_redis_cmd **out);

/*
** Name: corio_redis_cancel
** Desc: Give up a command: its callback runs with CORIO_ECANCELED at the
**       next turn; its reply, if it comes, is dropped.
** Returns: 0; CORIO_ESTATE if its callback already ran or is queued.
*/
CORIO_EXTERN int corio_redis_cancel(corio_redis_cmd *cmd);

/*
** Name: corio_redis_close
** Desc: Close the connection and free the client: every command not
**       completed gets CORIO_ECLOSED, at the next turn.  The memory goes
**       once hiredis is done with it (at the next turn too); `c` must not
**       be used after this call.  May be called from a callback.  Clients
**       still open are closed by corio_rt_free.
*/
CORIO_EXTERN void corio_redis_close(corio_redis *c);

/*
** Why the last connection of `c` failed or was lost, after the server's
** "host:port: ": "Connection refused", "Server closed the connection",
** "cannot resolve the host name: unknown node or service",
** "not a Redis server? Protocol error, got "H" as reply type byte",
** "AUTH: WRONGPASS ...", or "" if none did.  Valid
** until the next callback of `c` runs.
*/
CORIO_EXTERN const char *corio_redis_last_error(const corio_redis *c);

/* The client of a command. */
CORIO_EXTERN corio_redis *corio_redis_cmd_client(const corio_redis_cmd *cmd);

/* The callback's `ud`, and a way to change it before completion. */
CORIO_EXTERN void *corio_redis_cmd_get_data(const corio_redis_cmd *cmd);
CORIO_EXTERN void corio_redis_cmd_set_data(corio_redis_cmd *cmd, void *data);

/* The host's slot on a client. */
CORIO_EXTERN void *corio_redis_get_data(const corio_redis *c);
CORIO_EXTERN void corio_redis_set_data(corio_redis *c, void *data);

/* Counts of one client, for tests and benchmarks. */
typedef struct corio_redis_stats {
  size_t pending;    /* commands started, callback not yet run */
  uint64_t commands; /* commands sent, the handshakes' included */
  uint64_t connects; /* connections attempted */
  uint64_t writes;   /* times the socket was written: a pipelined batch is
                        one, so commands / writes is the batching */
  int connected;     /* 1 while a connection is up (handshake done) */
} corio_redis_stats;
CORIO_EXTERN void corio_redis_get_stats(const corio_redis *c,
                                        corio_redis_stats *out);

/* }================================================================== */

#endif /* CORIO_REDIS_API_H */
