"""fetch's options, as in the Lua binding, checked in the calling thread
and turned into a corio_request.  A mistake raises TypeError (a wrong
type, an unknown option) or ValueError (a bad value), naming the option,
before anything is sent."""
import ctypes
import json as _json
import math
import re
from collections.abc import Mapping
from urllib.parse import urlencode

from . import _body, _lib

OPTIONS = ("method", "headers", "body", "json", "form", "params", "timeout",
           "connect_timeout", "follow_redirects", "max_body", "verify_tls",
           "http_version", "retries", "proxy")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_ATTEMPTS = 1000000


def _tname(v):
    return type(v).__name__


def check_token(what, s):
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a str (got {_tname(s)})")
    if not _TOKEN.match(s):
        raise ValueError(f"{what}: {s!r} is not an HTTP token")


def _pairs(what, v):
    if isinstance(v, Mapping):
        return list(v.items())
    if isinstance(v, (list, tuple)):
        out = []
        for p in v:
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise TypeError(f"option '{what}' must be a mapping or a "
                                f"list of (name, value) pairs (got {p!r})")
            out.append(tuple(p))
        return out
    raise TypeError(f"option '{what}' must be a mapping or a list of "
                    f"(name, value) pairs (got {_tname(v)})")


def check_headers(what, v):
    """[(name, value)] of str, every one checked."""
    out = []
    for n, val in _pairs(what, v):
        if not isinstance(n, str):
            raise TypeError(f"option '{what}': names must be str (got "
                            f"{_tname(n)})")
        if not _TOKEN.match(n):
            raise ValueError(f"option '{what}': invalid header name {n!r}")
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise TypeError(f"option '{what}': value of {n!r} must be a str "
                            f"or a number (got {_tname(val)})")
        val = str(val)
        if _BAD_VALUE.search(val):
            raise ValueError(f"option '{what}': value of {n!r} contains CR, "
                             "LF, NUL or another control character")
        out.append((n, val))
    return out


def seconds(what, v):
    """> 0 seconds; None or inf: no limit (-1)."""
    if v is None:
        return -1.0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"option '{what}' must be a number of seconds or "
                        f"None (got {_tname(v)})")
    if math.isinf(v) and v > 0:
        return -1.0
    if not v > 0:
        raise ValueError(f"option '{what}' must be > 0 seconds (got {v!r})")
    return float(v)


def _count(what, v, expected):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"option '{what}' must be {expected} (got "
                        f"{_tname(v)})")


def parse_retries(v):
    """-> (attempts, backoff, max_backoff, statuses, methods)"""
    if v is None or v is False:
        return None
    if isinstance(v, bool):
        raise TypeError("option 'retries' must be a number of retries, a "
                        "dict or False (got True)")
    if isinstance(v, int):
        if not 0 <= v < _MAX_ATTEMPTS:
            raise ValueError(f"option 'retries' must be from 0 to "
                             f"{_MAX_ATTEMPTS - 1} (got {v})")
        return (v + 1, 0.5, 30.0, None, None)
    if not isinstance(v, Mapping):
        raise TypeError("option 'retries' must be a number of retries, a "
                        f"dict or False (got {_tname(v)})")
    for k in v:
        if k not in ("attempts", "backoff", "max_backoff", "statuses",
                     "methods"):
            raise TypeError(f"option 'retries': unknown key {k!r}")
    attempts = v.get("attempts", 1)
    _count("retries.attempts", attempts, "an int")
    if not 0 <= attempts <= _MAX_ATTEMPTS:
        raise ValueError(f"option 'retries.attempts' must be from 0 to "
                         f"{_MAX_ATTEMPTS} (got {attempts})")
    b = []
    for k, d in (("backoff", 0.5), ("max_backoff", 30.0)):
        x = v.get(k, d)
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise TypeError(f"option 'retries.{k}' must be a number of "
                            f"seconds (got {_tname(x)})")
        if not x >= 0:
            raise ValueError(f"option 'retries.{k}' must be >= 0 (got {x})")
        b.append(float(x))
    statuses = v.get("statuses")
    if statuses is not None:
        if not isinstance(statuses, (list, tuple)):
            raise TypeError("option 'retries.statuses' must be a list of "
                            f"HTTP statuses (got {_tname(statuses)})")
        for s in statuses:
            _count("retries.statuses", s, "a list of ints")
            if not 100 <= s <= 599:
                raise ValueError("option 'retries.statuses': statuses are "
                                 f"from 100 to 599 (got {s})")
    methods = v.get("methods")
    if methods is not None:
        if not isinstance(methods, (list, tuple)):
            raise TypeError("option 'retries.methods' must be a list of "
                            f"method names (got {_tname(methods)})")
        for m in methods:
            check_token("option 'retries.methods'", m)
    return (attempts, b[0], b[1], statuses, methods)


