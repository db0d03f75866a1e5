"""Memory with many streams open at once: N clients each hold a slow stream (one chunk a second) while the target's
process tree RSS is sampled.

The client is raw asyncio protocols, one socket and a few hundred bytes each, so 10,000 of them cost the bench little
and the figure is the target's. Each stream counts as open once its first SSE event arrived; opening is ramped
(`ramp` at once) so the target's accept backlog never overflows into SYN retries. 10,000 streams need about 20,000
descriptors in the gateway (client and upstream side): procs.raise_open_files() lifts the limit for the bench and
every process it starts.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any
from urllib.parse import urlsplit

from bench.procs import Service
from bench.pyload import build_request


class _Holder(asyncio.Protocol):
    """One held stream: sends the request, resolves `first` at the first event, then discards what arrives."""

    def __init__(self, request: bytes, first: asyncio.Future[None]) -> None:
        self.request = request
        self.first = first
        self.head = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.first.done():
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        if not self.head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            self.first.set_exception(RuntimeError(self.head[:200].decode(errors="replace")))
        elif b"\n\n" in self.head[end + 4:]:
            self.first.set_result(None)
            self.head = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.first.done():
            self.first.set_exception(exc or ConnectionError("closed before the first event"))


def descriptors_needed(count: int) -> int:
    """What the gateway needs for `count` streams: one socket to the client, one to the upstream, some spare."""
    return 2 * count + 512


async def _open_streams(url: str, body: bytes, headers: dict[str, str], count: int, service: Service,
                        timeout: float, ramp: int) -> dict[str, Any]:
    parts = urlsplit(url)
    request = build_request(url, body, headers)
    loop = asyncio.get_running_loop()
    idle = service.rss_bytes()
    gate = asyncio.Semaphore(ramp)
    holders: list[_Holder] = []
    opened = 0
    failures: list[BaseException] = []
    peak = idle

    async def hold() -> None:
        nonlocal opened
        async with gate:
            first: asyncio.Future[None] = loop.create_future()
            try:
                _, holder = await loop.create_connection(lambda: _Holder(request, first), parts.hostname, parts.port)
                holders.append(holder)
                await first
                opened += 1
            except (OSError, RuntimeError) as exc:
                failures.append(exc)

    started = time.perf_counter()
    opening = asyncio.gather(*(hold() for _ in range(count)))
    deadline = started + timeout
    while not opening.done() and time.perf_counter() < deadline:
        peak = max(peak, service.rss_bytes())
        await asyncio.wait([opening], timeout=0.5)
    open_seconds = time.perf_counter() - started
    for _ in range(10):  # every stream open and ticking
        peak = max(peak, service.rss_bytes())
        await asyncio.sleep(0.2)
    opening.cancel()
    for holder in holders:
        if holder.transport is not None:
            holder.transport.close()
    await asyncio.sleep(0.5)
    return {"streams": count, "opened": opened, "failed": count - opened, "open_seconds": open_seconds,
            "idle_rss_mb": idle / 2**20, "rss_mb": peak / 2**20,
            "first_error": repr(failures[0])[:200] if failures else None}


def open_streams(url: str, body: bytes, headers: dict[str, str], service: Service, count: int = 1000,
                 timeout: float = 120.0, ramp: int = 256) -> dict[str, Any]:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < descriptors_needed(count):
        return {"streams": count, "opened": 0, "failed": count, "skipped":
                f"RLIMIT_NOFILE is {soft}: {count} streams need ~{descriptors_needed(count)} (ulimit -Hn, or root)"}
    return asyncio.run(_open_streams(url, body, headers, count, service, timeout, ramp))
