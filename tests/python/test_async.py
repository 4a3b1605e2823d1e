"""afetch inside asyncio: many at once, cancellation that the server sees,
and the module-level corio.afetch."""
import asyncio
import time

import pytest

import corio
from conftest import read_request


def test_hundred_afetch_in_asyncio_run(rt, base):
    async def main():
        return await asyncio.gather(*(rt.afetch(base + f"/delay/{i % 5}")
                                      for i in range(100)))
    rs = asyncio.run(main())
    assert len(rs) == 100
    assert all(r.status == 200 and r.body == b"delayed\n" for r in rs)


def test_thousand_concurrent_afetch(rt, base):
    async def main():
        t0 = time.monotonic()
        rs = await asyncio.gather(*(rt.afetch(base + "/delay/1000")
                                    for _ in range(1000)))
        return rs, time.monotonic() - t0
    rs, dt = asyncio.run(main())
    assert all(r.status == 200 for r in rs)
    assert dt < 10, dt  # about 1 s


def hold_until_disconnect(srv, c):
    """Read the request, never answer; record the client's disconnect."""
    if read_request(c) is None:
        return
    srv.record("request")
    c.settimeout(20)
    try:
        while c.recv(4096):
            pass
        srv.record("disconnect")
    except ConnectionResetError:
        srv.record("disconnect")


def test_cancel_task_aborts_the_transfer(rt, raw):
    srv = raw(hold_until_disconnect)

    async def main():
        t = asyncio.ensure_future(rt.afetch(srv.url + "/hang"))
        await asyncio.get_running_loop().run_in_executor(
            None, srv.wait_for, "request")
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
    asyncio.run(main())
    assert srv.wait_for("disconnect", 10), srv.events


def test_cancel_before_start_and_wait_for(rt, base):
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(rt.afetch(base + "/delay/5000"), 0.2)
        t = asyncio.ensure_future(rt.afetch(base + "/delay/5000"))
        t.cancel()  # before it ever ran
        with pytest.raises(asyncio.CancelledError):
            await t
        # the runtime still works
        return (await rt.afetch(base + "/hello")).status
    assert asyncio.run(main()) == 200


def test_future_cancel_aborts_the_transfer(rt, raw):
    srv = raw(hold_until_disconnect)
    f = rt.submit(srv.url + "/hang")
    assert srv.wait_for("request")
    assert f.cancel()
    assert srv.wait_for("disconnect", 10), srv.events


def test_errors_in_asyncio(rt, base):
    async def main():
        with pytest.raises(corio.FetchError) as ei:
            await rt.afetch(base + "/delay/3000", timeout=0.1)
        assert ei.value.kind == "timeout"
        with pytest.raises(corio.FetchError) as ei:
            await rt.afetch("gopher://127.0.0.1/")
        assert ei.value.kind == "unsupported_scheme"
        with pytest.raises(TypeError, match="tiemout"):
            await rt.afetch(base + "/hello", tiemout=1)
    asyncio.run(main())


def test_module_afetch(base):
    async def main():
        r = await corio.afetch(base + "/hello")
        return r.text()
    assert asyncio.run(main()) == "hello world\n"


def test_two_event_loops_in_two_threads(rt, base):
    import threading
    out = []

    def worker():
        async def main():
            rs = await asyncio.gather(*(rt.afetch(base + "/hello")
                                        for _ in range(20)))
            out.append(sum(r.status == 200 for r in rs))
        asyncio.run(main())
    ts = [threading.Thread(target=worker) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert out == [20, 20]
