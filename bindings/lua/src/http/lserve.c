/*
** lserve.c: corio.serve, an HTTP/1.1 server on the loop whose handlers
** are tasks.
**
**   local s <close> = corio.serve{port = 0, handler = function(req) ... end}
**   print(s.url)          -- "http://127.0.0.1:PORT"
**   s:close([deadline])   -- graceful; waits until closed
**
** Options: handler (required), host ["127.0.0.1"], port [0: any free],
** max_inflight [0: no limit], overload_status [503], backlog,
** max_connections, max_requests_per_conn, max_header_bytes [16 KiB, as
** corio_server_opts counts it], max_body_bytes [8 MiB], and header_timeout
** [10], body_timeout [30], idle_timeout [60], write_timeout [60] in
** seconds.  An unknown option or a bad value raises an error that names
** it; failing to listen raises a ServerError whose kind is "addrinuse",
** "dns", ...
**
** Each request runs handler(req) in a task of its own (so it may sleep,
** fetch, wait); req has method, target (as sent), path (percent-decoded),
** raw_path, query (decoded: "a=1&a=2&b=x+y&c" gives {a={"1","2"},
** b="x y", c=""}), query_string, headers (lower-case names, any-case
** lookup, repeated ones joined with ", "; for an absolute-form target,
** host is the target's: corio_server_req_header_at), body, remote
** ("ip:port") and version ("1.1").  The handler returns
**   {status=200, headers={name=value or {values}}, body=""}  as given;
**   the same with body=function: streamed (chunked): the task calls it
**     for each chunk until it returns nil, and sends each chunk before
**     asking for the next (it may wait in between: sleep, fetch, ...);
**     an error in it cuts the body short;
**   a string: 200 with it as a text/plain body;
**   nothing (nil): 204 No Content.
** A handler that raises gets a 500; its error is reported once on stderr
** with its traceback, and the server goes on.  Past max_inflight requests
** in flight, the server answers overload_status at once, without a task.
** When the client goes away (resets the connection, a write to it fails,
** a timeout or the close deadline cuts it), the handler task is cancelled
** ("connection closed before the handler answered") and the connection is
** dropped without an answer; a client that only shut down its writing
** side (FIN) still gets its answer.  A handler cancelled otherwise
** (Ctrl-C) answers 503.
**
** Server object: port, url, closed (boolean), close([deadline]) (stop
** accepting now, let requests in flight finish for up to `deadline`
** seconds [10], 0 cuts them; waits until closed: in a task it yields, at
** top level it runs the loop; in the server's own handler it does not
** wait, since the close waits for that handler), wait() (until closed),
** stats() ({connections, inflight, requests, rejected, handlers}),
** __close (close with the default deadline) and __gc.
**
** The object is a userdata boxing a malloc'd lserver (lserve.h says why).
** While the server is open a registry ref anchors the userdata, so a
** server nobody refers to keeps serving, as Node's does.
**
** Each server owns a hidden future that is done once the server is
** closed: close() and wait() await it, and cancelling it (Ctrl-C cancels
** every task, lua_close finishes them all) closes the server at once.  So
** a script interrupted while serving exits instead of serving forever.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lserve.h"

#define DEFAULT_CLOSE_DEADLINE 10.0 /* seconds */

/*
** {==================================================================
** Options
** ===================================================================
*/
enum { O_HOST, O_HANDLER, O_INT, O_UINT, O_SIZE, O_SECONDS };

