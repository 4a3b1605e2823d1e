/*
** lserve_req.c: one request of corio.serve, from the C server to the
** handler task and back.
**
** Each request runs lcorio_serve_run_request as the body of a task: it builds
** the request table, calls handler(req) under lua_pcallk (so the handler
** may wait: sleep, fetch, ...), and answers with what the handler
** returned.  A handler that raises gets a 500 and its error is reported
** once on stderr; a CancelledError goes through, so the task ends
** cancelled.  Whatever way the task ends, its done callback
** (lcorio_serve_req_done) makes sure the request is given back to the server:
** dropped when the client left, 503 when the task was cancelled before it
** could answer.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lserve.h"

#define KEEP_FREE 256 /* request records kept for reuse per server */
#define BAD_HEADER                                                             \
  "a header name or value is invalid (a name must be a token; no CR, LF or "   \
  "NUL in values): sent a 500 instead"

static const corio_server_header text_plain = {"Content-Type", 12,
                                               "text/plain; charset=utf-8", 25};

/*
** {==================================================================
** the request table
** ==================================================================
*/
/* Headers by lower-case name (lheaders.c). */
static void push_headers(lua_State *L, const corio_server_req *req) {
  size_t i, n = corio_server_req_header_count(req);
  corio_server_header h;
  lcorio_headers_new(L, (int)n);
  for (i = 0; i < n; i++) {
    corio_server_req_header_at(req, i, &h);
    lcorio_headers_add(L, -1, h.name, h.name_len, h.value, h.value_len);
  }
}

static void push_request(lua_State *L, const corio_server_req *req) {
  size_t len;
  const char *s;
  int major, minor;
  lua_createtable(L, 0, 12);
  lua_pushstring(L, corio_server_req_method(req));
  lua_setfield(L, -2, "method");
  s = corio_server_req_target(req, &len);
  lua_pushlstring(L, s, len);
  lua_setfield(L, -2, "target");
  s = corio_server_req_path(req, &len);
  lua_pushlstring(L, s, len);
  lua_setfield(L, -2, "raw_path");
  lcorio_push_decoded(L, s, len, 0);
  lua_setfield(L, -2, "path");
  s = corio_server_req_query(req, &len);
  lua_pushlstring(L, s, len);
  lua_setfield(L, -2, "query_string");
  lcorio_push_query(L, s, len);
  lua_setfield(L, -2, "query");
  push_headers(L, req);
  lua_setfield(L, -2, "headers");
  s = corio_server_req_body(req, &len);
  lua_pushlstring(L, s, len);
  lua_setfield(L, -2, "body");
  lua_pushstring(L, corio_server_req_remote(req));
  lua_setfield(L, -2, "remote");
  corio_server_req_version(req, &major, &minor);
  lua_pushfstring(L, "%d.%d", major, minor);
  lua_setfield(L, -2, "version");
}

/* }================================================================== */

/*
** {==================================================================
** the response
** ==================================================================
*/

/*
** Collect the headers table at `idx` ({name = value or {values...}})
** into *h.  A table pushed on the stack keeps alive what the pointers
** point to: values converted from numbers, and *h once it outgrows the
** caller's array.  NULL, or what was wrong.
*/
static const char *collect_headers(lua_State *L, int idx,
                                   corio_server_header **h, size_t *nh,
                                   size_t *cap) {
  int keep, nkeep = 0;
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  keep = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int vals = lua_gettop(L), arr = lua_type(L, vals) == LUA_TTABLE;
    lua_Integer i, nv = arr ? (lua_Integer)lua_rawlen(L, vals) : 1;
    const char *name;
    size_t name_len;
    if (lua_type(L, vals - 1) != LUA_TSTRING)
      return "header names must be strings";
    name = lua_tolstring(L, vals - 1, &name_len); /* held by the table */
    for (i = 1; i <= nv; i++) {
      corio_server_header *x;
      int t;
      if (arr)
        lua_rawgeti(L, vals, i);
      else
        lua_pushvalue(L, vals);
      t = lua_type(L, -1);
      if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return lua_pushfstring(L,
                               "header '%s' must be a string, a number or "
                               "an array of those",
                               name);
      if (*nh == *cap) {
        corio_server_header *bigger =
            lua_newuserdatauv(L, *cap * 2 * sizeof *x, 0);
        memcpy(bigger, *h, *nh * sizeof *x);
        lua_rawseti(L, keep, ++nkeep);
        *h = bigger;
        *cap *= 2;
      }
      x = &(*h)[(*nh)++];
      x->name = name;
      x->name_len = name_len;
      x->value = lua_tolstring(L, -1, &x->value_len);
      if (t == LUA_TNUMBER)
        lua_rawseti(L, keep, ++nkeep); /* the converted string */
      else
        lua_pop(L, 1); /* held by the table */
    }
    lua_pop(L, 1); /* the value; the key stays for lua_next */
  }
  return NULL;
}

