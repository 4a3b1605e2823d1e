/*
** slow_dns.c: a getaddrinfo of the tests' own, in a shared library that
** test-redis links (ahead of libc) and that LD_PRELOAD can put in front
** of any program.  Two kinds of names are answered here, without asking
** a DNS server:
**   slow.corio.test   127.0.0.1, after 1 s: a resolver slow to answer
**   NAME.invalid      EAI_NONAME at once (RFC 6761: never resolves)
** Every other call goes to the next getaddrinfo (libc's, or ASan's
** interceptor, which then calls libc's).
*/
#ifndef _GNU_SOURCE /* RTLD_NEXT */
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "slow_dns.h"

const char corio_slow_dns_name[] = "slow.corio.test";

typedef int (*getaddrinfo_fn)(const char *, const char *,
                              const struct addrinfo *, struct addrinfo **);

static int is_invalid(const char *node) {
  static const char tld[] = ".invalid";
  size_t n = strlen(node), k = sizeof tld - 1;
  return n >= k && strcasecmp(node + n - k, tld) == 0;
}

int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res) {
  getaddrinfo_fn next;
  /* dlsym hands back an object pointer; POSIX guarantees the cast */
  *(void **)&next = dlsym(RTLD_NEXT, "getaddrinfo");
  if (next == NULL) return EAI_SYSTEM;
  if (node != NULL && strcasecmp(node, corio_slow_dns_name) == 0) {
    struct timespec ts = {CORIO_SLOW_DNS_MS / 1000,
                          (CORIO_SLOW_DNS_MS % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) continue; /* a signal: the rest */
    node = "127.0.0.1";
  } else if (node != NULL && is_invalid(node)) {
    return EAI_NONAME;
  }
  return next(node, service, hints, res);
}
