/*
** lredis.c: corio.redis, the Redis client of the C core (corio/redis.h)
** as Lua values.
**
**   local r <close> = corio.redis.connect("redis://127.0.0.1:6379/0",
**                                         {timeout = 2})
**   r:call("SET", "k", "v") --> "OK"
**
** connect makes the client and waits for its first PING, so that a bad
** address, a wrong password or a server that is not Redis fails there, as
** a RedisError.  call sends one command and waits for its reply; many
** tasks calling at once share the connection (pipelining).  A call waits
** as a fetch does: the command's `ud` is the task's coroutine, a cancel
** clears it and cancels the command (whose reply is then read and
** dropped by the runtime), and the reply is converted on the scheduler's
** thread and moved onto the coroutine's stack as [ok, value].
**
** Replies: bulk and status strings are strings, integers integers,
** arrays tables (1..n), a nil reply nil; a nil inside an array is
** corio.redis.null (the light userdata NULL: cjson.null), so that arrays
** keep their length.  An error reply raises a RedisError of kind "redis"
** whose `code` is its first word ("ERR", "WRONGTYPE", "OOM", "NOGROUP");
** one inside an array (EXEC) is that error value, not raised.  A failed
** connection raises kind "dns" (the name did not resolve), "connect",
** "timeout" or "protocol" (not Redis); a lost one "reset"; a closed
** client "closed".
*/
#include <string.h>

#include "lcorio.h"

#define LREDIS_MT "corio.Redis"
#define FN_CALL   "redis:call"

typedef struct lredis {
  corio_redis *c; /* NULL once closed */
} lredis;

/*
** {==================================================================
** Errors and replies
** ===================================================================
*/

static const struct {
  int code;
  const char *kind;
} kinds[] = {
    {CORIO_EDNS, "dns"},
    {CORIO_ECONNECT, "connect"},
    {CORIO_ETIMEDOUT, "timeout"},
    {CORIO_ERESET, "reset"},
    {CORIO_EPROTO, "protocol"},
    {CORIO_ECLOSED, "closed"},
    {CORIO_ECANCELED, "cancelled"},
    {CORIO_ENOMEM, "memory"},
    {CORIO_EURL, "invalid_url"},
    {CORIO_ESCHEME, "invalid_url"},
};

static const char *kind_of(int status) {
  size_t i;
  for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (kinds[i].code == status) return kinds[i].kind;
  return "io";
}

static void push_failure(lua_State *L, int status, const char *msg) {
  lcorio_pusherror(L, "RedisError", kind_of(status), "%s",
                   msg != NULL && *msg ? msg : corio_strerror(status));
}

/* An error reply as an error value: kind "redis", code its first word. */
static void push_reply_error(lua_State *L, const char *s, size_t len) {
  size_t n = 0;
  lcorio_pusherror(L, "RedisError", "redis", "%s", s);
  while (n < len && s[n] != ' ') n++;
  lua_pushlstring(L, s, n);
  lua_setfield(L, -2, "code");
}

