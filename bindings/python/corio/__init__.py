"""corio for Python: corio's HTTP client (libcurl on a libuv loop, in C)
from threads and from asyncio, over libcorio.so with ctypes.

    import corio
    r = corio.fetch("http://127.0.0.1:8080/hello")
    r.status, r.headers["content-type"], r.text()

    async def main():
        rs = await asyncio.gather(*(corio.afetch(u) for u in urls))

Set CORIO_LIBRARY to the path of libcorio.so when it is not on the
system's library path (a build tree: build/runtime/libcorio.so).
"""
from ._response import FetchError, Headers, Response
from ._runtime import (Runtime, Session, afetch, default_runtime, fetch,
                       fetch_all, submit)
from . import _lib

__version__ = _lib.version().decode()

__all__ = ["Runtime", "Session", "Response", "Headers", "FetchError",
           "fetch", "afetch", "fetch_all", "submit", "default_runtime"]
