/*
** internal.h: private structures and corio__ functions shared between the
** runtime's files.  Never included by a binding.
*/
#ifndef CORIO_INTERNAL_H
#define CORIO_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

#include "corio.h"

#define corio__container_of(ptr, type, member)                                 \
  ((type *)((char *)(ptr)-offsetof(type, member)))

/* alloc.c: every allocation of the runtime goes through these. */
void *corio__malloc(size_t size);
void *corio__calloc(size_t n, size_t size);
void *corio__realloc(void *ptr, size_t size);
void corio__free(void *ptr);

/*
** A deadline in the runtime's timer heap.  `seq` orders equal deadlines
** first-in first-out; `index` is the node's slot in the heap.
*/
typedef struct corio__tnode {
  uint64_t due;
  uint32_t index;
  uint32_t seq;
} corio__tnode;

/*
** Something that wants to know when a task is done (a waiting task's wait
** set, a done callback).  One waiter may be registered on many tasks.
*/
typedef struct corio__waiter corio__waiter;
struct corio__waiter {
  void (*notify)(corio__waiter *w, corio_task *done);
};

/* task->flags */
#define CORIO__QUEUED     0x01 /* in the ready queue */
#define CORIO__CANCEL_REQ 0x02 /* cancel requested, not yet delivered */
#define CORIO__OWNED      0x04 /* memory from corio_task_new */

struct corio_task {
  corio_rt *rt;
  corio_resume_fn resume; /* NULL for a future */
  void *data;
  corio_task *next;       /* ready-queue link */
  uintptr_t waiters;      /* 0, one corio__waiter *, or a list | 1 */
  corio_cancel_fn cancel; /* cleanup of the armed wait, or NULL */
  union {
    corio__tnode sleep; /* corio_sleep's deadline: no allocation per sleep */
    void *op;           /* corio_task_suspend's op */
  } u;
  uint8_t state;
  uint8_t flags;
  int32_t status; /* delivered to resume */
};

struct corio_timer {
  corio__tnode node;
  corio_rt *rt;
  corio_timer_fn cb;
  void *ud;
};

/* A callback queued to run at the next turn (a done callback added to a
   task that is already done). */
typedef struct corio__soon {
  struct corio__soon *next;
  corio_done_fn cb;
  corio_task *task;
  void *ud;
} corio__soon;

struct corio_rt {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owns_loop;
  int running;
  void *data;
  size_t ntasks;
  corio_task *current;
  /* ready queue (FIFO) */
  corio_task *ready_head, *ready_tail;
  size_t nready;
  corio__soon *soon_head, *soon_tail;
  uv_idle_t idle;   /* active while something is ready: poll must not block */
  uv_check_t check; /* drains the ready queue after each poll */
  /* timers */
  corio__tnode **heap; /* entries tagged: bit 0 set = a task's sleep */
  size_t heap_len, heap_cap;
  uint32_t timer_seq;
  uint64_t armed_due; /* deadline uv_timer is armed for, UINT64_MAX if none */
  uv_timer_t uvtimer;
  int nhandles; /* handles still to be closed by corio_rt_free */
  struct corio__fetcher *fetcher; /* fetch.c: the curl multi, made lazily */
  struct corio_server *servers;   /* server.c: listening or closing */
  struct corio__srv_conn *srv_orphans; /* their freed servers' held requests */
};

/* rt.c: corio_rt_free runs the loop until every handle the runtime's parts
   are closing has its close callback run.  Count one up before uv_close
   (corio__closing) and down in the close callback (corio__closed). */
void corio__closing(corio_rt *rt);
void corio__closed(corio_rt *rt);

/* fetch.c: cancel transfers and release the curl multi (its poll handles
   are closed through corio__close_handle). */
void corio__fetch_shutdown(corio_rt *rt);

/* server.c: close the servers still open, run the loop until they are
   gone, and free the requests nobody answered. */
void corio__server_shutdown(corio_rt *rt);

/* sched.c */
void corio__sched_init(corio_rt *rt);
void corio__sched_close(corio_rt *rt);
void corio__ready(corio_task *task, int status);
int corio__call_soon(corio_rt *rt, corio_done_fn cb, corio_task *task,
                     void *ud);
