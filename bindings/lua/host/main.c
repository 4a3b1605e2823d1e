/*
** main.c: the corio executable, lua.c in miniature.  It runs a script (or
** -e chunks, or stdin, or a REPL) with `corio` as a global, then runs the
** loop until no task is left.  Ctrl-C (SIGINT) stops the Lua code running
** (as lua.c does), cancels every task, lets their cleanup run, lists what
** was still pending, and exits with 130; SIGTERM, which systemd and
** container runtimes send to stop a service, does the same and exits
** with 143 (128 + the signal's number, as a shell reports it).  SIGQUIT
** (Ctrl-\) prints every pending task and the script goes on; --trace
** and --timeline write what the tasks did (docs/observability.md).
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "corio_lua.h"
#include "slab.h"

static const char *progname = "corio";

typedef struct host {
  lua_State *L;
  corio_rt *rt;
  uv_async_t sigint;            /* wakes the loop after Ctrl-C or SIGTERM */
  uv_async_t sigquit;           /* wakes the loop to dump the tasks */
  volatile sig_atomic_t dump;   /* a SIGQUIT's dump is still to be printed */
  const char *trace;            /* --trace FILE */
  const char *timeline;         /* --timeline FILE.svg */
  char timeline_trace[64];      /* the trace --timeline draws from */
  lua_State *volatile *running; /* corio_lua_running: the task resumed */
  volatile sig_atomic_t interrupted; /* the signal's number, or 0 */
} host;

static host *the_host; /* for the signal handler */

static void print_usage(const char *badoption) {
  if (badoption[1] == 'e' || badoption[1] == 'l')
    fprintf(stderr, "%s: '%s' needs argument\n", progname, badoption);
  else
    fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badoption);
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables\n"
          "  -W        turn warnings on\n"
          "  --trace FILE     write a trace of the tasks (Chrome JSON)\n"
          "  --timeline FILE  draw the tasks over time (SVG)\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n",
          progname);
}