static const struct {
  const char *name;
  int kind;
  size_t off;
  lua_Integer min, max;
} options[] = {
#define F(f) offsetof(corio_server_opts, f)
    {"host", O_HOST, 0, 0, 0},
    {"handler", O_HANDLER, 0, 0, 0},
    {"port", O_INT, F(port), 0, 65535},
    {"backlog", O_INT, F(backlog), 1, 65535},
    {"overload_status", O_INT, F(overload_status), 200, 999},
    {"max_inflight", O_UINT, F(max_inflight), 0, 4000000000},
    {"max_connections", O_UINT, F(max_connections), 1, 4000000000},
    {"max_requests_per_conn", O_UINT, F(max_requests_per_conn), 0, 4000000000},
    {"max_header_bytes", O_SIZE, F(max_header_bytes), 256, 1000000000000},
    {"max_body_bytes", O_SIZE, F(max_body_bytes), 1, 1000000000000},
    {"header_timeout", O_SECONDS, F(header_timeout_ms), 0, 0},
    {"body_timeout", O_SECONDS, F(body_timeout_ms), 0, 0},
    {"idle_timeout", O_SECONDS, F(idle_timeout_ms), 0, 0},
    {"write_timeout", O_SECONDS, F(write_timeout_ms), 0, 0},
#undef F
};
#define NOPTIONS (sizeof options / sizeof options[0])

/*
** Read the option table at 1 into *o; the handler is pushed.  Raises,
** naming the option, on an unknown key or a bad value.
*/
static void parse_opts(lua_State *L, corio_server_opts *o) {
  static const char *const fn = "corio.serve";
  const char *names[NOPTIONS + 1];
  size_t i;
  for (i = 0; i < NOPTIONS; i++) names[i] = options[i].name;
  names[NOPTIONS] = NULL;
  if (lua_type(L, 1) != LUA_TTABLE)
    luaL_error(L, "%s: options must be a table, not a %s", fn,
               luaL_typename(L, 1));
  lcorio_opts_check(L, 1, fn, names);
  for (i = 0; i < NOPTIONS; i++) {
    void *field = (char *)o + options[i].off;
    const char *name = options[i].name;
    if (options[i].kind == O_HOST) {
      o->host = lcorio_opt_string(L, 1, fn, name, o->host);
    } else if (options[i].kind == O_SECONDS) {
      int64_t ms =
          lcorio_opt_seconds(L, 1, fn, name, -1, LCORIO_SECONDS_POSITIVE);
      if (ms >= 0) *(unsigned *)field = (unsigned)ms; /* <= LCORIO_MS_MAX */
    } else if (options[i].kind != O_HANDLER &&
               lcorio_opt_push(L, 1, fn, name, LUA_TNONE)) {
      lua_Integer v;
      lua_pop(L, 1);
      v = lcorio_opt_integer(L, 1, fn, name, 0, options[i].min, options[i].max);
      if (options[i].kind == O_INT)
        *(int *)field = (int)v;
      else if (options[i].kind == O_UINT)
        *(unsigned *)field = (unsigned)v;
      else
        *(size_t *)field = (size_t)v;
    }
  }
  if (!lcorio_opt_push(L, 1, fn, "handler", LUA_TFUNCTION))
    luaL_error(L, "%s: option 'handler' (a function) is required", fn);
}

/* }================================================================== */

/*
** {==================================================================
** callbacks from the C server
** ==================================================================
*/

/* Lua may be called: the userdata lives and lua_close is not running. */
static int lua_usable(const lserver *ls) {
  return ls->ud_alive && !ls->S->closing && ls->S->rt != NULL;
}

/*
** lcorio_protect'ed: push a new task running lcorio_serve_run_request(r).
** No Lua frame spawns it: its spawn site is the corio.serve call, and its
** name the request line (lcorio_serve_push_label), for dumps and traces.
*/
static int spawn_handler(lua_State *L) {
  lserver *ls = ((lserve_req *)lua_touserdata(L, 1))->ls;
  ltask *lt;
  lua_pushcfunction(L, lcorio_serve_run_request);
  lua_insert(L, 1); /* the request, a light userdata, is its argument */
  lt = lcorio_spawn(L, 1, 1);
  lt->flags |= LT_SERVED;
  if (ls->site_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->site_ref);
    lcorio_set_spawn_site(L, lt, lua_gettop(L) - 1, ls->site_line);
  }
  return 1;
}