void corio__unqueue(corio_task *task);

/* timer.c */
void corio__timers_init(corio_rt *rt);
void corio__timers_close(corio_rt *rt);
int corio__tnode_add(corio_rt *rt, corio__tnode *node, uint64_t ms, int tag);
void corio__tnode_remove(corio_rt *rt, corio__tnode *node);

/* waiter.c */
int corio__waiter_add(corio_task *task, corio__waiter *w);
size_t corio__waiter_remove(corio_task *task, corio__waiter *w);
void corio__waiters_notify(corio_task *task);
typedef int (*corio__waiter_pred)(corio__waiter *w, void *ctx);
size_t corio__waiter_remove_if(corio_task *task, corio__waiter_pred pred,
                               void *ctx);

/* task.c */
void corio__task_sleep_expired(corio_task *task);

/* server */
#include <http_parser.h>

/* A growable byte buffer, reused across requests of one connection. */
typedef struct corio__srv_buf {
  char *base;
  size_t len, cap;
} corio__srv_buf;

/* A received header: offsets into the request's buffer. */
typedef struct corio__srv_hdr {
  size_t name, name_len, value, value_len;
} corio__srv_hdr;

/*
** The request being received or handed out.  It lives inside its
** connection, so a request costs no allocation once the connection's
** buffers have grown; every string is an offset into `buf` (which may move
** while the request arrives) followed by a NUL.
*/
struct corio_srv_req {
  struct corio__srv_conn *conn;
  void *data;
  corio__srv_buf buf; /* target, path, query, header strings, body */
  corio__srv_hdr *hdrs;
  size_t nhdrs, hdrs_cap;
  size_t target, target_len, path, path_len, query, query_len;
  size_t body, body_len;
  size_t body_max;   /* its declared length, or max_body_bytes (chunked) */
  size_t head_bytes; /* counted against max_header_bytes */
  uint8_t method, major, minor, keep_alive;
  uint8_t last;     /* the element being received: SRV_EL_* (server_parse.c) */
  uint8_t open;     /* that element still needs its NUL */
  uint8_t rejected; /* over max_inflight: answered by the server */
  uint8_t in_body;  /* head complete: later header callbacks are trailers */
};

/* conn->rstate: where the connection is in its request cycle */
enum {
  CORIO__SRV_IDLE = 0, /* between requests */
  CORIO__SRV_HEAD,     /* a request head is arriving */
  CORIO__SRV_BODY,     /* its body is arriving */
  CORIO__SRV_READY,    /* complete, about to be handed out */
  CORIO__SRV_USER,     /* handed to the callback, not answered yet */
  CORIO__SRV_WRITE,    /* answered, response being written */
  CORIO__SRV_STREAM    /* head sent by corio_srv_stream, body to come */
};

/* conn->tkind: which deadline list the connection is on */
enum {
  CORIO__SRV_T_NONE = 0,
  CORIO__SRV_T_HEADER,
  CORIO__SRV_T_BODY,
  CORIO__SRV_T_IDLE,
  CORIO__SRV_T_WRITE,
  CORIO__SRV_T_LINGER,
  CORIO__SRV_T_COUNT
};

/* conn->flags */
#define CORIO__SRV_CLOSING     0x001  /* uv_close called */
#define CORIO__SRV_CLOSED      0x002  /* close callback ran: an orphan */
#define CORIO__SRV_EOF         0x004  /* the peer sent FIN */
#define CORIO__SRV_WRITING     0x008  /* wreq in flight */
#define CORIO__SRV_CLOSE_AFTER 0x010  /* close once the response is out */
#define CORIO__SRV_NO_INPUT    0x020  /* parse nothing more */
#define CORIO__SRV_LINGER      0x040  /* shut down, draining the peer */
#define CORIO__SRV_READ_OFF    0x080  /* reading stopped: too much pending */
#define CORIO__SRV_IN_PROCESS  0x100  /* inside corio__srv_process */
#define CORIO__SRV_CONTINUE    0x200  /* creq (100 Continue) in flight */
#define CORIO__SRV_GONE        0x400  /* disconnect reported for this request */
#define CORIO__SRV_NO_BODY     0x800  /* streamed response without a body */
#define CORIO__SRV_CHUNKED     0x1000 /* streamed body in chunked encoding */

