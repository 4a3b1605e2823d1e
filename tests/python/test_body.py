"""Response bodies received into the bytes object that becomes
Response.body (corio/_body.py): adopted when the length was announced,
copied otherwise, and no block left behind by any ending of a transfer:
success, error, cancel, a Runtime closed with transfers in flight."""
import asyncio
import time

import pytest

import corio
from corio import _body, _response
from conftest import read_request

pytestmark = pytest.mark.skipif(_body.ALLOC is None,
                                reason="no ctypes.pythonapi: bodies copied")


class Recording(dict):
    """_body._held that remembers every object it handed out."""

    def __init__(self):
        super().__init__()
        self.made = []

    def __setitem__(self, k, v):
        self.made.append(v)
        super().__setitem__(k, v)


@pytest.fixture
def held(monkeypatch):
    h = Recording()
    monkeypatch.setattr(_body, "_held", h)
    monkeypatch.setattr(_response, "_held", h.get)  # its lookup of _held
    yield h
    # corio releases a block right after the completion callback; with
    # Runtime.fetch that is on the loop thread, which may still be on its
    # way there when the caller has its response: wait for it, a little
    deadline = time.monotonic() + 5
    while h and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dict(h) == {}, "blocks left behind"


def test_announced_length_is_adopted(rt, base, held):
    for path, byte, n in (("/bytes/100k", b"b", 102400), ("/bytes/1m", b"c",
                                                          1048576),
                          ("/hello", None, None)):
        r = rt.fetch(base + path)
        assert r.status == 200
        if byte is not None:
            assert r.body == byte * n
        assert any(r.body is b for b in held.made), path  # no copy made
    assert rt.fetch(base + "/bytes/0").body == b""


def test_adopted_in_asyncio(rt, base, held):
    async def main():
        return await asyncio.gather(*(rt.afetch(base + "/bytes/100k")
                                      for _ in range(20)))
    rs = asyncio.run(main())
    assert all(r.body == b"b" * 102400 for r in rs)
    assert all(any(r.body is b for b in held.made) for r in rs)


def test_chunked_body_is_copied_whole(rt, base, held):
    r = rt.fetch(base + "/chunked")
    assert r.body == b"0123456789" * 100000
    assert not any(r.body is b for b in held.made)  # sliced out of a block
    assert len(held.made) > 1  # it grew: each block copied to the next


def short_body(srv, c):
    if read_request(c):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" +
                  b"x" * 5000)


def test_errors_leave_no_block(rt, base, raw, held):
    with pytest.raises(corio.FetchError) as ei:
        rt.fetch(raw(short_body).url + "/short")
    assert ei.value.kind == "reset"
    with pytest.raises(corio.FetchError) as ei:
        rt.fetch(base + "/bytes/1m", max_body=1000)
    assert ei.value.kind == "too_large"
    assert held.made  # the reset one had a block, freed


def test_cancelled_mid_body_leaves_no_block(rt, base, held):
    async def main():
        t = asyncio.ensure_future(rt.afetch(base + "/slow"))
        await asyncio.sleep(0.3)  # "start" received, "end" 10 s away
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await asyncio.sleep(0.05)  # the driver steps: the block is freed
    asyncio.run(main())
    assert held.made


def test_closed_with_transfers_in_flight_leaves_no_block(base, held):
    rt = corio.Runtime()
    futs = [rt.submit(base + "/slow") for _ in range(10)]
    time.sleep(0.3)
    rt.close()
    for f in futs:
        with pytest.raises(corio.FetchError):
            f.result(5)
    assert held.made