/* A request: hand it to a new task running lcorio_serve_run_request. */
static void on_request(corio_server *srv, corio_server_req *req, void *ud) {
  static const char busy[] = "Service Unavailable\n";
  lserver *ls = ud;
  lserve_req *r;
  lua_State *L;
  ltask *t;
  int top;
  (void)srv;
  if (!lua_usable(ls) ||
      (r = ls->free_reqs != NULL ? ls->free_reqs : malloc(sizeof *r)) == NULL) {
    corio_server_respond(req, 503, NULL, 0, busy, sizeof busy - 1);
    return;
  }
  if (r == ls->free_reqs) {
    ls->free_reqs = r->next;
    ls->nfree--;
  }
  r->req = req;
  r->ls = ls;
  r->task = NULL;
  r->gone = r->streaming = r->waiting = 0;
  lcorio_serve_req_hold(r);
  L = ls->S->L;
  top = lua_gettop(L);
  lua_checkstack(L, 8);
  lua_pushcfunction(L, spawn_handler);
  lua_pushlightuserdata(L, r);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || (t = lcorio_totask(L, -1)) == NULL) {
    fprintf(stderr, "corio.serve: cannot start a handler task: %s\n",
            lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    corio_server_respond(req, 503, NULL, 0, busy, sizeof busy - 1);
    lua_settop(L, top);
    r->req = NULL;
    lcorio_serve_req_release(r);
    return;
  }
  r->task = lcorio_core(t);
  r->t0 = ls->S->trace != NULL ? uv_hrtime() : 0;
  if (corio_task_add_done(r->task, lcorio_serve_req_done, r) != 0) {
    /* out of memory: the task is dropped before it ever runs */
    corio_task_cancel(r->task);
    corio_server_respond(req, 503, NULL, 0, busy, sizeof busy - 1);
    r->req = NULL;
    lcorio_serve_req_release(r);
  } else {
    corio_server_req_set_data(req, r);
  }
  lua_settop(L, top);
}

static int cancel_gone(lua_State *L) {
  lcorio_push_task(L, lua_touserdata(L, 1));
  lcorio_cancel(L, -1, "connection closed before the handler answered");
  return 0;
}

/* The client of a request left: cancel its handler task. */
static void on_gone(corio_server *srv, corio_server_req *req, void *ud) {
  lserver *ls = ud;
  lserve_req *r = corio_server_req_get_data(req);
  lua_State *L;
  (void)srv;
  if (r == NULL) return;
  r->gone = 1;
  if (r->task == NULL || corio_task_done(r->task)) return;
  if (!lua_usable(ls)) {
    corio_task_cancel(r->task);
    return;
  }
  /*
  ** with a message, so that the handler sees why (protected: storing the
  ** message allocates)
  */
  L = ls->S->L;
  if (lcorio_protect(L, cancel_gone, lcorio_ltask(r->task)) != LUA_OK)
    corio_task_cancel(r->task);
}

static int set_closed(lua_State *L) {
  lserver *ls = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ls->closed_ref);
  lua_pushboolean(L, 1);
  lcorio_set_result(L, -2, 1);
  return 0;
}

/* The C server is closed and freed. */
static void on_closed(corio_server *srv, void *ud) {
  lserver *ls = ud;
  corio_server_get_stats(srv, &ls->last); /* stats() keeps the totals */
  lcorio_serve_flush_reports(ls, 0);
  ls->srv = NULL;
  if (lua_usable(ls)) {
    lua_State *L = ls->S->L;
    if (!corio_task_done(ls->closed)) /* closed:set_result(true) */
      lcorio_protect(L, set_closed, ls);
    luaL_unref(L, LUA_REGISTRYINDEX, ls->self_ref);
    ls->self_ref = LUA_NOREF;
  }
  lcorio_server_maybe_free(ls);
}

static void start_close(lserver *ls, uint64_t deadline_ms) {
  if (ls->srv == NULL || ls->closing) return;
  ls->closing = 1;
  corio_server_close(ls->srv, deadline_ms, on_closed, ls);
}

/* The closed future was finished from outside (cancelled): close now. */
static void on_future_done(corio_task *t, void *ud) {
  (void)t;
  start_close(ud, 0);
}

/* }================================================================== */

/*
** {==================================================================
** the server object
** ==================================================================
*/
static lserver *check_server(lua_State *L, int idx) {
  lserver **box = luaL_checkudata(L, idx, LCORIO_SERVER_MT);
  if (*box == NULL) luaL_error(L, "corio: server object already finalized");
  return *box;
}