static void l_message(const char *pname, const char *msg) {
  if (pname) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    /* after Ctrl-C or SIGTERM the script's own wait ends in the cancel
       that was asked for: not an error to show */
    int asked = the_host != NULL && the_host->interrupted && msg != NULL &&
                strncmp(msg, "CancelledError:", 15) == 0;
    if (!asked)
      l_message(progname, msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

static int docall(lua_State *L, int narg, int nres) {
  int status, base = lua_gettop(L) - narg;
  lua_pushcfunction(L, corio_lua_traceback);
  lua_insert(L, base);
  status = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  return status;
}

static void print_version(void) {
  printf("corio %s, %s\n", corio_version_string(), LUA_COPYRIGHT);
  fflush(stdout);
}

static void createargtable(lua_State *L, char **argv, int argc, int script) {
  int i, narg;
  if (script == argc) script = 0;
  narg = argc - (script + 1);
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

static int dolibrary(lua_State *L, char *globname) {
  int status;
  char *modname = strchr(globname, '=');
  if (modname == NULL)
    modname = globname;
  else {
    *modname = '\0';
    modname++;
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  status = docall(L, 1, 1);
  if (status == LUA_OK) lua_setglobal(L, globname);
  return report(L, status);
}

static int pushargs(lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  int status;
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL;
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = docall(L, n, 0);
  }
  return report(L, status);
}

#define has_error 1
#define has_i     2
#define has_v     4
#define has_e     8
#define has_E     16

static int collectargs(char **argv, int *first) {
  int args = 0, i;
  if (argv[0] != NULL) {
    if (argv[0][0]) progname = argv[0];
  } else {
    *first = -1;
    return 0;
  }
  for (i = 1; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-') return args;
    switch (argv[i][1]) {
    case '-':
      if (strcmp(argv[i], "--trace") == 0 ||
          strcmp(argv[i], "--timeline") == 0) {
        if (argv[i + 1] == NULL) return has_error;
        if (argv[i][3] == 'r')
          the_host->trace = argv[i + 1];
        else
          the_host->timeline = argv[i + 1];
        i++;
        break;
      }
      if (argv[i][2] != '\0') return has_error;
      *first = i + 1;
      return args;
    case '\0':
      return args;
    case 'E':
      if (argv[i][2] != '\0') return has_error;
      args |= has_E;
      break;
    case 'W':
      if (argv[i][2] != '\0') return has_error;
      break;
    case 'i':
      args |= has_i; /* fall through: -i implies -v */
      /* FALLTHROUGH */
    case 'v':
      if (argv[i][2] != '\0') return has_error;
      args |= has_v;
      break;
    case 'e':
      args |= has_e; /* FALLTHROUGH */
    case 'l':
      if (argv[i][2] == '\0') {
        i++;
        if (argv[i] == NULL || argv[i][0] == '-') return has_error;
      }
      break;
    default:
      return has_error;
    }
  }
  *first = 0; /* no script name */
  return args;
}

static int runargs(lua_State *L, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    int option = argv[i][1];
    switch (option) {
    case '-': /* --trace FILE, --timeline FILE: done in pmain */
      i++;
      break;
    case 'e':
    case 'l': {
      int status;
      char *extra = argv[i] + 2;
      if (*extra == '\0') extra = argv[++i];
      status = (option == 'e') ? dostring(L, extra, "=(command line)")
                               : dolibrary(L, extra);
      if (status != LUA_OK) return 0;
      break;
    }
    case 'W':
      lua_warning(L, "@on", 0);
      break;
    }
  }
  return 1;
}

static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dochunk(L, luaL_loadfile(L, init + 1));
  return dostring(L, init, name);
}

/*
** {==================================================================
** REPL: each line runs at top level, so its waits run the loop
** ==================================================================
*/
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    if (lmsg >= 5 && strcmp(msg + lmsg - 5, "<eof>") == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

static int pushline(lua_State *L, int firstline) {
  char buf[512];
  size_t l;
  fputs(firstline ? "> " : ">> ", stdout);
  fflush(stdout);
  if (fgets(buf, sizeof buf, stdin) == NULL) return 0;
  l = strlen(buf);
  if (l > 0 && buf[l - 1] == '\n') buf[--l] = '\0';
  if (firstline && buf[0] == '=')
    lua_pushfstring(L, "return %s", buf + 1);
  else
    lua_pushlstring(L, buf, l);
  return 1;
}

static int addreturn(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *retline = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status == LUA_OK)
    lua_remove(L, -2);
  else
    lua_pop(L, 2);
  return status;
}

static int multiline(lua_State *L) {
  for (;;) {
    size_t len;
    const char *line = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, line, len, "=stdin");
    if (!incomplete(L, status) || !pushline(L, 0)) return status;
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

static int loadline(lua_State *L) {
  int status;
  lua_settop(L, 0);
  if (!pushline(L, 1)) return -1;
  if ((status = addreturn(L)) != LUA_OK) status = multiline(L);
  lua_remove(L, 1);
  return status;
}

static void l_print(lua_State *L) {
  int n = lua_gettop(L);
  if (n > 0) {
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
      l_message(progname, lua_pushfstring(L, "error calling 'print' (%s)",
                                          lua_tostring(L, -1)));
  }
}

static void doREPL(lua_State *L) {
  int status;
  const char *oldprogname = progname;
  progname = NULL;
  while ((status = loadline(L)) != -1) {
    if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK)
      l_print(L);
    else
      report(L, status);
  }
  lua_settop(L, 0);
  lua_writeline();
  progname = oldprogname;
}

/* }================================================================== */

/*
** {==================================================================
** Ctrl-C
** ==================================================================
*/

/*
** Ctrl-C (and SIGTERM) has two halves.  In the signal handler, as lua.c's
** laction: the Lua code running now (a busy `while true do end` in a task
** or at top level never lets the loop turn) raises "interrupted!" at its
** next instruction.  Then, on the loop: every task is cancelled, its cleanup
** runs, and what was still pending is listed.  A second Ctrl-C gets the
** default action.
*/
static void lstop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L,
             the_host->interrupted == SIGTERM ? "terminated!" : "interrupted!");
}

