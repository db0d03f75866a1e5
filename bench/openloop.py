"""The open-loop generator behind the throughput frontier: requests go out at a fixed rate whatever the answers do.

wrk is closed-loop: a connection sends its next request only once the last one is answered, so a target that slows
down slows the load, and its p99 hides the queue a real client would meet (coordinated omission). Here request i is
due at start + i / rate and goes out on the first free one of N keep-alive connections (wrk2's model); its latency
counts from when the generator handed it out, so waiting for a free connection counts. The event loop's timers step
in milliseconds, so requests leave in bursts of up to 1 ms worth of rate. `lag_p50_ms` / `lag_p99_ms` say how late
the generator itself handed requests out: a p99 of a few ms is the OS scheduling it away on a busy machine; a median
past 1.5 ms, or `generator_cpu` (its CPU time over the window, of one core) past 0.85, is the generator out of CPU:
that point measured the generator, not the target (frontier.py ends the sweep there).

Run: python -m bench.openloop URL RATE SECONDS CONNECTIONS BODY_FILE [HEADER: VALUE ...]; prints one JSON object.
"""

from __future__ import annotations

import asyncio
import math
import resource
import sys
import time
from urllib.parse import urlsplit

import orjson

from bench.pyload import build_request, read_response

_STOP = -1


def percentile(values: list[float], p: float) -> float:
    """The p-th quantile of sorted `values` (nearest rank); inf counts as a request that never finished."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, math.ceil(len(values) * p) - 1))]


async def run(url: str, rate: float, seconds: float, connections: int, body: bytes, headers: dict[str, str]) -> dict:
    parts = urlsplit(url)
    request = build_request(url, body, headers)
    clock = time.perf_counter_ns
    due: asyncio.Queue[int] = asyncio.Queue()
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0
    streams = [await asyncio.open_connection(parts.hostname, parts.port, limit=1 << 20) for _ in range(connections)]

    async def prime(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(request)
        await read_response(reader)

    # one answered request per connection before the clock starts: the target has accepted every connection and done
    # its per-connection setup, so the first point of a sweep measures the rate, not N connections arriving at once
    await asyncio.gather(*(prime(r, w) for r, w in streams))

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        try:
            while (handed_out := await due.get()) != _STOP:
                writer.write(request)
                status = await read_response(reader)
                latencies.append((clock() - handed_out) / 1e6)
                if status >= 300:
                    errors += 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection(r, w)) for r, w in streams]
    cpu_before = _cpu_seconds()
    total = max(1, round(rate * seconds))
    interval = 1e9 / rate
    start = clock()
    sent = 0
    while sent < total:
        now = clock()
        for i in range(sent, min(total, int((now - start) / interval) + 1)):
            lags.append((now - (start + i * interval)) / 1e6)
            due.put_nowait(now)
            sent += 1
        wait = (start + sent * interval - clock()) / 1e9
        # uvloop rounds a timer to whole ms: under 0.5 ms it would fire at once and the generator would spin on the
        # core it shares with the upstream, so it sleeps at least 1 ms and sends what fell due meanwhile
        await asyncio.sleep(max(0.001, wait) if wait > 0 else 0)
    dispatched = clock()
    for _ in workers:
        due.put_nowait(_STOP)
    # what is still queued when the window ends is drained for at most as long again; unanswered requests are late
    done, pending = await asyncio.wait(workers, timeout=max(2.0, seconds))
    for task in pending:
        task.cancel()
    errors += sum(1 for task in done if task.exception() is not None)
    elapsed = (clock() - start) / 1e9
    cpu_share = (_cpu_seconds() - cpu_before) / elapsed
    unfinished = total - len(latencies)
    latencies.sort()
    lags.sort()
    ranked = latencies + [math.inf] * unfinished
    return {
        "offered_rps": rate,
        "requests": len(latencies),
        "achieved_rps": len(latencies) / elapsed,
        "dispatch_seconds": (dispatched - start) / 1e9,
        "p50_ms": percentile(ranked, 0.50),
        "p99_ms": percentile(ranked, 0.99),
        "max_ms": ranked[-1] if ranked else 0.0,
        "generator_cpu": cpu_share,  # of one core: near 1, the generator was the bottleneck
        "lag_p50_ms": percentile(lags, 0.50),
        "lag_p99_ms": percentile(lags, 0.99),
        "unfinished": unfinished,
        "errors": errors,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> None:
    url, rate, seconds, connections, body_file, *header_lines = argv
    headers = dict(line.split(": ", 1) for line in header_lines)
    with open(body_file, "rb") as f:
        body = f.read()
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        runner = asyncio.run
    result = runner(run(url, float(rate), float(seconds), int(connections), body, headers))
    # JSON has no infinity: a p99 past the drain window is written as null (never answered in time)
    sys.stdout.write(orjson.dumps({k: (None if v == math.inf else v) for k, v in result.items()}).decode() + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
