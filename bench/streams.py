"""Streaming: time to first byte, the 200-chunk stream's time and chunk rate with 1 and with 8 streams at once.

Every stream is read to its end and its SSE events counted: a target that merged or dropped the upstream's events
shows it in `frames_min` / `frames_max` (201 is right: 200 chunks and the [DONE] line).
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from bench.targets import StreamSpec

_HEADERS = {"Content-Type": "application/json"}
PARALLEL = 8


async def _one_stream(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
                      ) -> tuple[float, float, int]:
    """(seconds to the first data bytes, seconds to the end, SSE events received)."""
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
    connector = aiohttp.TCPConnector(limit=PARALLEL)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(3):  # warm the connection and the target's pools
            await _one_stream(session, url, body, headers)
        runs = [await _one_stream(session, url, body, headers) for _ in range(count)]
        batches = []  # PARALLEL streams at once, several times: one batch alone is too few to judge
        for _ in range(max(3, count // PARALLEL)):
            started = time.perf_counter()
            parallel = await asyncio.gather(*(_one_stream(session, url, body, headers) for _ in range(PARALLEL)))
            batches.append((time.perf_counter() - started, parallel))
    ttfb = statistics.median(r[0] for r in runs)
    total = statistics.median(r[1] for r in runs)
    frames = [r[2] for r in runs] + [r[2] for _, parallel in batches for r in parallel]
    return {
        "frames": runs[0][2],  # chunks + the [DONE] line
        "frames_min": min(frames),
        "frames_max": max(frames),
        "ttfb_ms": ttfb * 1e3,
        "stream_ms": total * 1e3,
        "chunks_per_s": runs[0][2] / total,
        "chunks_per_s_8_streams": statistics.median(sum(r[2] for r in p) / seconds for seconds, p in batches),
    }


def stream_figures(url: str, spec: StreamSpec, headers: dict[str, str], count: int = 30) -> dict[str, float]:
    return asyncio.run(_stream_figures(url + spec.path, spec.body, headers, count))


def median_figures(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds; the event counts the extremes seen."""
    out = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    out["frames_min"] = min(r["frames_min"] for r in rounds)
    out["frames_max"] = max(r["frames_max"] for r in rounds)
    return out