static void push_reply(lua_State *L, const corio_redis_reply *r, int nested) {
  size_t len, i;
  const char *s;
  luaL_checkstack(L, 4, "Redis reply nested too deep");
  switch (corio_redis_reply_type(r)) {
  case CORIO_REDIS_STRING:
  case CORIO_REDIS_STATUS:
    s = corio_redis_reply_str(r, &len);
    lua_pushlstring(L, s, len);
    break;
  case CORIO_REDIS_INTEGER:
    lua_pushinteger(L, (lua_Integer)corio_redis_reply_integer(r));
    break;
  case CORIO_REDIS_ARRAY:
    len = corio_redis_reply_len(r);
    lua_createtable(L, len > (size_t)0x7fffffff ? 0 : (int)len, 0);
    for (i = 0; i < len; i++) {
      push_reply(L, corio_redis_reply_at(r, i), 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  case CORIO_REDIS_ERROR:
    s = corio_redis_reply_str(r, &len);
    push_reply_error(L, s, len);
    break;
  default:
    if (nested)
      lua_pushlightuserdata(L, NULL); /* corio.redis.null */
    else
      lua_pushnil(L);
  }
}

/* What on_reply hands to push_outcome. */
typedef struct outcome {
  corio_redis_cmd *cmd;
  int status;
  const corio_redis_reply *reply;
  lua_State *co;
} outcome;

/* [ok, value] onto the task's stack, in protected mode. */
static int push_outcome(lua_State *L) {
  outcome *o = lua_touserdata(L, 1);
  int ok =
      o->status == 0 && corio_redis_reply_type(o->reply) != CORIO_REDIS_ERROR;
  lua_pushboolean(L, ok);
  if (o->status != 0)
    push_failure(L, o->status,
                 o->status == CORIO_ECANCELED
                     ? NULL
                     : corio_redis_last_error(corio_redis_cmd_client(o->cmd)));
  else
    push_reply(L, o->reply, 0);
  lua_xmove(L, o->co, 2);
  return 0;
}

static void on_reply(corio_redis_cmd *cmd, int status,
                     const corio_redis_reply *reply, void *ud) {
  outcome o;
  lcorio_state *S;
  ltask *lt;
  if (ud == NULL) return; /* the task stopped waiting */
  o.co = ud;
  lt = *(ltask **)lua_getextraspace(o.co);
  S = corio_rt_get_data(corio_task_rt(lcorio_core(lt)));
  if (S == NULL || S->closing) return; /* lua_close: run no Lua */
  o.cmd = cmd;
  o.status = status;
  o.reply = reply;
  if (lcorio_protect(S->L, push_outcome, &o) != LUA_OK) {
    lua_pushboolean(o.co, 0);
    lua_pushliteral(o.co, "not enough memory"); /* fixed: Lua keeps it */
  }
  corio_task_wake(lcorio_core(lt), 0);
}

/* The task is cancelled while it waits: the reply will be dropped. */
static void on_cancel(corio_task *t, void *op) {
  corio_redis_cmd *cmd = op;
  (void)t;
  corio_redis_cmd_set_data(cmd, NULL);
  (void)corio_redis_cancel(cmd); /* ESTATE: its callback is queued */
}

/* }================================================================== */

/*
** {==================================================================
** call
** ===================================================================
*/

static lredis *to_client(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, LREDIS_MT);
}

/* The stack is [..., ok, value, status]: return value or raise it. */
static int call_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lcorio_wait_status(L) == CORIO_ECANCELED) return lcorio_cancelled(L);
  if (!lua_toboolean(L, -2)) return lua_error(L);
  return 1;
}

#define SMALL_ARGS 16

/*
** Send the command whose words are at first..top (strings or numbers)
** on `c` and make the task wait for its reply; the caller yields.  Only
** the client (index 1) is left on the stack: it outlives the command.
*/
static void send_cmd(lua_State *L, ltask *lt, corio_redis *c, int first,
                     const char *fn) {
  const char *small[SMALL_ARGS], **argv = small;
  size_t smalllen[SMALL_ARGS], *argvlen = smalllen;
  int argc = lua_gettop(L) - first + 1, i, rc;
  corio_redis_cmd *cmd;
  if (argc < 1) luaL_error(L, "%s: a command is needed", fn);
  if (argc > SMALL_ARGS) {
    argv = lua_newuserdatauv(L, (size_t)argc * sizeof *argv, 0);
    argvlen = lua_newuserdatauv(L, (size_t)argc * sizeof *argvlen, 0);
  }
  for (i = 0; i < argc; i++) {
    int t = lua_type(L, first + i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_error(L,
                 "bad argument #%d to '%s' (string or number "
                 "expected, got %s)",
                 i + 1, fn, luaL_typename(L, first + i));
    /* a number becomes its string in place, as Redis wants it */
    argv[i] = lua_tolstring(L, first + i, &argvlen[i]);
  }
  rc = corio_redis_command(c, argc, argv, argvlen, on_reply, L, &cmd);
  if (rc == CORIO_ECLOSED) {
    push_failure(L, rc, "the client is closed");
    lua_error(L);
  }
  if (rc < 0) lcorio_check(L, rc, fn);
  rc = corio_task_suspend(lcorio_core(lt), on_cancel, cmd);
  if (rc < 0) {
    on_cancel(lcorio_core(lt), cmd);
    lcorio_check(L, rc, fn);
  }
  lua_settop(L, 1); /* the client */
}

static int r_call(lua_State *L) {
  LCORIO_WAIT_PROLOGUE(L, lt, r_call);
  lredis *r = to_client(L, 1);
  if (r->c == NULL) {
    push_failure(L, CORIO_ECLOSED, "the client is closed");
    return lua_error(L);
  }
  send_cmd(L, lt, r->c, 2, FN_CALL);
  return lcorio_yield(L, 0, call_k);
}

/* }================================================================== */

/*
** {==================================================================
** close, stats, connect
** ===================================================================
*/

/* Nothing when the runtime is gone already (it closed every client). */
static void client_close(lua_State *L, lredis *r) {
  lcorio_state *S = lcorio_getstate(L);
  if (r->c != NULL && S != NULL && S->rt != NULL) corio_redis_close(r->c);
  r->c = NULL;
}

static int r_close(lua_State *L) {
  client_close(L, to_client(L, 1));
  return 0;
}

static int r_closed(lua_State *L) {
  lua_pushboolean(L, to_client(L, 1)->c == NULL);
  return 1;
}

static int r_gc(lua_State *L) {
  lredis *r = luaL_testudata(L, 1, LREDIS_MT);
  if (r != NULL) client_close(L, r);
  return 0;
}

static int r_tostring(lua_State *L) {
  lredis *r = to_client(L, 1);
  lua_pushfstring(L, "<corio.redis %p%s>", (void *)r,
                  r->c == NULL ? " closed" : "");
  return 1;
}

/* client:stats(): the counts of corio_redis_get_stats, as a table. */
static int r_stats(lua_State *L) {
  lredis *r = to_client(L, 1);
  corio_redis_stats st;
  memset(&st, 0, sizeof st);
  if (r->c != NULL) corio_redis_get_stats(r->c, &st);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)st.pending);
  lua_setfield(L, -2, "pending");
  lua_pushinteger(L, (lua_Integer)st.commands);
  lua_setfield(L, -2, "commands");
  lua_pushinteger(L, (lua_Integer)st.connects);
  lua_setfield(L, -2, "connects");
  lua_pushinteger(L, (lua_Integer)st.writes);
  lua_setfield(L, -2, "writes");
  lua_pushboolean(L, st.connected);
  lua_setfield(L, -2, "connected");
  return 1;
}

