/*
** fetch.h: the HTTP client's private structures and functions, shared by
** the files of fetch/.  Built on the core (core/core.h).
*/
#ifndef CORIO_FETCH_H
#define CORIO_FETCH_H

#include <curl/curl.h>

#include "core/core.h"
#include "core/queue.h"

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
  CORIO__Q_FRESH,    /* added to its shard's multi, not started yet */
  CORIO__Q_GATE      /* in its session's queue (fetch_gate.c) */
};

/* corio_fetch.state */
enum {
  CORIO__F_IDLE = 0, /* in the pool, or being set up */
  CORIO__F_ACTIVE,   /* added to its session's multi */
  CORIO__F_PENDING,  /* removed, its callback queued (cancelled) */
  CORIO__F_CALLBACK  /* its callback is running */
};

/* corio_fetch.sflags: a streamed transfer's state (fetch_stream.c) */
enum {
  CORIO__S_HEAD = 0x01,        /* the final head is in */
  CORIO__S_HEAD_DONE = 0x02,   /* on_head has run */
  CORIO__S_USER_PAUSED = 0x04, /* no on_data until corio_fetch_resume */
  CORIO__S_CURL_PAUSED = 0x08, /* CURL_WRITEFUNC_PAUSE returned */
  CORIO__S_FINISHED = 0x10,    /* out of its multi, outcome in done_* */
  CORIO__S_DISCARD = 0x20      /* a status to retry: its body is dropped */
};

/* Words of corio_fetch.statuses: one bit per status up to 599. */
#define CORIO__STATUS_WORDS ((600 + 63) / 64)

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
  corio__queue node;        /* session's active list, pending queue, or pool */
  corio__queue qnode;       /* session's queue, fetcher's wait queue or its
                               shard's fresh list */
  struct corio__host *host; /* its host in a gated session, or NULL */
  corio_timer *deadline;    /* its timeout while in the session's queue */
  corio_request *saved;     /* its request while in the session's queue:
                               set up when it starts (fetch_gate.c) */
  long timeout_ms;          /* CURLOPT_TIMEOUT_MS at the call, 0: none */
  uint64_t t_call, t_start; /* uv_hrtime at the call and at the start */
  int state;
  uint8_t stage;  /* CORIO__Q_*: where qnode links it */
  uint8_t slot;   /* holds a connection slot of its session and host */
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
  size_t pool_big;  /* in the pool: body.cap if over CORIO__KEEP_BODY */
  corio_timer *nap; /* armed while it waits between two tries, or NULL */
  int tries;        /* tries so far, the one under way included */
  int max_tries;    /* 1: no retry (none asked, or a method not retried) */
  double backoff, max_backoff;            /* corio_retry's, in seconds */
  uint64_t statuses[CORIO__STATUS_WORDS]; /* bit n: retry on status n */
  /* streaming (corio_request.on_data): `body` holds the bytes not taken
     by on_data yet; the pump (fetch_stream.c) hands them out */
  corio_fetch_head_cb on_head;
  corio_fetch_data_cb on_data; /* NULL: the body is collected */
  corio__queue snode;          /* in the fetcher's pump list, or alone */
  uint8_t sflags;              /* CORIO__S_* */
  uint8_t follow;              /* follows redirects */
  uint8_t hlocation;           /* the head being received has a Location */
  int hstatus;                 /* its status (from its status line) */
  size_t received;             /* body bytes accepted (max_body) */
  size_t delivered;            /* taken by on_data */
  int done_status;             /* the outcome, once CORIO__S_FINISHED */
  CURLcode done_code;
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
  corio__queue fresh; /* added to `multi` since its last socket_action */
  int doomed;         /* a transfer of it failed in our socket callback */
} corio__shard;

/*
** A host:port of a gated session (fetch_gate.c): its transfers waiting for
** a connection slot or the rate, in order, its slots in use, and the start
** times of the last second (the rate's sliding window, a ring).
*/
typedef struct corio__host {
  struct corio__host *next; /* hash chain */
  corio_session *session;
  corio__queue waiting; /* of corio_fetch (qnode), in order */
  size_t nwait;
  size_t nslots;      /* HTTP/1 transfers started and not finished */
  corio__queue ready; /* in the session's ready list, or alone */
  uint64_t *starts;   /* ring of uv_hrtime values, oldest at shead */
  size_t shead, nstarts, scap;
  corio_timer *timer; /* wakes the host when its rate window opens */
  uint32_t hash;
  char key[1]; /* "host:port", the host in lower case; allocated longer */
} corio__host;

struct corio_session {
  struct corio__fetcher *fetcher;
  corio_rt *rt;
  corio__shard *shards[CORIO__SHARDS_MAX]; /* [0] always exists */
  int nshards;
  int shardable;       /* limits divide evenly: more shards allowed */
  int nopen;           /* shard timers not closed yet */
  corio__queue node;   /* in the fetcher's sessions */
  corio__queue active; /* transfers added to its shards' multis */
  size_t nactive;
  size_t nparked;         /* parked sockets: idle keep-alive connections */
  size_t max_connections; /* the options' limits, 0: none */
  size_t max_per_host;
  size_t max_idle;
  size_t rate; /* starts per host in any second, 0: no limit */
  /* the gate (fetch_gate.c): slots and rate, when a limit is set */
  int gated;
  size_t nslots;       /* HTTP/1 transfers started and not finished */
  corio__queue ready;  /* hosts whose first waiting transfer may start */
  corio__host **hosts; /* hash table, when max_per_host or rate is set */
  size_t nbuckets, nhosts, sweep_at;
  corio__host *any;    /* the one host of a session limited in total only */
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
  uv_idle_t idle;       /* runs while cancelled callbacks are queued */
  corio__queue pend;    /* cancelled, their callbacks queued */
  corio__queue wait;    /* started, not added yet: in order */
  corio__queue pumps;   /* streamed transfers with something to hand out */
  size_t nwait, nfresh; /* transfers waiting; added but not started */
  corio__queue pool;    /* idle transfer objects, the last pooled first */
  size_t npool;
  size_t pool_big;       /* sum of the pooled objects' pool_big */
  corio__queue sessions; /* of corio_session */
  corio_session *dflt;
  size_t nsessions;
  corio__fslot *fds; /* indexed by fd */
  size_t nfds;
  size_t nsockets; /* contexts polling for a transfer (not parked) */
  size_t nconn;    /* fds marked `conn`: connection sockets open */
  size_t nactive;
  uint64_t rng; /* the retry delays' random state (fetch_retry.c) */
  int closing;
} corio__fetcher;

