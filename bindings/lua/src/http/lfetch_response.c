/*
** lfetch_response.c: the response object and FetchError values.
**
** A response is a small full userdata: the status, HTTP version and
** timing in C, and three user values: the body, the final URL, and the
** headers.  Programs that fetch 10,000 URLs mostly read `status`, `ok` and
** `body`, so the header table is built only when `headers` is first read:
** until then the fields sit in one string, "name\0value\0name\0value\0...".
** A response then costs one userdata and two or three strings, and the URL
** string is the request's own when no redirect changed it.
*/
#include <string.h>

#include "lcorio.h"

typedef struct lresponse {
  lua_Integer status;
  corio_fetch_timing timing;
  int attempts;         /* tries made (retries) */
  lua_Integer bytes;    /* body bytes (a stream's: lfetch_stream.c) */
  char http_version[4]; /* "1.0", "1.1", "2", "3" or "" */
} lresponse;

enum {
  RESP_BODY = 1,
  RESP_URL,
  RESP_HEADERS,
  RESP_TIMING,
  RESP_STREAM, /* a streamed response's lstream (lfetch_stream.c) */
  RESP_NUSER = RESP_STREAM
};

/*
** {==================================================================
** making one
** ==================================================================
*/

/* The header fields as one string; NULs separate names and values. */
static void push_header_block(lua_State *L, const corio_response *res) {
  size_t i, total = 0;
  luaL_Buffer b;
  char *p;
  for (i = 0; i < res->nheaders; i++)
    total += strlen(res->headers[i].name) + strlen(res->headers[i].value) + 2;
  p = luaL_buffinitsize(L, &b, total);
  for (i = 0; i < res->nheaders; i++) {
    size_t n = strlen(res->headers[i].name) + 1;
    memcpy(p, res->headers[i].name, n);
    p += n;
    n = strlen(res->headers[i].value) + 1;
    memcpy(p, res->headers[i].value, n);
    p += n;
  }
  luaL_pushresultsize(&b, total);
}

void lcorio_push_response(lua_State *L, const corio_response *res,
                          lua_State *from, int url_idx) {
  lresponse *r = lua_newuserdatauv(L, sizeof *r, RESP_NUSER);
  size_t ulen;
  const char *u;
  r->status = (lua_Integer)res->status;
  r->timing = res->timing;
  r->attempts = res->attempts > 0 ? res->attempts : 1;
  r->bytes = (lua_Integer)res->bytes;
  strncpy(r->http_version, res->http_version, sizeof r->http_version - 1);
  r->http_version[sizeof r->http_version - 1] = '\0';
  luaL_setmetatable(L, LCORIO_RESPONSE_MT);
  lua_rotate(L, -2, 1); /* body, response -> response, body */
  lua_setiuservalue(L, -2, RESP_BODY);
  u = url_idx != 0 ? lua_tolstring(from, url_idx, &ulen) : NULL;
  if (u != NULL && strcmp(u, res->url) == 0 && strlen(u) == ulen) {
    lua_pushvalue(from, url_idx); /* no redirect: share the string */
    if (from != L) lua_xmove(from, L, 1);
  } else {
    lua_pushstring(L, res->url);
  }
  lua_setiuservalue(L, -2, RESP_URL);
  push_header_block(L, res);
  lua_setiuservalue(L, -2, RESP_HEADERS);
}

static const struct {
  int code;
  const char *kind;
} kinds[] = {
    {CORIO_EDNS, "dns"},
    {CORIO_ECONNECT, "connect"},
    {CORIO_ETIMEDOUT, "timeout"},
    {CORIO_ETLS, "tls"},
    {CORIO_ERESET, "reset"},
    {CORIO_EPROTO, "protocol"},
    {CORIO_ETOOLARGE, "too_large"},
    {CORIO_EURL, "invalid_url"},
    {CORIO_ESCHEME, "unsupported_scheme"},
    {CORIO_ECANCELED, "cancelled"},
    {CORIO_ENOMEM, "memory"},
    {CORIO_EIO, "io"},
};

