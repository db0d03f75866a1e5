"""What metrics and the request log cost on the hot path: requests/s with them on and off, in the same run.

Two measurements, each in alternating rounds so drift on the machine hits both alike, medians compared:
- live: two real `gateway serve` processes (mock provider, non-streamed chat) driven over loopback by one keep-alive
  client (on a small machine the client's own CPU makes this one noisy);
- in-process: the two apps called through ASGI with no network, so the gateway's own work is all that is timed
  (the request log still goes through its queue and thread, to /dev/null).

    python -m bench.observability_overhead [--seconds 5] [--rounds 5] [--concurrency 4] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

from llm_gateway.composition.root import create_app
from llm_gateway.config.settings import parse_settings
from llm_gateway.observability.request_log import RequestLog
from tests.support.gateway_process import gateway_process

_BODY = {"model": "mock", "messages": [{"role": "user", "content": "how fast is the gateway?"}]}


def _config(observed: bool) -> str:
    return f"""
[providers.mock]
type = "mock"

[models.mock]
provider = "mock"
model = "mock-1"

[logging]
level = "info"
access_log = {str(observed).lower()}

[metrics]
enabled = {str(observed).lower()}
"""


async def _round(url: str, seconds: float, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        done = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                response = await client.post("/v1/chat/completions", json=_BODY)
                response.raise_for_status()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


async def _in_process(rounds: int, requests: int, sink: IO[str]) -> dict[str, list[float]]:
    import tomllib

    apps = {}
    for name, observed in (("on", True), ("off", False)):
        settings = parse_settings(tomllib.loads(_config(observed)), {})
        app = create_app(settings)
        observer = app.state.gateway.observer
        observer.request_log.close()
        observer.request_log = RequestLog(settings.logging, sink)
        apps[name] = app
    rates: dict[str, list[float]] = {"on": [], "off": []}
    clients = {n: httpx.AsyncClient(transport=httpx.ASGITransport(a), base_url="http://gw") for n, a in apps.items()}
    for client in clients.values():
        for _ in range(200):  # warm up
            await client.post("/v1/chat/completions", json=_BODY)
    for i in range(rounds):
        for name in (("on", "off") if i % 2 == 0 else ("off", "on")):
            started = time.perf_counter()
            for _ in range(requests):
                (await clients[name].post("/v1/chat/completions", json=_BODY)).raise_for_status()
            rates[name].append(requests / (time.perf_counter() - started))
    for client in clients.values():
        await client.aclose()
    for app in apps.values():
        await app.state.gateway.aclose()
    return rates


def _report(label: str, rates: dict[str, list[float]]) -> None:
    on_rate, off_rate = statistics.median(rates["on"]), statistics.median(rates["off"])
    cost = (off_rate - on_rate) / off_rate * 100
    print(f"{label}: metrics+logs on {on_rate:.0f} req/s, off {off_rate:.0f} req/s, cost {cost:+.1f}%", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000, help="per in-process round")
    parser.add_argument("--concurrency", type=int, default=4)  # httpx itself slows past ~8
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as on_dir,
        tempfile.TemporaryDirectory() as off_dir,
        gateway_process(Path(on_dir), _config(True)) as on,
        gateway_process(Path(off_dir), _config(False)) as off,
    ):
        rates: dict[str, list[float]] = {"on": [], "off": []}
        asyncio.run(_round(on.url, 1, args.concurrency))  # warm both up
        asyncio.run(_round(off.url, 1, args.concurrency))
        for i in range(args.rounds):
            order = [("on", on.url), ("off", off.url)] if i % 2 == 0 else [("off", off.url), ("on", on.url)]
            for name, url in order:
                rates[name].append(asyncio.run(_round(url, args.seconds, args.concurrency)))
            print(f"round {i + 1}: on {rates['on'][-1]:.0f} req/s, off {rates['off'][-1]:.0f} req/s", flush=True)
    _report("live, median", rates)
    with open(os.devnull, "w") as sink:
        _report("in-process, median", asyncio.run(_in_process(args.rounds, args.requests, sink)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
