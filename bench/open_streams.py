"""Memory with many streams open at once: N clients each hold a slow stream (one chunk a second) while the target's
process tree RSS is sampled, and the CPU it spends keeping them ticking (N chunks a second) is read from /proc.

The client is raw asyncio protocols, one socket and a few hundred bytes each, so 10,000 of them cost the bench little
and the figure is the target's. Each stream counts as open once its first SSE event arrived; opening is ramped
(`ramp` at once) so the target's accept backlog never overflows into SYN retries. 10,000 streams need about 20,000
descriptors in the gateway (client and upstream side): procs.raise_open_files() lifts the limit for the bench and
every process it starts; where the hard limit stays below that (no CAP_SYS_RESOURCE), as many streams as fit are held
and the result says so.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.procs import Service, tree_cpu_seconds, tree_pids
from bench.pyload import build_request

_SPARE = 64  # descriptors left for what a stream's setup opens beside its two sockets
STALL_SECONDS = 10.0  # fewer than 0.5% of the streams opened over this long: the target has stopped taking them


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
            self.first.set_exception(RuntimeError(self.head[:600].decode(errors="replace")))
        elif b"\n\n" in self.head[end + 4:]:
            self.first.set_result(None)
            self.head = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.first.done():
            self.first.set_exception(exc or ConnectionError("closed before the first event"))


def open_descriptors(service: Service) -> int:
    """Descriptors the service's tree has open now."""
    total = 0
    for pid in tree_pids(service.proc.pid):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return total


def descriptor_limit(pid: int) -> int:
    """The process's soft RLIMIT_NOFILE, from /proc/<pid>/limits (what it inherited from the bench)."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                value = line.split()[3]
                return 1 << 30 if value == "unlimited" else int(value)
    except (OSError, IndexError, ValueError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def streams_that_fit(service: Service) -> int:
    """A stream costs the gateway two descriptors (client and upstream sockets); what it has open already stays."""
    limit = min(descriptor_limit(service.proc.pid), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    return max(0, (limit - open_descriptors(service) - _SPARE) // 2)


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
    progress = [(started, 0)]  # (when, opened): a target that stops taking streams is not waited for
    stalled = False
    while not opening.done() and time.perf_counter() < deadline:
        peak = max(peak, service.rss_bytes())
        await asyncio.wait([opening], timeout=0.5)
        now = time.perf_counter()
        progress.append((now, opened))
        window = [n for t, n in progress if t >= now - STALL_SECONDS]
        if now - started > STALL_SECONDS and opened - window[0] < max(10, count // 200):
            stalled = True
            break
    open_seconds = time.perf_counter() - started
    cpu_before, hold_started = sum(tree_cpu_seconds(service.proc.pid)), time.perf_counter()
    for _ in range(10):  # every stream open and ticking
        peak = max(peak, service.rss_bytes())
        await asyncio.sleep(0.2)
    hold_cpu = (sum(tree_cpu_seconds(service.proc.pid)) - cpu_before) / (time.perf_counter() - hold_started)
    opening.cancel()  # streams still opening at the deadline count as failed
    await asyncio.gather(opening, return_exceptions=True)
    for holder in holders:
        if holder.transport is not None:
            holder.transport.close()
    await asyncio.sleep(0.5)
    return {"opened": opened, "failed": count - opened, "open_seconds": open_seconds,
            "idle_rss_mb": idle / 2**20, "rss_mb": peak / 2**20, "hold_cpu_percent": 100 * hold_cpu,
            "stalled": stalled, "first_error": repr(failures[0])[:600] if failures else None}


def open_streams(url: str, body: bytes, headers: dict[str, str], service: Service, count: int = 1000,
                 timeout: float | None = None, ramp: int = 256) -> dict[str, Any]:
    """Hold `count` streams open, or as many as the descriptor limit allows (then `limited_by` says so and
    `rss_at_count_mb` extrapolates the RSS to `count` by the measured per-stream slope)."""
    fit = streams_that_fit(service)
    attempted = min(count, fit)
    timeout = timeout or max(60.0, attempted / 50)  # ~500 a second open on a quiet 2-core machine; a margin of 10x
    found = asyncio.run(_open_streams(url, body, headers, attempted, service, timeout, ramp))
    found.update(streams=count, attempted=attempted, limited_by=None, rss_at_count_mb=found["rss_mb"])
    if attempted < count:
        limit = descriptor_limit(service.proc.pid)
        found["limited_by"] = (f"RLIMIT_NOFILE {limit} here (hard limit; raising it needs CAP_SYS_RESOURCE): "
                               f"{attempted:,} streams fit, {count:,} need ~{2 * count + 2 * _SPARE:,}")
        if found["opened"]:
            slope = (found["rss_mb"] - found["idle_rss_mb"]) / found["opened"]
            found["rss_at_count_mb"] = found["idle_rss_mb"] + slope * count
    return found
