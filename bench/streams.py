"""Streaming: time to first byte and chunk throughput of the 200-chunk stream, and memory with many streams open."""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from bench.procs import Service
from bench.targets import StreamSpec

_HEADERS = {"Content-Type": "application/json"}


async def _one_stream(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
                      ) -> tuple[float, float, int]:
    """(seconds to the first data bytes, seconds to the end, SSE frames received)."""
    started = time.perf_counter()
    first = 0.0
    pieces: list[bytes] = []
    async with session.post(url, data=body, headers={**_HEADERS, **headers}) as response:
        response.raise_for_status()
        async for piece in response.content.iter_any():
            if not first:
                first = time.perf_counter() - started
            pieces.append(piece)
    total = time.perf_counter() - started
    return first, total, b"".join(pieces).count(b"\n\n")


async def _stream_figures(url: str, body: bytes, headers: dict[str, str], count: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(3):  # warm the connection and the target's pools
            await _one_stream(session, url, body, headers)
        runs = [await _one_stream(session, url, body, headers) for _ in range(count)]
        started = time.perf_counter()
        parallel = await asyncio.gather(*(_one_stream(session, url, body, headers) for _ in range(8)))
        parallel_seconds = time.perf_counter() - started
    ttfb = statistics.median(r[0] for r in runs)
    total = statistics.median(r[1] for r in runs)
    frames = runs[0][2]
    return {
        "frames": frames,  # chunks + the [DONE] line
        "ttfb_ms": ttfb * 1e3,
        "stream_ms": total * 1e3,
        "chunks_per_s": frames / total,
        "chunks_per_s_8_streams": sum(r[2] for r in parallel) / parallel_seconds,
    }


def stream_figures(url: str, spec: StreamSpec, headers: dict[str, str], count: int = 30) -> dict[str, float]:
    return asyncio.run(_stream_figures(url + spec.path, spec.body, headers, count))


async def _open_streams(url: str, body: bytes, headers: dict[str, str], count: int, service: Service,
                        timeout: float) -> dict[str, float]:
    idle = service.rss_bytes()
    opened = 0
    all_open = asyncio.Event()
    release = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:

        async def hold() -> None:
            nonlocal opened
            async with session.post(url, data=body, headers={**_HEADERS, **headers}) as response:
                response.raise_for_status()
                await response.content.readuntil(b"\n\n")  # the first chunk: this stream is flowing
                opened += 1
                if opened == count:
                    all_open.set()
                await release.wait()

        started = time.perf_counter()
        tasks = [asyncio.create_task(hold()) for _ in range(count)]
        try:
            await asyncio.wait_for(all_open.wait(), timeout)
        except TimeoutError:
            pass
        open_seconds = time.perf_counter() - started
        peak = 0
        for _ in range(10):  # a few samples while every stream is open and ticking
            peak = max(peak, service.rss_bytes())
            await asyncio.sleep(0.2)
        release.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    return {"streams": count, "opened": opened, "failed": len(failed), "open_seconds": open_seconds,
            "idle_rss_mb": idle / 2**20, "rss_mb": peak / 2**20,
            "first_error": repr(failed[0])[:200] if failed else None}


def open_streams(url: str, spec: StreamSpec, headers: dict[str, str], service: Service, count: int = 1000,
                 timeout: float = 60.0) -> dict[str, float]:
    return asyncio.run(_open_streams(url + spec.path, spec.body, headers, count, service, timeout))