/* A pooled transfer object always keeps a body buffer this big; bigger
   ones while they sum to at most corio__body_pool_bytes. */
extern size_t corio__body_pool_bytes;
#define CORIO__KEEP_BODY (64 * 1024)

/* fetch.c: the transfer object. */
corio_fetch *corio__fetch_obj_new(void); /* no easy handle yet */
void corio__fetch_obj_recycle(corio_fetch *f, size_t keep_body);
int corio__fetch_obj_easy(corio_fetch *f);
void corio__fetch_obj_free(corio_fetch *f);

/* fetch_request.c: checking a request, setting up the easy handle. */
int corio__fetch_check(const corio_request *req, CURLU *urlh);
int corio__fetch_setup(corio_fetch *f, const corio_request *req);
void corio__fetch_pick_buffer(corio_fetch *f);

/* fetch_response.c: buffers, libcurl's write and header callbacks (set by
   corio__fetch_setup), completion. */
int corio__fbuf_reserve(corio__fbuf *b, size_t extra);
void corio__fetch_body_free(corio_fetch *f);
size_t corio__fetch_on_write(char *p, size_t size, size_t n, void *ud);
size_t corio__fetch_on_header(char *p, size_t size, size_t n, void *ud);
void corio__fetch_finish(corio_fetch *f, int status, CURLcode code);
int corio__fetch_code(const corio_fetch *f, CURLcode code);

/* fetch_retry.c: corio_retry checked, copied into a transfer, the delay
   before its next try (-1: no next try), and a transfer readied for it. */
int corio__retry_check(const corio_retry *r);
void corio__retry_setup(corio_fetch *f, const corio_request *req);
int64_t corio__retry_delay(corio_fetch *f, int status, uint64_t *rng);
int corio__retry_renew(corio_fetch *f);
int corio__retry_status(const corio_fetch *f, long code);
uint64_t corio__retry_seed(const void *salt);

/* fetch_multi.c: remove a shard's finished transfers and run their
   callbacks; corio__shard_action is curl_multi_socket_action on the shard
   (the transfers it starts get their receive buffers first); the idle
   handle's callback (cancelled callbacks, admission); cancel a session's
   transfers. */
void corio__shard_check(corio__shard *sh);
void corio__shard_action(corio__shard *sh, curl_socket_t fd, int flags);
void corio__fetcher_on_idle(uv_idle_t *h);
void corio__session_cancel_all(corio_session *s);
void corio__fetch_complete(corio_fetch *f, int status, CURLcode code);

/* fetch_stream.c: streamed transfers.  setup copies the request's
   callbacks; on_write and head_end are libcurl's side (record only);
   finish takes a streamed transfer libcurl is done with (0: complete it
   now, nothing is left to hand out); pump hands out what waits, from the
   fetcher's idle handle. */
void corio__stream_setup(corio_fetch *f, const corio_request *req);
size_t corio__stream_on_write(corio_fetch *f, const char *p, size_t len);
void corio__stream_head_end(corio_fetch *f);
int corio__stream_finish(corio_fetch *f, int status, CURLcode code);
void corio__stream_pump(corio__fetcher *ft);
void corio__stream_stats(const corio__fetcher *ft, corio_fetch_stats *out);

/* fetch_multi.c: a transfer that leaves its session's queue goes into
   libcurl (never runs a callback); one whose timeout ran out there fails. */
void corio__fetch_go(corio_fetch *f);
void corio__fetch_expire(corio_fetch *f);

/* fetch_gate.c: a gated session's queue.  enter: 1 when `f` may start now
   (it holds its slot), 0 when queued (with a copy of `req`, and no easy
   handle yet), or an error; setup: a transfer that waited gets its easy
   handle, set up from the copy; again: a retry's next try queues as enter
   does, keeping its easy handle; leave: out of the queue (cancelled, timed
   out); release: `f`, started, is done with its slot. */
int corio__gate_init(corio_session *s);
void corio__gate_free(corio_session *s);
int corio__gate_enter(corio_fetch *f, const corio_request *req);
int corio__gate_again(corio_fetch *f);
int corio__gate_setup(corio_fetch *f);
int corio__fetch_easy_setup(corio_fetch *f, const corio_request *req);
void corio__gate_leave(corio_fetch *f);
void corio__gate_release(corio_fetch *f);

/* fetch_session.c: sessions and their shards. */
corio__shard *corio__shard_pick(corio_session *s);
corio_session *corio__session_dflt(corio__fetcher *ft);
void corio__session_destroy(corio_session *s);

/* fetch_fetcher.c: the fetcher of `rt`, made on first use. */
corio__fetcher *corio__fetcher_get(corio_rt *rt);

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

#endif
