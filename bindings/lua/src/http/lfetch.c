/*
** lfetch.c: corio.fetch, get and post, and the wait they share with the
** session methods.
**
** A task that fetches starts the transfer, suspends with a cancel function
** and yields.  The transfer's `ud` is the task's coroutine: the task is
** found from it (its extra space), so a fetch allocates nothing of its own
** in the binding.  On completion the response (or a FetchError) is built
** on the scheduler's thread, moved onto the coroutine's stack and the task
** woken; the continuation returns it.  If the task is cancelled first, the
** cancel function clears `ud` and cancels the transfer, whose late
** callback then finds nobody to tell.
**
** While the task waits its stack is [url, session or nil]: the URL is
** compared with the final one (no redirect: the response shares the
** string), and the session stays alive as long as a transfer uses it.
*/
#include "lcorio.h"

/* What on_fetched hands to push_outcome. */
typedef struct fetched {
  lcorio_state *S;
  corio_fetch *f;
  int status;
  const corio_response *res;
  lua_State *co;
} fetched;

/*
** Build the response or FetchError and move it onto the task's stack, in
** protected mode (lcorio_protect).
*/
static int push_outcome(lua_State *L) {
  fetched *d = lua_touserdata(L, 1);
  const corio_response *res = d->res;
  if (d->status == 0) {
    lcorio_push_body(L, d->S, d->f, res);
    lcorio_push_response(L, res, d->co, 1);
  } else {
    lcorio_push_fetch_failure(L, d->status, res,
                              *res->url ? res->url : lua_tostring(d->co, 1));
  }
  lua_xmove(L, d->co, 1);
  return 0;
}

static void on_fetched(corio_fetch *f, int status, const corio_response *res,
                       void *ud) {
  fetched d;
  ltask *lt;
  if (ud == NULL) return; /* the task stopped waiting */
  d.co = ud;
  lt = *(ltask **)lua_getextraspace(d.co);
  d.S = corio_rt_get_data(corio_task_rt(lcorio_core(lt)));
  if (d.S == NULL || d.S->closing) return; /* lua_close: run no Lua */
  d.f = f;
  d.status = status;
  d.res = res;
  if (d.S->trace != NULL)
    lcorio_trace_fetch(d.S, lt, status, res, lua_tostring(d.co, 1));
  /*
  ** on the scheduler's thread, idle here (a suspended coroutine must not
  ** run finalizers); out of memory, the task gets Lua's memory error
  */
  if (lcorio_protect(d.S->L, push_outcome, &d) != LUA_OK)
    lua_pushliteral(d.co, "not enough memory"); /* fixed: Lua keeps it */
  corio_task_wake(lcorio_core(lt), 0);
}

/* The task is cancelled while it waits: drop the transfer. */
static void on_cancel(corio_task *t, void *op) {
  corio_fetch *f = op;
  (void)t;
  corio_fetch_set_data(f, NULL);
  (void)corio_fetch_cancel(f); /* ESTATE: its callback is already queued */
}

static int fetch_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  (void)status;
  if (lcorio_wait_status(L) == CORIO_ECANCELED) return lcorio_cancelled(L);
  if (lua_type(L, -1) != LUA_TUSERDATA) /* FetchError, or out of memory */
    return lua_error(L);
  return 1;
}

int lcorio_fetch_wait(lua_State *L, ltask *lt, int session, const char *method,
                      const char *fn) {
  lcorio_state *S = lcorio_upstate(L);
  lcorio_req r;
  corio_fetch *f;
  int rc;
  lcorio_request_parse(L, &r, 1, 2, session, method, fn);
  if (r.output != 0 || r.stream) return lcorio_fetch_stream(L, lt, &r, fn);
  lcorio_bodies_request(S, &r.req);
  rc = corio_fetch_start(S->rt, r.session != NULL ? r.session->s : NULL, &r.req,
                         on_fetched, L, &f);
  if (rc < 0) return lcorio_request_refused(L, rc, r.req.url, fn);
  rc = corio_task_suspend(lcorio_core(lt), on_cancel, f);
  if (rc < 0) {
    on_cancel(lcorio_core(lt), f);
    return lcorio_check(L, rc, fn);
  }
  if (r.session_idx != 0)
    lua_pushvalue(L, r.session_idx);
  else
    lua_pushnil(L);
  lua_replace(L, 2);
  lua_settop(L, 2); /* url, session */
  lcorio_wait_mark(lt, LCORIO_W_FETCH, lcorio_method_code(r.req.method));
  return lcorio_yield(L, 0, fetch_k);
}

static int l_fetch(lua_State *L) {
  LCORIO_WAIT_PROLOGUE(L, lt, l_fetch);
  lua_settop(L, 2);
  return lcorio_fetch_wait(L, lt, 0, NULL, "corio.fetch");
}

static int l_get(lua_State *L) {
  LCORIO_WAIT_PROLOGUE(L, lt, l_get);
  lua_settop(L, 2);
  return lcorio_fetch_wait(L, lt, 0, "GET", "corio.get");
}

static int l_post(lua_State *L) {
  LCORIO_WAIT_PROLOGUE(L, lt, l_post);
  lua_settop(L, 2);
  return lcorio_fetch_wait(L, lt, 0, "POST", "corio.post");
}

static const luaL_Reg funcs[] = {
    {"fetch", l_fetch}, {"get", l_get}, {"post", l_post}, {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_fetch_open(lua_State *L) {
  lcorio_setfuncs(L, funcs);
  lcorio_response_open(L);
  lcorio_session_open(L);
  lcorio_blocking_push(L);
  lua_setfield(L, -3, "blocking");
  lcorio_push_fetch_errors(L);
  lua_setfield(L, -3, "FetchError");
}
