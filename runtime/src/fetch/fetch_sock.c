/*
** fetch_sock.c: the sockets libcurl asks the loop to watch.  One uv_poll_t
** context (corio__fsock) per socket, curl_multi_assign'ed to it, in an fd
** table of the runtime's fetcher.
**
** Why a context outlives CURL_POLL_REMOVE: libcurl removes a keep-alive
** connection's socket from its watch list every time a transfer ends and
** announces it again when the next transfer reuses the connection.
** Closing the poll handle there and making a new one on reuse costs a
** malloc, a uv_close, an ioctl and five epoll_ctl calls per request.  So a
** connection socket's context is only parked on CURL_POLL_REMOVE: the poll
** stays as it is (no syscall), unref'ed so it does not keep the loop
** alive, and the next announcement of the same fd takes it back.
**
** That is safe only if we hear about every close of a parked socket, since
** an fd closed while registered leaves libuv's watcher stale and the
** number may come back as another socket (docs/reliability.md, rules 3
** and 4).  Hence
** libcurl's open and close socket callbacks: a socket opened through
** open_socket is marked `conn` in the fd table, and close_socket (which
** libcurl uses for every close of such a socket, whatever handle closes
** the connection) stops and closes the context before closing the fd.
** Any other socket (the threaded resolver's socketpair) keeps the plain
** rule: its context is closed on CURL_POLL_REMOVE.  A parked context that
** sees an event (the server closed the idle connection) stops polling;
** libcurl finds the connection dead when it next looks at it.
**
** None of these callbacks calls libcurl: they only touch libuv and the fd
** table.  A poll handle is freed only in its close callback.
*/
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fetch.h"

static void on_sock_closed(uv_handle_t *h) {
  corio__fsock *k = corio__container_of(h, corio__fsock, poll);
  corio_rt *rt = k->rt;
  corio__free(k);
  corio__closed(rt);
}

void corio__fsock_close(corio__fetcher *ft, corio__fsock *k) {
  if (k->fd >= 0 && (size_t)k->fd < ft->nfds && ft->fds[k->fd].k == k)
    ft->fds[k->fd].k = NULL;
  if (k->parked) {
    k->shard->nparked--;
    k->shard->session->nparked--;
    uv_ref((uv_handle_t *)&k->poll); /* uv_close expects the usual count */
  } else {
    ft->nsockets--;
  }
  uv_poll_stop(&k->poll); /* drops events of this fd already fetched too */
  corio__closing(k->rt);
  uv_close((uv_handle_t *)&k->poll, on_sock_closed);
}

/* Mark ft->fds[fd] (which exists) as a connection socket or not, and
   count the marked ones: the sockets the runtime has open, busy or idle. */
static void set_conn(corio__fetcher *ft, curl_socket_t fd, int conn) {
  if (ft->fds[fd].conn == conn) return;
  ft->fds[fd].conn = conn;
  if (conn)
    ft->nconn++;
  else
    ft->nconn--;
}

/* Make ft->fds[fd] exist. */
static int fd_slot(corio__fetcher *ft, curl_socket_t fd) {
  if ((size_t)fd >= ft->nfds) {
    size_t n = ft->nfds ? ft->nfds : 64;
    corio__fslot *p;
    while (n <= (size_t)fd) n *= 2;
    p = corio__realloc(ft->fds, n * sizeof *p);
    if (p == NULL) return CORIO_ENOMEM;
    memset(p + ft->nfds, 0, (n - ft->nfds) * sizeof *p);
    ft->fds = p;
    ft->nfds = n;
  }
  return 0;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  corio__fsock *k = corio__container_of(h, corio__fsock, poll);
  corio__shard *sh = k->shard;
  int flags = 0;
  if (k->parked) { /* idle connection: not libcurl's business until reuse */
    uv_poll_stop(&k->poll);
    k->events = 0;
    return;
  }
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  corio__shard_action(sh, k->fd, flags);
  corio__shard_check(sh); /* k may be closing now; sh is alive */
}

static void park(corio__fetcher *ft, corio__fsock *k) {
  k->parked = 1;
  ft->nsockets--;
  k->shard->nparked++;
  k->shard->session->nparked++;
  uv_unref((uv_handle_t *)&k->poll);
}

static void unpark(corio__fetcher *ft, corio__fsock *k) {
  k->parked = 0;
  k->shard->nparked--;
  k->shard->session->nparked--;
  ft->nsockets++;
  uv_ref((uv_handle_t *)&k->poll);
}

/* The socket of `e` cannot be watched: corio__shard_check fails the
   transfer once libcurl has returned (no curl call from here). */
static int doom(corio__shard *sh, CURL *e) {
  corio_fetch *f = NULL;
  (void)curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&f);
  if (f != NULL) {
    f->err = CORIO_ENOMEM;
    sh->doomed = 1;
  }
  return 0;
}

