/*
** lobserve.c: seeing what tasks do.  Every task carries what it waits on
** (ltask.wait, set by each waiting function with lcorio_wait_mark: a few
** stores and the loop's cached time, no allocation) and where it was
** spawned (the caller's line, and its function as user value 2, so the
** file name is found only when asked).  From these: corio.all_tasks,
** corio.dump_tasks (and the corio executable's SIGQUIT), debug mode's
** report of slow runs and of objects left open, and the run and wait
** slices of a trace (ltrace.c).
**
** The resume driver (ltask.c) calls lcorio_observe_begin/end only while
** S->observe is set, so with tracing and debug mode off a run costs one
** predictable branch more.
*/
#include <stdlib.h>
#include <string.h>

#include "ltask.h"
#include "corio_lua.h"

#define LCORIO_REASONS_KEY "corio.reasons" /* task -> reason (Lua parts) */
#define LCORIO_OPENED_KEY  "corio.opened"  /* object -> "file:line" (debug) */

/*
** {==================================================================
** Wait reasons and spawn sites
** ==================================================================
*/

static const char *const methods[] = {"GET",  "POST",  "PUT",     "DELETE",
                                      "HEAD", "PATCH", "OPTIONS", NULL};
#define METHOD_OTHER 0xff

uint32_t lcorio_method_code(const char *method) {
  uint32_t i;
  if (method == NULL) return 0;
  for (i = 0; methods[i] != NULL; i++)
    if (strcmp(methods[i], method) == 0) return i;
  return METHOD_OTHER;
}

void lcorio_wait_mark(ltask *lt, int kind, uint32_t arg) {
  if (lt->wait == LCORIO_W_CUSTOM) return; /* a Lua part said why */
  lt->wait = (uint8_t)kind;
  lt->wait_arg = arg;
  lt->since = corio_rt_now(corio_task_rt(lcorio_core(lt)));
}

/* internal.wait_reason(text): the running task's next wait is `text` */
int lcorio_internal_wait_reason(lua_State *L) {
  ltask *lt = lcorio_current(L);
  luaL_checkstring(L, 1);
  if (lt == NULL) return 0;
  lua_settop(L, 1);
  lcorio_push_task(L, lt);
  lua_insert(L, 1);
  lcorio_side_set(L, LCORIO_REASONS_KEY, 1);
  lt->wait = LCORIO_W_CUSTOM;
  lt->wait_arg = 0;
  lt->since = corio_rt_now(corio_task_rt(lcorio_core(lt)));
  return 0;
}

/* the Lua-set reason of the task lt (found by its anchor), or NULL */
static const char *custom_reason(lua_State *L, ltask *lt, char *buf,
                                 size_t size) {
  const char *s = NULL;
  if (lt->ref == LUA_NOREF || !lua_checkstack(L, 4)) return NULL;
  lcorio_push_task(L, lt);
  if (lcorio_side_get(L, LCORIO_REASONS_KEY, -1) == LUA_TSTRING) {
    snprintf(buf, size, "%s", lua_tostring(L, -1));
    s = buf;
  }
  lua_pop(L, 2);
  return s;
}