def _body_bytes(v):
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"option 'body' must be bytes or str (got {_tname(v)})")


def add_params(url, params):
    q = urlencode(_pairs("params", params))
    if not q:
        return url
    base, hsh, frag = url.partition("#")
    return base + ("&" if "?" in base else "?") + q + hsh + frag


def _template():
    """corio_request_init's request, receiving bodies into bytes objects
    (_body.py) where it can: each Prepared starts from a copy."""
    req = _lib.Request()
    _lib.request_init(req, b"")
    if _body.ALLOC is not None:
        req.body_alloc = _body.ALLOC
        req.body_offset = _body.OFFSET
    return req


_TEMPLATE = _template()


class Prepared:
    """A corio_request and every buffer it points to, kept alive until
    corio_fetch_start has copied them (on the loop thread)."""

    __slots__ = ("req", "url", "_keep")

    def __init__(self, url, opts, defaults=None):
        if not isinstance(url, str):
            raise TypeError(f"url must be a str (got {_tname(url)})")
        for k in opts:
            if k not in OPTIONS:
                raise TypeError(f"unknown option {k!r} (options: "
                                f"{', '.join(OPTIONS)})")
        d = defaults or {}
        if d.get("base_url") and not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:",
                                              url):
            base = d["base_url"]
            url = base.rstrip("/") + "/" + url.lstrip("/") if url else base
        if opts.get("params") is not None:
            url = add_params(url, opts["params"])
        self.url = url
        ub = url.encode()
        keep = [ub]
        req = _lib.Request.from_buffer_copy(_TEMPLATE)
        req.url = ub
        if "\0" in url:
            req.url = b"\x01"  # refused by corio as CORIO_EURL
        method = opts.get("method")
        if method is not None:
            check_token("option 'method'", method)
            mb = method.encode()
            keep.append(mb)
            req.method = mb
        ctype = None
        body = None
        if ((opts.get("body") is not None) + (opts.get("json") is not None) +
                (opts.get("form") is not None)) > 1:
            raise ValueError("give only one of the options body, json and "
                             "form")
        if opts.get("body") is not None:
            body = _body_bytes(opts["body"])
        elif "json" in opts and opts["json"] is not None:
            try:
                body = _json.dumps(opts["json"]).encode()
            except (TypeError, ValueError) as e:
                raise TypeError(f"option 'json': {e}") from None
            ctype = "application/json"
        elif opts.get("form") is not None:
            body = urlencode(_pairs("form", opts["form"])).encode()
            ctype = "application/x-www-form-urlencoded"
        if body is not None:
            buf = ctypes.create_string_buffer(body, len(body))
            keep.append(buf)
            req.body = ctypes.cast(buf, ctypes.c_void_p)
            req.body_len = len(body)
        hs = check_headers("headers", opts["headers"]) \
            if opts.get("headers") is not None else []
        if d.get("headers"):
            mine = {n.lower() for n, _ in hs}
            hs += [(n, v) for n, v in d["headers"] if n.lower() not in mine]
        if ctype and not any(n.lower() == "content-type" for n, _ in hs):
            hs.append(("Content-Type", ctype))
        if hs:
            arr = (_lib.Header * len(hs))()
            for i, (n, v) in enumerate(hs):
                nb, vb = n.encode(), v.encode()
                keep += (nb, vb)
                arr[i].name = nb
                arr[i].value = vb
            keep.append(arr)
            req.headers = arr
            req.nheaders = len(hs)
        if "timeout" in opts:
            req.timeout = seconds("timeout", opts["timeout"])
        elif d.get("timeout") is not None:
            req.timeout = d["timeout"]
        if "connect_timeout" in opts:
            req.connect_timeout = seconds("connect_timeout",
                                          opts["connect_timeout"])
        if "follow_redirects" in opts:
            v = opts["follow_redirects"]
            if isinstance(v, bool):
                req.follow_redirects = int(v)
            elif isinstance(v, int):
                if not 0 <= v <= 1000:
                    raise ValueError("option 'follow_redirects' must be a "
                                     "bool or a redirect limit from 0 to "
                                     f"1000 (got {v})")
                req.follow_redirects = 1
                req.max_redirects = v
            else:
                raise TypeError("option 'follow_redirects' must be a bool "
                                f"or an int (got {_tname(v)})")
        if "max_body" in opts:
            v = opts["max_body"]
            if v is None or v is False:
                req.max_body = 0
            else:
                _count("max_body", v, "a number of bytes or None")
                if v <= 0:
                    raise ValueError("option 'max_body' must be > 0 bytes, "
                                     f"or None for no limit (got {v})")
                req.max_body = v
        if "verify_tls" in opts:
            v = opts["verify_tls"]
            if not isinstance(v, bool):
                raise TypeError("option 'verify_tls' must be a bool (got "
                                f"{_tname(v)})")
            req.verify_tls = int(v)
        if opts.get("http_version") is not None:
            v = opts["http_version"]
            if not isinstance(v, str):
                raise TypeError("option 'http_version' must be a str (got "
                                f"{_tname(v)})")
            if v not in _lib.HTTP_VERSIONS:
                raise ValueError("option 'http_version' must be 1.0, 1.1, 2 "
                                 f"or 2-only (got {v!r})")
            req.http_version = _lib.HTTP_VERSIONS[v]
        if opts.get("proxy") is not None:
            v = opts["proxy"]
            if not isinstance(v, str):
                raise TypeError(f"option 'proxy' must be a str (got "
                                f"{_tname(v)})")
            pb = v.encode()
            keep.append(pb)
            req.proxy = pb
        r = parse_retries(opts["retries"]) if "retries" in opts else \
            d.get("retries")
        if r is not None:
            attempts, backoff, max_backoff, statuses, methods = r
            req.retry.attempts = attempts
            req.retry.backoff = backoff
            req.retry.max_backoff = max_backoff
            if statuses is not None:
                sa = (ctypes.c_int * max(len(statuses), 1))(*statuses)
                keep.append(sa)
                req.retry.statuses = sa
                req.retry.nstatuses = len(statuses)
            if methods is not None:
                mbs = [m.encode() for m in methods]
                ma = (ctypes.c_char_p * max(len(mbs), 1))(*mbs)
                keep += (mbs, ma)
                req.retry.methods = ma
                req.retry.nmethods = len(mbs)
        self.req = req
        self._keep = keep


