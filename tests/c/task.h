/*
** task.h: assertion macros and a tiny test registry for the C tests, in the
** shape of libuv's test/task.h and test/runner.c.  Each test program lists
** its tests with TEST_MAIN (or TEST_MAIN_SETUP) and runs them:
**
**   ./test-x              every test, each in a child process of its own
**                         (fork), so that an assertion, a crash or a hang
**                         does not hide the tests after it.  One line per
**                         test, "ok NAME" or "not ok NAME: signal 6
**                         (Aborted)" / ": exit status 1" / ": timed out",
**                         then "N passed, N failed"; the exit status is 1
**                         if any failed.
**   ./test-x NAME         only NAME, in this process: what gdb and
**                         valgrind want.
**   CORIO_TEST_NOFORK=1 ./test-x
**                         every test in this process, the first failure
**                         ends the run.
**   CORIO_TEST_TIMEOUT=S  seconds one test may run before it is killed
**                         (SIGTERM, then SIGKILL 5 s later); default 120.
**
** Valgrind on a whole program: valgrind follows fork() by itself (no exec,
** so --trace-children is not needed), and each child's errors become its
** exit status, hence a "not ok":
**   valgrind -q --leak-check=full --error-exitcode=99 ./test-x
** Raise CORIO_TEST_TIMEOUT under valgrind (it runs 20-50 times slower).
**
** TEST_MAIN_SETUP(setup, ...) calls setup() once, in this process, before
** any test: what every test shares (a server, say) is then started once and
** inherited by the children.
*/
#ifndef CORIO_TEST_TASK_H
#define CORIO_TEST_TASK_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "corio.h"

#define ASSERT(expr)                                                           \
  do {                                                                         \
    if (!(expr)) {                                                             \
      fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__,     \
              #expr);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define ASSERT_EQ(a, b)                                                        \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_) {                                                            \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__,      \
              __LINE__, #a, #b, a_, b_);                                       \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define ASSERT_OK(a)        ASSERT_EQ((a), 0)
#define ASSERT_NOT_NULL(p)  ASSERT((p) != NULL)
#define ASSERT_STR_EQ(a, b) ASSERT(strcmp((a), (b)) == 0)

/* Free the runtime and assert nothing was left alive (libuv's
   MAKE_VALGRIND_HAPPY). */
#define RT_FREE_CLEAN(rt) ASSERT_OK(corio_rt_free(rt))

/* Open file descriptors of the process (what a test gives back). */
static inline int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  ASSERT_NOT_NULL(d);
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

#define TEST_IMPL(name)  static void test_##name(void)
#define TEST_ENTRY(name) {#name, test_##name},

typedef struct {
  const char *name;
  void (*fn)(void);
} test_entry;

/*
** {==================================================================
** The runner
** ===================================================================
*/

static volatile pid_t test_child_; /* the test running now, if forked */
static pid_t test_runner_;         /* the process that forks them */

/* The runner is stopped (ctest's timeout, ^C): take the running test with
   it, then die of the same signal. */
static inline void test_on_stop_(int sig) {
  if (getpid() == test_runner_ && test_child_ > 0) kill(test_child_, SIGKILL);
  signal(sig, SIG_DFL);
  raise(sig);
}

static inline double test_now_(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for `pid` at most `limit` seconds; 0 with its status in `*st`, or -1
   if it is still running. */
static inline int test_wait_(pid_t pid, int *st, double limit) {
  double t0 = test_now_();
  struct timespec tick = {0, 10 * 1000 * 1000};
  for (;;) {
    pid_t r = waitpid(pid, st, WNOHANG);
    if (r == pid) return 0;
    if (r < 0 && errno != EINTR) {
      perror("waitpid");
      abort();
    }
    if (test_now_() - t0 >= limit) return -1;
    nanosleep(&tick, NULL);
  }
}

/* Runs one test in a child process; 1 if it passed. */
static inline int test_fork_(const test_entry *t, double timeout) {
  int st = 0;
  pid_t pid;
  fflush(NULL); /* or the child flushes our buffered output again */
  pid = fork();
  if (pid < 0) {
    perror("fork");
    abort();
  }
  if (pid == 0) {
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    t->fn();
    exit(0); /* atexit handlers, leak checkers */
  }
  test_child_ = pid;
  if (test_wait_(pid, &st, timeout) != 0) {
    kill(pid, SIGTERM); /* its handlers may clean up what it started */
    if (test_wait_(pid, &st, 5) != 0) {
      kill(pid, SIGKILL);
      test_wait_(pid, &st, 1e9);
    }
    test_child_ = 0;
    printf("not ok %s: timed out after %g s\n", t->name, timeout);
    return 0;
  }
  test_child_ = 0;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    printf("ok %s\n", t->name);
    return 1;
  }
  if (WIFSIGNALED(st))
    printf("not ok %s: signal %d (%s)\n", t->name, WTERMSIG(st),
           strsignal(WTERMSIG(st)));
  else
    printf("not ok %s: exit status %d\n", t->name, WEXITSTATUS(st));
  return 0;
}

/* Runs every test in `tests`, each in its own process, or only argv[1] in
   this one; prints one line per test and the plain summary line "N passed,
   N failed".  `setup` (may be NULL) runs first, once. */
static inline int run_tests_setup(const test_entry *tests, size_t n, int argc,
                                  char **argv, void (*setup)(void)) {
  size_t i, passed = 0, failed = 0;
  const char *e = getenv("CORIO_TEST_TIMEOUT");
  double timeout = e != NULL && atof(e) > 0 ? atof(e) : 120;
  int fork_each = argc <= 1 && getenv("CORIO_TEST_NOFORK") == NULL;
  if (argc > 1) {
    for (i = 0; i < n; i++)
      if (strcmp(argv[1], tests[i].name) == 0) break;
    if (i == n) {
      fprintf(stderr, "no test named %s\n", argv[1]);
      return 1;
    }
  }
  test_runner_ = getpid();
  signal(SIGTERM, test_on_stop_);
  signal(SIGINT, test_on_stop_);
  if (setup != NULL) setup();
  for (i = 0; i < n; i++) {
    if (argc > 1 && strcmp(argv[1], tests[i].name) != 0) continue;
    if (fork_each) {
      if (test_fork_(&tests[i], timeout))
        passed++;
      else
        failed++;
      continue;
    }
    tests[i].fn(); /* a failure aborts the program */
    printf("ok %s\n", tests[i].name);
    passed++;
  }
  printf("%zu passed, %zu failed\n", passed, failed);
  return failed > 0 || passed == 0 ? 1 : 0;
}

static inline int run_tests(const test_entry *tests, size_t n, int argc,
                            char **argv) {
  return run_tests_setup(tests, n, argc, argv, NULL);
}

#define TEST_MAIN(...)                                                         \
  int main(int argc, char **argv) {                                            \
    static const test_entry tests_[] = {__VA_ARGS__};                          \
    return run_tests(tests_, sizeof tests_ / sizeof tests_[0], argc, argv);    \
  }

#define TEST_MAIN_SETUP(setup, ...)                                            \
  int main(int argc, char **argv) {                                            \
    static const test_entry tests_[] = {__VA_ARGS__};                          \
    return run_tests_setup(tests_, sizeof tests_ / sizeof tests_[0], argc,     \
                           argv, (setup));                                     \
  }

/* }================================================================== */

#endif