const char *lcorio_wait_reason(lua_State *L, ltask *lt, lua_State *co,
                               char *buf, size_t size) {
  switch (lt->wait) {
  case LCORIO_W_NONE: { /* a wait that says nothing of itself */
    lcorio_state *S = lcorio_getstate(L);
    return S != NULL && co != NULL && S->running == co ? "running" : "waiting";
  }
  case LCORIO_W_READY:
    return "ready";
  case LCORIO_W_SLEEP:
    snprintf(buf, size, "sleep %g", lt->wait_arg / 1000.0);
    return buf;
  case LCORIO_W_AWAIT: {
    /* the await's argument is the first value of its frame */
    ltask *target = co != NULL ? lcorio_totask(co, 1) : NULL;
    if (target == NULL) return "await";
    if (target->flags & LT_FUTURE) return "future";
    snprintf(buf, size, "await Task-%u", (unsigned)target->id);
    return buf;
  }
  case LCORIO_W_WAIT:
  case LCORIO_W_GATHER:
    snprintf(buf, size, "%s %u task%s",
             lt->wait == LCORIO_W_WAIT ? "wait" : "gather",
             (unsigned)lt->wait_arg, lt->wait_arg == 1 ? "" : "s");
    return buf;
  case LCORIO_W_ASCOMP:
    snprintf(buf, size, "as_completed (%u left)", (unsigned)lt->wait_arg);
    return buf;
  case LCORIO_W_WAIT_FOR:
    return "wait_for";
  case LCORIO_W_FETCH: {
    const char *url = co != NULL && lua_type(co, 1) == LUA_TSTRING
                          ? lua_tostring(co, 1)
                          : "?";
    snprintf(buf, size, "fetch %s %s",
             lt->wait_arg < sizeof methods / sizeof *methods - 1
                 ? methods[lt->wait_arg]
                 : "(method)",
             url);
    return buf;
  }
  case LCORIO_W_STREAM:
    return "stream chunk";
  case LCORIO_W_POOL:
    snprintf(buf, size, "pool job (%u item%s)", (unsigned)lt->wait_arg,
             lt->wait_arg == 1 ? "" : "s");
    return buf;
  case LCORIO_W_SERVER:
    return "server close";
  case LCORIO_W_CUSTOM: {
    const char *s = custom_reason(L, lt, buf, size);
    return s != NULL ? s : "waiting";
  }
  default:
    return "waiting";
  }
}

/*
** The first Lua frame up from the running C function (level 0; more C
** frames when C calls C): its function pushed, its line now returned; 0
** and nothing pushed when there is none.
*/
int lcorio_push_caller(lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 1; level <= 3 && lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "fl", &ar)) break;
    if (ar.currentline > 0) return ar.currentline;
    lua_pop(L, 1);
  }
  return 0;
}

void lcorio_set_spawn_site(lua_State *L, ltask *lt, int tidx, int line) {
  lt->line = line;
  lua_setiuservalue(L, tidx, 2);
}

/*
** The spawn site: the first Lua frame up from the spawn call (a C function
** such as corio.spawn or corio.gather), its line now and its function,
** kept as user value 2.
*/
void lcorio_note_spawn(lua_State *L, ltask *lt, int tidx) {
  lcorio_state *S;
  int line;
  tidx = lua_absindex(L, tidx);
  if ((line = lcorio_push_caller(L)) > 0) {
    lt->line = line;
    lua_setiuservalue(L, tidx, 2);
  }
  S = lcorio_getstate(L);
  if (S != NULL && S->trace != NULL)
    lt->tr_since = lcorio_trace_us(S->trace, uv_hrtime());
}

/* Push "file:line" of the spawn call of the task at tidx, or "?". */
static void push_site(lua_State *L, ltask *lt, int tidx) {
  lua_Debug ar;
  if (lt->line > 0) { /* else no user value was pushed: nothing to pop */
    if (lua_getiuservalue(L, tidx, 2) != LUA_TFUNCTION) {
      lua_pop(L, 1);
    } else if (lua_getinfo(L, ">S", &ar)) { /* which pops the function */
      lua_pushfstring(L, "%s:%d", ar.short_src, (int)lt->line);
      return;
    }
  }
  lua_pushliteral(L, "?");
}

/* "file:line" of the innermost Lua frame of co, in buf; NULL if none */
static const char *lua_line(lua_State *co, char *buf, size_t size) {
  lua_Debug ar;
  int level;
  for (level = 0; lua_getstack(co, level, &ar); level++) {
    if (!lua_getinfo(co, "Sl", &ar)) break;
    if (ar.currentline > 0) {
      snprintf(buf, size, "%s:%d", ar.short_src, ar.currentline);
      return buf;
    }
  }
  return NULL;
}

/* }================================================================== */

/*
** {==================================================================
** all_tasks, dump_tasks
** ==================================================================
*/

