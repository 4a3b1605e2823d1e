/*
** test-url.c: corio/url.h, the C API hosts parse and resolve URLs with:
** parts, RFC 3986 resolution (with the cases libcurl 7.88 gets wrong done
** right), added queries, libcurl's reasons, and allocation through corio's
** allocator.
*/
#include <stdlib.h>

#include "task.h"

TEST_IMPL(parse_parts) {
  corio_url u;
  const char *why = NULL;
  ASSERT_OK(corio_url_parse("https://me:pw@Example.com:8443/a/b%20c?x=1#top",
                            &u, &why));
  ASSERT_STR_EQ(u.scheme, "https");
  ASSERT_STR_EQ(u.user, "me");
  ASSERT_STR_EQ(u.password, "pw");
  ASSERT_STR_EQ(u.host, "Example.com");
  ASSERT_EQ(u.port, 8443);
  ASSERT_STR_EQ(u.path, "/a/b%20c");
  ASSERT_STR_EQ(u.query, "x=1");
  ASSERT_STR_EQ(u.fragment, "top");
  ASSERT_STR_EQ(u.href, "https://me:pw@Example.com:8443/a/b%20c?x=1#top");
  corio_url_free(&u);
  ASSERT_OK(corio_url_parse("http://[::1]/", &u, NULL));
  ASSERT_STR_EQ(u.host, "[::1]");
  ASSERT_EQ(u.port, -1);
  ASSERT(u.user == NULL && u.query == NULL && u.fragment == NULL);
  corio_url_free(&u);
}

TEST_IMPL(parse_errors_say_why) {
  corio_url u;
  const char *why = NULL;
  ASSERT_EQ(corio_url_parse("http://h:99999/", &u, &why), CORIO_EURL);
  ASSERT_NOT_NULL(why);
  ASSERT(strstr(why, "65535") != NULL);
  why = NULL;
  ASSERT_EQ(corio_url_parse("no scheme", &u, &why), CORIO_EURL);
  ASSERT_NOT_NULL(why);
  ASSERT_EQ(corio_url_parse(NULL, &u, &why), CORIO_EINVAL);
  ASSERT_EQ(corio_url_parse("http://h/", NULL, &why), CORIO_EINVAL);
  corio_url_free(NULL); /* harmless */
}

/* RFC 3986 5.4.1, with base http://a/b/c/d;p?q */
TEST_IMPL(join_rfc3986) {
  static const char *const cases[][2] = {{"g", "http://a/b/c/g"},
                                         {"./g", "http://a/b/c/g"},
                                         {"/g", "http://a/g"},
                                         {"?y", "http://a/b/c/d;p?y"},
                                         {"#s", "http://a/b/c/d;p?q#s"},
                                         {"", "http://a/b/c/d;p?q"},
                                         {"../../g", "http://a/g"},
                                         {"../../../g", "http://a/g"},
                                         {"g;x?y#s", "http://a/b/c/g;x?y#s"},
                                         {"g/../h", "http://a/b/c/h"},
                                         {"https://z/", "https://z/"}};
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    corio_url u;
    ASSERT_OK(corio_url_join("http://a/b/c/d;p?q", cases[i][0], &u, NULL));
    if (strcmp(u.href, cases[i][1]) != 0) {
      fprintf(stderr, "join '%s': got %s, expected %s\n", cases[i][0], u.href,
              cases[i][1]);
      ASSERT(0);
    }
    corio_url_free(&u);
  }
}

TEST_IMPL(add_query) {
  corio_url u;
  ASSERT_OK(corio_url_add_query("http://h/p#frag", "a=1&b=x+y", &u, NULL));
  ASSERT_STR_EQ(u.href, "http://h/p?a=1&b=x+y#frag");
  corio_url_free(&u);
  ASSERT_OK(corio_url_add_query("http://h/p?z=0", "a=1", &u, NULL));
  ASSERT_STR_EQ(u.href, "http://h/p?z=0&a=1");
  corio_url_free(&u);
  ASSERT_OK(corio_url_add_query("http://h/p?z=0", "", &u, NULL));
  ASSERT_STR_EQ(u.href, "http://h/p?z=0");
  corio_url_free(&u);
}

/*
** What corio hands back is a URL it parses again, to itself (fetch is
** given it): a query or fragment libcurl sets as it is, unchecked, with a
** control byte or a space in it, is refused (found by
** tests/fuzz/fuzz_url.c).
*/
static void refused_or_reparses(int rc, corio_url *u, const char *why) {
  corio_url v;
  if (rc != 0) {
    ASSERT_EQ(rc, CORIO_EURL);
    ASSERT_NOT_NULL(why);
    return;
  }
  if (corio_url_parse(u->href, &v, NULL) != 0) {
    fprintf(stderr, "returned [%s], which does not parse\n", u->href);
    ASSERT(0);
  }
  ASSERT_STR_EQ(v.href, u->href); /* and parses to itself */
  corio_url_free(&v);
  corio_url_free(u);
}

