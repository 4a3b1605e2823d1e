/*
** chars.c: which bytes may go into an HTTP message head.  One rule for
** the client (fetch/), the server (server/) and the bindings, which check
** a request's options before building it: a header line that passes
** cannot split the head (no CR, LF or NUL) nor be misread by the peer.
*/
#include "corio.h"

/*
** RFC 9110 5.6.2 tchar: ALPHA / DIGIT and "!#$%&'*+-.^_`|~".  A table,
** as the server checks every header name of every response.
*/
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1,
    ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,
    ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,
    ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1,
    ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,
    ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,
    ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1};

int corio_http_token_ok(const char *s, size_t n) {
  size_t i;
  if (s == NULL || n == 0) return 0;
  for (i = 0; i < n; i++)
    if (!tchar[(unsigned char)s[i]]) return 0;
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