typedef struct pending {
  uint32_t id;
  int ref;
} pending;

static int by_id(const void *a, const void *b) {
  const pending *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* Push the pending tasks (the script's, no hidden ones), oldest first. */
static void push_all(lua_State *L) {
  lua_Integer i, n;
  pending *p;
  lcorio_push_pending(L, 0);
  n = luaL_len(L, -1);
  p = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *p, 0);
  for (i = 1; i <= n; i++) {
    ltask *lt;
    lua_rawgeti(L, -2, i);
    lt = lcorio_totask(L, -1);
    p[i - 1].id = lt->id;
    p[i - 1].ref = lt->ref;
    lua_pop(L, 1);
  }
  qsort(p, (size_t)n, sizeof *p, by_id);
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, p[i - 1].ref);
    lua_rawseti(L, -2, i);
  }
  lua_replace(L, -3);
  lua_pop(L, 1);
}

static int l_all_tasks(lua_State *L) {
  push_all(L);
  return 1;
}

/*
** One entry of a dump, pushed as a string:
**   Task-3 'fetcher' spawned at job.lua:12, waiting 1.5 s on fetch GET url
**   stack traceback: ...
*/
static void push_entry(lua_State *L, lcorio_state *S, int tidx) {
  ltask *lt = lcorio_checktask(L, tidx);
  lua_State *co;
  char buf[512];
  const char *reason;
  double waited;
  int base = lua_gettop(L);
  lua_getiuservalue(L, tidx, 1);
  co = lua_tothread(L, -1);
  lua_pop(L, 1);
  reason = lcorio_wait_reason(L, lt, co, buf, sizeof buf);
  lua_pushliteral(L, "Task '");
  lcorio_push_name(L, lt, tidx);
  lua_pushliteral(L, "' spawned at ");
  push_site(L, lt, tidx);
  if (lt->wait == LCORIO_W_NONE) {
    lua_pushfstring(L, ", %s", reason);
  } else {
    char secs[32]; /* lua_pushfstring has no %.3f */
    waited = (double)(corio_rt_now(S->rt) - lt->since) / 1000.0;
    snprintf(secs, sizeof secs, "%.3f", waited);
    lua_pushfstring(L, ", waiting on %s for %s s", reason, secs);
  }
  lua_pushliteral(L, "\n");
  if (co != NULL) {
    luaL_traceback(L, co, NULL, 0);
    lua_pushliteral(L, "\n");
  }
  lua_concat(L, lua_gettop(L) - base);
}

/* Push the whole dump as a string; returns the count of tasks. */
static lua_Integer push_dump(lua_State *L, lcorio_state *S) {
  lua_Integer i, n;
  int all, base;
  push_all(L);
  all = lua_gettop(L);
  n = luaL_len(L, all);
  base = lua_gettop(L);
  lua_pushfstring(L, "corio: %d pending task%s\n", (int)n, n == 1 ? "" : "s");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, all, i);
    push_entry(L, S, lua_gettop(L));
    lua_remove(L, -2);
    if (i % 32 == 0) lua_concat(L, lua_gettop(L) - base);
  }
  lua_concat(L, lua_gettop(L) - base);
  lua_remove(L, all);
  return n;
}

/* write the string at the top to f, popped */
static void put_dump(lua_State *L, FILE *f) {
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  fwrite(s, 1, len, f);
  fflush(f);
  lua_pop(L, 1);
}

