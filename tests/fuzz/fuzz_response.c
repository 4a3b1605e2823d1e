/*
** fuzz_response.c: what corio does itself with a response's bytes:
** libcurl's header callback (corio__fetch_on_header: status lines,
** fields, obs-fold, the header caps), the write callback collecting the
** body or holding it for a stream (corio__stream_on_write), and the
** corio_response built from them (corio__fetch_finish).  libcurl has
** parsed the framing by then; what reaches us is one header line per
** call, and body bytes.
**
** Input: a flags byte (bit 0: streamed, bit 1: a small max_body), then
** header lines up to the first empty one (each given to the callback with
** CRLF; a NUL there ends the response, as libcurl refuses it), then the
** body, in two writes.  Checked beyond "no crash": every
** header name and value lies inside the header buffer, and names carry no
** colon-free garbage the Lua side would trust (a name is never empty).
*/
#include <stdio.h>

#include <curl/curl.h>

#include "corio.h"
#include "fetch/fetch.h"
#include "fuzz_support.h"

static int on_data(corio_fetch *f, const char *p, size_t len, void *ud) {
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_fields ff;
  corio_fetch *f;
  uint8_t flags = size > 0 ? data[0] : 0;
  size_t i, body_off = 0, body_len;
  int line;
  if (size > 0) data++, size--;
  f = corio__calloc(1, sizeof *f);
  if (f == NULL) return 0;
  f->easy = curl_easy_init();
  corio__queue_init(&f->node);
  corio__queue_init(&f->qnode);
  corio__queue_init(&f->snode);
  f->opened[0] = f->opened[1] = -1;
  if (flags & 1) f->on_data = on_data;
  if (flags & 2) f->max_body = 64;
  fuzz_split(&ff, data, size);
  for (line = 0; line < ff.n; line++) {
    char *p = ff.f[line];
    size_t n = ff.len[line];
    body_off += n + 1;
    if (n == 0) break;
    /* libcurl fails a response with a NUL in its head ("Nul byte in
       header") before our callback sees the line */
    if (memchr(p, '\0', n) != NULL) {
      line = ff.n;
      break;
    }
    {
      char *l = malloc(n + 2); /* the line as libcurl gives it */
      memcpy(l, p, n);
      memcpy(l + n, "\r\n", 2);
      if (corio__fetch_on_header(l, 1, n + 2, f) != n + 2) line = ff.n;
      free(l);
    }
  }
  if (line < ff.n)
    (void)corio__fetch_on_header("\r\n", 1, 2, f); /* the head's end */
  body_len = body_off < size ? size - body_off : 0;
  if (line < ff.n && body_len > 0) {
    char *b = malloc(body_len);
    memcpy(b, data + body_off, body_len);
    if (corio__fetch_on_write(b, 1, body_len / 2, f) == body_len / 2)
      (void)corio__fetch_on_write(b + body_len / 2, 1, body_len - body_len / 2,
                                  f);
    free(b);
  }
  corio__fetch_finish(f, f->err, CURLE_OK);
  FUZZ_CHECK(f->res.nheaders == 0 || f->res.headers != NULL);
  for (i = 0; i < f->res.nheaders; i++) {
    const corio_header *h = &f->res.headers[i];
    FUZZ_CHECK(h->name >= f->hbuf.p && h->name < f->hbuf.p + f->hbuf.len);
    FUZZ_CHECK(h->value >= f->hbuf.p && h->value < f->hbuf.p + f->hbuf.len);
    FUZZ_CHECK(h->value + strlen(h->value) < f->hbuf.p + f->hbuf.len);
    FUZZ_CHECK(h->name[0] != '\0' && strchr(h->name, ':') == NULL);
  }
  FUZZ_CHECK(f->res.body != NULL);
  FUZZ_CHECK(f->max_body == 0 || f->res.body_len <= f->max_body);
  free(ff.block);
  corio__fetch_obj_free(f);
  return 0;
}