TEST_IMPL(returned_urls_parse_again) {
  static const char *const bad[] = {"a=\x08", "a=1\tb", "a b", "x\x7f"};
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    corio_url u;
    const char *why = NULL;
    char frag[16];
    int rc = corio_url_add_query("http://h/p", bad[i], &u, &why);
    refused_or_reparses(rc, &u, why);
    snprintf(frag, sizeof frag, "#%s", bad[i]);
    why = NULL;
    rc = corio_url_join("http://h/p", frag, &u, &why);
    refused_or_reparses(rc, &u, why);
  }
  /* libcurl writes "h:/%35" as "h://5/", whose host "5" then reads as
     0.0.0.5: corio hands back the URL that stays itself */
  for (i = 0; i < 2; i++) {
    corio_url u;
    const char *why = NULL;
    int rc = i == 0 ? corio_url_parse("h:/%35", &u, &why)
                    : corio_url_add_query("h:/%35", "1", &u, &why);
    refused_or_reparses(rc, &u, why);
  }
}

/* Every block comes from corio's allocator, and a failed one fails cleanly */
static size_t live, fail_at, calls;
static void *count_malloc(size_t n) {
  void *p;
  if (++calls == fail_at) return NULL;
  p = malloc(n);
  if (p != NULL) live++;
  return p;
}
static void *count_realloc(void *p, size_t n) {
  return realloc(p, n);
}
static void count_free(void *p) {
  if (p != NULL) live--;
  free(p);
}

TEST_IMPL(allocator_and_no_memory) {
  corio_url u;
  ASSERT_OK(corio_replace_allocator(count_malloc, count_realloc, count_free));
  ASSERT_OK(corio_url_parse("http://h/x", &u, NULL));
  ASSERT_EQ(live, 1);
  corio_url_free(&u);
  ASSERT_EQ(live, 0);
  fail_at = calls + 1;
  ASSERT_EQ(corio_url_join("http://h/a", "b", &u, NULL), CORIO_ENOMEM);
  ASSERT_EQ(live, 0);
  ASSERT_OK(corio_replace_allocator(malloc, realloc, free));
}

/* Decode `in` (plus or not) and compare with the `want_len` bytes of want. */
static void check_decode(const char *in, int plus, const char *want,
                         size_t want_len) {
  char out[64];
  size_t len = 99;
  ASSERT(strlen(in) < sizeof out);
  ASSERT_OK(corio_url_decode(in, strlen(in), plus, out, &len));
  ASSERT_EQ(len, want_len);
  ASSERT(memcmp(out, want, want_len) == 0);
  ASSERT_EQ(out[len], '\0');
}

TEST_IMPL(decode) {
  char out[8];
  size_t len;
  check_decode("a%20b+c", 0, "a b+c", 5);
  check_decode("a%20b+c", 1, "a b c", 5);
  check_decode("1%2B1+%3D+2", 1, "1+1 = 2", 7);   /* %2B stays a '+' */
  check_decode("caf%C3%a9", 0, "caf\xc3\xa9", 5); /* either case of hex */
  check_decode("%00x", 0, "\0x", 2);              /* a NUL inside */
  check_decode("100%", 0, "100%", 4);             /* not an escape: kept */
  check_decode("%4", 0, "%4", 2);
  check_decode("%zz%41", 0, "%zzA", 4);
  check_decode("", 1, "", 0);
  /* no byte given: none read (libcurl would take 0 as "up to the NUL") */
  ASSERT_OK(corio_url_decode("%41", 0, 0, out, &len));
  ASSERT_EQ(len, 0);
  ASSERT_EQ(out[0], '\0');
  /* only the `len` bytes given are read */
  ASSERT_OK(corio_url_decode("%41%42", 3, 0, out, &len));
  ASSERT_EQ(len, 1);
  ASSERT_EQ(out[0], 'A');
  ASSERT_EQ(corio_url_decode(NULL, 0, 0, out, &len), CORIO_EINVAL);
  ASSERT_EQ(corio_url_decode("x", 1, 0, NULL, &len), CORIO_EINVAL);
  ASSERT_EQ(corio_url_decode("x", 1, 0, out, NULL), CORIO_EINVAL);
}

TEST_MAIN(TEST_ENTRY(parse_parts) TEST_ENTRY(parse_errors_say_why)
              TEST_ENTRY(join_rfc3986) TEST_ENTRY(add_query)
                  TEST_ENTRY(returned_urls_parse_again)
                      TEST_ENTRY(allocator_and_no_memory) TEST_ENTRY(decode))
