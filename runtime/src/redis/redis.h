/*
** redis.h: the Redis client's private structures (redis/), on core.h.
** hiredis appears here and in the redis/ sources only: the public header
** speaks of corio_redis_reply, never of redisReply.
*/
#ifndef CORIO_REDIS_INT_H
#define CORIO_REDIS_INT_H

#include <hiredis.h>
#include <async.h>

#include "../core/core.h"

/* The runtime's redis part: its open clients, closed by corio_rt_free. */
typedef struct corio__redis_home {
  corio__queue clients;
} corio__redis_home;

/*
** A command.  Three things may hold it: hiredis (in_hiredis: its reply
** callback has not run; hiredis keeps the pointer as privdata), the
** client's `later` list (queued: its callback is to run at the next
** turn with `status`) and the caller (done == 0: its callback has not
** run).  It is freed when none does.  A handshake command (AUTH, SELECT,
** PING) is the client's own: `hello` set, no callback.  A command sent
** while the host name is being looked up waits in c->parked, formatted
** (`text`), until there is a connection to hand it to.
*/
struct corio_redis_cmd {
  corio_redis *c;
  corio_redis_cb cb;
  void *ud;
  corio__queue lnode; /* in c->later while queued, c->parked while parked */
  int status;         /* for the later delivery */
  char *text;         /* parked: the command in Redis' protocol (hiredis') */
  size_t textlen;
  uint8_t in_hiredis;
  uint8_t queued;
  uint8_t parked;
  uint8_t done;  /* the callback ran, or is queued to run */
  uint8_t hello; /* handshake command: 1, or 2 for the last one */
};

/*
** A host name being looked up (uv_getaddrinfo, on libuv's thread pool).
** Allocated apart from the client, because the answer may come after the
** client gave up on it (the timeout, corio_redis_close) or is gone: `c`
** is then NULL, and the callback, which libuv always runs, frees it.
*/
typedef struct corio__redis_lookup {
  uv_getaddrinfo_t req;
  corio_redis *c; /* NULL: abandoned */
} corio__redis_lookup;

struct corio_redis {
  corio_rt *rt;
  corio__queue node; /* in the home's clients */
  void *data;
  /* the server, from the URL */
  char *host; /* hiredis wants it without brackets */
  int port;
  int db;
  char *user, *password; /* decoded; NULL when absent */
  uint64_t timeout_ms;   /* 0: none */
  /* the host's address, while a name is being looked up */
  corio__redis_lookup *lookup;
  corio__queue parked; /* the commands sent meanwhile */

  /* the connection */
  redisAsyncContext *ac; /* NULL: none (never made, lost or closed) */
  int up;                /* the handshake's last reply came */
  int fail_status;       /* why the connection being torn down failed */
  char errmsg[160];      /* corio_redis_last_error */
  uv_timer_t tick;       /* delivers `later` at the next turn */
  uv_timer_t deadline;   /* the connect timeout, the lookup's included */
  corio__queue later;    /* commands whose callback runs next turn */
  int closed;            /* corio_redis_close was called */
  int nhandles;          /* of tick and deadline, not closed yet */
  corio_redis_stats stats;
};

#endif
