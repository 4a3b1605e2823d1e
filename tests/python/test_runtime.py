"""The Runtime's life: close with transfers in flight, use after close,
bad input, sessions, and the GIL left free while the loop runs."""
import asyncio
import gc
import threading
import time

import pytest

import corio
from conftest import open_fds, read_request


def test_close_with_transfers_in_flight(base):
    gc.collect()
    fds = open_fds()
    threads = threading.active_count()
    rt = corio.Runtime()
    futs = [rt.submit(base + "/delay/5000") for _ in range(50)]
    time.sleep(0.3)  # connected, waiting for answers
    t0 = time.monotonic()
    rt.close()
    assert time.monotonic() - t0 < 3
    for f in futs:
        e = f.exception(5)
        assert isinstance(e, corio.FetchError) and e.kind == "cancelled"
    assert rt._ops == {}
    gc.collect()
    assert open_fds() == fds  # sockets, the loop's fds: all closed
    assert threading.active_count() == threads


def test_close_with_afetch_in_flight(base):
    rt = corio.Runtime()

    async def main():
        ts = [asyncio.ensure_future(rt.afetch(base + "/delay/5000"))
              for _ in range(20)]
        await asyncio.sleep(0.2)
        await asyncio.get_running_loop().run_in_executor(None, rt.close)
        return await asyncio.gather(*ts, return_exceptions=True)
    rs = asyncio.run(main())
    assert all(isinstance(e, corio.FetchError) and e.kind == "cancelled"
               for e in rs), rs


def test_used_after_close(base):
    rt = corio.Runtime()
    rt.close()
    rt.close()  # twice is fine
    for call in (lambda: rt.fetch(base + "/hello"),
                 lambda: rt.submit(base + "/hello"),
                 lambda: rt.fetch_all([base + "/hello"]),
                 lambda: rt.session()):
        with pytest.raises(RuntimeError, match="closed"):
            call()
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(rt.afetch(base + "/hello"))
    with pytest.raises(RuntimeError):
        with rt:
            pass


def test_context_manager(base):
    with corio.Runtime() as rt:
        assert rt.fetch(base + "/hello").ok
    assert rt.closed