/* CURLMOPT_SOCKETFUNCTION; userp is the shard. */
int corio__fsock_curl_cb(CURL *e, curl_socket_t fd, int what, void *userp,
                         void *socketp) {
  corio__shard *sh = userp;
  corio_session *s = sh->session;
  corio__fetcher *ft = s->fetcher;
  corio__fsock *k = socketp;
  int events;
  (void)e;
  if (what == CURL_POLL_REMOVE) {
    if (k == NULL) return 0;
    if (!k->parked && ft->fds[k->fd].k == k && ft->fds[k->fd].conn)
      park(ft, k);
    else
      corio__fsock_close(ft, k);
    return 0;
  }
  if (k == NULL) {
    corio__fsock *old;
    if (fd < 0 || fd_slot(ft, fd) != 0) return doom(sh, e);
    old = ft->fds[fd].k;
    /* a parked connection lives in its shard's cache: only that multi
       can announce it again */
    if (old != NULL && old->parked && old->shard == sh && ft->fds[fd].conn) {
      k = old; /* the same connection, taken up again */
      unpark(ft, k);
    } else {
      /* a context still on this fd number that is not that: libcurl
         closed the socket without telling us; stop watching it first */
      if (old != NULL) corio__fsock_close(ft, old);
      k = corio__malloc(sizeof *k);
      if (k == NULL) return doom(sh, e);
      if (uv_poll_init_socket(s->rt->loop, &k->poll, fd) != 0) {
        corio__free(k);
        return doom(sh, e);
      }
      corio__opened(s->rt);
      k->rt = s->rt;
      k->shard = sh;
      k->fd = fd;
      k->events = 0;
      k->parked = 0;
      ft->fds[fd].k = k;
      ft->nsockets++;
    }
    (void)curl_multi_assign(sh->multi, fd, k);
  }
  events = ((what & CURL_POLL_IN) ? UV_READABLE : 0) |
           ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
  if (events != k->events) { /* no churn: only real changes reach libuv */
    k->events = events;
    if (events != 0)
      uv_poll_start(&k->poll, events, on_poll);
    else
      uv_poll_stop(&k->poll);
  }
  return 0;
}

/*
** CURLOPT_OPENSOCKETFUNCTION; clientp is the fetcher.  The socket libcurl
** would make, plus close-on-exec (processes.map forks), marked as one
** whose close we will see.  A context still on the number is stale: its
** socket was closed behind our back.
*/
curl_socket_t corio__fsock_open(void *clientp, curlsocktype purpose,
                                struct curl_sockaddr *a) {
  corio_fetch *f = clientp;
  corio__fetcher *ft = f->fetcher;
  curl_socket_t fd;
  (void)purpose;
  fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if (fd < 0) {
    f->sock_errno = errno; /* libcurl reports only "Couldn't connect" */
    return CURL_SOCKET_BAD;
  }
  if (fd_slot(ft, fd) != 0) {
    close(fd);
    f->err = CORIO_ENOMEM;
    return CURL_SOCKET_BAD;
  }
  if (ft->fds[fd].k != NULL) corio__fsock_close(ft, ft->fds[fd].k);
  set_conn(ft, fd, 1); /* counted once if the old one closed unseen */
  f->opened[1] = f->opened[0];
  f->opened[0] = fd;
  return fd;
}

/*
** After curl_multi_remove_handle of a cancelled transfer.  libcurl 7.88
** closes the socket of a connection still being made without calling
** close_socket (strace: close() straight from remove_handle).  Its
** context would stay on the number: harmless once epoll has the fd (the
** kernel drops it; the next socket on the number replaces the context),
** fatal if the poll was started in this turn and libuv has not handed it
** to epoll yet: the next poll fails with EBADF and libuv aborts.
*/
void corio__fsock_forget_closed(corio_fetch *f) {
  corio__fetcher *ft = f->fetcher;
  int i;
  for (i = 0; i < 2; i++) {
    curl_socket_t fd = f->opened[i];
    f->opened[i] = -1;
    if (fd < 0 || (size_t)fd >= ft->nfds || !ft->fds[fd].conn) continue;
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    if (ft->fds[fd].k != NULL) corio__fsock_close(ft, ft->fds[fd].k);
    set_conn(ft, fd, 0);
  }
}

/* CURLOPT_CLOSESOCKETFUNCTION: stop watching, then close. */
int corio__fsock_closesocket(void *clientp, curl_socket_t fd) {
  corio__fetcher *ft = clientp;
  if (fd >= 0 && (size_t)fd < ft->nfds) {
    if (ft->fds[fd].k != NULL) corio__fsock_close(ft, ft->fds[fd].k);
    set_conn(ft, fd, 0);
  }
  return close(fd);
}