static void laction(int signum) {
  const int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT;
  host *h = the_host;
  lua_State *co = h->running != NULL ? *h->running : NULL;
  signal(signum, SIG_DFL);
  h->interrupted = signum;
  /*
  ** while the loop runs and no task does, nothing is to be stopped: the
  ** main thread may only be inside a C call (a hook there would raise
  ** through the loop's frames)
  */
  if (co != NULL)
    lua_sethook(co, lstop, flag, 1);
  else if (!corio_rt_running(h->rt))
    lua_sethook(h->L, lstop, flag, 1);
  uv_async_send(&h->sigint); /* async-signal-safe */
}

/*
** What Ctrl-C prints: the first LIST_MAX pending tasks one a line, then the
** rest counted by name (one given with set_name) or else by the function
** they run ("4,980 x coro=worker at job.lua:3"), so that 5,000 tasks do
** not scroll the cause away.
*/
#define LIST_MAX   20
#define GROUPS_MAX 10

/* "4980" as "4,980" */
static const char *thousands(char *buf, size_t size, lua_Integer n) {
  char digits[32];
  int len = snprintf(digits, sizeof digits, "%lld", (long long)n), i, o = 0;
  for (i = 0; i < len && (size_t)o + 2 < size; i++) {
    if (i > 0 && (len - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = digits[i];
  }
  buf[o] = '\0';
  return buf;
}

/*
** Push a pending task's group, from its tostring "<Task pending
** name='Task-7' coro=worker at job.lua:3>": "name='fetcher'" for a name of
** its own, else "coro=worker at job.lua:3".
*/
static void push_group(lua_State *L, const char *s) {
  const char *name = strstr(s, " name='"), *end, *coro;
  int numbered;
  if (name == NULL || (end = strchr(name + 7, '\'')) == NULL) {
    lua_pushstring(L, s);
    return;
  }
  name += 1;
  numbered = strncmp(name, "name='Task-", 11) == 0 &&
             strspn(name + 11, "0123456789") == (size_t)(end - name - 11);
  coro = strstr(end, " coro=");
  if (!numbered || coro == NULL)
    lua_pushlstring(L, name, (size_t)(end + 1 - name));
  else
    lua_pushlstring(L, coro + 1,
                    strlen(coro + 1) - (coro[strlen(coro) - 1] == '>'));
}

/*
** Argument 1: the signal.  A Ctrl-C always says so; a SIGTERM that finds
** nothing pending (a server stopped by its supervisor) ends quietly.
*/
static int list_pending(lua_State *L) {
  int sig = (int)lua_tointeger(L, 1);
  lua_Integer i, n, g, shown;
  char buf[40];
  corio_lua_push_pending(L);
  n = luaL_len(L, -1);
  if (n > 0 || sig != SIGTERM)
    fprintf(stderr, "\n%s: %s%s\n", progname,
            sig == SIGTERM ? "terminated" : "interrupted",
            n > 0 ? "; cancelling the pending tasks:" : "");
  lua_newtable(L); /* group -> count, for the tasks past LIST_MAX */
  for (i = 1; i <= n; i++) {
    const char *s;
    lua_rawgeti(L, -2, i);
    s = luaL_tolstring(L, -1, NULL);
    if (i <= LIST_MAX) {
      fprintf(stderr, "  %s\n", s);
    } else {
      push_group(L, s);
      lua_pushvalue(L, -1);
      lua_rawget(L, -5);
      lua_pushinteger(L, lua_tointeger(L, -1) + 1);
      lua_remove(L, -2);
      lua_rawset(L, -5);
    }
    lua_pop(L, 2);
  }
  if (n <= LIST_MAX) return 0;
  fprintf(stderr, "  ... and %s more:\n",
          thousands(buf, sizeof buf, n - LIST_MAX));
  /* the largest groups first: take the largest left, GROUPS_MAX times */
  for (g = 0, shown = 0; g < GROUPS_MAX; g++) {
    lua_Integer best = 0;
    lua_pushnil(L); /* the best key */
    lua_pushnil(L);
    while (lua_next(L, -3) != 0) {
      if (lua_tointeger(L, -1) > best) {
        best = lua_tointeger(L, -1);
        lua_pushvalue(L, -2);
        lua_replace(L, -4);
      }
      lua_pop(L, 1);
    }
    if (best == 0) {
      lua_pop(L, 1);
      break;
    }
    fprintf(stderr, "    %s x %s\n", thousands(buf, sizeof buf, best),
            lua_tostring(L, -1));
    shown += best;
    lua_pushnil(L);
    lua_rawset(L, -3); /* that group is done */
  }
  if (shown < n - LIST_MAX)
    fprintf(stderr, "    %s in other groups\n",
            thousands(buf, sizeof buf, n - LIST_MAX - shown));
  return 0;
}

static void on_sigint(uv_async_t *a) {
  host *h = a->data;
  lua_State *L = h->L;
  /* on the loop: an error (out of memory) must not unwind through libuv */
  lua_pushcfunction(L, list_pending);
  lua_pushinteger(L, h->interrupted);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "  (cannot list them: %s)\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  /*
  ** every task, including the script's own top-level wait; allocates
  ** nothing
  */
  corio_lua_cancel_all(L);
}

/*
** SIGQUIT (Ctrl-\) dumps the pending tasks, and the script goes on.  It
** has SIGINT's two halves: on the loop (the uv_async) when it turns; and,
** as a task busy in a loop never lets it turn, from a hook on the task
** running now, which then shows where it spins.  Whichever comes first
** prints; the other finds nothing to do.
*/
static void dump_now(host *h, lua_State *L) {
  if (!h->dump) return;
  h->dump = 0;
  corio_lua_dump_tasks(L);
}

static void ldump(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  dump_now(the_host, L);
}

static void lquit(int signum) {
  host *h = the_host;
  lua_State *co = h->running != NULL ? *h->running : NULL;
  (void)signum;
  h->dump = 1;
  if (co != NULL) lua_sethook(co, ldump, LUA_MASKCOUNT, 1);
  uv_async_send(&h->sigquit);
}

static void on_sigquit(uv_async_t *a) {
  host *h = a->data;
  dump_now(h, h->L);
}

static void catch_sigint(host *h) {
  struct sigaction sa;
  the_host = h;
  h->running = corio_lua_running(h->L);
  uv_async_init(corio_rt_loop(h->rt), &h->sigint, on_sigint);
  h->sigint.data = h;
  uv_unref((uv_handle_t *)&h->sigint);
  sa.sa_handler = laction;
  sa.sa_flags = 0;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  uv_async_init(corio_rt_loop(h->rt), &h->sigquit, on_sigquit);
  h->sigquit.data = h;
  uv_unref((uv_handle_t *)&h->sigquit);
  sa.sa_handler = lquit;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGQUIT, &sa, NULL);
}

/*
** --trace FILE and --timeline FILE.svg: the timeline is drawn from a
** trace (the --trace file, or a temporary one) once the loop is done.
*/
static int start_trace(lua_State *L, host *h) {
  const char *path = h->trace;
  if (h->timeline != NULL && path == NULL) {
    const char *tmp = getenv("TMPDIR");
    int fd;
    snprintf(h->timeline_trace, sizeof h->timeline_trace,
             "%.40s/corio-trace.XXXXXX",
             tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
    fd = mkstemp(h->timeline_trace);
    if (fd < 0) {
      l_message(progname, "--timeline: cannot make a temporary file");
      return 0;
    }
    close(fd);
    path = h->timeline_trace;
  }
  if (path != NULL && corio_lua_trace_start(L, path) != 0) {
    fprintf(stderr, "%s: cannot open '%s'\n", progname, path);
    return 0;
  }
  return 1;
}

static void finish_trace(lua_State *L, host *h) {
  if (h->timeline == NULL) return;
  corio_lua_trace_stop(L);
  corio_lua_timeline(L, h->trace != NULL ? h->trace : h->timeline_trace,
                     h->timeline);
  if (h->timeline_trace[0] != '\0') remove(h->timeline_trace);
}

/* }================================================================== */

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script;
  int args = collectargs(argv, &script);
  int optlim = (script > 0) ? script : argc;
  if (args == has_error) {
    print_usage(argv[script]);
    return 0;
  }
  if (args & has_v) print_version();
  if (args & has_E) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  luaL_requiref(L, "corio", luaopen_corio, 1);
  lua_pop(L, 1);
  catch_sigint(the_host);
  if (!start_trace(L, the_host)) return 0;
  createargtable(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (!(args & has_E)) {
    if (handle_luainit(L) != LUA_OK) return 0;
  }
  if (!runargs(L, argv, optlim)) return 0;
  if (script > 0) {
    if (handle_script(L, argv + script) != LUA_OK) return 0;
  }
  if (args & has_i) {
    doREPL(L);
  } else if (script < 1 && !(args & (has_e | has_v))) {
    if (isatty(0)) {
      print_version();
      doREPL(L);
    } else {
      dochunk(L, luaL_loadfile(L, NULL));
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

static void on_closed(uv_handle_t *h) {
  (void)h;
}

static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  l_message(progname, msg ? msg : "error object is not a string");
  return 0; /* abort */
}

/* Warnings, off until "@on" (-W), as lua.c's */
static void warnf(void *ud, const char *msg, int tocont) {
  static int on = 0, cont = 0;
  (void)ud;
  if (!cont && *msg == '@') {
    if (strcmp(msg, "@on") == 0) on = 1;
    if (strcmp(msg, "@off") == 0) on = 0;
    return;
  }
  if (on) {
    if (!cont) fputs("Lua warning: ", stderr);
    fputs(msg, stderr);
    if (!tocont) fputs("\n", stderr);
  }
  cont = tocont;
}

/*
** Response bodies come and go by the thousand, 100 KiB and more each.
** With glibc's defaults each is either mmap'ed and unmapped or trimmed
** back to the kernel when freed, so every response faults its pages in
** anew, which slows big bodies down (bench/NOTES.md, "Keeping freed
** memory").  Keep freed memory for reuse instead; the peak is the same.
** A body normally becomes its string where it arrived (lbody.c); when it
** is copied instead (a Lua with another string layout), the runtime need
** not hold big body buffers of its own either: freed, each is reused for
** the Lua string of the next body, which touches fewer fresh pages.
*/
static void keep_freed_memory(void) {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
  corio_set_body_pool(0);
#endif
}

int main(int argc, char **argv) {
  host h;
  static slab lua_memory;
  int status, result, rc;
  memset(&h, 0, sizeof h);
  keep_freed_memory();
  h.rt = corio_rt_new(NULL);
  h.L = lua_newstate(slab_alloc, &lua_memory);
  if (h.L != NULL) {
    lua_atpanic(h.L, panic);
    lua_setwarnf(h.L, warnf, NULL);
  }
  if (h.rt == NULL || h.L == NULL) {
    l_message(argv[0], "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  corio_lua_set_runtime(h.L, h.rt);
  /* a peer that closes while we write must be an error, not our death */
  signal(SIGPIPE, SIG_IGN);
  the_host = &h;
  lua_gc(h.L, LUA_GCSTOP);
  lua_pushcfunction(h.L, &pmain);
  lua_pushinteger(h.L, argc);
  lua_pushlightuserdata(h.L, argv);
  status = lua_pcall(h.L, 2, 1, 0);
  result = lua_toboolean(h.L, -1);
  report(h.L, status);
  /*
  ** A failed script ends the program, as an uncaught error in Python or
  ** Node does: cancel what it left (servers close, cleanups run).
  */
  if (!result || status != LUA_OK) corio_lua_cancel_all(h.L);
  /* like Node: the loop runs until no task is left */
  if (corio_lua_run_pending(h.L) != 0) result = 0;
  rc = (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
  if (h.interrupted) rc = 128 + h.interrupted;
  signal(SIGINT, SIG_DFL); /* the handler must not see a closed state */
  signal(SIGTERM, SIG_DFL);
  signal(SIGQUIT, SIG_DFL);
  finish_trace(h.L, &h);
  lua_close(h.L);
  slab_free_all(&lua_memory);
  if (h.sigint.data != NULL) uv_close((uv_handle_t *)&h.sigint, on_closed);
  if (h.sigquit.data != NULL) uv_close((uv_handle_t *)&h.sigquit, on_closed);
  if (corio_rt_free(h.rt) != 0)
    l_message(progname, "warning: runtime not freed (tasks still alive)");
  return rc;
}