static const corio_server_header application_json = {"Content-Type", 12,
                                                     "application/json", 16};

/* Names the fields a handler's table may have, or NULL if all are known. */
static const char *unknown_field(lua_State *L, int idx) {
  static const char *const known[] = {"status", "headers", "body", "json",
                                      NULL};
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int i = 0;
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING)
      for (; known[i] != NULL; i++)
        if (strcmp(known[i], lua_tostring(L, -1)) == 0) break;
    if (lua_type(L, -1) != LUA_TSTRING || known[i] == NULL) {
      const char *q = lua_type(L, -1) == LUA_TSTRING ? "'" : "";
      return lua_pushfstring(L,
                             "unknown field %s%s%s in the handler's answer "
                             "(expected status, headers, body or json)",
                             q, luaL_tolstring(L, -1, NULL), q);
    }
  }
  return NULL;
}

/*
** Status and headers of the table result at idx, after a check of its
** fields.  A `json` answer gets Content-Type: application/json unless its
** headers name one.  NULL, or what was wrong.
*/
static const char *table_head(lua_State *L, int idx, lua_Integer *status,
                              corio_server_header **h, size_t *nh,
                              size_t *cap) {
  const char *err = unknown_field(L, idx);
  int isnum, json;
  size_t i;
  if (err != NULL) return err;
  json = lua_getfield(L, idx, "json") != LUA_TNIL;
  if (json && lua_getfield(L, idx, "body") != LUA_TNIL)
    return "give body or json, not both";
  if (lua_getfield(L, idx, "status") != LUA_TNIL) {
    *status = lua_tointegerx(L, -1, &isnum);
    if (!isnum || *status < 200 || *status > 999)
      return "status must be an integer from 200 to 999";
  }
  if (json) (*h)[(*nh)++] = application_json;
  if (lua_getfield(L, idx, "headers") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TTABLE) return "headers must be a table";
    err = collect_headers(L, -1, h, nh, cap);
    if (err != NULL) return err;
  }
  for (i = 1; json && i < *nh; i++) /* the handler's own Content-Type wins */
    if ((*h)[i].name_len == 12 &&
        strncasecmp((*h)[i].name, "content-type", 12) == 0) {
      memmove(*h, *h + 1, --*nh * sizeof **h);
      break;
    }
  return NULL;
}

/* The request's slice in the trace, if one runs: from the handler task's
   start to its answer (the head, for a streamed body). */
static void traced(lserve_req *r, int status) {
  lcorio_state *S = r->ls->S;
  size_t len;
  const char *path;
  if (r->t0 == 0 || S->trace == NULL || r->req == NULL) return;
  path = corio_server_req_path(r->req, &len);
  lcorio_trace_request(S, lcorio_ltask(r->task),
                       corio_server_req_method(r->req), path, len, status,
                       r->t0);
}

