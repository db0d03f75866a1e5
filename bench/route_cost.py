"""`python -m bench.route_cost`: the gateway's own CPU per request on each route, measured in process.

The app runs in this process with no HTTP server in front (the ASGI call is made directly), the upstream is nginx
(`return 200` with a fixed chat completion or Anthropic message) or the Python upstream, so this process's CPU time
(time.process_time) is the gateway's translation, validation, policies and upstream client, nothing else. Batches of
each route are interleaved and the medians reported: a shared machine's noise hits every route alike. `--opcodes`
counts the Python bytecode instructions a request executes instead (sys.settrace): slow, but the same figure on any
machine under any load, where CPU time on a busy VM moves by tens of percent.

    python -m bench.route_cost --requests 300 --rounds 9
    python -m bench.route_cost --opcodes
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench import gateway_configs, nginx
from bench.payloads import MESSAGES_REQUEST, REQUEST
from bench.run import start_nginx_upstream, start_python_upstream

ROUTES = {
    "chat -> openai upstream": ("/v1/chat/completions", {**REQUEST, "model": "bench"}),
    "messages -> openai upstream (translated)": ("/v1/messages", {**MESSAGES_REQUEST, "model": "bench"}),
    "chat -> anthropic upstream": ("/v1/chat/completions", {**REQUEST, "model": "bench-anthropic"}),
    "messages -> anthropic upstream (native)": ("/v1/messages", {**MESSAGES_REQUEST, "model": "bench-anthropic"}),
}


async def call(app: Any, path: str, body: bytes) -> int:
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "scheme": "http", "http_version": "1.1", "server": ("127.0.0.1", 8080),
             "client": ("127.0.0.1", 5000),
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"anthropic-version", b"2023-06-01")]}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


class _Opcodes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            self.count += 1
        return self


async def count_opcodes(app: Any, requests: int, rounds: int) -> dict[str, list[float]]:
    """Python bytecode instructions per request, per route (rounds of `requests` requests)."""
    counts: dict[str, list[float]] = {}
    for name, (path, body) in ROUTES.items():
        raw = orjson.dumps(body)
        for _ in range(50):
            assert await call(app, path, raw) == 200
        counts[name] = []
        for _ in range(rounds):
            tracer = _Opcodes()
            sys.settrace(tracer)
            try:
                for _ in range(requests):
                    await call(app, path, raw)
            finally:
                sys.settrace(None)
            counts[name].append(tracer.count / requests)
    return counts


async def measure(app: Any, requests: int, rounds: int) -> dict[str, list[float]]:
    bodies = {name: (path, orjson.dumps(body)) for name, (path, body) in ROUTES.items()}
    for path, body in bodies.values():  # warm-up: pools, caches, first-use imports
        for _ in range(50):
            assert await call(app, path, body) == 200
    costs: dict[str, list[float]] = {name: [] for name in bodies}
    for _ in range(rounds):
        for name, (path, body) in bodies.items():
            started = time.process_time()
            for _ in range(requests):
                await call(app, path, body)
            costs[name].append((time.process_time() - started) / requests * 1e6)
    return costs


async def run(config: Path, requests: int, rounds: int, opcodes: bool) -> dict[str, list[float]]:
    from llm_gateway.composition.root import create_app
    from llm_gateway.config.settings import load_settings

    app = create_app(load_settings(config, env={}))
    async with app.router.lifespan_context(app):
        return await (count_opcodes if opcodes else measure)(app, requests, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.route_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per route per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--opcodes", action="store_true", help="count Python bytecode instructions, not CPU time")
    args = parser.parse_args(argv)
    if args.opcodes and args.requests == 300:
        args.requests, args.rounds = 20, 3  # tracing is ~50x slower; the count hardly varies
    with tempfile.TemporaryDirectory(prefix="bench-route-") as tmp:
        workdir = Path(tmp)
        slow = start_python_upstream(workdir)
        upstream = start_nginx_upstream(workdir) if nginx.nginx_binary() is not None else slow
        try:
            text = gateway_configs.base_config(workdir, 0, upstream.url, slow.url) + gateway_configs.QUIET
            config = gateway_configs.write(workdir / "gateway", text)
            costs = asyncio.run(run(config, args.requests, args.rounds, args.opcodes))
        finally:
            if upstream is not slow:
                upstream.stop()
            slow.stop()
    unit = "Python opcodes" if args.opcodes else "us"
    what = "Python bytecode instructions" if args.opcodes else "CPU us"
    print(f"{args.rounds} rounds x {args.requests} requests per route, in process, medians of {what}/request")
    medians = {name: statistics.median(values) for name, values in costs.items()}
    for name, us in medians.items():
        spread = f"{min(costs[name]):.1f}..{max(costs[name]):.1f}"
        print(f"  {name:<44} {us:7.1f} {unit}  (rounds {spread})")
    chat, messages = medians["chat -> openai upstream"], medians["messages -> openai upstream (translated)"]
    a_chat, a_messages = medians["chat -> anthropic upstream"], medians["messages -> anthropic upstream (native)"]
    print(f"  messages / chat, openai upstream:    {messages / chat:.3f}x   (target: within 1.10x)")
    print(f"  messages / chat, anthropic upstream: {a_messages / a_chat:.3f}x   (target: at most 1.00x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