typedef struct corio__srv_conn corio__srv_conn;
struct corio__srv_conn {
  uv_tcp_t tcp;
  corio_server *srv; /* NULL for an orphan whose server is gone */
  corio_rt *rt;
  corio__srv_conn *prev, *next;   /* srv->conns, or srv->orphans */
  corio__srv_conn *tprev, *tnext; /* deadline list srv->tl[tkind] */
  uint64_t due;
  http_parser parser;
  corio_srv_req req;
  /* unparsed input: [ibase + ioff, ibase + ilen), ibase being the server's
     read slab during a read callback and `in.base` otherwise */
  const char *ibase;
  size_t ilen, ioff;
  corio__srv_buf in;
  corio__srv_buf out; /* the serialized response */
  uv_write_t wreq, creq;
  uv_shutdown_t sreq;
  unsigned flags;
  unsigned nreq;    /* requests handed out on this connection */
  unsigned nwrites; /* stream writes in flight (server_stream.c) */
  struct corio__srv_swrite *swrites; /* those writes, oldest first */
  int err_status; /* status a parser callback chose for its error */
  uint8_t rstate, tkind;
  char remote[56]; /* "[ipv6]:port" */
};

typedef struct corio__srv_tlist {
  corio__srv_conn *head, *tail;
} corio__srv_tlist;

struct corio_server {
  corio_rt *rt;
  uv_tcp_t listener;
  uv_timer_t timer;    /* every deadline of the server */
  corio_server_opts o; /* defaults filled in */
  corio_srv_request_fn cb;
  corio_srv_disconnect_fn on_gone;
  void *data;
  corio_server *prev, *next; /* rt->servers */
  corio__srv_conn *conns, *orphans;
  corio__srv_tlist tl[CORIO__SRV_T_COUNT];
  uint64_t tl_ms[CORIO__SRV_T_COUNT];
  uint64_t armed_due, close_due;
  size_t nconns, inflight;
  uint64_t nrequests, nrejected;
  char *slab; /* read buffer shared by every connection */
  int port;
  int closing, nopen; /* handles (listener, timer) not closed yet */
  corio_server_closed_fn on_closed;
  void *closed_ud;
  int64_t date_sec;
  char date[48]; /* "Date: ...\r\n" for date_sec */
};

/* server.c */
void corio__srv_timer_set(corio__srv_conn *c, int kind);
void corio__srv_process(corio__srv_conn *c);
void corio__srv_after_response(corio__srv_conn *c);
void corio__srv_conn_close(corio__srv_conn *c);
void corio__srv_conn_release(corio__srv_conn *c);
void corio__srv_gone(corio__srv_conn *c);
/* 0 or CORIO_ENOMEM */
int corio__srv_buf_reserve(corio__srv_buf *b, size_t extra);
int corio__srv_buf_grow(corio__srv_buf *b, size_t extra, size_t bound);

/* server_parse.c */
extern const http_parser_settings corio__srv_settings;
void corio__srv_req_shrink(corio_srv_req *req);

/* server_write.c */
void corio__srv_reply(corio__srv_conn *c, int status, int fatal);
int corio__srv_check_answer(corio__srv_conn *c, int status,
                            const corio_srv_header *h, size_t nh,
                            const char *body, size_t len);
int corio__srv_keep_open(corio__srv_conn *c);

/* server_stream.c */
void corio__srv_stream_drop(corio__srv_conn *c);
/* framing: 0 Content-Length, 1 chunked, 2 none (until the close) */
int corio__srv_serialize(corio__srv_conn *c, int status,
                         const corio_srv_header *h, size_t nh, const char *body,
                         size_t len, int keep, int framing);
void corio__srv_send_continue(corio__srv_conn *c);

/* fetch */
#include <curl/curl.h>

/* A growable byte buffer. */
typedef struct corio__fbuf {
  char *p;
  size_t len, cap;
} corio__fbuf;

/* corio_fetch.stage: an active transfer on its way into libcurl
   (fetch_multi.c, admission) */
