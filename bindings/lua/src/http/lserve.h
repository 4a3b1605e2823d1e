/*
** lserve.h: what lserve.c (the server object) and lserve_req.c (requests
** and responses as Lua values) share.
*/
#ifndef LSERVE_H
#define LSERVE_H

#include "lcorio.h"

#define LCORIO_SERVER_MT "corio.Server"

typedef struct lserve_req lserve_req;

/*
** A server of the binding.  Its memory is malloc'd, not the userdata's:
** the runtime calls back into it until the C server is closed, which can
** be after the userdata is collected (lua_close), and handler tasks may
** hold requests until they finish.  It is freed when all three are over:
** the C server closed (srv NULL), the userdata collected (!ud_alive) and
** no request held (nheld 0).
*/
typedef struct lserver {
  corio_server *srv;  /* NULL once the C server is closed and freed */
  lcorio_state *S;    /* valid only while ud_alive */
  int ud_alive;       /* the userdata is not finalized: Lua may be used */
  int self_ref;       /* anchors the userdata while the server is open */
  int handler_ref;    /* handler(req) */
  int site_ref;       /* the function that called corio.serve, or NOREF */
  int site_line;      /* the line of that call: its handler tasks' site */
  int closed_ref;     /* a future, done once the server is closed */
  corio_task *closed; /* its runtime task */
  int closing;        /* corio_server_close was called */
  size_t nheld;       /* requests handed to tasks and not given back */
  lserve_req *held;   /* those requests */
  lserve_req *free_reqs;
  size_t nfree;
  int port;
  char url[80];
  corio_server_stats last; /* the totals when the C server was freed */
  char last_report[160];   /* the last failure reported, numbers as # */
  char last_line[160];     /* and its first line as it was printed */
  uint64_t reported;       /* failures reported in full */
  uint64_t repeats;        /* like the last one, counted, not printed yet */
  uint64_t report_ms;      /* when a report line was last printed */
} lserver;

/* Print the count of failures like the last one, if any (lserve_req.c). */
void lcorio_serve_flush_reports(lserver *ls, uint64_t now);

/* One request handed to a task; recycled through lserver.free_reqs. */
struct lserve_req {
  corio_server_req *req; /* NULL once answered */
  lserver *ls;
  corio_task *task; /* the handler task */
  int gone;         /* the client left: drop the request, do not answer */
  int streaming;    /* head sent (corio_server_stream): end or abort it */
  int waiting;      /* the task waits for a chunk's write callback */
  uint64_t t0;      /* uv_hrtime when its task began, if a trace runs */
  lserve_req *prev, *next; /* ls->held, or the free list (next only) */
};

/* lserve_req.c */
/*
** The task's done callback: gives the request back if the task did not
** answer it (dropped when the client left, else 503 or 500).
*/
void lcorio_serve_req_done(corio_task *t, void *ud);
/*
** The task body: runs the handler for the lserve_req (light userdata at 1)
** and answers its request.
*/
int lcorio_serve_run_request(lua_State *L);
/*
** Free a request record, or keep it for reuse; frees ls when it is the
** last thing that held it.
*/
void lcorio_serve_req_hold(lserve_req *r); /* r->ls set: on ls->held */
void lcorio_serve_req_release(lserve_req *r);
void lcorio_server_maybe_free(lserver *ls);

#endif
