/*
** server.h: the HTTP server's private structures and functions, shared by
** the files of server/.  Built on the core (core/core.h).
*/
#ifndef CORIO_SERVER_H
#define CORIO_SERVER_H

#include <llhttp.h>

#include "core/core.h"
#include "core/queue.h"

/* the read buffer shared by a server's connections */
#define CORIO__SERVER_SLAB (64 * 1024)

/* A growable byte buffer, reused across requests of one connection. */
typedef struct corio__server_buf {
  char *base;
  size_t len, cap;
} corio__server_buf;

/* A received header: offsets into the request's buffer. */
typedef struct corio__server_hdr {
  size_t name, name_len, value, value_len;
} corio__server_hdr;

/*
** The request being received or handed out.  It lives inside its
** connection, so a request costs no allocation once the connection's
** buffers have grown; every string is an offset into `buf` (which may move
** while the request arrives) followed by a NUL.
*/
struct corio_server_req {
  struct corio__server_conn *conn;
  void *data;
  corio__server_buf buf; /* target, path, query, header strings, body */
  corio__server_hdr *hdrs;
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

/*
** max_header_bytes counts what a head keeps (target, names, values, and
** four bytes per field for ": " and CRLF).  The wire carries a little more
** that is not counted: the method and version, the blank lines llhttp
** skips before a request line, whitespace around values.  A head may take
** up to max_header_bytes plus as much again, at most this much more, on
** the wire (corio_server.head_max): 431 past it.
*/
#define CORIO__SERVER_HEAD_SLACK (64 * 1024)

/* conn->rstate: where the connection is in its request cycle */
enum {
  CORIO__SERVER_IDLE = 0, /* between requests */
  CORIO__SERVER_HEAD,     /* a request head is arriving */
  CORIO__SERVER_BODY,     /* its body is arriving */
  CORIO__SERVER_READY,    /* complete, about to be handed out */
  CORIO__SERVER_USER,     /* handed to the callback, not answered yet */
  CORIO__SERVER_WRITE,    /* answered, response being written */
  CORIO__SERVER_STREAM    /* head sent by corio_server_stream, body to come */
};

/* conn->tkind: which deadline list the connection is on */
enum {
  CORIO__SERVER_T_NONE = 0,
  CORIO__SERVER_T_HEADER,
  CORIO__SERVER_T_BODY,
  CORIO__SERVER_T_IDLE,
  CORIO__SERVER_T_WRITE,
  CORIO__SERVER_T_LINGER,
  CORIO__SERVER_T_COUNT
};

/* conn->flags */
#define CORIO__SERVER_CLOSING     0x001 /* uv_close called */
#define CORIO__SERVER_CLOSED      0x002 /* close callback ran: an orphan */
#define CORIO__SERVER_EOF         0x004 /* the peer sent FIN */
#define CORIO__SERVER_WRITING     0x008 /* wreq in flight */
#define CORIO__SERVER_CLOSE_AFTER 0x010 /* close once the response is out */
#define CORIO__SERVER_NO_INPUT    0x020 /* parse nothing more */
#define CORIO__SERVER_LINGER      0x040 /* shut down, draining the peer */
#define CORIO__SERVER_READ_OFF    0x080 /* reading stopped: too much pending */
#define CORIO__SERVER_IN_PROCESS  0x100 /* inside corio__server_process */
#define CORIO__SERVER_CONTINUE    0x200 /* creq (100 Continue) in flight */
#define CORIO__SERVER_GONE        0x400 /* disconnect reported for this request */
#define CORIO__SERVER_NO_BODY     0x800  /* streamed response without a body */
#define CORIO__SERVER_CHUNKED     0x1000 /* streamed body in chunked encoding */

typedef struct corio__server_conn corio__server_conn;
struct corio__server_conn {
  uv_tcp_t tcp;
  corio_server *srv; /* NULL for an orphan whose server is gone */
  corio_rt *rt;
  corio__queue node;  /* srv->conns, or an orphans list */
  corio__queue tnode; /* deadline list srv->tl[tkind] */
  uint64_t due;
  llhttp_t parser;
  corio_server_req req;
  /* for server_parse.c: the end of the parser's input of the moment, the
     byte before it, the head bytes seen so far, the CRLF still owed after
     chunk data, and whether the head has just completed */
  const char *pend;
  size_t head_raw;
  char plast;
  uint8_t crlf_need, head_done;
  /* unparsed input: [ibase + ioff, ibase + ilen), ibase being the server's
     read slab during a read callback and `in.base` otherwise */
  const char *ibase;
  size_t ilen, ioff;
  corio__server_buf in;
  corio__server_buf out; /* the serialized response */
  uv_write_t wreq, creq;
  uv_shutdown_t sreq;
  unsigned flags;
  unsigned nreq;        /* requests handed out on this connection */
  unsigned nwrites;     /* stream writes in flight (server_stream.c) */
  corio__queue swrites; /* those writes, oldest first (server_stream.c) */
  int err_status;       /* status a parser callback chose for its error */
  uint8_t rstate, tkind;
  char remote[56]; /* "[ipv6]:port" */
};

/* The runtime's state of the server part: its servers, and the requests
   of servers freed before their host answered them. */
typedef struct corio__server_home {
  corio__queue servers; /* listening or closing */
  corio__queue orphans;
} corio__server_home;

struct corio_server {
  corio_rt *rt;
  uv_tcp_t listener;
  uv_timer_t timer;    /* every deadline of the server */
  corio_server_opts o; /* defaults filled in */
  size_t head_max;     /* a head's bytes on the wire: 431 past it */
  corio_server_request_fn cb;
  corio_server_disconnect_fn on_gone;
  void *data;
  corio__queue node;                      /* the servers of the runtime */
  corio__queue conns, orphans;            /* of corio__server_conn */
  corio__queue tl[CORIO__SERVER_T_COUNT]; /* of conns, by tnode; [0] unused */
  uint64_t tl_ms[CORIO__SERVER_T_COUNT];
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

static inline corio__server_conn *corio__server_conn_of(corio__queue *q) {
  return corio__queue_data(q, corio__server_conn, node);
}

/* server.c */
void corio__server_cut_all(corio_server *s);
void corio__server_maybe_done(corio_server *s);

/* server_conn.c */
void corio__server_on_connection(uv_stream_t *ls, int status);
void corio__server_arm(corio_server *s);
void corio__server_timer_set(corio__server_conn *c, int kind);
void corio__server_process(corio__server_conn *c);
void corio__server_after_response(corio__server_conn *c);
void corio__server_conn_close(corio__server_conn *c);
void corio__server_conn_release(corio__server_conn *c);
void corio__server_conn_free(corio__server_conn *c);
void corio__server_gone(corio__server_conn *c);
/* 0 or CORIO_ENOMEM */
int corio__server_buf_reserve(corio__server_buf *b, size_t extra);
int corio__server_buf_grow(corio__server_buf *b, size_t extra, size_t bound);

/* Fuzzing: a connection of `s` over the open stream socket `fd` (not a
   TCP one: a socketpair), and input given to it as if it had been read
   (at most CORIO__SERVER_SLAB bytes; nothing once it reads no more). */
corio__server_conn *corio__server_adopt(corio_server *s, uv_os_sock_t fd);
void corio__server_conn_input(corio__server_conn *c, const char *data,
                              size_t len);

/* server_parse.c */
void corio__server_parser_init(corio__server_conn *c);
/* 0 (*used bytes taken: all, or up to a complete request), or the status
   of the error to answer */
int corio__server_parse(corio__server_conn *c, const char *data, size_t len,
                        size_t *used);
void corio__server_req_shrink(corio_server_req *req);

/* server_target.c */
/*
** Copy the path and query of the request's target after it (an
** authority-form target, CONNECT's, is the path).  An absolute-form target
** is parsed by libcurl; its host, and port if one is written, are copied
** too ("h:8080" at *host, *host_len bytes; 0 and 0 for the other forms).
** 0, or the status to answer: 400 (not an http(s) URL with a host and no
** userinfo), 500 (out of memory).
*/
int corio__server_target(corio_server_req *req, int is_connect, size_t *host,
                         size_t *host_len);

/* server_write.c */
void corio__server_reply(corio__server_conn *c, int status, int fatal);
int corio__server_check_answer(corio__server_conn *c, int status,
                               const corio_server_header *h, size_t nh,
                               const char *body, size_t len);
int corio__server_keep_open(corio__server_conn *c);

/* server_stream.c */
void corio__server_stream_drop(corio__server_conn *c);
/* framing: 0 Content-Length, 1 chunked, 2 none (until the close) */
int corio__server_serialize(corio__server_conn *c, int status,
                            const corio_server_header *h, size_t nh,
                            const char *body, size_t len, int keep,
                            int framing);
void corio__server_send_continue(corio__server_conn *c);

#endif
