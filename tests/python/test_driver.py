"""afetch's runtime, driven by the asyncio loop on its own thread
(corio_rt_backend_fd, corio_rt_step): it never needs the Runtime's loop
thread; cancellation and close still abort transfers; nothing leaks
across asyncio.run calls; and the fallback inbox never writes to a file
descriptor by number."""
import asyncio
import os
import socket
import threading

import pytest

import corio
from conftest import open_fds, read_request


def test_afetch_does_not_need_the_loop_thread(rt, base):
    # The Runtime's loop thread is held by an action until the asyncio
    # side is done: afetch must complete without it (it used to run
    # every completion there).
    release = threading.Event()
    held = threading.Event()

    def hold(status):
        held.set()
        release.wait(30)

    rt._call(hold)
    assert held.wait(10)
    try:
        async def main():
            rs = await asyncio.wait_for(asyncio.gather(
                *(rt.afetch(base + "/hello") for _ in range(20))), 20)
            return [r.status for r in rs]
        assert asyncio.run(main()) == [200] * 20
    finally:
        release.set()


def test_close_with_transfers_in_flight(base):
    fds = open_fds()
    rt = corio.Runtime()

    async def main():
        futs = [rt.afetch(base + "/delay/10000") for _ in range(50)]
        await asyncio.sleep(0.2)  # started, connected, waiting
        rt.close()  # from the asyncio thread: they fail at once
        out = await asyncio.gather(*futs, return_exceptions=True)
        with pytest.raises(RuntimeError, match="closed"):
            rt.afetch(base + "/hello")
        return out
    out = asyncio.run(main())
    assert all(isinstance(e, corio.FetchError) and e.kind == "cancelled"
               for e in out), out
    assert open_fds() == fds  # the runtimes, their loops and sockets


def test_close_from_another_thread(base):
    fds = open_fds()
    rt = corio.Runtime()

    async def main():
        futs = [rt.afetch(base + "/delay/10000") for _ in range(10)]
        await asyncio.sleep(0.2)
        await asyncio.get_running_loop().run_in_executor(None, rt.close)
        return await asyncio.wait_for(
            asyncio.gather(*futs, return_exceptions=True), 10)
    out = asyncio.run(main())
    assert all(isinstance(e, corio.FetchError) and e.kind == "cancelled"
               for e in out), out
    assert open_fds() == fds


def test_runs_in_turn_leave_nothing_behind(base):
    fds = open_fds()
    rt = corio.Runtime()
    try:
        for _ in range(5):
            async def main():
                s = rt.session(max_connections=4)
                rs = await asyncio.gather(
                    *(s.afetch(base + "/hello") for _ in range(10)),
                    rt.afetch(base + "/hello"))
                s.close()
                return [r.status for r in rs]
            assert asyncio.run(main()) == [200] * 11
            # the driver of the loop that ended goes with the next one
            assert len(rt._drivers) <= 1
    finally:
        rt.close()
    assert open_fds() == fds


def test_session_close_cancels_its_afetch(rt, raw):
    def hold(srv, c):
        if read_request(c) is None:
            return
        srv.record("request")
        try:
            while c.recv(4096):
                pass
            srv.record("disconnect")
        except OSError:
            srv.record("disconnect")
    srv = raw(hold)

    async def main():
        s = rt.session()
        f = s.afetch(srv.url + "/hang")
        other = rt.afetch(srv.url + "/hang")  # the default session's
        await asyncio.get_running_loop().run_in_executor(
            None, srv.wait_for, "request")
        s.close()
        with pytest.raises(corio.FetchError) as ei:
            await asyncio.wait_for(f, 10)
        assert ei.value.kind == "cancelled"
        with pytest.raises(RuntimeError, match="Session is closed"):
            s.afetch(srv.url + "/")
        assert not other.done()
        other.cancel()
    asyncio.run(main())
    assert srv.wait_for("disconnect", 10), srv.events


def test_inbox_never_writes_to_a_reused_fd():
    # The fallback inbox (loops without add_reader) wakes its loop.  It
    # used to write to the loop's wakeup socket by fd number after
    # checking that the loop was open: a loop closed in between, and the
    # number reused by another file, got the byte.  Here the loop closes,
    # and a socket of ours takes the number, exactly in between.
    from corio._runtime import _Inbox
    loop = asyncio.new_event_loop()
    ib = _Inbox(loop)
    fd = loop._csock.fileno()
    a, b = socket.socketpair()
    real = loop._call_soon

    def close_in_between(*args):
        h = real(*args)
        loop._call_soon = real
        loop.close()
        os.dup2(a.fileno(), fd)  # the number is ours now
        return h
    loop._call_soon = close_in_between
    try:
        ib.put(None, None, None)
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(1)  # nothing written to our socket
    finally:
        os.close(fd)
        a.close()
        b.close()


def test_a_loop_that_makes_its_own_futures(rt, base):
    # afetch's futures come from the loop's create_future, as asyncio asks
    # of libraries, unless the loop is asyncio's own (then plain Futures,
    # made without the call)
    made = []

    class Fut(asyncio.Future):
        pass

    class Loop(asyncio.SelectorEventLoop):
        def create_future(self):
            made.append(Fut(loop=self))
            return made[-1]

    async def main():
        fs = [rt.afetch(base + "/hello") for _ in range(3)]
        rs = await asyncio.gather(*fs)
        return fs, [r.status for r in rs]
    loop = Loop()
    try:
        fs, statuses = loop.run_until_complete(main())
    finally:
        loop.close()
    assert statuses == [200] * 3
    assert all(type(f) is Fut for f in fs) and made == fs

    async def plain():
        f = rt.afetch(base + "/hello")
        return f, await f
    f, r = asyncio.run(plain())
    assert type(f) is asyncio.Future and r.status == 200
