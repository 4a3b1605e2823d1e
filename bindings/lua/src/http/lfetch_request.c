/*
** lfetch_request.c: Lua options -> corio_request, shared by corio.fetch,
** sessions and corio.blocking.  It needs no runtime, so the blocking calls
** work in a state that runs no loop.
**
** Every mistake is reported here, naming the option, before anything is
** sent: the core would refuse a bad header with a bare CORIO_EINVAL, and
** it cannot see an embedded NUL at all (it reads C strings), so a Lua
** string with one would be cut short silently.
**
** Strings handed to the request are borrowed: option strings stay anchored
** by the options table, and strings made here (JSON, form bodies, numbers
** turned into header values, these in one table) are left on the Lua stack.
** The caller keeps
** the stack until the request has been started, which copies everything.
*/
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lcorio.h"

/*
** {==================================================================
** headers
** ==================================================================
*/

/* Is `name` among the first n headers (any case)? */
static int has_header(const corio_header *h, size_t n, const char *name) {
  size_t i;
  for (i = 0; i < n; i++)
    if (strcasecmp(h[i].name, name) == 0) return 1;
  return 0;
}

/*
** Raise unless the string name at `name` and the string value at `value`
** make a header that can be sent as is.
*/
void lcorio_header_check(lua_State *L, int name, int value, const char *what) {
  size_t nlen, vlen;
  const char *n = lua_tolstring(L, name, &nlen);
  const char *v = lua_tolstring(L, value, &vlen);
  if (!corio_http_token_ok(n, nlen))
    luaL_error(L, "bad option '%s': invalid header name '%s'", what, n);
  if (!corio_http_value_ok(v, vlen))
    luaL_error(L,
               "bad option '%s': value of '%s' contains CR, LF, NUL or "
               "another control character",
               what, n);
}

/*
** The header pair at the top (key -2, value -1) as C strings.  A number
** value is turned into a string kept in the table at *anchor, made on the
** first number and inserted below the key (so lua_next goes on), where it
** stays until the request is started.  One table, not a string per value
** on the stack: a header table may hold more values than the stack has
** room for.
*/
static void header_pair(lua_State *L, corio_header *h, int *anchor,
                        const char *what) {
  if (lua_type(L, -2) != LUA_TSTRING)
    luaL_error(L, "bad option '%s': names must be strings (got %s)", what,
               luaL_typename(L, -2));
  if (lua_type(L, -1) == LUA_TNUMBER) {
    if (*anchor == 0) {
      lua_newtable(L);
      lua_insert(L, -3); /* below key and value */
      *anchor = lua_gettop(L) - 2;
    }
    lua_pushvalue(L, -1);
    lua_tostring(L, -1);
    lcorio_header_check(L, -3, -1, what);
    h->value = lua_tostring(L, -1);
    lua_rawseti(L, *anchor, (lua_Integer)lua_rawlen(L, *anchor) + 1);
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    lcorio_header_check(L, -2, -1, what);
    h->value = lua_tostring(L, -1); /* anchored by the table */
  } else {
    luaL_error(L,
               "bad option '%s': value of '%s' must be a string or a "
               "number (got %s)",
               what, lua_tostring(L, -2), luaL_typename(L, -1));
  }
  h->name = lua_tostring(L, -2);
}

static int count_pairs(lua_State *L, int t) {
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    n++;
    lua_pop(L, 1);
  }
  return n;
}

/*
** The request headers: opts.headers first, then the session's defaults
** not overridden (any case), then the Content-Type that json/form imply.
*/
static void build_headers(lua_State *L, lcorio_req *r, int hdrs,
                          const char *ctype) {
  int nsess = r->session != NULL ? r->session->nheaders : 0, t, anchor = 0;
  size_t cap, n = 0;
  corio_header *h = r->small;
  cap = (size_t)(hdrs ? count_pairs(L, hdrs) : 0) + (size_t)nsess + 1;
  if (cap > LCORIO_REQ_SMALL)
    h = lua_newuserdatauv(L, cap * sizeof *h, 0); /* stays on the stack */
  if (hdrs) {
    lua_pushnil(L);
    while (lua_next(L, hdrs) != 0) {
      header_pair(L, &h[n++], &anchor, "headers");
      lua_pop(L, 1);
    }
  }
  if (nsess > 0) { /* checked when the session was made */
    size_t mine = n;
    lua_getiuservalue(L, r->session_idx, 1);
    t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
      const char *name = lua_tostring(L, -2);
      if (!has_header(h, mine, name)) {
        h[n].name = name;
        h[n++].value = lua_tostring(L, -1);
      }
      lua_pop(L, 1);
    }
    /* the table stays on the stack: it anchors the strings */
  }
  if (ctype != NULL && !has_header(h, n, "Content-Type")) {
    h[n].name = "Content-Type";
    h[n++].value = ctype;
  }
  r->req.headers = n > 0 ? h : NULL;
  r->req.nheaders = n;
}