static const char *kind_of(int status) {
  size_t i;
  for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (kinds[i].code == status) return kinds[i].kind;
  return "io";
}

void lcorio_push_fetch_error(lua_State *L, int status, const char *message,
                             const char *url) {
  lcorio_pusherror(L, "FetchError", kind_of(status), "%s",
                   message != NULL ? message : corio_strerror(status));
  lua_pushstring(L, url != NULL ? url : "");
  lua_setfield(L, -2, "url");
}

void lcorio_push_fetch_failure(lua_State *L, int status,
                               const corio_response *res, const char *url) {
  const char *msg = res->error != NULL ? res->error : corio_strerror(status);
  int attempts = res->attempts > 0 ? res->attempts : 1;
  if (attempts > 1)
    msg = lua_pushfstring(L, "%s (after %d tries)", msg, attempts);
  lcorio_push_fetch_error(L, status, msg, url);
  if (attempts > 1) lua_remove(L, -2); /* the message */
  lua_pushinteger(L, attempts);
  lua_setfield(L, -2, "attempts");
}

void lcorio_push_fetch_errors(lua_State *L) {
  size_t i, n = sizeof kinds / sizeof kinds[0];
  lua_createtable(L, 0, (int)n + 1);
  for (i = 0; i < n; i++) {
    lcorio_pusherror(L, "FetchError", kinds[i].kind, "");
    lua_setfield(L, -2, kinds[i].kind);
  }
  lua_pushliteral(L, "FetchError");
  lua_setfield(L, -2, "name");
}

/* The header block: NUL-terminated names and values, one after the other. */
static void build_headers(lua_State *L, const char *p, size_t len) {
  const char *end = p + len;
  lcorio_headers_new(L, 8);
  while (p < end) {
    size_t nlen = strlen(p), vlen;
    const char *v = p + nlen + 1;
    vlen = strlen(v);
    lcorio_headers_add(L, -1, p, nlen, v, vlen);
    p = v + vlen + 1;
  }
}

/* }================================================================== */

/*
** {==================================================================
** fields and methods
** ==================================================================
*/

static lresponse *check_response(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, LCORIO_RESPONSE_MT);
}

static void push_headers(lua_State *L, int idx) {
  if (lua_getiuservalue(L, idx, RESP_HEADERS) == LUA_TSTRING) {
    size_t len;
    const char *p = lua_tolstring(L, -1, &len);
    build_headers(L, p, len);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, RESP_HEADERS);
    lua_remove(L, -2); /* the block */
  }
}

static void push_timing(lua_State *L, int idx, const lresponse *r) {
  if (lua_getiuservalue(L, idx, RESP_TIMING) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 7);
  lua_pushnumber(L, r->timing.dns);
  lua_setfield(L, -2, "dns");
  lua_pushnumber(L, r->timing.connect);
  lua_setfield(L, -2, "connect");
  lua_pushnumber(L, r->timing.tls);
  lua_setfield(L, -2, "tls");
  lua_pushnumber(L, r->timing.ttfb);
  lua_setfield(L, -2, "ttfb");
  lua_pushnumber(L, r->timing.total);
  lua_setfield(L, -2, "total");
  lua_pushnumber(L, r->timing.queue);
  lua_setfield(L, -2, "queue");
  lua_pushnumber(L, r->timing.start);
  lua_setfield(L, -2, "start");
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, RESP_TIMING);
}

void lcorio_response_set_stream(lua_State *L, int idx) {
  lua_setiuservalue(L, idx, RESP_STREAM);
}

void lcorio_response_push_stream(lua_State *L, int idx) {
  check_response(L, idx);
  lua_getiuservalue(L, idx, RESP_STREAM);
}

void lcorio_response_set_body(lua_State *L, int idx) {
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, RESP_BODY);
}

/* A stream's body is nil until text() has read the rest of it. */
static int is_unread_stream(lua_State *L) {
  int t = lua_getiuservalue(L, 1, RESP_BODY);
  lua_pop(L, 1);
  if (t != LUA_TNIL) return 0;
  t = lua_getiuservalue(L, 1, RESP_STREAM);
  lua_pop(L, 1);
  return t != LUA_TNIL;
}

