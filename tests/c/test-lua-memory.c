/*
** test-lua-memory.c: Lua running out of memory (docs/reliability.md fault
** 16), the way Lua's own memerr tests and curl's torture runs do it.  A
** script that serves, fetches, sleeps, waits in every way and runs a
** thread runs in a state whose allocator refuses more memory from its Nth
** request on, for N = 1, 2, ... until a run needs no failure.  Every run
** must end with the script's result or an error saying memory ran out
** (Lua's, or a FetchError's), never a crash, and lua_close must free
** everything (the descriptors are counted here; the sanitizer and valgrind
** runs check the memory).  The failures land everywhere: in the script, in
** tasks, and in the binding's loop callbacks (a fetch completing, a task
** to resume), which must hand the error to the task concerned instead of
** raising it through libuv's and libcurl's frames.
*/
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "corio_lua.h"
#include "task.h"

static long countdown = -1; /* fail from when it reaches 0; -1: never */
static long failures;

/* Only growth fails: Lua assumes freeing and shrinking cannot.  Once the
   countdown has run out every growth fails, as at a memory limit (a single
   failure would not do: Lua collects and tries again). */
static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (ptr != NULL && nsize <= osize) return realloc(ptr, nsize);
  if (countdown == 0) {
    failures++;
    return NULL;
  }
  if (countdown > 0) countdown--;
  return realloc(ptr, nsize);
}

static const char script[] =
    "local corio = require 'corio'\n"
    "local srv = corio.serve{port = 0, handler = function(req)\n"
    "  return {status = 200, body = ('x'):rep(3000) .. req.path}\n"
    "end}\n"
    "local tasks = {}\n"
    "for i = 1, 3 do\n"
    "  tasks[i] = corio.spawn(function()\n"
    "    local r = corio.get(srv.url .. '/' .. i)\n"
    "    if r.status == 500 then return '500' end -- its handler failed\n"
    "    assert(r.status == 200 and #r.body == 3002, 'bad response')\n"
    "    return r.body:sub(-2)\n"
    "  end)\n"
    "end\n"
    "tasks[4] = corio.spawn(corio.sleep, 0.005, 'slept')\n"
    "local called = 0\n"
    "tasks[4]:add_done_callback(function() called = called + 1 end)\n"
    "tasks[4]:add_done_callback(function() error('reported') end)\n"
    "local done = corio.wait({tasks[4]}, {timeout = 0.001})\n"
    "assert(#done == 0, 'done too soon')\n"
    "local res = corio.gather(tasks)\n"
    "for t in corio.as_completed(tasks) do assert(t:done()) end\n"
    "assert(corio.wait_for(corio.spawn(corio.sleep, 0, 7), 1) == 7)\n"
    "assert(corio.to_thread(function(x) return x * 2 end, 21) == 42)\n"
    "assert(called == 1, 'done callback')\n"
    "srv:close()\n"
    "return table.concat(res, ',')\n";

/*
** The script runs in a coroutine, not under lua_pcall: the main thread
** then has no error handler, and an error raised where nothing protects
** it (a loop callback of the binding) panics instead of being rethrown
** there through libuv's frames.
*/
static int unprotected(lua_State *L) {
  fprintf(stderr, "unprotected error: %s\n", lua_tostring(L, -1));
  abort();
}

/* One run with the Nth allocation failing (-1: none).  Returns 1 when the
   script completed, 0 when it failed for lack of memory.  Either way
   lua_close gives back every descriptor (the loop's, the server's, the
   connections'): an error that unwound through the loop left its runtime
   impossible to free.  (The first run, with no failure, also makes what
   libuv keeps for the process: it is not counted.) */
static int run_once(long n) {
  int fds = count_fds();
  lua_State *L = lua_newstate(failing_alloc, NULL), *co;
  int rc, ok, nres;
  ASSERT_NOT_NULL(L);
  lua_atpanic(L, unprotected);
  luaL_openlibs(L);
  luaL_requiref(L, "corio", luaopen_corio, 0);
  lua_pop(L, 1);
  co = lua_newthread(L);
  ASSERT_OK(luaL_loadbuffer(co, script, sizeof script - 1, "=torture"));
  countdown = n;
  rc = lua_resume(co, L, 0, &nres);
  lua_xmove(co, L, 1); /* the result, or the error */
  if (rc == LUA_OK) {
    const char *res = lua_tostring(L, -1);
    int i;
    ASSERT_NOT_NULL(res);
    if (n < 0) ASSERT_STR_EQ(res, "/1,/2,/3,slept");
    for (i = 1; i <= 3; i++, res = strchr(res, ',') + 1) /* or "500" */
      ASSERT((res[0] == '/' && res[1] == '0' + i) ||
             strncmp(res, "500", 3) == 0);
    ASSERT_STR_EQ(res, "slept");
    ok = 1;
  } else {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) { /* an error value: a FetchError, a task's error */
      lua_getfield(L, -1, "message");
      msg = lua_tostring(L, -1);
    }
    if (msg == NULL || (strstr(msg, "not enough memory") == NULL &&
                        strstr(msg, "out of memory") == NULL)) {
      fprintf(stderr, "allocation %ld: %s\n", n, msg ? msg : "(no message)");
      ASSERT(0 && "failed for another reason than memory");
    }
    ok = 0;
  }
  countdown = -1;
  lua_close(L);
  if (n >= 0 && count_fds() != fds)
    fprintf(stderr, "allocation %ld: descriptors leaked\n", n);
  if (n >= 0) ASSERT_EQ(count_fds(), fds);
  return ok;
}

