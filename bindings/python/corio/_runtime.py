"""Runtime: a corio runtime whose loop runs on a thread of its own.

Threads.  Only the loop thread calls into the runtime, except
corio_rt_post.  A Python thread that wants something done (start a
transfer, cancel one, make or free a session, stop) appends a closure to
`_actions` and, if no drain is pending, posts one: the posted callback
runs every closure queued, on the loop thread.  Completion callbacks copy
the response (valid only while they run) and hand the result over: to a
concurrent.futures.Future (set_result is thread-safe), or to an asyncio
loop through its inbox, which needs one call_soon_threadsafe per batch.
Callbacks into Python take the GIL and keep it briefly; the loop itself
runs in corio_rt_run, a foreign call, without the GIL.

asyncio (afetch) does not use that thread: each asyncio loop gets a
corio runtime of its own (_Driver), which the asyncio loop drives on its
own thread: it watches the runtime's backend fd (add_reader) and calls
corio_rt_step when it is readable, when the step's timeout passes, and
after starting transfers.  Completion callbacks then run on the asyncio
thread, inside the step, and set the futures directly.  Nothing crosses
threads: no GIL to hand over, no wakeup to send.  Before, every
completion callback on the loop thread waited for the GIL, which the
asyncio thread held most of the time, and the libuv loop stalled
meanwhile (bench/NOTES.md, "Python binding").  A loop without add_reader
falls back to the loop thread, with results handed over through an inbox
(_Inbox).

Ownership.  A transfer's record (_Op) is in `_ops` from its start until
its completion callback, which runs exactly once per started transfer
(cancelled and closed ones included), so nothing stays behind.
"""
import asyncio
import atexit
import collections
import concurrent.futures
import ctypes
import functools
import itertools
import threading
import weakref

from . import _lib
from ._options import (Prepared, check_headers, parse_retries, prepare,
                       seconds)
from ._response import FetchError, error_from_c, from_c

_ECANCELED = _lib.E["ECANCELED"]
_ECLOSED = _lib.E["ECLOSED"]
_REFUSED_KIND = {_lib.E["EURL"]: "invalid_url",
                 _lib.E["ESCHEME"]: "unsupported_scheme"}

_live = weakref.WeakSet()


class _Inbox:
    """Results for one asyncio loop without add_reader, handed over in
    batches by the loop thread (the fallback of _Driver)."""

    __slots__ = ("loop", "items", "lock", "scheduled")

    def __init__(self, loop):
        self.loop = loop
        self.items = []
        self.lock = threading.Lock()
        self.scheduled = False

    def wake(self):
        # Not a write to the loop's wakeup socket by its fd number: the
        # loop may close between a check and the write, and the number be
        # another file's by then.  call_soon_threadsafe raises
        # RuntimeError once the loop is closed.
        self.loop.call_soon_threadsafe(self.flush)

    def put(self, fut, value, exc):  # loop thread
        with self.lock:
            self.items.append((fut, value, exc))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.wake()
        except RuntimeError:  # that asyncio loop is closed: nobody waits
            with self.lock:
                self.items.clear()
                self.scheduled = False

    def flush(self):  # the asyncio loop's thread
        with self.lock:
            items, self.items = self.items, []
            self.scheduled = False
        for fut, value, exc in items:
            if fut.done():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)