#define FN_CONNECT "corio.redis.connect"

/* After connect's PING: the client, or the failure (client closed). */
static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  status = lcorio_wait_status(L);
  if (status == CORIO_ECANCELED || !lua_toboolean(L, -2)) {
    client_close(L, to_client(L, 1));
    if (status == CORIO_ECANCELED) return lcorio_cancelled(L);
    return lua_error(L);
  }
  lua_settop(L, 1);
  return 1;
}

static int l_connect(lua_State *L) {
  LCORIO_WAIT_PROLOGUE(L, lt, l_connect);
  lcorio_state *S = lcorio_upstate(L);
  static const char *const names[] = {"timeout", NULL};
  const char *url = luaL_checkstring(L, 1), *why = NULL;
  int opts = lcorio_opts_check(L, 2, FN_CONNECT, names), rc;
  int64_t ms = lcorio_opt_seconds(L, opts, FN_CONNECT, "timeout", 0,
                                  LCORIO_SECONDS_NONE);
  lredis *r;
  if (S->rt == NULL) return luaL_error(L, "corio: runtime is closed");
  lua_settop(L, 1);
  r = lua_newuserdatauv(L, sizeof *r, 0);
  r->c = NULL;
  luaL_setmetatable(L, LREDIS_MT);
  lua_replace(L, 1); /* [client] */
  rc = corio_redis_new(S->rt, url,
                       ms < 0    ? -1.0
                       : ms == 0 ? 0.0
                                 : (double)ms / 1000.0,
                       &r->c, &why);
  if (rc == CORIO_EURL || rc == CORIO_ESCHEME)
    return lcorio_raise(L, "RedisError", "invalid_url", "%s: bad URL '%s': %s",
                        FN_CONNECT, url,
                        why != NULL ? why : corio_strerror(rc));
  if (rc < 0) return lcorio_check(L, rc, FN_CONNECT);
  lua_pushliteral(L, "PING");
  send_cmd(L, lt, r->c, 2, FN_CONNECT);
  return lcorio_yield(L, 0, connect_k);
}

static const luaL_Reg methods[] = {{"call", r_call},
                                   {"close", r_close},
                                   {"closed", r_closed},
                                   {"stats", r_stats},
                                   {NULL, NULL}};

static const luaL_Reg funcs[] = {{"connect", l_connect}, {NULL, NULL}};

/* module table at -2, state at -1: corio.redis */
void lcorio_redis_open(lua_State *L) {
  lua_newtable(L); /* corio.redis */
  lua_pushvalue(L, -2);
  lcorio_setfuncs(L, funcs);
  lua_pop(L, 1);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lcorio_pusherror(L, "RedisError", "redis", "");
  lua_setfield(L, -2, "RedisError"); /* err == corio.redis.RedisError */
  lua_setfield(L, -3, "redis");
  if (luaL_newmetatable(L, LREDIS_MT)) {
    lua_pushvalue(L, -2); /* state: call waits */
    lua_newtable(L);
    lua_insert(L, -2);
    lcorio_setfuncs(L, methods);
    lua_pop(L, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, r_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, r_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, r_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

/* }================================================================== */