static int raise_listen_error(lua_State *L, int rc, const char *host,
                              int port) {
  char kind[32];
  const char *name = corio_err_name(rc);
  size_t i;
  for (i = 0; name[i + 1] != '\0' && i + 1 < sizeof kind; i++)
    kind[i] = (char)(name[i + 1] >= 'A' && name[i + 1] <= 'Z'
                         ? name[i + 1] + ('a' - 'A')
                         : name[i + 1]); /* EADDRINUSE -> addrinuse */
  kind[i] = '\0';
  return lcorio_raise(L, "ServerError", kind, "cannot listen on %s:%d: %s",
                      host, port, corio_strerror(rc));
}

static void format_url(lserver *ls, const char *host) {
  if (strcmp(host, "0.0.0.0") == 0)
    host = "127.0.0.1";
  else if (strcmp(host, "::") == 0)
    host = "::1";
  if (strchr(host, ':') != NULL)
    snprintf(ls->url, sizeof ls->url, "http://[%s]:%d", host, ls->port);
  else
    snprintf(ls->url, sizeof ls->url, "http://%s:%d", host, ls->port);
}

/* corio.serve{handler=, host=, port=, max_inflight=, ...} */
static int l_serve(lua_State *L) {
  lcorio_state *S = lcorio_upstate(L);
  corio_server_opts o;
  lserver *ls, **box;
  int rc, handler;
  ltask *fut;
  if (S->rt == NULL) return luaL_error(L, "corio: runtime is closed");
  corio_server_opts_init(&o);
  lua_settop(L, 1);
  parse_opts(L, &o);
  handler = lua_gettop(L);
  box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, LCORIO_SERVER_MT);
  lcorio_debug_opened(L, -1);
  ls = calloc(1, sizeof *ls);
  if (ls == NULL) return luaL_error(L, "not enough memory");
  rc = corio_server_listen(S->rt, &o, on_request, ls, &ls->srv);
  if (rc != 0) {
    free(ls);
    return raise_listen_error(L, rc, o.host, o.port);
  }
  *box = ls;
  ls->S = S;
  ls->ud_alive = 1;
  ls->port = corio_server_port(ls->srv);
  format_url(ls, o.host);
  corio_server_on_disconnect(ls->srv, on_gone);
  lua_pushvalue(L, handler);
  ls->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ls->site_line = lcorio_push_caller(L);
  ls->site_ref = ls->site_line > 0 ? luaL_ref(L, LUA_REGISTRYINDEX) : LUA_NOREF;
  fut = lcorio_future(L);
  ls->closed = lcorio_core(fut);
  ls->closed_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (corio_task_add_done(ls->closed, on_future_done, ls) != 0) {
    start_close(ls, 0);
    return luaL_error(L, "not enough memory");
  }
  lua_pushvalue(L, -1);
  ls->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int close_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lcorio_wait_status(L) == CORIO_ECANCELED) return lcorio_cancelled(L);
  return 0;
}

/* Is `t` the task of a request this server holds? */
static int is_handler(lserver *ls, corio_task *t) {
  lserve_req *r;
  for (r = ls->held; r != NULL; r = r->next)
    if (r->task == t) return 1;
  return 0;
}

/*
** Wait until the server is closed, in a task; at top level the loop runs
** until then.  Where neither can be (a done callback, a __close while an
** error unwinds), and in one of the server's own handlers (which the
** close waits for), it returns at once.
*/
static int wait_closed(lua_State *L, lserver *ls, lua_CFunction self) {
  ltask *lt;
  if (corio_task_done(ls->closed)) return 0;
  lt = lcorio_current(L);
  if (lt == NULL) {
    if (corio_rt_running(ls->S->rt)) return 0;
    return lcorio_toplevel(L, self);
  }
  if (!lua_isyieldable(L) || is_handler(ls, lcorio_core(lt))) return 0;
  lcorio_check(L, corio_task_await(lcorio_core(lt), ls->closed), "close");
  lcorio_wait_mark(lt, LCORIO_W_SERVER, 0);
  return lcorio_yield(L, 0, close_k);
}

