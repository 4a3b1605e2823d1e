/*
** server_target.c: the request target (RFC 9112 section 3.2), split into
** the path and query a handler gets, which are copied after it in the
** request buffer.  llhttp has checked the target's characters and its
** form: origin ("/p?q"), asterisk ("*"), authority ("h:443", CONNECT's:
** taken whole as the path) or absolute ("http://h:8080/p?q", what a proxy
** gets, and what a server must accept all the same: 3.2.2).
**
** An absolute-form target is parsed by libcurl's URL API, so that it is
** read as fetch reads URLs, and refused (400) unless it is an http or https
** URL with a host and no userinfo.  Its host and port are copied too: the
** request is for that host, whatever the Host field says (3.2.2), and
** server_parse.c makes them the request's Host.
*/
#include <string.h>

#include <curl/curl.h>

#include "server.h"

/* Append `len` bytes and a NUL to the request buffer (room reserved). */
static void put(corio_server_req *req, const char *s, size_t len) {
  memcpy(req->buf.base + req->buf.len, s, len);
  req->buf.len += len;
  req->buf.base[req->buf.len++] = '\0';
}

/* Copy the path ("/" when empty) and the query after the target. */
static int put_parts(corio_server_req *req, const char *path, size_t plen,
                     const char *query, size_t qlen) {
  if (corio__server_buf_reserve(&req->buf, plen + qlen + 3) != 0) return -1;
  req->path = req->buf.len;
  req->path_len = plen > 0 ? plen : 1;
  put(req, plen > 0 ? path : "/", req->path_len);
  req->query = req->buf.len;
  req->query_len = qlen;
  put(req, query, qlen);
  return 0;
}

/*
** The origin, asterisk and authority forms: no parser needed.  A '#' ends
** the path or query: a fragment is no part of a request target (RFC 9112
** 3.2.1), yet llhttp lets one through; nginx drops it too.
*/
static int split_plain(corio_server_req *req, int is_connect) {
  size_t len = req->target_len, plen, qoff = 0, qlen = 0;
  const char *t = req->buf.base + req->target, *q, *hash;
  if (!is_connect && (hash = memchr(t, '#', len)) != NULL)
    len = (size_t)(hash - t);
  plen = len;
  if (!is_connect && (q = memchr(t, '?', len)) != NULL) {
    plen = (size_t)(q - t);
    qoff = plen + 1;
    qlen = len - qoff;
  }
  /* buf may move while it grows: reserved here, so that put_parts, which
     reserves as much, does not move it under t */
  if (corio__server_buf_reserve(&req->buf, plen + qlen + 3) != 0) return 500;
  t = req->buf.base + req->target;
  return put_parts(req, t, plen, t + qoff, qlen) == 0 ? 0 : 500;
}

/* "host" or "host:port" (as libcurl writes them: "[::1]", no leading 0s)
   after the path and query; *off and *len say where. */
static int put_authority(corio_server_req *req, CURLU *u, size_t *off,
                         size_t *len) {
  char *host = NULL, *port = NULL;
  size_t hlen, plen;
  int rc = 400;
  CURLUcode uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  if (uc == CURLUE_OK) {
    uc = curl_url_get(u, CURLUPART_PORT, &port, 0);
    if (uc == CURLUE_NO_PORT) uc = CURLUE_OK; /* none written */
  }
  if (uc == CURLUE_OUT_OF_MEMORY) rc = 500;
  if (uc == CURLUE_OK) {
    hlen = strlen(host);
    plen = port != NULL ? strlen(port) + 1 : 0;
    rc = corio__server_buf_reserve(&req->buf, hlen + plen + 1) != 0 ? 500 : 0;
  }
  if (rc == 0) {
    *off = req->buf.len;
    *len = hlen + plen;
    memcpy(req->buf.base + req->buf.len, host, hlen);
    if (port != NULL) {
      req->buf.base[req->buf.len + hlen] = ':';
      memcpy(req->buf.base + req->buf.len + hlen + 1, port, plen - 1);
    }
    req->buf.len += hlen + plen;
    req->buf.base[req->buf.len++] = '\0';
  }
  curl_free(host);
  curl_free(port);
  return rc;
}

static int is_http(const char *scheme) {
  return strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
}

/* The absolute form: libcurl parses it, dot segments kept as sent (an
   origin-form path keeps them too). */
static int split_absolute(corio_server_req *req, size_t *host, size_t *len) {
  const char *t = req->buf.base + req->target, *colon;
  char *scheme = NULL, *user = NULL, *path = NULL, *query = NULL;
  CURLU *u = curl_url();
  CURLUcode uc;
  int rc = 400;
  if (u == NULL) return 500;
  /*
  ** libcurl 7.88 reads "http:///h/p" as host h (it skips any number of
  ** slashes), where the host is empty, which RFC 9110 4.2.1 says to
  ** refuse: the authority starts right after "//".
  */
  colon = strchr(t, ':');
  if (colon == NULL || strncmp(colon, "://", 3) != 0 || colon[3] == '/')
    goto done;
  uc = curl_url_set(u, CURLUPART_URL, t,
                    CURLU_PATH_AS_IS | CURLU_NON_SUPPORT_SCHEME);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  /* RFC 9110 4.2.4: userinfo in an http(s) URI is to be taken as an error */
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_USER, &user, 0);
  if (uc == CURLUE_OUT_OF_MEMORY) rc = 500;
  if (uc != CURLUE_NO_USER || !is_http(scheme)) goto done;
  uc = curl_url_get(u, CURLUPART_PATH, &path, 0); /* "/" at least */
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_QUERY, &query, 0);
  if (uc != CURLUE_OK && uc != CURLUE_NO_QUERY) {
    rc = 500; /* out of memory: the URL parsed */
    goto done;
  }
  if (put_parts(req, path, strlen(path), query ? query : "",
                query ? strlen(query) : 0) != 0) {
    rc = 500;
    goto done;
  }
  rc = put_authority(req, u, host, len); /* a fragment is no part of it */
done:
  curl_free(scheme);
  curl_free(user);
  curl_free(path);
  curl_free(query);
  curl_url_cleanup(u);
  return rc;
}

int corio__server_target(corio_server_req *req, int is_connect, size_t *host,
                         size_t *host_len) {
  char first = req->buf.base[req->target];
  *host = *host_len = 0;
  if (is_connect || first == '/' || first == '*')
    return split_plain(req, is_connect);
  return split_absolute(req, host, host_len);
}
