"""Runtime.fetch / submit / fetch_all, responses and every error kind, as
the Lua fetch specs (tests/lua/fetch_spec.lua) check them."""
import asyncio
import concurrent.futures
import json
import time

import pytest

import corio
from conftest import free_port, read_request


def fetch_error(fn, *a, **kw):
    with pytest.raises(corio.FetchError) as ei:
        fn(*a, **kw)
    return ei.value


def test_response_fields(rt, base):
    r = rt.fetch(base + "/hello")
    assert r.status == 200 and r.ok
    assert r.body == b"hello world\n"
    assert r.text() == "hello world\n"
    assert r.url == base + "/hello"
    assert r.http_version == "1.1"
    assert set(r.timing) == {"dns", "connect", "tls", "ttfb", "total", "queue"}
    assert r.timing["total"] >= r.timing["ttfb"] > 0
    assert r.attempts == 1
    assert r.headers["Content-Length"] == "12"
    assert r.headers["content-length"] == "12"
    assert "CONTENT-LENGTH" in r.headers
    r = rt.fetch(base + "/status/404")
    assert r.status == 404 and not r.ok  # a response, not an error


def test_headers_both_ways(rt, base):
    r = rt.fetch(base + "/headers", headers={"X-Test": "sent"})
    assert r.body == b"sent"
    assert r.headers["x-reply"] == "yes"
    assert r.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert r.headers["Set-Cookie"] == "a=1, b=2"
    r = rt.fetch(base + "/headers", headers=[("x-test", 42)])
    assert r.body == b"42"


def test_redirects(rt, base):
    r = rt.fetch(base + "/redirect/3")
    assert r.status == 200 and r.url == base + "/hello"
    r = rt.fetch(base + "/redirect/3", follow_redirects=False)
    assert r.status == 302
    e = fetch_error(rt.fetch, base + "/redirect/3", follow_redirects=2)
    assert e.kind == "protocol"


def test_methods_and_bodies(rt, base):
    assert rt.fetch(base + "/method", method="PUT").body == b"PUT"
    r = rt.fetch(base + "/echo", method="POST", body=b"a\0b")
    assert r.body == b"a\0b"
    r = rt.fetch(base + "/echo", method="POST", json={"a": [1, 2]})
    assert r.json() == {"a": [1, 2]}
    r = rt.fetch(base + "/echo", method="POST", form={"a": "1 2", "b": "&"})
    assert r.body == b"a=1+2&b=%26"
    r = rt.fetch(base + "/echo", method="POST", body="é")
    assert r.text() == "é"


def test_params(rt, base):
    r = rt.fetch(base + "/method?x=1", params={"q": "a b"})
    assert r.url == base + "/method?x=1&q=a+b"


def test_submit_and_fetch_all(rt, base):
    f = rt.submit(base + "/hello")
    assert isinstance(f, concurrent.futures.Future)
    assert f.result(10).body == b"hello world\n"
    urls = [base + f"/delay/{d}" for d in (300, 10, 200, 0)] + \
        [base + "/status/404"]
    rs = rt.fetch_all(urls, concurrency=5)
    assert [r.url for r in rs] == urls  # input order
    assert [r.status for r in rs] == [200] * 4 + [404]


def test_fetch_all_failures(rt, base):
    port = free_port()
    urls = [base + "/hello", f"http://127.0.0.1:{port}/", base + "/hello"]
    rs = rt.fetch_all(urls, return_exceptions=True)
    assert rs[0].ok and rs[2].ok
    assert isinstance(rs[1], corio.FetchError) and rs[1].kind == "connect"
    e = fetch_error(rt.fetch_all, urls)
    assert e.kind == "connect"


def test_fetch_all_failure_cancels_the_others(rt, base):
    """The first failure raises at once; the transfers still running are
    cancelled, not waited for (/slow takes 10 s)."""
    port = free_port()
    urls = [base + "/slow"] * 5 + [f"http://127.0.0.1:{port}/"]
    t0 = time.monotonic()
    e = fetch_error(rt.fetch_all, urls, concurrency=10)
    assert e.kind == "connect"
    assert time.monotonic() - t0 < 5
    # the runtime is not left busy with them: a fetch gets through now
    assert rt.fetch(base + "/hello", timeout=5).ok


def test_thousand_concurrent_delays(rt, base):
    """1,000 requests of /delay/1000 at once take about a second."""
    t0 = time.monotonic()
    rs = rt.fetch_all([base + "/delay/1000"] * 1000, concurrency=1000)
    dt = time.monotonic() - t0
    assert all(r.status == 200 and r.body == b"delayed\n" for r in rs)
    assert dt < 10, dt  # about 1 s; generous against a loaded machine