/*
** server:close([deadline]): stop accepting now, let the requests in
** flight finish for up to `deadline` seconds (default 10; 0 cuts them at
** once), close idle keep-alive connections, and wait until closed.
*/
static int s_close(lua_State *L) {
  lserver *ls = check_server(L, 1);
  uint64_t d = lua_isnoneornil(L, 2)
                   ? lcorio_seconds_to_ms(DEFAULT_CLOSE_DEADLINE)
                   : lcorio_checkseconds(L, 2);
  start_close(ls, d);
  lua_settop(L, 2);
  return wait_closed(L, ls, s_close);
}

/* __close(server, err): close with the default deadline */
static int s_tbc(lua_State *L) {
  lua_settop(L, 1);
  return s_close(L);
}

/*
** server:wait(): wait until the server is closed (by close(), or by
** cancellation: Ctrl-C).
*/
static int s_wait(lua_State *L) {
  return wait_closed(L, check_server(L, 1), s_wait);
}

static int s_stats(lua_State *L) {
  lserver *ls = check_server(L, 1);
  corio_server_stats st = ls->last;
  if (ls->srv != NULL) corio_server_get_stats(ls->srv, &st);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)st.connections);
  lua_setfield(L, -2, "connections");
  lua_pushinteger(L, (lua_Integer)st.inflight);
  lua_setfield(L, -2, "inflight");
  lua_pushinteger(L, (lua_Integer)st.requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, (lua_Integer)st.rejected);
  lua_setfield(L, -2, "rejected");
  lua_pushinteger(L, (lua_Integer)ls->nheld);
  lua_setfield(L, -2, "handlers");
  return 1;
}

static int s_index(lua_State *L) {
  lserver *ls = check_server(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "port") == 0)
    lua_pushinteger(L, ls->port);
  else if (strcmp(k, "url") == 0)
    lua_pushstring(L, ls->url);
  else if (strcmp(k, "closed") == 0)
    lua_pushboolean(L, ls->srv == NULL);
  else
    lua_getfield(L, lua_upvalueindex(2), k); /* the methods */
  return 1;
}

static int s_tostring(lua_State *L) {
  lserver *ls = check_server(L, 1);
  lua_pushfstring(L, "<Server %s%s>", ls->url,
                  ls->srv == NULL ? " closed"
                  : ls->closing   ? " closing"
                                  : "");
  return 1;
}

/*
** Collected: the server is closed (or lua_close is running, and it is cut
** now).  Lua is not used from here on.  An open server is anchored, so a
** call that is not the collector's is a script's (debug library): the
** server lives on, untouched.
*/
static int s_gc(lua_State *L) {
  lserver **box = luaL_testudata(L, 1, LCORIO_SERVER_MT);
  lserver *ls = box != NULL ? *box : NULL;
  if (ls == NULL || !lcorio_collecting(L)) return 0;
  if (!ls->closing) lcorio_debug_unclosed(L, 1, "server");
  *box = NULL;
  start_close(ls, 0);
  if (!ls->S->closing) {
    luaL_unref(L, LUA_REGISTRYINDEX, ls->handler_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, ls->site_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, ls->closed_ref);
  }
  ls->ud_alive = 0;
  lcorio_server_maybe_free(ls);
  return 0;
}

/* }================================================================== */

static const luaL_Reg methods[] = {
    {"close", s_close}, {"wait", s_wait}, {"stats", s_stats}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"serve", l_serve}, {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_serve_open(lua_State *L) {
  lcorio_setfuncs(L, funcs);
  if (luaL_newmetatable(L, LCORIO_SERVER_MT)) {
    lua_pushvalue(L, -2); /* state */
    lua_newtable(L);      /* the methods, apart: server.__gc is nil */
    lua_pushvalue(L, -2);
    lcorio_setfuncs(L, methods);
    lua_pop(L, 1);
    lua_pushcclosure(L, s_index, 2);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, s_tbc, 1);
    lua_setfield(L, -2, "__close");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, s_gc, 1);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, s_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lcorio_headers_open(L); /* req.headers */
}