enum {
  CORIO__Q_NONE = 0, /* not added yet, or started by libcurl */
  CORIO__Q_WAIT,     /* in the fetcher's wait queue, not added yet */
  CORIO__Q_FRESH     /* added to its shard's multi, not started yet */
};

/* corio_fetch.state */
enum {
  CORIO__F_IDLE = 0, /* in the pool, or being set up */
  CORIO__F_ACTIVE,   /* added to its session's multi */
  CORIO__F_PENDING,  /* removed, its callback queued (cancelled) */
  CORIO__F_CALLBACK  /* its callback is running */
};

/*
** One transfer.  Pooled with its buffers, not its easy handle (fetch.c,
** corio__fetch_obj_recycle): a transfer that reuses a pooled object makes
** no allocation of its own, libcurl's aside, unless a buffer must grow.
** `res` is what the callback (or corio_fetch_blocking's caller) sees.
*/
struct corio_fetch {
  CURL *easy;
  struct corio__fetcher *fetcher; /* NULL for corio_fetch_blocking */
  corio_session *session;
  struct corio__shard *shard; /* the multi of `session` it was added to */
  corio_fetch_cb cb;
  void *ud;
  corio_fetch *prev, *next;   /* session's active list, pending queue, pool */
  corio_fetch *qprev, *qnext; /* fetcher's wait queue or shard's fresh list */
  int state;
  uint8_t stage;  /* CORIO__Q_*: where qprev, qnext link it */
  uint8_t h1;     /* HTTP/1 only: may skip libcurl's reuse search */
  int err;        /* corio code set by a callback of ours (ETOOLARGE...) */
  int sock_errno; /* why our socket() failed, 0 if it did not */
  curl_socket_t opened[2];   /* the last sockets made for it, or -1 */
  size_t max_body;           /* 0: no limit */
  size_t hbytes;             /* header bytes of the current response */
  corio__fbuf arena;         /* request: curl_slist nodes, header lines, body */
  corio__fbuf body;          /* p: the body, body_off into its block */
  corio_alloc_fn body_alloc; /* the block's allocator; NULL: ours */
  void *body_ud;
  size_t body_off;
  corio__fbuf hbuf; /* response header fields: "name\0value\0"... */
  size_t *hoff;     /* 2 offsets into hbuf per header field */
  size_t nh, hoff_cap;
  corio_header *harr; /* res.headers, built at completion */
  size_t harr_cap;
  size_t pool_big; /* in the pool: body.cap if over CORIO__KEEP_BODY */
  corio_response res;
  char errbuf[CURL_ERROR_SIZE];
};

/* A socket libcurl asked us to watch (curl_multi_assign'ed to it), or a
   parked one: an idle keep-alive connection's (fetch_sock.c). */
typedef struct corio__fsock {
  uv_poll_t poll;
  corio_rt *rt;
  struct corio__shard *shard; /* whose multi the socket belongs to */
  curl_socket_t fd;
  int events; /* UV_READABLE|UV_WRITABLE the poll is started with */
  int parked; /* libcurl said CURL_POLL_REMOVE; the poll is unref'ed */
} corio__fsock;

/* What the fetcher knows about one fd number. */
typedef struct corio__fslot {
  corio__fsock *k; /* the context on this number, or NULL */
  int conn;        /* made by corio__fsock_open, not closed yet: its close
                      will come through corio__fsock_closesocket */
} corio__fslot;

/*
** Most transfers a shard takes before the next one is used, and most
** shards per session.  libcurl 7.88's curl_multi_remove_handle walks the
** multi's connection cache for every transfer that leaves a kept-alive
** connection (its connect-only check), so with every connection in one
** multi, 10,000 concurrent transfers cost 50 million steps as they
** finish.  Spread over shards, each with its own cache, a walk only sees
** that shard's connections.
*/
#define CORIO__SHARD_SPILL 512
#define CORIO__SHARDS_MAX  16

/* One curl multi of a session, with its connection cache and timer. */
typedef struct corio__shard {
  corio_session *session;
  CURLM *multi;
  uv_timer_t timer;   /* CURLMOPT_TIMERFUNCTION's timer */
  size_t nactive;     /* transfers added to `multi` */
  size_t nparked;     /* its parked sockets: idle keep-alive connections */
  int in_timeout;     /* inside the timer's socket_action */
  corio_fetch *fresh; /* added to `multi` since its last socket_action */
  int doomed;         /* a transfer of it failed in our socket callback */
} corio__shard;

