/*
** lfetch_form.c: a table encoded as application/x-www-form-urlencoded:
** the `form` and `params` options of fetch, and corio.url.encode.  Keys
** are sorted, so the body does not depend on table order; a list value
** repeats its key (tag=a&tag=b).  Two passes over the table, counting then
** writing, so the string is built in place with no intermediate buffer.
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lcorio.h"

typedef struct fkey {
  const char *s;
  size_t len;
} fkey;

static int fkey_cmp(const void *a, const void *b) {
  const fkey *x = a, *y = b;
  int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
  return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Counting pass when p is NULL, writing pass otherwise. */
typedef struct fwriter {
  char *p;
  size_t n;
} fwriter;

static void form_put(fwriter *w, const char *s, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isalnum(c) || c == '*' || c == '-' || c == '.' || c == '_') {
      if (w->p) w->p[w->n] = (char)c;
      w->n++;
    } else if (c == ' ') {
      if (w->p) w->p[w->n] = '+';
      w->n++;
    } else {
      if (w->p) {
        w->p[w->n] = '%';
        w->p[w->n + 1] = hex[c >> 4];
        w->p[w->n + 2] = hex[c & 15];
      }
      w->n += 3;
    }
  }
}

/*
** A scalar form value as text; numbers are formatted into tmp so nothing
** unanchored is left behind.
*/
static const char *form_scalar(lua_State *L, int idx, char *tmp, size_t *len,
                               const fkey *k, const char *what) {
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    return lua_tolstring(L, idx, len);
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      snprintf(tmp, 64, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    else
      snprintf(tmp, 64, "%.17g", (double)lua_tonumber(L, idx));
    *len = strlen(tmp);
    return tmp;
  case LUA_TBOOLEAN:
    *len = lua_toboolean(L, idx) ? 4 : 5;
    return lua_toboolean(L, idx) ? "true" : "false";
  default:
    luaL_error(L,
               "%s: the value of '%s' must be a string, number, boolean or a "
               "list of those (got %s)",
               what, k->s, luaL_typename(L, idx));
    return NULL;
  }
}

static void form_pair(lua_State *L, fwriter *w, const fkey *k, int vidx,
                      const char *what) {
  char tmp[64];
  size_t vlen;
  const char *v = form_scalar(L, vidx, tmp, &vlen, k, what);
  if (w->n > 0) {
    if (w->p) w->p[w->n] = '&';
    w->n++;
  }
  form_put(w, k->s, k->len);
  if (w->p) w->p[w->n] = '=';
  w->n++;
  form_put(w, v, vlen);
}

static void form_pass(lua_State *L, int form, const fkey *keys, size_t n,
                      fwriter *w, const char *what) {
  size_t i;
  for (i = 0; i < n; i++) {
    lua_pushlstring(L, keys[i].s, keys[i].len);
    lua_rawget(L, form);
    if (lua_type(L, -1) == LUA_TTABLE) { /* a list: key=v1&key=v2 */
      lua_Integer j, len = (lua_Integer)lua_rawlen(L, -1);
      for (j = 1; j <= len; j++) {
        lua_rawgeti(L, -1, j);
        form_pair(L, w, &keys[i], lua_gettop(L), what);
        lua_pop(L, 1);
      }
    } else {
      form_pair(L, w, &keys[i], lua_gettop(L), what);
    }
    lua_pop(L, 1);
  }
}

void lcorio_push_form(lua_State *L, int form, const char *what) {
  size_t n = 0, i = 0;
  fkey *keys;
  fwriter w = {NULL, 0};
  luaL_Buffer b;
  form = lua_absindex(L, form);
  lua_pushnil(L);
  while (lua_next(L, form) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "%s: keys must be strings (got %s)", what,
                 luaL_typename(L, -2));
    n++;
    lua_pop(L, 1);
  }
  keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
  lua_pushnil(L);
  while (lua_next(L, form) != 0) { /* anchored by the form table */
    keys[i].s = lua_tolstring(L, -2, &keys[i].len);
    i++;
    lua_pop(L, 1);
  }
  qsort(keys, n, sizeof *keys, fkey_cmp);
  form_pass(L, form, keys, n, &w, what);
  w.p = luaL_buffinitsize(L, &b, w.n ? w.n : 1);
  w.n = 0;
  form_pass(L, form, keys, n, &w, what); /* balanced: the buffer allows it */
  luaL_pushresultsize(&b, w.n);
  lua_remove(L, -2); /* the keys */
}
