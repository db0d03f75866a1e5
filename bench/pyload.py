"""The fallback load generator when wrk is not installed: N keep-alive connections, each sending POSTs back to back.

Raw HTTP/1.1 on asyncio streams (uvloop when installed), so the generator costs as little CPU as Python allows.
Run: python -m bench.pyload URL CONNECTIONS SECONDS BODY_FILE [HEADER: VALUE ...]; prints one JSON object.
"""

from __future__ import annotations

import asyncio
import sys
import time
from urllib.parse import urlsplit

import orjson


def build_request(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
             f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length or chunked body); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    start = lowered.find(b"\r\ncontent-length:")
    if start >= 0:
        end = lowered.index(b"\r\n", start + 2)
        await reader.readexactly(int(lowered[start + 17:end]))
    elif b"transfer-encoding: chunked" in lowered:
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def run(url: str, connections: int, seconds: float, body: bytes, headers: dict[str, str]) -> dict:
    parts = urlsplit(url)
    request = build_request(url, body, headers)
    latencies: list[int] = []
    errors = 0
    stop_at = 0.0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=1 << 20)
        clock = time.perf_counter_ns
        try:
            while time.monotonic() < stop_at:
                started = clock()
                writer.write(request)
                status = await read_response(reader)
                latencies.append(clock() - started)
                if status >= 300:
                    errors += 1
        finally:
            writer.close()

    stop_at = time.monotonic() + seconds
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(connection() for _ in range(connections)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    errors += sum(1 for o in outcomes if isinstance(o, BaseException))
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] / 1e6 if latencies else 0.0

    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "errors": errors}


def main(argv: list[str]) -> None:
    url, connections, seconds, body_file, *header_lines = argv
    headers = dict(line.split(": ", 1) for line in header_lines)
    with open(body_file, "rb") as f:
        body = f.read()
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        runner = asyncio.run
    result = runner(run(url, int(connections), float(seconds), body, headers))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