/*
** Answer r's request with the handler's result at `idx`: a table
** {status=, headers=, body= | json=}, a string (200, text/plain), or nothing
** (204).  NULL, or a message saying what was wrong with the result, in
** which case the request is not answered yet.
*/
static const char *respond(lua_State *L, lserve_req *r, int idx) {
  corio_server_header small[16], *h = small;
  size_t nh = 0, cap = 16, blen = 0;
  const char *body = "", *err;
  lua_Integer status = 200;
  int rc;
  switch (lua_type(L, idx)) {
  case LUA_TNONE:
  case LUA_TNIL:
    status = 204;
    break;
  case LUA_TSTRING:
    body = lua_tolstring(L, idx, &blen);
    h[nh++] = text_plain;
    break;
  case LUA_TTABLE:
    err = table_head(L, idx, &status, &h, &nh, &cap);
    if (err != NULL) return err;
    if (lua_getfield(L, idx, "json") != LUA_TNIL) {
      if (lcorio_json_try(L, "encode", -1) != LUA_OK)
        return lua_pushfstring(L, "json: %s", lua_tostring(L, -1));
      body = lua_tolstring(L, -1, &blen);
    } else if (lua_getfield(L, idx, "body") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
        return lua_pushfstring(L,
                               "body must be a string or a function, not "
                               "a %s",
                               luaL_typename(L, -1));
      body = lua_tolstring(L, -1, &blen);
    }
    break;
  default:
    return lua_pushfstring(L,
                           "handler returned a %s (expected a table, a "
                           "string or nothing)",
                           luaL_typename(L, idx));
  }
  traced(r, (int)status);
  rc = corio_server_respond(r->req, (int)status, h, nh, body, blen);
  r->req = NULL;
  if (rc == CORIO_EINVAL) return BAD_HEADER;
  return NULL;
}

static void answer_500(lserve_req *r) {
  static const char msg[] = "Internal Server Error\n";
  if (r->req == NULL) return;
  traced(r, 500);
  corio_server_respond(r->req, 500, &text_plain, 1, msg, sizeof msg - 1);
  r->req = NULL;
}

/*
** Report a handler's failure, naming the request (table at `req`).  An
** outage makes every request fail the same way: a failure like the last
** one reported (the same first line, numbers aside) is only counted, and
** "... N more like it" is printed at most once a second, before a
** different failure and when the server closes.
*/
static void report(lua_State *L, lserve_req *r, int req, const char *what,
                   const char *msg) {
  lserver *ls = r->ls;
  char key[sizeof ls->last_report];
  uint64_t now = corio_rt_now(ls->S->rt);
  size_t n = (size_t)snprintf(key, sizeof key, "%s: ", what);
  const char *p;
  /* the message's first line, each run of digits as one '#' */
  for (p = msg; *p != '\0' && *p != '\n' && n + 1 < sizeof key; p++)
    if (*p < '0' || *p > '9')
      key[n++] = *p;
    else if (key[n - 1] != '#')
      key[n++] = '#';
  key[n < sizeof key ? n : sizeof key - 1] = '\0';
  if (ls->reported > 0 && strcmp(key, ls->last_report) == 0) {
    ls->repeats++;
    if (now - ls->report_ms >= 1000) lcorio_serve_flush_reports(ls, now);
    return;
  }
  lcorio_serve_flush_reports(ls, now);
  lua_getfield(L, req, "method");
  lua_getfield(L, req, "target");
  fprintf(stderr, "corio.serve: %s (%s %s): %s\n", what, lua_tostring(L, -2),
          lua_tostring(L, -1), msg);
  fflush(stderr);
  lua_pop(L, 2);
  memcpy(ls->last_report, key, sizeof key);
  n = strcspn(msg, "\n"); /* what the count line quotes */
  snprintf(ls->last_line, sizeof ls->last_line, "%s: %.*s", what, (int)n, msg);
  ls->reported++;
  ls->report_ms = now;
}

void lcorio_serve_flush_reports(lserver *ls, uint64_t now) {
  if (ls->repeats == 0) return;
  fprintf(stderr, "corio.serve: ... %llu more like it (%s)\n",
          (unsigned long long)ls->repeats, ls->last_line);
  fflush(stderr);
  ls->repeats = 0;
  ls->report_ms = now;
}

/* }================================================================== */

/*
** {==================================================================
** streamed bodies: body = function() return chunk or nil end
** ==================================================================
*/

/*
** The task calls the function for each chunk, sends it, and waits for its
** write callback before asking for the next one: the client's pace.
** Stack: 1 record, 2 request table, 3 msgh, 4 result table, 5 body
** function, 6 chunk.
*/
static int stream_next(lua_State *L);

static void on_written(int status, void *ud) {
  lserve_req *r = ud;
  if (!r->waiting) return; /* the task was cancelled meanwhile */
  r->waiting = 0;
  corio_task_wake(r->task, status);
}

static void cancel_write(corio_task *t, void *op) {
  (void)t;
  ((lserve_req *)op)->waiting = 0;
}