/* }================================================================== */

/*
** {==================================================================
** the other options
** ==================================================================
*/

/* seconds > 0; math.huge or false: none (-1); absent: left as it is */
static void opt_timeout(lua_State *L, int opts, const char *fn,
                        const char *name, double *field) {
  int64_t ms = lcorio_opt_seconds(L, opts, fn, name, -2, LCORIO_SECONDS_NONE);
  if (ms != -2) *field = ms < 0 ? -1 : (double)ms / 1000.0;
}

static void opt_redirects(lua_State *L, int opts, const char *fn,
                          corio_request *req) {
  if (!lcorio_opt_push(L, opts, fn, "follow_redirects", LUA_TNONE)) return;
  if (lua_type(L, -1) == LUA_TBOOLEAN) {
    req->follow_redirects = lua_toboolean(L, -1);
  } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 &&
             lua_tointeger(L, -1) <= 1000) {
    req->follow_redirects = 1;
    req->max_redirects = (int)lua_tointeger(L, -1);
  } else {
    luaL_error(L,
               "%s: option 'follow_redirects' must be a boolean or a "
               "redirect limit from 0 to 1000 (got %s)",
               fn, luaL_tolstring(L, -1, NULL));
  }
  lua_pop(L, 1);
}

static void opt_max_body(lua_State *L, int opts, const char *fn,
                         corio_request *req) {
  if (!lcorio_opt_push(L, opts, fn, "max_body", LUA_TNONE)) return;
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    req->max_body = 0;
  } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
    req->max_body = (size_t)lua_tointeger(L, -1);
  } else {
    luaL_error(L,
               "%s: option 'max_body' must be a number of bytes > 0, or "
               "false for no limit (got %s)",
               fn, luaL_tolstring(L, -1, NULL));
  }
  lua_pop(L, 1);
}

static void opt_http_version(lua_State *L, int opts, const char *fn,
                             corio_request *req) {
  static const char *const names[] = {"1.0", "1.1", "2", "2-only", NULL};
  static const int values[] = {CORIO_HTTP_1_0, CORIO_HTTP_1_1, CORIO_HTTP_2,
                               CORIO_HTTP_2_ONLY};
  int i = lcorio_opt_enum(L, opts, fn, "http_version", -1, names);
  if (i >= 0) req->http_version = values[i];
}

enum {
  O_METHOD,
  O_HEADERS,
  O_BODY,
  O_JSON,
  O_FORM,
  O_TIMEOUT,
  O_CONNECT_TIMEOUT,
  O_FOLLOW_REDIRECTS,
  O_MAX_BODY,
  O_VERIFY_TLS,
  O_HTTP_VERSION,
  O_PROXY,
  O_SESSION,
  O_RETRIES,
  O_PARAMS,
  O_OUTPUT,
  O_STREAM
};
static const char *const opt_names[] = {"method",
                                        "headers",
                                        "body",
                                        "json",
                                        "form",
                                        "timeout",
                                        "connect_timeout",
                                        "follow_redirects",
                                        "max_body",
                                        "verify_tls",
                                        "http_version",
                                        "proxy",
                                        "session",
                                        "retries",
                                        "params",
                                        "output",
                                        "stream",
                                        NULL};