static int r_text(lua_State *L) {
  check_response(L, 1);
  if (is_unread_stream(L)) return lcorio_stream_text(L);
  lua_getiuservalue(L, 1, RESP_BODY);
  return 1;
}

static int json_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lcorio_json_decode(L, -1, "corio: response:json(): invalid JSON");
  return 1;
}

static int r_json(lua_State *L) {
  check_response(L, 1);
  lua_settop(L, 1);
  if (is_unread_stream(L)) {
    lua_pushcfunction(L, r_text);
    lua_pushvalue(L, 1);
    lua_callk(L, 1, 1, 0, json_k);
  } else {
    lua_getiuservalue(L, 1, RESP_BODY);
  }
  return json_k(L, LUA_OK, 0);
}

static int r_chunks(lua_State *L) {
  check_response(L, 1);
  return lcorio_stream_chunks(L);
}

static int r_close(lua_State *L) {
  check_response(L, 1);
  return lcorio_stream_close(L);
}

/*
** upvalue 1: the methods table; upvalue 2: the metatable, compared
** directly (this runs for every field read: no registry lookup)
*/
static int r_index(lua_State *L) {
  lresponse *r = lua_touserdata(L, 1);
  const char *k;
  if (r == NULL || !lua_getmetatable(L, 1) ||
      !lua_rawequal(L, -1, lua_upvalueindex(2)))
    return luaL_typeerror(L, 1, LCORIO_RESPONSE_MT);
  lua_pop(L, 1);
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  k = lua_tostring(L, 2);
  switch (k[0]) {
  case 'a':
    if (strcmp(k, "attempts") == 0) {
      lua_pushinteger(L, r->attempts);
      return 1;
    }
    break;
  case 's':
    if (strcmp(k, "status") == 0) {
      lua_pushinteger(L, r->status);
      return 1;
    }
    break;
  case 'o':
    if (strcmp(k, "ok") == 0) {
      lua_pushboolean(L, r->status >= 200 && r->status <= 299);
      return 1;
    }
    break;
  case 'b':
    if (strcmp(k, "body") == 0) {
      lua_getiuservalue(L, 1, RESP_BODY);
      return 1;
    }
    if (strcmp(k, "bytes") == 0) {
      lua_Integer n = lcorio_stream_bytes(L, 1);
      lua_pushinteger(L, n >= 0 ? n : r->bytes);
      return 1;
    }
    break;
  case 'u':
    if (strcmp(k, "url") == 0) {
      lua_getiuservalue(L, 1, RESP_URL);
      return 1;
    }
    break;
  case 'h':
    if (strcmp(k, "headers") == 0) {
      push_headers(L, 1);
      return 1;
    }
    if (strcmp(k, "http_version") == 0) {
      lua_pushstring(L, r->http_version);
      return 1;
    }
    break;
  case 't':
    if (strcmp(k, "timing") == 0) {
      push_timing(L, 1, r);
      return 1;
    }
    break;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1)); /* text, json */
  return 1;
}

static int r_tostring(lua_State *L) {
  lresponse *r = check_response(L, 1);
  lua_getiuservalue(L, 1, RESP_URL);
  lua_pushfstring(L, "<Response [%d] %s>", (int)r->status, lua_tostring(L, -1));
  return 1;
}

static const luaL_Reg methods[] = {{"text", r_text},
                                   {"json", r_json},
                                   {"chunks", r_chunks},
                                   {"close", r_close},
                                   {NULL, NULL}};

void lcorio_response_open(lua_State *L) {
  if (luaL_newmetatable(L, LCORIO_RESPONSE_MT)) {
    luaL_newlib(L, methods);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, r_index, 2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, r_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, r_close); /* for r:chunks()'s fourth value */
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lcorio_headers_open(L);
  lcorio_stream_open(L);
}

/* }================================================================== */
