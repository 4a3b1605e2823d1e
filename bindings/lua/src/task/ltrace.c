/*
** ltrace.c: the trace file, in Chrome's trace-event JSON (the array form,
** which Perfetto and chrome://tracing open, and which stays readable when
** the program dies before the closing bracket).  One process; one track
** (tid) per task, its Task-N number, named by a thread_name event at its
** first run; the script's top-level waits on track 0, "main".
**
** Events are formatted by hand into a buffer that is written out when it
** fills: nothing is kept per event, so a job of a million fetches can be
** traced.  All hooks are in the binding: the resume driver (runs and
** waits, lobserve.c), the fetch completion (the transfer's span and its
** libcurl phases, from the response's timing).  The runtime needs no
** hook of its own: the binding sees every resume and every completion.
*/
#include <stdlib.h>
#include <string.h>

#include "ltask.h"

#define TRACE_BUF        (64 * 1024)
#define COUNTER_EVERY_US 10000 /* counters sampled at most every 10 ms */

struct lcorio_trace {
  struct lcorio_trace *next; /* in the list of open traces */
  FILE *f;
  uint64_t t0;           /* uv_hrtime() at the start */
  uint64_t next_counter; /* us: when the counters are sampled next */
  uint8_t gen;           /* tells this trace's named tracks (ltask) */
  size_t len;
  char buf[TRACE_BUF];
};

static uint8_t last_gen;

/*
** A script that ends with os.exit() skips lua_close, and so the trace's
** stop: at exit, the traces still open are completed (their buffered
** events written, the array closed).  The list is guarded: states in
** other threads may trace too.
*/
static lcorio_trace *open_traces;
static uv_mutex_t open_mu;
static uv_once_t open_once = UV_ONCE_INIT;

static void finish(lcorio_trace *tr);

static void at_exit(void) {
  uv_mutex_lock(&open_mu);
  while (open_traces != NULL) {
    lcorio_trace *tr = open_traces;
    open_traces = tr->next;
    finish(tr); /* the state may still point at it: it is not freed */
  }
  uv_mutex_unlock(&open_mu);
}

static void init_open(void) {
  uv_mutex_init(&open_mu);
  atexit(at_exit);
}

static void link_trace(lcorio_trace *tr, int add) {
  lcorio_trace **p;
  uv_once(&open_once, init_open);
  uv_mutex_lock(&open_mu);
  if (add) {
    tr->next = open_traces;
    open_traces = tr;
  } else {
    for (p = &open_traces; *p != NULL; p = &(*p)->next)
      if (*p == tr) {
        *p = tr->next;
        break;
      }
  }
  uv_mutex_unlock(&open_mu);
}

uint64_t lcorio_trace_us(const lcorio_trace *tr, uint64_t ns) {
  uint64_t us = ns > tr->t0 ? (ns - tr->t0) / 1000 : 0;
  return us > 0 ? us : 1;
}

/* corio_rt_time's seconds on the trace's clock */
static uint64_t secs_us(const lcorio_trace *tr, double s) {
  return lcorio_trace_us(tr, (uint64_t)(s * 1e9));
}

/*
** {==================================================================
** Formatting
** ==================================================================
*/

static void flush(lcorio_trace *tr) {
  if (tr->len > 0 && tr->f != NULL) fwrite(tr->buf, 1, tr->len, tr->f);
  tr->len = 0;
}

/* room for n more bytes (n small: at most a few hundred) */
static char *room(lcorio_trace *tr, size_t n) {
  if (tr->len + n > TRACE_BUF) flush(tr);
  return tr->buf + tr->len;
}

static void put(lcorio_trace *tr, const char *s, size_t n) {
  if (n > TRACE_BUF / 2) {
    flush(tr);
    if (tr->f != NULL) fwrite(s, 1, n, tr->f);
    return;
  }
  memcpy(room(tr, n), s, n);
  tr->len += n;
}

#define PUTLIT(tr, lit) put((tr), "" lit, sizeof(lit) - 1)