TEST_IMPL(out_of_memory) {
  long n, step = 1, ran = 0;
  const char *s = getenv("CORIO_TORTURE_STEP"); /* valgrind: sample */
  if (s != NULL && atol(s) > 0) step = atol(s);
  ASSERT_EQ(run_once(-1), 1);
  for (n = 0;; n += step) {
    long before = failures;
    int ok = run_once(n);
    ran++;
    if (failures == before) { /* nothing failed: past the last allocation */
      ASSERT_EQ(ok, 1);
      break;
    }
  }
  printf("  %ld runs, one allocation failed in each\n", ran - 1);
}

/*
** {==================================================================
** A memory limit: the heap fills up with tasks
** ===================================================================
*/

static size_t limit, used;
static long refused;

/* Refuses growth past `limit` live bytes, as a ulimit does. */
static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  size_t old = ptr != NULL ? osize : 0;
  void *p;
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    used -= old;
    return NULL;
  }
  if (nsize > old && used - old + nsize > limit) {
    refused++;
    return NULL;
  }
  p = realloc(ptr, nsize);
  if (p != NULL) used = used - old + nsize;
  return p;
}

/*
** Run `code` as the corio executable runs a script: unprotected from the
** loop's point of view (a panic aborts), then cancel what it left if it
** failed, then run the loop until no task is left, then close.  Returns
** the allocations refused after the script's own part.
*/
static long run_limited(const char *code, int expect_ok) {
  lua_State *L, *co;
  int rc, nres;
  long before;
  limit = 32u << 20;
  used = 0;
  refused = 0;
  L = lua_newstate(limited_alloc, NULL);
  ASSERT_NOT_NULL(L);
  lua_atpanic(L, unprotected);
  luaL_openlibs(L);
  luaL_requiref(L, "corio", luaopen_corio, 0);
  lua_setglobal(L, "corio");
  co = lua_newthread(L);
  ASSERT_OK(luaL_loadstring(co, code));
  rc = lua_resume(co, L, 0, &nres);
  if (expect_ok) {
    ASSERT_EQ(rc, LUA_OK);
  } else {
    ASSERT_EQ(rc, LUA_ERRMEM);
    ASSERT_STR_EQ(lua_tostring(co, -1), "not enough memory");
    ASSERT(corio_lua_cancel_all(L) > 1000); /* before: a panic */
  }
  before = refused;
  ASSERT_OK(corio_lua_run_pending(L));
  lua_close(L);
  ASSERT_EQ(used, 0);
  return refused - before;
}

/* The script fails for lack of memory with its tasks pending: cancelling
   them must not need memory (it panicked, SIGABRT in the executable). */
TEST_IMPL(memory_limit_script_fails) {
  run_limited("while true do corio.spawn(corio.sleep, 1000) end", 0);
  run_limited("local ts = {}\n"
              "for i = 1, 1e7 do ts[i] = corio.spawn(corio.sleep, 1) end",
              0);
  run_limited("local f = {}\n"
              "for i = 1, 1e7 do f[i] = corio.future() end",
              0);
}

/*
** The script goes on after running out of memory, leaving thousands of
** tasks that cannot start: each would fail only after Lua's full
** collection of the whole heap (a second each with 600,000 tasks: the
** process spun for hours).  Now the first one that cannot start makes the
** rest fail at once: a few refused allocations, not one per task.
*/
TEST_IMPL(memory_limit_tasks_cannot_start) {
  long after =
      run_limited("local n = 0\n"
                  "assert(not pcall(function()\n"
                  "  while true do\n"
                  "    corio.spawn(function() corio.sleep(0.001) end)\n"
                  "    n = n + 1\n"
                  "  end\n"
                  "end))\n"
                  "assert(n > 10000, n)\n",
                  1);
  printf("  %ld allocations refused while the tasks ran\n", after);
  ASSERT(after < 100);
}

/* }================================================================== */

/*
** A done callback added to a task already done waits in the runtime for
** its next turn.  A host that owns the runtime closes the Lua state first
** and frees the runtime after, and corio_rt_free runs what was queued: the
** binding's callback must have been taken back by lua_close, or it reads
** the freed state (the sanitizer and valgrind runs see it).
*/
TEST_IMPL(late_done_callback_host_runtime) {
  corio_rt *rt = corio_rt_new(NULL);
  lua_State *L = luaL_newstate();
  ASSERT_NOT_NULL(rt);
  ASSERT_NOT_NULL(L);
  luaL_openlibs(L);
  corio_lua_set_runtime(L, rt);
  luaL_requiref(L, "corio", luaopen_corio, 1);
  lua_pop(L, 1);
  ASSERT_OK(luaL_dostring(L, "local f = corio.future()\n"
                             "f:set_result(1)\n"
                             "f:add_done_callback(print)\n"));
  lua_close(L);
  ASSERT_OK(corio_rt_free(rt));
}

TEST_MAIN(TEST_ENTRY(out_of_memory) TEST_ENTRY(memory_limit_script_fails)
              TEST_ENTRY(memory_limit_tasks_cannot_start)
                  TEST_ENTRY(late_done_callback_host_runtime))