struct corio_session {
  struct corio__fetcher *fetcher;
  corio_rt *rt;
  corio__shard *shards[CORIO__SHARDS_MAX]; /* [0] always exists */
  int nshards;
  int shardable;              /* limits divide evenly: more shards allowed */
  int nopen;                  /* shard timers not closed yet */
  corio_session *prev, *next; /* fetcher's list */
  corio_fetch *active;        /* transfers added to its shards' multis */
  size_t nactive;
  size_t nparked;         /* parked sockets: idle keep-alive connections */
  size_t max_connections; /* the options' limits, 0: none */
  size_t max_per_host;
  size_t max_idle;
  int depth;           /* > 0 while corio__shard_check runs callbacks */
  int closing;         /* corio_session_free was called */
  int destroy_pending; /* free once depth drops to 0 */
  int is_default;
  void *data;
};

/* Per runtime: made by the first fetch, freed by corio__fetch_shutdown. */
typedef struct corio__fetcher {
  corio_rt *rt;
  CURLSH *share; /* DNS + TLS session cache shared by the sessions */
  CURLU *urlh;   /* reused to validate URLs */
  char *url_ok;  /* the last URL urlh accepted, or NULL */
  size_t url_ok_cap;
  uv_idle_t idle; /* runs while cancelled callbacks are queued */
  corio_fetch *pend_head, *pend_tail;
  corio_fetch *wait_head, *wait_tail; /* started, not added yet */
  size_t nwait, nfresh; /* transfers waiting; added but not started */
  corio_fetch *pool;
  size_t npool;
  size_t pool_big; /* sum of the pooled objects' pool_big */
  corio_session *sessions;
  corio_session *dflt;
  size_t nsessions;
  corio__fslot *fds; /* indexed by fd */
  size_t nfds;
  size_t nsockets; /* contexts polling for a transfer (not parked) */
  size_t nconn;    /* fds marked `conn`: connection sockets open */
  size_t nactive;
  int closing;
} corio__fetcher;

/* A pooled transfer object always keeps a body buffer this big; bigger
   ones while they sum to at most corio__body_pool_bytes. */
extern size_t corio__body_pool_bytes;
#define CORIO__KEEP_BODY (64 * 1024)

/* fetch.c: one transfer's request and response. */
int corio__fetch_check(const corio_request *req, CURLU *urlh);
corio_fetch *corio__fetch_obj_new(void);
void corio__fetch_obj_recycle(corio_fetch *f, size_t keep_body);
int corio__fetch_obj_easy(corio_fetch *f);
void corio__fetch_obj_free(corio_fetch *f);
void corio__fetch_body_free(corio_fetch *f);
int corio__fetch_setup(corio_fetch *f, const corio_request *req);
void corio__fetch_finish(corio_fetch *f, int status, CURLcode code);
int corio__fetch_code(const corio_fetch *f, CURLcode code);
void corio__fetch_pick_buffer(corio_fetch *f);

/* fetch_multi.c: remove a shard's finished transfers and run their
   callbacks; corio__shard_action is curl_multi_socket_action on the shard
   (the transfers it starts get their receive buffers first). */
void corio__shard_check(corio__shard *sh);
void corio__shard_action(corio__shard *sh, curl_socket_t fd, int flags);

/* fetch_sock.c: libcurl's socket callbacks (userp/clientp: the shard for
   the first, the transfer for open, the fetcher for close), and closing a
   context. */
int corio__fsock_curl_cb(CURL *e, curl_socket_t fd, int what, void *userp,
                         void *socketp);
curl_socket_t corio__fsock_open(void *clientp, curlsocktype purpose,
                                struct curl_sockaddr *a);
int corio__fsock_closesocket(void *clientp, curl_socket_t fd);
void corio__fsock_close(corio__fetcher *ft, corio__fsock *k);
void corio__fsock_forget_closed(corio_fetch *f);
/* end fetch */

#endif