static void putu(lcorio_trace *tr, uint64_t v) {
  char tmp[24];
  int i = 0;
  char *p;
  do {
    tmp[i++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  p = room(tr, (size_t)i);
  tr->len += (size_t)i;
  while (i > 0) *p++ = tmp[--i];
}

/* s as a JSON string, quoted, cut at 1,000 bytes */
static void putstr(lcorio_trace *tr, const char *s) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  PUTLIT(tr, "\"");
  for (; *s != '\0' && n < 1000; s++, n++) {
    unsigned char c = (unsigned char)*s;
    char *p = room(tr, 6);
    if (c == '"' || c == '\\') {
      p[0] = '\\';
      p[1] = (char)c;
      tr->len += 2;
    } else if (c < 0x20) {
      memcpy(p, "\\u00", 4);
      p[4] = hex[c >> 4];
      p[5] = hex[c & 15];
      tr->len += 6;
    } else {
      p[0] = (char)c;
      tr->len += 1;
    }
  }
  PUTLIT(tr, "\"");
}

/* {"ph":"X","cat":cat,"name":name,"pid":1,"tid":tid,"ts":ts,"dur":dur
   (the caller adds args and closes with end_event) */
static void slice(lcorio_trace *tr, const char *cat, const char *name,
                  uint32_t tid, uint64_t ts, uint64_t dur) {
  PUTLIT(tr, "{\"ph\":\"X\",\"cat\":\"");
  put(tr, cat, strlen(cat));
  PUTLIT(tr, "\",\"name\":");
  putstr(tr, name);
  PUTLIT(tr, ",\"pid\":1,\"tid\":");
  putu(tr, tid);
  PUTLIT(tr, ",\"ts\":");
  putu(tr, ts);
  PUTLIT(tr, ",\"dur\":");
  putu(tr, dur);
}

static void end_event(lcorio_trace *tr) {
  PUTLIT(tr, "},\n");
}

static void name_track(lcorio_trace *tr, uint32_t tid, const char *name,
                       const char *group) {
  PUTLIT(tr, "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":");
  putu(tr, tid);
  PUTLIT(tr, ",\"args\":{\"name\":");
  putstr(tr, name);
  if (group != NULL) {
    PUTLIT(tr, ",\"group\":");
    putstr(tr, group);
  }
  PUTLIT(tr, "}},\n{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":1,"
             "\"tid\":");
  putu(tr, tid);
  PUTLIT(tr, ",\"args\":{\"sort_index\":");
  putu(tr, tid);
  PUTLIT(tr, "}},\n");
}

/* }================================================================== */

/*
** {==================================================================
** Start and stop
** ==================================================================
*/

int lcorio_trace_start(lua_State *L, lcorio_state *S, const char *path) {
  lcorio_trace *tr;
  (void)L;
  lcorio_trace_stop(S);
  tr = malloc(sizeof *tr);
  if (tr == NULL) return CORIO_ENOMEM;
  tr->f = fopen(path, "w");
  if (tr->f == NULL) {
    free(tr);
    return CORIO_EIO;
  }
  tr->t0 = uv_hrtime();
  tr->next_counter = 0;
  tr->len = 0;
  if (++last_gen == 0) ++last_gen;
  tr->gen = last_gen;
  PUTLIT(tr, "[\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,"
             "\"args\":{\"name\":\"corio\"}},\n");
  name_track(tr, 0, "main", NULL);
  S->trace = tr;
  link_trace(tr, 1);
  return 0;
}

/* the last event, the array closed, the file closed */
static void finish(lcorio_trace *tr) {
  if (tr->f == NULL) return;
  PUTLIT(tr, "{\"ph\":\"M\",\"name\":\"trace_end\",\"pid\":1,\"args\":{}}\n"
             "]\n");
  flush(tr);
  fclose(tr->f);
  tr->f = NULL;
}

void lcorio_trace_stop(lcorio_state *S) {
  lcorio_trace *tr = S->trace;
  if (tr == NULL) return;
  S->trace = NULL;
  link_trace(tr, 0);
  finish(tr);
  free(tr);
}

/* }================================================================== */

/*
** {==================================================================
** Events
** ==================================================================
*/

static void counters(lcorio_trace *tr, corio_rt *rt, uint64_t ts) {
  corio_rt_stats st;
  corio_fetch_stats fs;
  if (ts < tr->next_counter) return;
  tr->next_counter = ts + COUNTER_EVERY_US;
  corio_rt_get_stats(rt, &st);
  corio_fetch_get_stats(rt, &fs);
  PUTLIT(tr, "{\"ph\":\"C\",\"name\":\"corio\",\"pid\":1,\"ts\":");
  putu(tr, ts);
  PUTLIT(tr, ",\"args\":{\"tasks\":");
  putu(tr, st.tasks);
  PUTLIT(tr, ",\"fetches\":");
  putu(tr, fs.active);
  PUTLIT(tr, ",\"sockets\":");
  putu(tr, fs.sockets);
  PUTLIT(tr, "}},\n");
}

/* the task's track, named at its first run in this trace */
static uint32_t track(lua_State *L, lcorio_trace *tr, ltask *lt, int tidx) {
  if (lt->id == 0) return 0;
  if (lt->trace_gen != tr->gen && lua_checkstack(L, 4)) {
    lua_Debug ar;
    lt->trace_gen = tr->gen;
    lcorio_push_name(L, lt, tidx);
    /* the group: a name of its own, or else the spawn site */
    if (lt->flags & LT_NAMED) {
      lua_pushvalue(L, -1);
    } else if (lt->line > 0 && lua_getiuservalue(L, tidx, 2) == LUA_TFUNCTION &&
               lua_getinfo(L, ">S", &ar)) {
      lua_pushfstring(L, "spawned at %s:%d", ar.short_src, (int)lt->line);
    } else {
      if (lt->line > 0) lua_pop(L, 1);
      lua_pushliteral(L, "tasks");
    }
    name_track(tr, lt->id, lua_tostring(L, -2), lua_tostring(L, -1));
    lua_pop(L, 2);
  }
  return lt->id;
}

void lcorio_trace_task(lua_State *L, lcorio_state *S, ltask *lt, int tidx,
                       lua_State *co, uint64_t ts, uint64_t end) {
  lcorio_trace *tr = S->trace;
  uint32_t tid = track(L, tr, lt, tidx);
  if (end == 0) { /* a run begins: the wait before it ends */
    if (lt->tr_since != 0 && lt->tr_since <= ts) {
      char buf[512];
      slice(tr, "wait", lcorio_wait_reason(L, lt, co, buf, sizeof buf), tid,
            lt->tr_since, ts - lt->tr_since);
      end_event(tr);
    }
    return;
  }
  slice(tr, "task", "run", tid, ts, end - ts);
  end_event(tr);
  counters(tr, S->rt, end);
}

static void phase(lcorio_trace *tr, const char *name, uint32_t tid,
                  uint64_t from, uint64_t to) {
  if (to <= from) return;
  slice(tr, "fetch", name, tid, from, to - from);
  end_event(tr);
}

/*
** The transfer's span, from the response's timing (seconds: dns, connect
** and tls are those phases' durations, 0 on a reused connection; ttfb and
** total run from the start), drawn inside the task's wait: it started in
** the run that called fetch, before that wait began.
*/
void lcorio_trace_fetch(lcorio_state *S, ltask *lt, int status,
                        const corio_response *res, const char *url) {
  lcorio_trace *tr = S->trace;
  const corio_fetch_timing *tm = &res->timing;
  uint64_t start, end, dns, conn, tls, first, now;
  uint32_t tid = lt->id;
  int reused = tm->dns == 0 && tm->connect == 0 && tm->tls == 0;
  if (tm->start <= 0) return; /* never started */
  now = lcorio_trace_us(tr, uv_hrtime());
  start = secs_us(tr, tm->start);
  if (lt->tr_since != 0 && start < lt->tr_since) start = lt->tr_since;
  end = start + (uint64_t)(tm->total * 1e6);
  if (end > now) end = now;
  dns = start + (uint64_t)(tm->dns * 1e6);
  conn = dns + (uint64_t)(tm->connect * 1e6);
  tls = conn + (uint64_t)(tm->tls * 1e6);
  first = start + (uint64_t)(tm->ttfb * 1e6);
  if (tls > end) tls = end;
  if (first > end || first == start) first = status == 0 ? end : tls;
  slice(tr, "fetch", "fetch", tid, start, end > start ? end - start : 0);
  PUTLIT(tr, ",\"args\":{\"url\":");
  putstr(tr, res->url != NULL && *res->url ? res->url : url != NULL ? url : "");
  PUTLIT(tr, ",\"status\":");
  putu(tr, (uint64_t)(res->status > 0 ? res->status : 0));
  PUTLIT(tr, ",\"bytes\":");
  putu(tr, res->bytes);
  PUTLIT(tr, ",\"reused\":");
  if (reused)
    PUTLIT(tr, "true");
  else
    PUTLIT(tr, "false");
  if (res->attempts > 1) {
    PUTLIT(tr, ",\"attempts\":");
    putu(tr, (uint64_t)res->attempts);
  }
  if (status < 0) {
    PUTLIT(tr, ",\"error\":");
    putstr(tr, res->error != NULL ? res->error : corio_strerror(status));
  }
  PUTLIT(tr, "}");
  end_event(tr);
  phase(tr, "dns", tid, start, dns < end ? dns : end);
  phase(tr, "connect", tid, dns, conn < end ? conn : end);
  phase(tr, "tls", tid, conn, tls);
  phase(tr, "ttfb", tid, tls, first);
  phase(tr, "body", tid, first, end);
}

void lcorio_trace_request(lcorio_state *S, ltask *lt, const char *method,
                          const char *path, size_t path_len, int status,
                          uint64_t t0) {
  lcorio_trace *tr = S->trace;
  char name[160];
  uint64_t start = lcorio_trace_us(tr, t0), end;
  end = lcorio_trace_us(tr, uv_hrtime());
  snprintf(name, sizeof name, "%s %.*s", method,
           (int)(path_len < 120 ? path_len : 120), path);
  slice(tr, "server", name, lt != NULL ? lt->id : 0, start,
        end > start ? end - start : 0);
  PUTLIT(tr, ",\"args\":{\"method\":");
  putstr(tr, method);
  PUTLIT(tr, ",\"path\":");
  putstr(tr, name + strlen(method) + 1);
  PUTLIT(tr, ",\"status\":");
  putu(tr, (uint64_t)(status > 0 ? status : 0));
  PUTLIT(tr, "}");
  end_event(tr);
}

/*
** Each item on the first worker track free at its start: tracks then show
** how many ran at once (a worker's identity is not kept).  Threads' tracks
** are numbered from POOL_TID up, processes' after them.
*/
#define POOL_TID   1000000u
#define POOL_LANES 64

void lcorio_trace_pool(lcorio_state *S, const char *what,
                       const lcorio_span *spans, size_t n) {
  lcorio_trace *tr = S->trace;
  uint64_t lane_end[POOL_LANES];
  size_t nlanes = 0, i, k;
  char name[96];
  /* threads (map and to_thread) and processes: tracks of their own */
  int procs = strstr(what, "process") != NULL;
  uint32_t base = POOL_TID + (procs ? POOL_LANES : 0);
  for (i = 0; i < n; i++) {
    const lcorio_span *sp = &spans[i];
    if (sp->start == 0 || sp->end < sp->start) continue; /* never ran */
    for (k = 0; k < nlanes && lane_end[k] > sp->start; k++)
      ;
    if (k == POOL_LANES) k = POOL_LANES - 1; /* more at once: they stack */
    if (k == nlanes) {
      nlanes++;
      snprintf(name, sizeof name, "%s worker %u", procs ? "process" : "thread",
               (unsigned)k + 1);
      name_track(tr, base + (uint32_t)k, name, "pool");
    }
    lane_end[k] = sp->end;
    snprintf(name, sizeof name, "%s item %zu", what, i + 1);
    slice(tr, "pool", name, base + (uint32_t)k, lcorio_trace_us(tr, sp->start),
          (sp->end - sp->start) / 1000);
    PUTLIT(tr, ",\"args\":{\"index\":");
    putu(tr, i + 1);
    PUTLIT(tr, "}");
    end_event(tr);
  }
}

/* }================================================================== */