@pytest.mark.parametrize("opts,exc,name", [
    ({"tiemout": 1}, TypeError, "tiemout"),
    ({"timeout": "1"}, TypeError, "timeout"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": -1}, ValueError, "timeout"),
    ({"connect_timeout": [1]}, TypeError, "connect_timeout"),
    ({"method": "GE T"}, ValueError, "method"),
    ({"method": 1}, TypeError, "method"),
    ({"headers": "x"}, TypeError, "headers"),
    ({"headers": {"X-A": "a\r\nb"}}, ValueError, "headers"),
    ({"headers": {"X A": "a"}}, ValueError, "headers"),
    ({"headers": {"X-A": None}}, TypeError, "headers"),
    ({"body": 5}, TypeError, "body"),
    ({"body": b"x", "json": {}}, ValueError, "body, json"),
    ({"json": object()}, TypeError, "json"),
    ({"form": 5}, TypeError, "form"),
    ({"follow_redirects": "yes"}, TypeError, "follow_redirects"),
    ({"follow_redirects": 5000}, ValueError, "follow_redirects"),
    ({"max_body": 0}, ValueError, "max_body"),
    ({"max_body": 1.5}, TypeError, "max_body"),
    ({"verify_tls": 1}, TypeError, "verify_tls"),
    ({"http_version": "3"}, ValueError, "http_version"),
    ({"http_version": 2}, TypeError, "http_version"),
    ({"retries": -1}, ValueError, "retries"),
    ({"retries": "3"}, TypeError, "retries"),
    ({"retries": {"attempts": 2, "statuses": [42]}}, ValueError,
     "retries.statuses"),
    ({"retries": {"tries": 2}}, TypeError, "retries"),
    ({"proxy": 1}, TypeError, "proxy"),
])
def test_bad_options(rt, base, opts, exc, name):
    with pytest.raises(exc, match=name.replace(".", r"\.")):
        rt.fetch(base + "/hello", **opts)
    with pytest.raises(exc, match=name.replace(".", r"\.")):
        rt.submit(base + "/hello", **opts)


@pytest.mark.parametrize("good,bad,exc,name", [
    ({"max_body": 100}, {"max_body": 100.0}, TypeError, "max_body"),
    ({"verify_tls": True}, {"verify_tls": 1}, TypeError, "verify_tls"),
    ({"timeout": 1}, {"timeout": True}, TypeError, "timeout"),
    ({"follow_redirects": 1}, {"follow_redirects": 1.0}, TypeError,
     "follow_redirects"),
    ({"timeout": 5}, {"timeout": [5]}, TypeError, "timeout"),
])
def test_kept_requests_check_every_call(rt, base, good, bad, exc, name):
    # a request made once is used again (_options.prepare), but only for
    # the same values of the same types: equal values of another type
    # (1 == 1.0 == True) are checked afresh, and refused
    s = rt.session()

    async def a(f, **opts):
        return await f(base + "/hello", **opts)
    for fetch, afetch in ((rt.fetch, rt.afetch), (s.fetch, s.afetch)):
        assert fetch(base + "/hello", **good).ok
        assert asyncio.run(a(afetch, **good)).ok
        with pytest.raises(exc, match=name):
            fetch(base + "/hello", **bad)
        with pytest.raises(exc, match=name):
            asyncio.run(a(afetch, **bad))
    s.close()


def test_kept_requests(rt, base):
    from corio import _options
    kept = {}
    p = _options.prepare(base + "/hello", {"timeout": 5}, None, kept)
    assert _options.prepare(base + "/hello", {"timeout": 5}, None, kept) is p
    assert _options.prepare(base + "/hello", {"timeout": 5.0}, None,
                            kept) is not p
    assert _options.prepare(base + "/hello", {}, None, kept) is not p
    # headers are not kept: a dict may change between calls
    h = {"X-A": "1"}
    q = _options.prepare(base + "/hello", {"headers": h}, None, kept)
    assert _options.prepare(base + "/hello", {"headers": h}, None,
                            kept) is not q
    for i in range(_options._KEPT_MAX + 10):  # bounded
        _options.prepare(f"{base}/hello?{i}", {}, None, kept)
    assert len(kept) <= _options._KEPT_MAX
    # the same request serves many transfers at once
    rs = rt.fetch_all([base + "/bytes/1k"] * 50)
    assert all(r.body == b"a" * 1024 for r in rs)

    async def many():
        return await asyncio.gather(*(rt.afetch(base + "/bytes/1k",
                                                timeout=5)
                                      for _ in range(50)))
    assert all(r.body == b"a" * 1024 for r in asyncio.run(many()))


def test_bad_arguments(rt, base):
    with pytest.raises(TypeError, match="url"):
        rt.fetch(None)
    with pytest.raises(TypeError, match="url"):
        rt.fetch(b"http://127.0.0.1/")
    with pytest.raises(TypeError, match="concurrency"):
        rt.fetch_all([base + "/hello"], concurrency="10")
    with pytest.raises(ValueError, match="concurrency"):
        rt.fetch_all([base + "/hello"], concurrency=0)
    with pytest.raises(TypeError, match="urls"):
        rt.fetch_all(base + "/hello")
    with pytest.raises(TypeError, match="max_connections"):
        rt.session(max_connections="2")
    with pytest.raises(ValueError, match="max_per_host"):
        rt.session(max_per_host=-1)
    # and the runtime still works
    assert rt.fetch(base + "/hello").ok


def test_session_limits_and_defaults(rt, base):
    with rt.session(max_connections=2, base_url=base,
                    headers={"X-Test": "from-session"}) as s:
        assert s.fetch("/headers").body == b"from-session"
        assert s.fetch("/headers", headers={"x-test": "mine"}).body == \
            b"mine"
        t0 = time.monotonic()
        rs = s.fetch_all(["/delay/300"] * 6)
        assert all(r.ok for r in rs)
        # 2 connections: 3 rounds of 300 ms, not one
        assert time.monotonic() - t0 >= 0.85

        async def a():
            return (await s.afetch("/hello")).status
        assert asyncio.run(a()) == 200
    with pytest.raises(RuntimeError, match="closed"):
        s.fetch("/hello")


def test_session_rate(rt, base):
    """rate=2: the third and fourth requests to the host wait for the
    one-second window (the mirror of corio_session_opts must have `rate`:
    without it the C side reads past the Python struct)."""
    with rt.session(rate=2) as s:
        rs = s.fetch_all([base + "/hello"] * 4)
        assert all(r.ok for r in rs)
        queued = sorted(r.timing["queue"] for r in rs)
        assert queued[0] < 0.5 and queued[-1] >= 0.9
    with pytest.raises(ValueError, match="rate"):
        rt.session(rate=-1)


def test_session_close_cancels(rt, base):
    s = rt.session()
    f = s.submit(base + "/delay/5000")
    time.sleep(0.2)
    s.close()
    e = f.exception(5)
    assert isinstance(e, corio.FetchError) and e.kind == "cancelled"
    assert rt.fetch(base + "/hello").ok  # the runtime goes on


def test_gil_is_free_while_the_loop_runs(rt, base):
    """A Python thread counts while a fetch of 1 s runs: had the loop
    thread held the GIL, the count would stop for that second."""
    done = threading.Event()
    counts = []

    def count():
        n = 0
        while not done.is_set():
            n += 1
        counts.append(n)
    f = rt.submit(base + "/delay/1000")
    t = threading.Thread(target=count)
    t.start()
    before = time.monotonic()
    r = f.result(10)
    done.set()
    t.join()
    assert r.ok and time.monotonic() - before > 0.5
    assert counts[0] > 10000


def test_fetch_from_the_loop_thread_refuses(rt, base):
    out = []
    f = rt.submit(base + "/delay/300")  # not done when the callback is added

    def cb(_):
        try:
            rt.fetch(base + "/hello")
        except RuntimeError as e:
            out.append(str(e))
    f.add_done_callback(cb)
    f.result(10)
    time.sleep(0.1)
    assert out and "loop thread" in out[0]


def test_many_runtimes(base):
    for _ in range(20):
        with corio.Runtime() as rt:
            assert rt.fetch(base + "/hello").ok