/* Give the request back half-sent: the client sees the body cut short. */
static int stream_drop(lserve_req *r) {
  corio_server_abort(r->req);
  r->req = NULL;
  return 0;
}

static int stream_written(lua_State *L, int status, lua_KContext ctx) {
  lserve_req *r = lua_touserdata(L, 1);
  (void)status;
  (void)ctx;
  status = lcorio_wait_status(L);
  if (status == CORIO_ECANCELED) return lcorio_cancelled(L);
  if (status < 0) return stream_drop(r); /* the client left */
  return stream_next(L);
}

static int stream_got(lua_State *L, int status, lua_KContext ctx) {
  lserve_req *r = lua_touserdata(L, 1);
  const char *data;
  size_t len;
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD) {
    if (lcorio_iserror(L, -1, "CancelledError")) return lua_error(L);
    report(L, r, 2, "error in body function", luaL_tolstring(L, -1, NULL));
    return stream_drop(r);
  }
  switch (lua_type(L, 6)) {
  case LUA_TNIL:
    corio_server_end(r->req);
    r->req = NULL;
    return 0;
  case LUA_TSTRING:
  case LUA_TNUMBER:
    data = lua_tolstring(L, 6, &len);
    if (corio_server_write(r->req, data, len, on_written, r) != 0)
      return stream_drop(r);
    r->waiting = 1;
    lcorio_check(L, corio_task_suspend(r->task, cancel_write, r), "serve");
    return lcorio_yield(L, 0, stream_written);
  default:
    report(L, r, 2, "bad chunk from body function",
           lua_pushfstring(L, "a %s (expected a string, or nil to end)",
                           luaL_typename(L, 6)));
    return stream_drop(r);
  }
}

static int stream_next(lua_State *L) {
  lua_settop(L, 5);
  lua_pushvalue(L, 5);
  return stream_got(L, lua_pcallk(L, 0, 1, 3, 0, stream_got), 0);
}

/* The handler returned {status=, headers=, body=function}. */
static int stream_start(lua_State *L, lserve_req *r) {
  corio_server_header small[16], *h = small;
  size_t nh = 0, cap = 16;
  lua_Integer status = 200;
  const char *err = table_head(L, 4, &status, &h, &nh, &cap);
  int rc;
  if (err == NULL) {
    traced(r, (int)status);
    rc = corio_server_stream(r->req, (int)status, h, nh);
    if (rc == CORIO_EINVAL) err = BAD_HEADER;
    /* the connection is gone: the done callback gives the request back */
    if (rc != 0 && rc != CORIO_EINVAL) return 0;
  }
  if (err != NULL) {
    report(L, r, 2, "bad response from handler", err);
    answer_500(r);
    return 0;
  }
  r->streaming = 1;
  lua_settop(L, 4);
  lua_getfield(L, 4, "body");
  return stream_next(L);
}

/* }================================================================== */

/*
** {==================================================================
** the task body
** ==================================================================
*/

/* A traceback for real errors; a CancelledError goes through as it is. */
static int msgh(lua_State *L) {
  if (lcorio_iserror(L, 1, "CancelledError")) return 1;
  return lcorio_traceback_handler(L);
}

/* Stack: 1 record, 2 request table, 3 msgh, 4 result or error. */
static int run_k(lua_State *L, int status, lua_KContext ctx) {
  lserve_req *r = lua_touserdata(L, 1);
  const char *err;
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD) {
    if (lcorio_iserror(L, -1, "CancelledError")) return lua_error(L);
    report(L, r, 2, "error in handler", luaL_tolstring(L, -1, NULL));
    answer_500(r);
    return 0;
  }
  if (lua_type(L, 4) == LUA_TTABLE &&
      lua_getfield(L, 4, "body") == LUA_TFUNCTION)
    return stream_start(L, r);
  lua_settop(L, 4);
  err = respond(L, r, 4);
  if (err != NULL) {
    report(L, r, 2, "bad response from handler", err);
    answer_500(r);
  }
  return 0;
}

/* the most bytes of a target a handler task's name shows */
#define LABEL_TARGET_MAX 100