/*
** The options, checked: scalars are read at once; the options that need
** more work are handled afterwards, in a fixed order.  Returns the set of
** options given.
*/
static unsigned read_opts(lua_State *L, lcorio_req *r, int opts,
                          const char *fn) {
  corio_request *req = &r->req;
  /* once per request: only the options given are read */
  unsigned seen = lcorio_opts_scan(L, opts, fn, opt_names);
#define GIVEN(o) (seen & (1u << (o)))
  if (GIVEN(O_METHOD)) {
    req->method = lcorio_opt_string(L, opts, fn, "method", req->method);
    if (!corio_http_token_ok(req->method, strlen(req->method)))
      luaL_error(L, "%s: option 'method': '%s' is not an HTTP method", fn,
                 req->method);
  }
  if (GIVEN(O_TIMEOUT)) opt_timeout(L, opts, fn, "timeout", &req->timeout);
  if (GIVEN(O_CONNECT_TIMEOUT))
    opt_timeout(L, opts, fn, "connect_timeout", &req->connect_timeout);
  if (GIVEN(O_FOLLOW_REDIRECTS)) opt_redirects(L, opts, fn, req);
  if (GIVEN(O_MAX_BODY)) opt_max_body(L, opts, fn, req);
  if (GIVEN(O_VERIFY_TLS))
    req->verify_tls =
        lcorio_opt_boolean(L, opts, fn, "verify_tls", req->verify_tls);
  if (GIVEN(O_HTTP_VERSION)) opt_http_version(L, opts, fn, req);
  if (GIVEN(O_PROXY))
    req->proxy = lcorio_opt_string(L, opts, fn, "proxy", req->proxy);
  /* pushed and popped: only their types are checked here */
  if (GIVEN(O_BODY) && lcorio_opt_push(L, opts, fn, "body", LUA_TSTRING))
    lua_pop(L, 1);
  if (GIVEN(O_HEADERS) && lcorio_opt_push(L, opts, fn, "headers", LUA_TTABLE))
    lua_pop(L, 1);
  if (GIVEN(O_FORM) && lcorio_opt_push(L, opts, fn, "form", LUA_TTABLE))
    lua_pop(L, 1);
  if (GIVEN(O_PARAMS) && lcorio_opt_push(L, opts, fn, "params", LUA_TTABLE))
    lua_pop(L, 1);
  if (GIVEN(O_STREAM)) r->stream = lcorio_opt_boolean(L, opts, fn, "stream", 0);
  if (GIVEN(O_OUTPUT)) { /* stays on the stack */
    lua_getfield(L, opts, "output");
    if (lua_type(L, -1) != LUA_TSTRING &&
        luaL_testudata(L, -1, LUA_FILEHANDLE) == NULL)
      luaL_error(L,
                 "%s: option 'output' must be a file name or an open file "
                 "(got %s)",
                 fn, luaL_typename(L, -1));
    if (lua_type(L, -1) == LUA_TSTRING &&
        strlen(lua_tostring(L, -1)) != lua_rawlen(L, -1))
      luaL_error(L, "%s: option 'output': a file name cannot hold a NUL", fn);
    r->output = lua_gettop(L);
  }
  if (r->output != 0 && r->stream)
    luaL_error(L, "%s: give only one of the options output and stream", fn);
#undef GIVEN
  return seen; /* json: any value cjson takes; session, retries: checked
                  later */
}

/* url is relative (no "scheme:") and the session has a base_url: join */
static void apply_base_url(lua_State *L, lcorio_req *r, int url) {
  const char *u = lua_tostring(L, url), *p = u;
  size_t blen;
  const char *base;
  if (r->session == NULL) return;
  if (isalpha((unsigned char)*p)) {
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
      p++;
    if (*p == ':') return; /* absolute */
  }
  if (lua_getiuservalue(L, r->session_idx, 2) != LUA_TSTRING) {
    lua_pop(L, 1);
    return;
  }
  base = lua_tolstring(L, -1, &blen);
  if (blen > 0 && base[blen - 1] == '/' && *u == '/')
    lua_pushfstring(L, "%s%s", base, u + 1);
  else if ((blen == 0 || base[blen - 1] != '/') && *u != '/' && *u != '\0')
    lua_pushfstring(L, "%s/%s", base, u);
  else
    lua_pushfstring(L, "%s%s", base, u);
  lua_replace(L, url);
  lua_pop(L, 1);
}

/* The `params` table, encoded, added to the query of the URL at `url`. */
static void add_params(lua_State *L, int opts, int url, const char *fn) {
  char what[64];
  const char *why = NULL;
  corio_url u;
  int rc;
  snprintf(what, sizeof what, "%s: option 'params'", fn);
  lua_getfield(L, opts, "params");
  lcorio_push_form(L, -1, what);
  rc = corio_url_add_query(lua_tostring(L, url), lua_tostring(L, -1), &u, &why);
  lua_pop(L, 2);
  if (rc == CORIO_EURL || rc == CORIO_ESCHEME)
    lcorio_request_refused(L, rc, lua_tostring(L, url), fn);
  if (rc != 0) luaL_error(L, "%s: %s", fn, corio_strerror(rc));
  lcorio_push_url(L, &u, 0);
  lua_replace(L, url);
}