/*
** corio.dump_tasks([file]): file is a path (written anew), an open file
** (io.open's), or absent (stderr).  Returns the count of tasks listed.
*/
static int l_dump_tasks(lua_State *L) {
  lcorio_state *S = lcorio_open_state(L);
  lua_Integer n;
  FILE *f = stderr;
  luaL_Stream *st = NULL;
  if (lua_type(L, 1) == LUA_TSTRING) {
    f = fopen(lcorio_checkpath(L, 1), "w");
    if (f == NULL)
      return luaL_error(L, "corio.dump_tasks: cannot open '%s'",
                        lua_tostring(L, 1));
  } else if (!lua_isnoneornil(L, 1)) {
    st = luaL_testudata(L, 1, LUA_FILEHANDLE);
    if (st == NULL)
      return luaL_error(L,
                        "corio.dump_tasks: expected a path or an open file "
                        "(got %s)",
                        luaL_typename(L, 1));
    if (st->closef == NULL)
      return luaL_error(L, "corio.dump_tasks: the file is closed");
    f = st->f;
  }
  n = push_dump(L, S);
  put_dump(L, f);
  if (lua_type(L, 1) == LUA_TSTRING) fclose(f);
  lua_pushinteger(L, n);
  return 1;
}

static int dump_to_stderr(lua_State *L) {
  push_dump(L, lcorio_getstate(L));
  put_dump(L, stderr);
  return 0;
}

int corio_lua_dump_tasks(lua_State *L) {
  lcorio_state *S = lcorio_getstate(L);
  int rc;
  if (S == NULL || S->rt == NULL) return 0;
  lua_pushcfunction(L, dump_to_stderr);
  rc = lua_pcall(L, 0, 0, 0);
  if (rc != LUA_OK) {
    fprintf(stderr, "corio: cannot dump the tasks: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return rc;
}

/* }================================================================== */

/*
** {==================================================================
** Debug mode
** ==================================================================
*/

#define SLOW_DEFAULT_NS 100000000u /* 0.1 s, as asyncio's */

static void set_observe(lcorio_state *S) {
  S->observe = S->slow_ns > 0 || S->trace != NULL;
}

/*
** corio.set_debug(on) or corio.set_debug{slow_callback_duration = s}
** (which turns it on)
*/
static int l_set_debug(lua_State *L) {
  lcorio_state *S = lcorio_upstate(L);
  if (lua_istable(L, 1)) {
    static const char *const names[] = {"slow_callback_duration", NULL};
    int opts = lcorio_opts_check(L, 1, "corio.set_debug", names);
    lua_Number s =
        lcorio_opt_number(L, opts, "corio.set_debug", "slow_callback_duration",
                          SLOW_DEFAULT_NS / 1e9, 0, 3600);
    S->slow_ns = s > 0 ? (uint64_t)(s * 1e9) : 1;
  } else {
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    S->slow_ns = lua_toboolean(L, 1) ? SLOW_DEFAULT_NS : 0;
  }
  set_observe(S);
  return 0;
}

static int l_get_debug(lua_State *L) {
  lua_pushboolean(L, lcorio_upstate(L)->slow_ns > 0);
  return 1;
}

/* Debug mode: remember where the object at idx was made. */
void lcorio_debug_opened(lua_State *L, int idx) {
  lcorio_state *S = lcorio_getstate(L);
  lua_Debug ar;
  int level;
  if (S == NULL || S->slow_ns == 0) return;
  idx = lua_absindex(L, idx);
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
      lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
      lcorio_side_set(L, LCORIO_OPENED_KEY, idx);
      return;
    }
  }
}

/* Debug mode: the object at idx (a `what`) is collected while open. */
void lcorio_debug_unclosed(lua_State *L, int idx, const char *what) {
  lcorio_state *S = lcorio_getstate(L);
  if (S == NULL || S->slow_ns == 0) return;
  if (lcorio_side_get(L, LCORIO_OPENED_KEY, idx) == LUA_TSTRING)
    fprintf(stderr, "corio: debug: %s made at %s was left open\n", what,
            lua_tostring(L, -1));
  else
    fprintf(stderr, "corio: debug: a %s was left open\n", what);
  lua_pop(L, 1);
}

/* }================================================================== */

/*
** {==================================================================
** Around each run (ltask.c)
** ==================================================================
*/

uint64_t lcorio_observe_begin(lua_State *L, lcorio_state *S, ltask *lt,
                              int tidx, lua_State *co) {
  uint64_t now = uv_hrtime();
  if (S->trace != NULL)
    lcorio_trace_task(L, S, lt, tidx, co, lcorio_trace_us(S->trace, now), 0);
  return now;
}

