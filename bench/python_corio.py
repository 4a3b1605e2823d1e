#!/usr/bin/python3
"""Peer python_corio: asyncio with corio.afetch (bindings/python over
libcorio.so), the shape of the aiohttp peer and of bench/fetch.lua: C
worker coroutines, one runtime, one session that keeps up to C idle
connections (the C workers bound the transfers in flight), with aiohttp's
total timeout of 120 s.
Usage: python_corio.py URL N C [KEY=VALUE...]   (ok = 2xx with body read)
Each KEY=VALUE is one more session option, e.g. max_connections=100
(bench/NOTES.md, "Python binding": a session limit).
env: CORIO_LIBRARY (default: build/runtime/libcorio.so of this checkout)"""
import asyncio
import os
import sys
import time

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(root, "bindings", "python"))
os.environ.setdefault("CORIO_LIBRARY",
                      os.path.join(root, "build", "runtime", "libcorio.so"))
import corio  # noqa: E402


async def main(url, n, c, sopts):
    ok = fail = 0
    left = n
    with corio.Runtime() as rt:
        s = rt.session(**dict({"max_idle": c, "timeout": 120}, **sopts))

        async def worker():
            nonlocal ok, fail, left
            while left > 0:
                left -= 1
                try:
                    r = await s.afetch(url)
                    if r.ok:
                        ok += 1
                    else:
                        fail += 1
                except corio.FetchError:
                    fail += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(c, n))))
        dt = time.perf_counter() - t0
    return ok, fail, dt


if __name__ == "__main__":
    url, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sopts = {k: int(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])}
    ok, fail, dt = asyncio.run(main(url, n, c, sopts))
    print(f"peer=python_corio n={n} c={c} ok={ok} fail={fail} secs={dt:.3f} "
          f"rps={n/dt:.1f}")
