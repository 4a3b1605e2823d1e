/*
** slow_dns.h: the names slow_dns.c answers itself (see there).  A test
** that uses corio_slow_dns_name also keeps the linker from dropping the
** library (--as-needed), whose getaddrinfo is what it links it for.
*/
#ifndef CORIO_TEST_SLOW_DNS_H
#define CORIO_TEST_SLOW_DNS_H

#define CORIO_SLOW_DNS_MS 1000 /* how long corio_slow_dns_name takes */

extern const char corio_slow_dns_name[]; /* resolves to 127.0.0.1, slowly */

#endif
