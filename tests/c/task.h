/*
** task.h: assertion macros and a tiny test registry for the C tests, in the
** shape of libuv's test/task.h.  Each test program lists its tests with
** TEST_LIST and runs them all (or the one named on the command line).
*/
#ifndef CORIO_TEST_TASK_H
#define CORIO_TEST_TASK_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Runs every test in `tests`, or only argv[1]; prints one line per test and
   the plain summary line "N passed, N failed". */
static inline int run_tests(const test_entry *tests, size_t n, int argc,
                            char **argv) {
  size_t i, passed = 0;
  for (i = 0; i < n; i++) {
    if (argc > 1 && strcmp(argv[1], tests[i].name) != 0) continue;
    tests[i].fn(); /* a failure aborts the program: ctest reports it */
    printf("ok %s\n", tests[i].name);
    passed++;
  }
  printf("%zu passed, 0 failed\n", passed);
  return passed > 0 ? 0 : 1;
}

#define TEST_MAIN(...)                                                         \
  int main(int argc, char **argv) {                                            \
    static const test_entry tests_[] = {__VA_ARGS__};                          \
    return run_tests(tests_, sizeof tests_ / sizeof tests_[0], argc, argv);    \
  }

#endif