void lcorio_request_parse(lua_State *L, lcorio_req *r, int url, int opts,
                          int session, const char *method, const char *fn) {
  size_t ulen;
  unsigned seen = 0;
  int hdrs = 0, bodies;
  const char *ctype = NULL;
  corio_request *req = &r->req;
  const char *u;
  if (lua_type(L, url) != LUA_TSTRING)
    luaL_error(L, "%s: expected a URL string (got %s)", fn,
               luaL_typename(L, url));
  u = lua_tolstring(L, url, &ulen);
  corio_request_init(req, u);
  req->method = method;
  r->session = NULL;
  r->session_idx = 0;
  r->output = 0;
  r->stream = 0;
  if (opts != 0 && lua_isnil(L, opts)) opts = 0;
  if (opts != 0) seen = read_opts(L, r, opts, fn);
  /* the session: the argument, or opts.session */
  if (session != 0) {
    r->session = lcorio_checksession(L, session);
    r->session_idx = session;
  } else if (seen & (1u << O_SESSION)) {
    lua_getfield(L, opts, "session");
    r->session = lcorio_checksession(L, -1);
    r->session_idx = lua_gettop(L);
  }
  if (r->session != NULL && !(seen & (1u << O_TIMEOUT)) &&
      r->session->timeout != 0)
    req->timeout = r->session->timeout;
  /* retries: the option, or the session's (checked when it was made) */
  if (seen & (1u << O_RETRIES)) {
    lua_getfield(L, opts, "retries");
    lcorio_retry_parse(L, -1, fn, &req->retry);
  } else if (r->session != NULL &&
             lua_getiuservalue(L, r->session_idx, 3) > LUA_TNIL) {
    lcorio_retry_parse(L, -1, fn, &req->retry);
  }
  if (strlen(u) != ulen) lcorio_request_refused(L, CORIO_EURL, u, fn);
  apply_base_url(L, r, url);
  if (seen & (1u << O_PARAMS)) add_params(L, opts, url, fn);
  req->url = lua_tostring(L, url);
  /* the body: one of body, json, form */
  bodies = !!(seen & (1u << O_BODY)) + !!(seen & (1u << O_JSON)) +
           !!(seen & (1u << O_FORM));
  if (bodies > 1)
    luaL_error(L, "%s: give only one of the options body, json and form", fn);
  if (seen & (1u << O_BODY)) {
    lua_getfield(L, opts, "body"); /* anchored by opts too */
    req->body = lua_tolstring(L, -1, &req->body_len);
  } else if (seen & (1u << O_JSON)) {
    lua_getfield(L, opts, "json");
    lcorio_json_encode(L, -1, "option 'json'");
    req->body = lua_tolstring(L, -1, &req->body_len);
    ctype = "application/json";
  } else if (seen & (1u << O_FORM)) {
    lua_getfield(L, opts, "form");
    {
      char what[64];
      snprintf(what, sizeof what, "%s: option 'form'", fn);
      lcorio_push_form(L, -1, what);
    }
    req->body = lua_tolstring(L, -1, &req->body_len);
    ctype = "application/x-www-form-urlencoded";
  }
  if (seen & (1u << O_HEADERS)) {
    lua_getfield(L, opts, "headers");
    hdrs = lua_gettop(L);
  }
  build_headers(L, r, hdrs, ctype);
}

int lcorio_request_refused(lua_State *L, int rc, const char *url,
                           const char *fn) {
  switch (rc) {
  case CORIO_EURL: { /* libcurl's reason, when it has one */
    const char *why = NULL;
    corio_url u;
    if (corio_url_parse(url, &u, &why) == 0) corio_url_free(&u);
    lua_pushfstring(L, "invalid URL '%s'%s%s", url, why != NULL ? ": " : "",
                    why != NULL ? why : "");
    lcorio_push_fetch_error(L, rc, lua_tostring(L, -1), url);
    return lua_error(L);
  }
  case CORIO_ESCHEME:
    lua_pushfstring(L,
                    "unsupported URL scheme in '%s' (corio fetches http and "
                    "https)",
                    url);
    lcorio_push_fetch_error(L, rc, lua_tostring(L, -1), url);
    return lua_error(L);
  case CORIO_ECLOSED:
    return luaL_error(L, "%s: the session is closed", fn);
  case CORIO_EINVAL:
    return luaL_error(L, "%s: invalid request (%s)", fn, corio_strerror(rc));
  default:
    return luaL_error(L, "%s: %s", fn, corio_strerror(rc));
  }
}

/* }================================================================== */