static void push_label(lua_State *L, const char *method, const char *target,
                       size_t len) {
  char label[LABEL_TARGET_MAX + 32];
  snprintf(label, sizeof label, "%.16s %.*s%s", method,
           (int)(len < LABEL_TARGET_MAX ? len : LABEL_TARGET_MAX), target,
           len > LABEL_TARGET_MAX ? "..." : "");
  lua_pushstring(L, label);
}

/*
** A handler task that has not run yet holds lcorio_serve_run_request and
** its record on its stack; once it runs, the bottom frame is that
** function's, whose second slot is the request table (see run_k), read
** raw: the handler may have given it a metatable.  The record's request
** is NULL once answered, the table is still there.
*/
int lcorio_serve_push_label(lua_State *L, lua_State *co) {
  lua_Debug ar;
  int level = 0, ok = 0;
  if (!lua_checkstack(L, 4) || !lua_checkstack(co, 2)) return 0;
  if (!lua_getstack(co, 0, &ar)) { /* not started */
    lserve_req *r = lua_touserdata(co, 2);
    size_t len;
    const char *target;
    if (lua_tocfunction(co, 1) != lcorio_serve_run_request || r == NULL ||
        r->req == NULL)
      return 0;
    target = corio_server_req_target(r->req, &len);
    push_label(L, corio_server_req_method(r->req), target, len);
    return 1;
  }
  while (lua_getstack(co, level + 1, &ar)) level++;
  lua_getstack(co, level, &ar);
  lua_getinfo(co, "f", &ar);
  ok = lua_tocfunction(co, -1) == lcorio_serve_run_request;
  lua_pop(co, 1);
  if (!ok || lua_getlocal(co, &ar, 2) == NULL) return 0;
  lua_xmove(co, L, 1);
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushliteral(L, "method");
  lua_rawget(L, -2);
  lua_pushliteral(L, "target");
  lua_rawget(L, -3);
  ok = lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING;
  if (ok) {
    push_label(L, lua_tostring(L, -2), lua_tostring(L, -1), lua_rawlen(L, -1));
    lua_replace(L, -4); /* over the table */
  }
  lua_pop(L, ok ? 2 : 3);
  return ok;
}

int lcorio_serve_run_request(lua_State *L) {
  lserve_req *r = lua_touserdata(L, 1);
  lua_settop(L, 1);
  push_request(L, r->req);
  lua_pushcfunction(L, msgh);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->ls->handler_ref);
  lua_pushvalue(L, 2);
  return run_k(L, lua_pcallk(L, 1, 1, 3, 0, run_k), 0);
}

/* }================================================================== */

/*
** {==================================================================
** records
** ==================================================================
*/
void lcorio_serve_req_done(corio_task *t, void *ud) {
  static const char msg[] = "Service Unavailable\n";
  lserve_req *r = ud;
  if (r->req != NULL) {
    if (r->gone || r->streaming || corio_server_req_closed(r->req))
      corio_server_abort(r->req); /* nobody to answer, or half answered */
    else if (corio_task_get_state(t) == CORIO_TASK_CANCELLED) {
      traced(r, 503);
      corio_server_respond(r->req, 503, &text_plain, 1, msg, sizeof msg - 1);
    } else {
      answer_500(r);
    }
    r->req = NULL;
  }
  lcorio_serve_req_release(r);
}

void lcorio_server_maybe_free(lserver *ls) {
  lserve_req *r;
  if (ls->srv != NULL || ls->ud_alive || ls->nheld > 0) return;
  while ((r = ls->free_reqs) != NULL) {
    ls->free_reqs = r->next;
    free(r);
  }
  free(ls);
}

void lcorio_serve_req_hold(lserve_req *r) {
  lserver *ls = r->ls;
  r->prev = NULL;
  r->next = ls->held;
  if (ls->held != NULL) ls->held->prev = r;
  ls->held = r;
  ls->nheld++;
}

void lcorio_serve_req_release(lserve_req *r) {
  lserver *ls = r->ls;
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    ls->held = r->next;
  if (r->next != NULL) r->next->prev = r->prev;
  ls->nheld--;
  if (ls->ud_alive && ls->nfree < KEEP_FREE) {
    r->next = ls->free_reqs;
    ls->free_reqs = r;
    ls->nfree++;
  } else {
    free(r);
  }
  lcorio_server_maybe_free(ls);
}

/* }================================================================== */
