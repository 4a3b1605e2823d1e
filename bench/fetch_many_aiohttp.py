"""The peer of scripts/fetch_many.lua: the same job written the way an
asyncio user writes it, with aiohttp and a Semaphore.

    /usr/bin/python3 bench/fetch_many_aiohttp.py URLS.txt -c 100 -o OUT.jsonl

One URL a line (blank and # lines skipped); one JSON line per URL, in
completion order: {"url", "status" | "error", "message", "bytes", "ms"}; a
summary on stderr (counts per status and error kind, p50/p90/p99 latency,
rate, bytes).  One task per URL, gated by the Semaphore, as the usual
recipe has it.  Exit 0 when every URL got a response, else 1.
"""
import argparse
import asyncio
import json
import statistics
import sys
import time

import aiohttp


async def fetch_one(session, sem, url, out, stats):
    async with sem:
        t0 = time.monotonic()
        rec = {"url": url}
        try:
            async with session.get(url) as r:
                body = await r.read()
            rec["status"], rec["bytes"] = r.status, len(body)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
            rec["error"], rec["message"], rec["bytes"] = type(e).__name__, str(e), 0
        rec["ms"] = round((time.monotonic() - t0) * 1000, 1)
    out.write(json.dumps(rec) + "\n")
    if "error" in rec:
        stats["errors"][rec["error"]] = stats["errors"].get(rec["error"], 0) + 1
    else:
        stats["statuses"][rec["status"]] = stats["statuses"].get(rec["status"], 0) + 1
        stats["bytes"] += rec["bytes"]
        stats["latency"].append(rec["ms"])


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("input")
    p.add_argument("-c", type=int, default=100)
    p.add_argument("-o", default="-")
    a = p.parse_args()
    with open(a.input) as f:
        urls = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
    out = sys.stdout if a.o == "-" else open(a.o, "w")
    stats = {"statuses": {}, "errors": {}, "bytes": 0, "latency": []}
    sem = asyncio.Semaphore(a.c)
    t0 = time.monotonic()
    conn = aiohttp.TCPConnector(limit=a.c)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:
        await asyncio.gather(*(fetch_one(s, sem, u, out, stats) for u in urls))
    secs = time.monotonic() - t0
    out.flush()
    n = sum(stats["statuses"].values()) + sum(stats["errors"].values())
    print(f"fetch_many_aiohttp: {n:,} URLs in {secs:.2f} s ({n / secs:,.0f}/s), "
          f"{stats['bytes']:,} bytes", file=sys.stderr)
    print("  status ", stats["statuses"], " errors ", stats["errors"], file=sys.stderr)
    if len(stats["latency"]) >= 2:
        q = statistics.quantiles(stats["latency"], n=100)
        print(f"  latency p50 {q[49]} ms  p90 {q[89]} ms  p99 {q[98]} ms", file=sys.stderr)
    return 0 if not stats["errors"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