# {==== error kinds


def test_dns(rt):
    e = fetch_error(rt.fetch, "http://nonexistent.invalid/")
    assert e.kind == "dns"
    assert e.url == "http://nonexistent.invalid/"


def test_connect(rt):
    e = fetch_error(rt.fetch, f"http://127.0.0.1:{free_port()}/")
    assert e.kind == "connect"


def test_timeout(rt, base):
    t0 = time.monotonic()
    e = fetch_error(rt.fetch, base + "/delay/5000", timeout=0.3)
    assert e.kind == "timeout"
    assert time.monotonic() - t0 < 4


def short_body(srv, c):
    if read_request(c):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")


def not_http(srv, c):
    if read_request(c):
        c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")


def test_reset(rt, raw):
    e = fetch_error(rt.fetch, raw(short_body).url + "/short")
    assert e.kind == "reset"


def test_protocol(rt, raw):
    e = fetch_error(rt.fetch, raw(not_http).url + "/garbage")
    assert e.kind == "protocol"


def test_too_large(rt, base):
    e = fetch_error(rt.fetch, base + "/bytes/1k", max_body=100)
    assert e.kind == "too_large"
    assert rt.fetch(base + "/bytes/1k", max_body=1024).body == b"a" * 1024


def test_invalid_url(rt):
    for u in ("http://exa mple.com/", "http://[::1/", "http://a\0b/", ""):
        e = fetch_error(rt.fetch, u)
        assert e.kind == "invalid_url", (u, e)


def test_unsupported_scheme(rt, base):
    e = fetch_error(rt.fetch, "file:///etc/passwd")
    assert e.kind == "unsupported_scheme"
    e = fetch_error(rt.fetch, base + "/redirect-file")
    assert e.kind == "unsupported_scheme"


def test_cancelled_future(rt, base):
    f = rt.submit(base + "/delay/5000")
    time.sleep(0.1)
    assert f.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        f.result()


def test_retries(rt, base):
    r = rt.fetch(base + "/status/502", retries={"attempts": 3, "backoff": 0})
    assert r.status == 502 and r.attempts == 3
    e = fetch_error(rt.fetch, f"http://127.0.0.1:{free_port()}/",
                    retries={"attempts": 2, "backoff": 0})
    assert e.kind == "connect" and e.attempts == 2


def test_module_level(base):
    assert corio.fetch(base + "/hello").status == 200
    rs = corio.fetch_all([base + "/hello"] * 3)
    assert [r.status for r in rs] == [200] * 3
    assert corio.default_runtime() is corio.default_runtime()


def test_json_errors_stay_python(rt, base):
    with pytest.raises(json.JSONDecodeError):
        rt.fetch(base + "/hello").json()


def test_header_fields_as_sent(rt, raw):
    # the fields arrive as one block (corio_response.header_data) and are
    # split when read: empty values, repeats, a folded line, latin-1
    # bytes and a response with no fields at all keep their places
    def handler(srv, c):
        req = read_request(c)
        if b"GET /none " in req:
            c.sendall(b"HTTP/1.0 200 OK\r\n\r\nbare")
            return
        c.sendall(b"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Rep: a\r\n"
                  b"X-Fold: one\r\n  two\r\nX-Rep: b\r\nX-Latin: caf\xe9\r\n"
                  b"Content-Length: 2\r\nConnection: close\r\n\r\nok")

    srv = raw(handler)

    async def both():
        return (await rt.afetch(srv.url + "/fields"),
                await rt.afetch(srv.url + "/none"))
    for r, bare in ((rt.fetch(srv.url + "/fields"),
                     rt.fetch(srv.url + "/none")), asyncio.run(both())):
        assert r.body == b"ok"
        assert r.headers.raw() == [
            ("X-Empty", ""), ("X-Rep", "a"), ("X-Fold", "one two"),
            ("X-Rep", "b"), ("X-Latin", "caf\xe9"), ("Content-Length", "2"),
            ("Connection", "close")]
        assert r.headers["x-rep"] == "a, b"
        assert r.headers.get_all("X-Rep") == ["a", "b"]
        assert r.headers["x-empty"] == ""
        assert len(r.headers) == 6
        assert bare.body == b"bare" and bare.headers.raw() == []
        assert len(bare.headers) == 0 and "x-rep" not in bare.headers
