"""`python -m bench.clients`: the upstream client's own cost, side by side (BENCHMARKS.md, "Upstream client").

aiohttp is the gateway's; pyreqwest (Rust's reqwest and hyper, `pip install pyreqwest` or the bench extra) is the
faster client measured against it, in isolation here and inside the gateway in BENCHMARKS.md.

Each candidate sends the bench's chat request to the nginx upstream (a whole answer, then the 200-chunk stream read
as it arrives) from 8 concurrent tasks on uvloop, pinned to one CPU with nginx on the other, and reports requests/s
and the process's CPU time per request (getrusage: every thread, so a client's own runtime threads count too). Each
reads headers and body as the gateway does: whole answers as bytes, streams piece by piece with no read-ahead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from bench import nginx
from bench.payloads import REQUEST_BODY
from bench.procs import free_port

HEADERS = {"content-type": "application/json"}
Send = Callable[[str, bool], Awaitable[None]]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _aiohttp() -> tuple[Send, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), auto_decompress=False)

    async def send(url: str, stream: bool) -> None:
        async with session.post(url, data=REQUEST_BODY, headers=HEADERS) as response:
            response.headers.get("content-type")
            if stream:
                async for _ in response.content.iter_any():
                    pass
            else:
                await response.read()

    return send, session.close


async def _pyreqwest() -> tuple[Send, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().gzip(False).max_connections(100).build()

    async def send(url: str, stream: bool) -> None:
        request = client.post(url).body_bytes(REQUEST_BODY).headers(HEADERS)
        async with request.streamed_read_buffer_limit(0).build_streamed() as response:
            response.headers.get("content-type")
            if stream:
                reader = response.body_reader
                while (piece := await reader.read_chunk()) is not None:
                    piece.to_bytes()
            else:
                (await response.bytes()).to_bytes()

    return send, client.close


def _installed() -> dict[str, Callable[[], Awaitable[tuple[Send, Callable[[], Awaitable[None]]]]]]:
    clients = {"aiohttp": _aiohttp}
    try:
        import pyreqwest  # noqa: F401
    except ImportError:
        return clients
    clients["pyreqwest"] = _pyreqwest
    return clients


CLIENTS = _installed()


async def measure(name: str, url: str, stream: bool, requests: int, concurrency: int) -> tuple[float, float]:
    send, close = await CLIENTS[name]()
    try:
        for _ in range(300):  # warm-up: the pool's connections open here
            await send(url, stream)

        async def worker(count: int) -> None:
            for _ in range(count):
                await send(url, stream)

        started, cpu = time.perf_counter(), _cpu()
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    finally:
        await close()
    done = requests // concurrency * concurrency
    return done / elapsed, cpu / done * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    if nginx.nginx_binary() is None:
        raise SystemExit("needs nginx (apt-get install nginx-light)")
    with tempfile.TemporaryDirectory(prefix="bench-clients-") as tmp:
        prefix = Path(tmp)
        port = free_port()
        config = nginx.write_config(prefix, nginx.upstream_config(prefix, port))
        cpus = sorted(os.sched_getaffinity(0))
        pin = ["taskset", "-c", str(cpus[0])] if len(cpus) > 1 else []
        server = subprocess.Popen([*pin, *nginx.argv(prefix, config)])
        try:
            time.sleep(0.5)
            if len(cpus) > 1:
                os.sched_setaffinity(0, {cpus[1]})
            print("| client | answer | req/s | CPU us per request |\n|---|---|---|---|")
            for stream in (False, True):
                path = "/stream/v1/chat/completions" if stream else "/v1/chat/completions"
                count = args.requests // 4 if stream else args.requests
                for name in CLIENTS:
                    rate, cpu = uvloop.run(measure(name, f"http://127.0.0.1:{port}{path}", stream, count,
                                                   args.concurrency))
                    kind = "200-chunk stream" if stream else "whole (430 B)"
                    print(f"| {name} | {kind} | {rate:,.0f} | {cpu:.1f} |", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
