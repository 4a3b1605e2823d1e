"""Response, its case-insensitive headers, and FetchError."""
import json as _json
import re
import struct
from collections.abc import Mapping

from . import _body, _lib

# corio's error codes -> the Lua binding's kinds
KINDS = {
    "EDNS": "dns", "ECONNECT": "connect", "ETIMEDOUT": "timeout",
    "ETLS": "tls", "ERESET": "reset", "EPROTO": "protocol",
    "ETOOLARGE": "too_large", "EURL": "invalid_url",
    "ESCHEME": "unsupported_scheme", "ECANCELED": "cancelled",
    "ENOMEM": "memory", "EIO": "io",
}
_KIND_OF = {_lib.E[n]: k for n, k in KINDS.items()}


def kind_of(code):
    return _KIND_OF.get(code, "io")


class FetchError(Exception):
    """A fetch that failed: `kind` is one of dns, connect, timeout, tls,
    reset, protocol, too_large, invalid_url, unsupported_scheme, cancelled,
    memory, io (the Lua binding's kinds); `url` the URL asked for;
    `attempts` the tries made."""

    def __init__(self, kind, message, url="", attempts=1):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.url = url
        self.attempts = attempts

    def __str__(self):
        return f"FetchError({self.kind}): {self.message}"

    def __repr__(self):
        return f"FetchError(kind={self.kind!r}, message={self.message!r})"


class Headers(Mapping):
    """Response headers: a read-only mapping whose keys are compared
    without case.  A field sent more than once reads as its values joined
    with ", " (get_all gives them apart); items() in the order received."""

    __slots__ = ("_fields", "_pairs", "_map")

    def __init__(self, raw=None, fields=None):
        # [(name, value)] as str, or b"name\0value\0..." as received,
        # decoded on first use (most responses never have their headers
        # read)
        self._pairs = raw
        self._fields = fields
        self._map = None

    @property
    def _raw(self):
        if self._pairs is None:
            f = self._fields.decode("latin-1").split("\0")
            self._pairs = list(zip(f[0:-1:2], f[1::2]))
            self._fields = None
        return self._pairs

    def _index(self):
        if self._map is None:
            m = {}
            for n, v in self._raw:
                k = n.lower()
                m[k] = m[k] + ", " + v if k in m else v
            self._map = m
        return self._map

    def __getitem__(self, name):
        return self._index()[name.lower()]

    def __contains__(self, name):
        return isinstance(name, str) and name.lower() in self._index()

    def __iter__(self):
        return iter(self._index())

    def __len__(self):
        return len(self._index())

    def get_all(self, name):
        name = name.lower()
        return [v for n, v in self._raw if n.lower() == name]

    def raw(self):
        """[(name, value)] as received, names in their own case."""
        return list(self._raw)

    def __repr__(self):
        return f"Headers({self._raw!r})"


_CHARSET = re.compile(r";\s*charset=\"?([\w.:-]+)", re.I)


class Response:
    """A response: whatever its status (404 is a response, not an error).
    `timing` is a dict of seconds: dns, connect, tls, ttfb, total, queue."""

    __slots__ = ("status", "_headers", "body", "url", "http_version",
                 "_timing", "attempts")

    def __init__(self, status, headers, body, url, http_version, timing,
                 attempts):
        self.status = status
        self._headers = headers  # Headers, or the fields as received
        self.body = body
        self.url = url
        self.http_version = http_version
        self._timing = timing  # (dns, connect, tls, ttfb, total, queue)
        self.attempts = attempts

    @property
    def headers(self):
        h = self._headers
        if h.__class__ is bytes:  # made on first use
            h = self._headers = Headers(fields=h)
        return h

    @property
    def timing(self):
        t = self._timing
        if isinstance(t, tuple):  # made a dict on first use
            t = self._timing = dict(zip(_TIMING, t))
        return t

    @property
    def ok(self):
        return 200 <= self.status < 300

    def text(self, encoding=None, errors="replace"):
        if encoding is None:
            m = _CHARSET.search(self.headers.get("content-type", ""))
            encoding = m.group(1) if m else "utf-8"
        try:
            return self.body.decode(encoding, errors)
        except LookupError:
            return self.body.decode("utf-8", errors)

    def json(self):
        return _json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.url} {len(self.body)} bytes>"


_TIMING = ("dns", "connect", "tls", "ttfb", "total", "queue")
# corio_response as one native struct: read in one call, not a ctypes
# attribute access per field
_RESPONSE = struct.Struct("@lPNPNPP7dPiNPN")
if _RESPONSE.size != _lib.ctypes.sizeof(_lib.Response):
    raise ImportError("corio: _RESPONSE does not match _lib.Response")
# the struct's bytes in place, for unpack_from: no copy to a bytes first
_RESPONSE_BYTES = _lib.ctypes.c_char * _RESPONSE.size
_string_at = _lib.ctypes._string_at  # string_at without its Python frame
_URL = _lib.ctypes.c_char_p  # reads the URL's pointer and its bytes at once
_URL_AT = _lib.Response.url.offset
_held = _body._held.get  # the bytes objects bodies are received in
_OFFSET = _body.OFFSET
# http_version points to one of corio's static strings ("1.1", "2", ...):
# each is decoded once
_VERSIONS = {}


def from_c(res):
    """A Response from the corio_response at address res, copied (the
    body taken over): it is valid only while the completion callback
    runs."""
    (status, _, n, body, body_len, _, version, dns, connect, tls, ttfb,
     total, queue, _, _, attempts, _, hdata, hlen) = \
        _RESPONSE.unpack_from(_RESPONSE_BYTES.from_address(res))
    # the fields in one block, "name\0value\0...": one copy for them all
    # (no name or value holds a NUL: corio/fetch.h), split when read
    fields = _string_at(hdata, hlen) if n else b""
    v = _VERSIONS.get(version)
    if v is None:
        v = _VERSIONS[version] = _string_at(version, -1).decode()
    # the bytes object the body was received in (_body.py), or a copy
    if body_len:
        b = _held(body - _OFFSET)
        if b is None:
            b = _string_at(body, body_len)
        elif len(b) != body_len:
            b = b[:body_len]
    else:
        b = b""
    return Response(status, fields, b,
                    _URL.from_address(res + _URL_AT).value.decode(
                        "utf-8", "replace"), v,
                    (dns, connect, tls, ttfb, total, queue),
                    attempts if attempts > 0 else 1)


def error_from_c(status, res, url):
    r = _lib.Response.from_address(res)
    msg = r.error.decode("utf-8", "replace") if r.error else \
        _lib.strerror(status).decode()
    attempts = r.attempts if r.attempts > 0 else 1
    if attempts > 1:
        msg += f" (after {attempts} tries)"
    return FetchError(kind_of(status), msg, url, attempts)