class _Driver:
    """afetch's runtime for one asyncio loop, driven by that loop on its
    thread: add_reader on corio_rt_backend_fd, corio_rt_step when it is
    readable, when the step's timeout is due, and after a transfer starts
    (once per loop iteration: `soon`).  Everything here runs on that
    loop's thread, close() included, except when the loop is closed:
    then nothing else can run it.  `ops` maps a transfer's id, the id()
    of its future, to that future, its URL and its corio_fetch *, from
    its start to its callback: the future stays alive meanwhile, so the
    id is nobody else's."""

    __slots__ = ("loop", "rt", "fd", "ops", "sessions", "timer", "soon",
                 "deliver", "c_done", "watch", "new_future", "ms", "fp",
                 "__weakref__")

    def __init__(self, loop):
        self.loop = loop
        self.ops = {}
        self.sessions = set()  # corio_session * made here, not freed
        self.timer = None
        self.soon = False
        self.deliver = True
        self.c_done = _lib.FETCH_CB(self._on_done)
        # one bound method for every future: no closure per transfer, and
        # remove_done_callback finds it by identity
        self.watch = self._watch
        # asyncio's own loops make plain Futures: made here without the
        # call to their create_future; other loops may make their own
        self.new_future = loop.create_future
        if getattr(type(loop), "create_future", None) is \
                asyncio.BaseEventLoop.create_future:
            self.new_future = functools.partial(asyncio.Future, loop=loop)
        self.ms = ctypes.c_int(-1)
        self.fp = ctypes.c_void_p()
        self.rt = _lib.rt_new(None)
        if not self.rt:
            raise MemoryError("corio: corio_rt_new failed")
        self.fd = _lib.rt_backend_fd(self.rt)
        try:
            if self.fd < 0:
                raise NotImplementedError("no backend fd")
            loop.add_reader(self.fd, self.step)
        except NotImplementedError:
            _lib.rt_free_gil(self.rt)
            self.rt = None
            raise
        self.kick()  # the first step: the loop's own fds join the backend

    def kick(self):
        if not self.soon:
            self.soon = True
            self.loop.call_soon(self.step)

    def step(self):
        self.soon = False
        if self.rt is None:
            return
        _lib.rt_step(self.rt, self.ms)  # runs the callbacks below
        ms = self.ms.value
        if ms == 0:
            self.kick()
        elif ms > 0:
            at = self.loop.time() + ms / 1000
            t = self.timer
            if t is not None:
                if t.when() <= at:  # due first: it steps and re-arms
                    return
                t.cancel()
            self.timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self):
        self.timer = None
        self.step()

    def _on_done(self, f, status, res, ud):  # inside step or close
        try:
            fut, url, _ = self.ops.pop(ud)
            if fut.done() or not self.deliver:
                return
            # not cancelled: its cancel watch would cost a turn for nothing
            fut.remove_done_callback(self.watch)
            if status == 0:
                fut.set_result(from_c(res))
            else:
                fut.set_exception(error_from_c(status, res, url))
        except BaseException as e:  # never into ctypes: report and go on
            import sys
            print("corio: error in a completion callback:", repr(e),
                  file=sys.stderr)

    def start(self, prep, session):
        """-> an asyncio future of the transfer's Response."""
        fut = self.new_future()
        s = None
        if session is not None:
            last = session._last  # Session._for's first look, inline
            s = last[1] if last[0] is self else session._for(self)
        i = id(fut)
        rc = _lib.fetch_start(self.rt, s, prep.req, self.c_done, i, self.fp)
        if rc != 0:  # the request was copied, or refused: prep may go
            fut.set_exception(Runtime._refused(rc, prep.url))
            return fut
        fut.add_done_callback(self.watch)
        self.ops[i] = (fut, prep.url, self.fp.value)
        if not self.soon:  # kick(), inline
            self.soon = True
            self.loop.call_soon(self.step)
        return fut

    def _watch(self, fut):
        if fut.cancelled():
            self.cancel(id(fut))

    def cancel(self, i):
        op = self.ops.get(i)
        if op is not None and self.rt is not None:
            _lib.fetch_cancel(op[2])  # its callback runs at the next step
            self.kick()

    def session_new(self, opts):
        s = _lib.session_new(self.rt, opts)
        if not s:
            raise RuntimeError("corio: could not make a session")
        self.sessions.add(s)
        return s

    def session_free(self, s):
        if self.rt is not None and s in self.sessions:
            self.sessions.discard(s)
            _lib.session_free(s)  # its transfers' callbacks: next step
            self.kick()

    def close(self):
        """Free the runtime: transfers in flight fail with kind
        "cancelled" (their callbacks run now)."""
        rt, self.rt = self.rt, None
        if rt is None:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.deliver = not self.loop.is_closed()
        if self.deliver:
            self.loop.remove_reader(self.fd)
        self.sessions.clear()
        if _lib.rt_free_gil(rt) != 0:  # not expected: leak, not crash
            _leaked.append(rt)
        self.ops.clear()


_leaked = []  # runtimes corio_rt_free refused to free


def _on_thread_of(loop, fn, *args, if_closed=True):
    """fn(*args) on the thread of asyncio loop `loop`: now if that is
    this thread, else at the loop's next turn.  A closed loop runs
    nothing any more: fn runs here then, if if_closed."""
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if loop is here:
        fn(*args)
        return
    try:
        if not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)
            return
    except RuntimeError:  # closed meanwhile
        pass
    if if_closed:
        fn(*args)