void lcorio_observe_end(lua_State *L, lcorio_state *S, ltask *lt, int tidx,
                        lua_State *co, int rc, uint64_t begin) {
  uint64_t end = uv_hrtime();
  if (begin == 0) return; /* the run began before debug mode or a trace */
  if (S->slow_ns > 0 && end - begin >= S->slow_ns) {
    char where[256];
    const char *at = rc == LUA_YIELD ? lua_line(co, where, sizeof where) : NULL;
    lua_checkstack(L, 4);
    lcorio_push_name(L, lt, tidx);
    push_site(L, lt, tidx);
    fprintf(stderr,
            "corio: debug: task '%s' (spawned at %s) ran %.3f s without a "
            "wait; %s%s\n",
            lua_tostring(L, -2), lua_tostring(L, -1),
            (double)(end - begin) / 1e9,
            rc == LUA_YIELD ? "it yielded at "
            : rc == LUA_OK  ? "it finished"
                            : "it failed",
            at != NULL ? at : (rc == LUA_YIELD ? "?" : ""));
    fflush(stderr);
    lua_pop(L, 2);
  }
  if (S->trace != NULL) {
    uint64_t ts = lcorio_trace_us(S->trace, begin);
    uint64_t te = lcorio_trace_us(S->trace, end);
    lcorio_trace_task(L, S, lt, tidx, co, ts, te > ts ? te : ts + 1);
    lt->tr_since = rc == LUA_YIELD ? te : 0;
  }
}

/* }================================================================== */

/*
** {==================================================================
** Tracing from Lua, and the module's part
** ==================================================================
*/

static int l_trace_start(lua_State *L) {
  lcorio_state *S = lcorio_open_state(L);
  const char *path = lcorio_checkpath(L, 1);
  if (lcorio_trace_start(L, S, path) != 0)
    return luaL_error(L, "corio.trace_start: cannot open '%s'", path);
  set_observe(S);
  return 0;
}

static int l_trace_stop(lua_State *L) {
  lcorio_state *S = lcorio_upstate(L);
  lcorio_trace_stop(S);
  set_observe(S);
  return 0;
}

int corio_lua_trace_start(lua_State *L, const char *path) {
  lcorio_state *S = lcorio_getstate(L);
  int rc;
  if (S == NULL || S->rt == NULL) return CORIO_ESTATE;
  rc = lcorio_trace_start(L, S, path);
  set_observe(S);
  return rc;
}

void corio_lua_trace_stop(lua_State *L) {
  lcorio_state *S = lcorio_getstate(L);
  if (S == NULL) return;
  lcorio_trace_stop(S);
  set_observe(S);
}

static const luaL_Reg funcs[] = {{"all_tasks", l_all_tasks},
                                 {"dump_tasks", l_dump_tasks},
                                 {"set_debug", l_set_debug},
                                 {"get_debug", l_get_debug},
                                 {"trace_start", l_trace_start},
                                 {"trace_stop", l_trace_stop},
                                 {NULL, NULL}};

/* module table at -2, state at -1 */
void lcorio_observe_open(lua_State *L) {
  lcorio_state *S = lua_touserdata(L, -1);
  const char *env;
  lcorio_setfuncs(L, funcs);
  env = getenv("CORIO_DEBUG");
  if (env != NULL && *env != '\0' && strcmp(env, "0") != 0)
    S->slow_ns = SLOW_DEFAULT_NS;
  env = getenv("CORIO_TRACE");
  if (env != NULL && *env != '\0' && S->trace == NULL &&
      lcorio_trace_start(L, S, env) != 0)
    fprintf(stderr, "corio: CORIO_TRACE: cannot open '%s'\n", env);
  set_observe(S);
}

void lcorio_observe_close(lua_State *L, lcorio_state *S) {
  (void)L;
  lcorio_trace_stop(S);
  S->slow_ns = 0;
  set_observe(S);
}

/* }================================================================== */
