/*
** chars.c: which bytes may go into an HTTP message head.  One rule for
** the client (fetch/), the server (server/) and the bindings, which check
** a request's options before building it: a header line that passes
** cannot split the head (no CR, LF or NUL) nor be misread by the peer.
*/
#include <string.h>

#include "corio.h"

/* RFC 9110 5.6.2 tchar: ALPHA / DIGIT and "!#$%&'*+-.^_`|~". */
static int is_tchar(unsigned char c) {
  unsigned char lower = (unsigned char)(c | 0x20);
  return (c >= '0' && c <= '9') || (lower >= 'a' && lower <= 'z') ||
         (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int corio_http_token_ok(const char *s, size_t n) {
  size_t i;
  if (s == NULL || n == 0) return 0;
  for (i = 0; i < n; i++)
    if (!is_tchar((unsigned char)s[i])) return 0;
  return 1;
}

/*
** RFC 9110 5.5: a field value is visible characters, obs-text (bytes
** 0x80-0xFF), space and tab.  Every other control character is refused,
** not only CR, LF and NUL: a peer may treat a lone control byte as the
** end of the line.
*/
int corio_http_value_ok(const char *s, size_t n) {
  size_t i;
  if (s == NULL) return n == 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
  }
  return 1;
}