class _Op:
    """One transfer: its request until started, then its corio_fetch *."""

    __slots__ = ("prep", "session", "deliver", "f", "cancelled", "id")

    def __init__(self, prep, session, deliver):
        self.prep = prep
        self.session = session
        self.deliver = deliver  # deliver(value, exc), on the loop thread
        self.f = None
        self.cancelled = False
        self.id = 0


def _cancelled_error(url, why="cancelled"):
    return FetchError("cancelled", why, url)


class Runtime:
    """A corio runtime on a background thread.

        with corio.Runtime() as rt:
            r = rt.fetch("http://127.0.0.1:8080/")       # blocks this thread
            fut = rt.submit(url)                          # a Future
            r = await rt.afetch(url)                      # inside asyncio
            rs = rt.fetch_all(urls, concurrency=100)      # in input order

    close() cancels the transfers in flight (they fail with kind
    "cancelled") and frees everything; a closed Runtime raises
    RuntimeError when used."""

    def __init__(self):
        self._lock = threading.Lock()
        self._actions = collections.deque()
        self._posted = False
        self._closed = False
        self._ops = {}
        self._ids = itertools.count(1)
        self._inboxes = weakref.WeakKeyDictionary()
        self._drivers = {}  # asyncio loop -> _Driver, or None: no add_reader
        self._kept = {}  # requests made before (_options.prepare)
        self._c_post = _lib.POST_FN(self._on_post)
        self._c_done = _lib.FETCH_CB(self._on_done)
        self._rt = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="corio-loop",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._rt is None:
            raise MemoryError("corio: corio_rt_new failed")
        _live.add(self)

    # {==== the loop thread

    def _run(self):
        rt = _lib.rt_new(None)
        if rt:
            _lib.rt_keep_alive(rt, 1)
            self._rt = rt
        self._ready.set()
        if not rt:
            return
        while True:
            _lib.rt_run(rt, _lib.UV_RUN_DEFAULT)  # without the GIL
            with self._lock:
                if self._closed and not self._actions:
                    break
        # transfers still in flight complete here, cancelled, and posts
        # accepted meanwhile run with CORIO_ECLOSED: _on_post fails them
        rc = _lib.rt_free(rt)
        for op in list(self._ops.values()):  # none expected: belt and braces
            self._finish(op, None, _cancelled_error(op.prep.url))
        self._ops.clear()
        if rc != 0:  # not expected either: keep it, leak rather than crash
            self._leaked = rt

    def _on_post(self, rt, status, data):
        try:
            with self._lock:
                actions, self._actions = self._actions, collections.deque()
                self._posted = False
            for a in actions:
                a(status)
        except BaseException as e:  # never into ctypes: report and go on
            import sys
            print("corio: error in the loop thread:", repr(e),
                  file=sys.stderr)

    def _start_op(self, op, status):  # an action
        if op.cancelled or status != 0:
            op.deliver(None, _cancelled_error(op.prep.url))
            return
        sess = op.session
        if sess is not None and sess._s is None:
            op.deliver(None, _cancelled_error(op.prep.url,
                                              "session closed"))
            return
        op.id = next(self._ids)
        self._ops[op.id] = op
        f = ctypes.c_void_p()
        rc = _lib.fetch_start(self._rt, sess._s if sess else None,
                              op.prep.req, self._c_done, op.id, f)
        if rc != 0:
            del self._ops[op.id]
            op.deliver(None, self._refused(rc, op.prep.url))
            return
        op.f = f.value
        op.prep = _Url(op.prep.url)  # the request was copied: drop it

    def _on_done(self, f, status, res, ud):
        try:
            op = self._ops.pop(ud, None)
            if op is None:
                return
            op.f = None
            if status == 0:
                self._finish(op, from_c(res), None)
            else:
                self._finish(op, None, error_from_c(status, res,
                                                    op.prep.url))
        except BaseException as e:
            import sys
            print("corio: error in a completion callback:", repr(e),
                  file=sys.stderr)

    @staticmethod
    def _finish(op, value, exc):
        op.deliver(value, exc)

    @staticmethod
    def _refused(rc, url):
        if rc in _REFUSED_KIND:
            kind = _REFUSED_KIND[rc]
            msg = (f"invalid URL {url!r}" if kind == "invalid_url" else
                   f"unsupported URL scheme in {url!r} (corio fetches http "
                   "and https)")
            return FetchError(kind, msg, url)
        if rc == _ECLOSED:
            return _cancelled_error(url, "runtime or session closed")
        if rc == _lib.E["ENOMEM"]:
            return MemoryError("corio: out of memory")
        return ValueError("corio: request refused: " +
                          _lib.strerror(rc).decode())

    def _cancel_op(self, op, status):  # an action
        op.cancelled = True
        if op.f is not None and status == 0:
            _lib.fetch_cancel(op.f)  # its callback runs at the next turn

    # }====

    # {==== any thread

    def _call(self, action):
        """Queue action(status) for the loop thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("corio: this Runtime is closed")
            self._actions.append(action)
            if self._posted:
                return
            self._posted = True
            # under the lock: close() cannot come in between, and the
            # runtime be freed before this post is made
            rc = _lib.rt_post(self._rt, self._c_post, None)
        if rc != 0:  # only while closing, which _closed rules out
            raise RuntimeError("corio: corio_rt_post failed: " +
                               _lib.strerror(rc).decode())

    def _cancel(self, op):
        try:
            self._call(lambda st: self._cancel_op(op, st))
        except RuntimeError:
            pass  # closed: the transfer is cancelled by the close

    def _check_open(self):
        if self._closed:
            raise RuntimeError("corio: this Runtime is closed")

    def _in_loop_thread(self):
        return threading.get_ident() == self._thread.ident

    def submit(self, url, **opts):
        """Start a fetch; -> concurrent.futures.Future of a Response.
        Cancelling the future aborts the transfer.  Its done callbacks run
        on the loop thread: keep them short."""
        return self._submit(url, opts, None, None)

    def _submit(self, url, opts, session, defaults):
        self._check_open()
        prep = prepare(url, opts, defaults,
                       session._kept if session is not None else self._kept)
        fut = concurrent.futures.Future()

        def deliver(value, exc):
            try:
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(value)
            except concurrent.futures.InvalidStateError:
                pass  # cancelled meanwhile

        op = _Op(prep, session, deliver)
        fut.add_done_callback(
            lambda f: self._cancel(op) if f.cancelled() else None)
        self._call(lambda st: self._start_op(op, st))
        return fut

    def fetch(self, url, **opts):
        """Fetch and wait: blocks the calling thread only."""
        return self._fetch(url, opts, None, None)

    def _fetch(self, url, opts, session, defaults):
        if self._in_loop_thread():
            raise RuntimeError("corio: fetch() on the loop thread would "
                               "block it; use submit()")
        fut = self._submit(url, opts, session, defaults)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    def afetch(self, url, **opts):
        """Fetch inside asyncio: -> an asyncio future of a Response, to
        await.  Cancelling it, or the task awaiting it, aborts the transfer
        (its connection is closed).  A bad option raises at once."""
        return self._afetch(url, opts, None, None)

    def _inbox(self, loop):
        ib = self._inboxes.get(loop)
        if ib is None:
            ib = self._inboxes[loop] = _Inbox(loop)
        return ib

    def _driver(self, loop):
        """This loop's _Driver (made on first use), or None when the loop
        has no add_reader.  Drivers of loops closed meanwhile go."""
        with self._lock:
            if self._closed:
                raise RuntimeError("corio: this Runtime is closed")
            if loop in self._drivers:
                return self._drivers[loop]
            gone = [lp for lp in self._drivers if lp.is_closed()]
            olds = [self._drivers.pop(lp) for lp in gone]
        for d in olds:
            if d is not None:
                d.close()  # its loop is closed: nothing else runs it
        try:
            d = _Driver(loop)
        except NotImplementedError:
            d = None
        with self._lock:
            closed = self._closed
            if not closed:
                self._drivers[loop] = d
        if closed:  # close() came meanwhile
            if d is not None:
                d.close()
            raise RuntimeError("corio: this Runtime is closed")
        return d

    def _afetch(self, url, opts, session, defaults):
        if self._closed:
            self._check_open()  # raises
        kept = session._kept if session is not None else self._kept
        # prepare()'s first look, inline: the common call, a URL alone
        prep = kept.get(url) if not opts and url.__class__ is str else None
        if prep is None:
            prep = prepare(url, opts, defaults, kept)
        loop = asyncio.get_running_loop()
        d = self._drivers.get(loop, False)
        if d is False:
            d = self._driver(loop)
        if d is not None:
            return d.start(prep, session)
        afut = loop.create_future()
        inbox = self._inbox(loop)
        op = _Op(prep, session, lambda v, e: inbox.put(afut, v, e))
        # the future itself is awaited: no coroutine between the task and
        # it, and a cancelled task cancels it, which aborts the transfer
        afut.add_done_callback(
            lambda f: self._cancel(op) if f.cancelled() else None)
        self._call(lambda st: self._start_op(op, st))
        return afut

    def fetch_all(self, urls, concurrency=100, return_exceptions=False,
                  **opts):
        """Fetch every URL, at most `concurrency` at once; -> a list in
        input order.  A failure raises (the first to happen; the others
        are cancelled) unless return_exceptions, which puts it in the
        list."""
        return self._fetch_all(urls, concurrency, return_exceptions, opts,
                               None, None)

    def _fetch_all(self, urls, concurrency, return_exceptions, opts,
                   session, defaults):
        if isinstance(concurrency, bool) or not isinstance(concurrency, int):
            raise TypeError("concurrency must be an int (got "
                            f"{type(concurrency).__name__})")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1 (got {concurrency})")
        if isinstance(urls, (str, bytes)):
            raise TypeError("urls must be an iterable of URLs, not one URL")
        urls = list(urls)
        if self._in_loop_thread():
            raise RuntimeError("corio: fetch_all() on the loop thread would "
                               "block it")
        preps = [Prepared(u, opts, defaults) for u in urls]  # checked first
        results = [None] * len(preps)
        cond = threading.Condition()
        state = {"next": 0, "running": 0, "left": len(preps), "error": None}
        ops = {}

        def launch():  # under cond
            while (state["running"] < concurrency and
                   state["next"] < len(preps) and state["error"] is None):
                i = state["next"]
                state["next"] += 1
                state["running"] += 1
                op = _Op(preps[i], session,
                         lambda v, e, i=i: done(i, v, e))
                ops[i] = op
                self._call(lambda st, op=op: self._start_op(op, st))

        def done(i, value, exc):  # loop thread
            with cond:
                ops.pop(i, None)
                state["running"] -= 1
                state["left"] -= 1
                if exc is not None and not return_exceptions:
                    if state["error"] is None:
                        state["error"] = exc
                        cond.notify()  # the caller cancels the others
                    results[i] = exc
                    return
                results[i] = exc if exc is not None else value
                try:
                    launch()
                except RuntimeError:
                    pass
                # wake the caller only when it is done: a wake-up per
                # transfer hands the GIL back and forth for nothing
                if state["left"] == 0:
                    cond.notify()

        def cancel_pending():
            with cond:
                state["error"] = state["error"] or _cancelled_error("")
                pending = list(ops.values())
            for op in pending:
                self._cancel(op)

        try:
            with cond:
                launch()
                while state["left"] > 0 and state["error"] is None:
                    cond.wait()
        except BaseException:
            cancel_pending()
            raise
        if state["error"] is not None and not return_exceptions:
            cancel_pending()
            raise state["error"]
        return results

    def session(self, max_connections=0, max_per_host=0, max_idle=0,
                headers=None, base_url=None, timeout=None, retries=None,
                rate=0):
        """A session: its own connection pool and limits (0: none; `rate`:
        requests started per host in any one second), and defaults for its
        requests (headers, base_url, timeout, retries)."""
        return Session(self, max_connections, max_per_host, max_idle,
                       headers, base_url, timeout, retries, rate)

    def close(self):
        """Cancel what is in flight, free the runtime and stop its thread.
        Idempotent; not from the loop thread's callbacks (it would wait
        for itself): there it only starts the close."""
        with self._lock:
            if self._closed:
                closing = False
            else:
                self._closed = True
                closing = True
                self._actions.append(self._stop)
                if not self._posted:
                    self._posted = True
                    _lib.rt_post(self._rt, self._c_post, None)
                drivers = [d for d in self._drivers.values() if d]
                self._drivers.clear()
        if closing:
            _live.discard(self)
            for d in drivers:
                _on_thread_of(d.loop, d.close)
        if not self._in_loop_thread():
            self._thread.join()

    def _stop(self, status):  # the last action
        if status == 0:
            _lib.rt_keep_alive(self._rt, 0)
            _lib.rt_stop(self._rt)

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # }====


class _Url:
    __slots__ = ("url",)

    def __init__(self, url):
        self.url = url


class Session:
    """Transfers sharing a connection pool and limits.  close() cancels
    those in flight (kind "cancelled") and closes its connections."""

    def __init__(self, rt, max_connections, max_per_host, max_idle, headers,
                 base_url, timeout, retries, rate=0):
        o = _lib.SessionOpts()
        for name, v in (("max_connections", max_connections),
                        ("max_per_host", max_per_host),
                        ("max_idle", max_idle), ("rate", rate)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"option '{name}' must be an int (got "
                                f"{type(v).__name__})")
            if v < 0:
                raise ValueError(f"option '{name}' must be >= 0 (got {v})")
            setattr(o, name, v)
        if base_url is not None and not isinstance(base_url, str):
            raise TypeError("option 'base_url' must be a str (got "
                            f"{type(base_url).__name__})")
        self._defaults = {
            "headers": check_headers("headers", headers) if headers else [],
            "base_url": base_url,
            "timeout": seconds("timeout", timeout) if timeout is not None
            else None,
            "retries": parse_retries(retries),
        }
        self._rt = rt
        self._s = None
        self._o = o
        self._kept = {}  # requests made before (_options.prepare)
        self._per = weakref.WeakKeyDictionary()  # _Driver -> its session
        self._last = (None, None)  # the last (_Driver, session) used
        made = threading.Event()

        def make(status):
            if status == 0:
                self._s = _lib.session_new(rt._rt, o)
            made.set()

        if rt._in_loop_thread():
            raise RuntimeError("corio: make sessions outside the loop thread")
        rt._call(make)
        made.wait()
        if self._s is None:
            raise RuntimeError("corio: could not make a session")
        self._closed = False

    def _check(self):
        if self._closed:
            raise RuntimeError("corio: this Session is closed")

    def _for(self, d):
        """This session's twin in driver d (made on first use, with the
        same limits), on d's thread."""
        last = self._last
        if last[0] is d:
            return last[1]
        s = self._per.get(d)
        if s is None:
            s = self._per[d] = d.session_new(self._o)
        self._last = (d, s)
        return s

    def fetch(self, url, **opts):
        self._check()
        return self._rt._fetch(url, opts, self, self._defaults)

    def submit(self, url, **opts):
        self._check()
        return self._rt._submit(url, opts, self, self._defaults)

    def afetch(self, url, **opts):
        if self._closed:
            self._check()  # raises
        return self._rt._afetch(url, opts, self, self._defaults)

    def fetch_all(self, urls, concurrency=100, return_exceptions=False,
                  **opts):
        self._check()
        return self._rt._fetch_all(urls, concurrency, return_exceptions,
                                   opts, self, self._defaults)

    def close(self):
        if self._closed:
            return
        self._closed = True
        per, self._per = list(self._per.items()), {}
        self._last = (None, None)
        for d, s in per:  # each twin on its driver's thread; a closed
            # loop's driver frees its sessions when it is closed
            _on_thread_of(d.loop, d.session_free, s, if_closed=False)

        def free(status):
            s, self._s = self._s, None
            if s is not None and status == 0:
                _lib.session_free(s)

        try:
            self._rt._call(free)
        except RuntimeError:
            self._s = None  # the runtime's close freed it

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        self._check()
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# {==== the default runtime, for corio.fetch and friends

_default = None
_default_lock = threading.Lock()


def default_runtime():
    """The runtime corio.fetch, corio.afetch and corio.fetch_all use, made
    on first use and closed at exit."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Runtime()
        return _default


def fetch(url, **opts):
    return default_runtime().fetch(url, **opts)


def submit(url, **opts):
    return default_runtime().submit(url, **opts)


def afetch(url, **opts):
    return default_runtime().afetch(url, **opts)


def fetch_all(urls, concurrency=100, return_exceptions=False, **opts):
    return default_runtime().fetch_all(urls, concurrency, return_exceptions,
                                       **opts)


@atexit.register
def _close_all():
    for rt in list(_live):
        rt.close()

# }====