# Options whose values are scalars (numbers, str, bool, None): a request
# made with no other options is kept by prepare() and used again.
_SCALAR = frozenset(("timeout", "connect_timeout", "method",
                     "follow_redirects", "max_body", "verify_tls",
                     "http_version", "proxy"))
_KEPT_MAX = 256


def prepare(url, opts, defaults, kept):
    """Prepared(url, opts, defaults), or the one made before for the same
    URL and scalar options, kept in the dict `kept` (one per set of
    defaults: a Session's, or a Runtime's).  corio_fetch_start copies the
    request it is given, so one Prepared serves any number of transfers,
    and a script that fetches the same URL over and over builds its
    request once, not per call (about 1.5 us, 11k instructions, each:
    bench/NOTES.md, "Python: a third of the per-request work gone").  The key holds each value's type
    too: 1 == 1.0 == True, but max_body=1.0 and verify_tls=1 are errors
    that a kept max_body=1 or verify_tls=True must not hide."""
    if type(url) is not str:  # a subclass may hash and compare as it likes
        return Prepared(url, opts, defaults)
    if not opts:
        key = url
    elif opts.keys() <= _SCALAR:
        key = (url, *opts.items(), *map(type, opts.values()))
    else:
        return Prepared(url, opts, defaults)
    try:
        p = kept.get(key)
    except TypeError:  # an unhashable value: Prepared names it
        return Prepared(url, opts, defaults)
    if p is None:
        p = Prepared(url, opts, defaults)
        if len(kept) >= _KEPT_MAX:  # a crawl of distinct URLs: start over
            kept.clear()
        kept[key] = p
    return p
