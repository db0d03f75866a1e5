"""`gateway serve` and `gateway check`."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
from typing import Any

from llm_gateway.cli.common import add_config_argument, report_config_error
from llm_gateway.config.masking import masked
from llm_gateway.config.settings import RECORD_MODES, ConfigError, default_config_path, load_settings


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the gateway")
    add_config_argument(serve)
    serve.add_argument("--host", help="override [server] host")
    serve.add_argument("--port", type=int, help="override [server] port")
    serve.add_argument("--workers", type=int, help="override [server] workers")
    serve.add_argument("--record-mode", choices=RECORD_MODES, help="override [recording] mode")
    serve.set_defaults(func=run_serve)

    check = sub.add_parser("check", help="validate the config and print it resolved, secrets masked")
    add_config_argument(check)
    check.set_defaults(func=run_check)


def _load(args: argparse.Namespace):
    path = args.config or default_config_path()
    if getattr(args, "record_mode", None):
        os.environ["GATEWAY_RECORD_MODE"] = args.record_mode
    try:
        return path, load_settings(path)
    except ConfigError as exc:
        report_config_error(exc)
        return path, None


def run_check(args: argparse.Namespace) -> int:
    path, settings = _load(args)
    if settings is None:
        return 2
    print(json.dumps(masked(settings), indent=2, default=str))
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{path}: ok ({len(settings.models)} models, {len(settings.providers)} providers)", file=sys.stderr)
    if not settings.state.shared:
        return 0
    from llm_gateway.composition.state import probe

    unreachable = 0
    for p in asyncio.run(probe(settings.state)):
        print(f"{p.name} at {p.url}: {'ok, ' + p.detail if p.ok else 'UNREACHABLE: ' + p.detail}", file=sys.stderr)
        unreachable += not p.ok
    return 1 if unreachable else 0


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    path, settings = _load(args)
    if settings is None:
        return 2
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if settings.state.shared and not _shared_state_ready(settings):
        return 1
    # workers re-read the file in their own process: hand them the same path
    os.environ["GATEWAY_CONFIG"] = os.path.abspath(path)
    server = settings.server
    workers = args.workers or server.workers
    metrics_dir = _multiprocess_metrics_dir(workers)
    try:
        _run_uvicorn(uvicorn, args, settings, workers)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _shared_state_ready(settings: Any) -> bool:
    """PostgreSQL and Redis answer (Redis may be down with on_redis_error = "open") and the schema is migrated."""
    from llm_gateway.composition.state import startup_check

    problems, notes = asyncio.run(startup_check(settings))
    for note in notes:
        print(f"gateway: {note}", file=sys.stderr)
    for problem in problems:
        print(f"gateway: cannot start: {problem}", file=sys.stderr)
    return not problems


def _multiprocess_metrics_dir(workers: int) -> str | None:
    """With several workers, a fresh empty directory where each worker's metrics live, so a scrape sums them.

    Set before any worker starts (they are spawned and inherit the environment) and before prometheus-client is
    imported there; a directory left by an earlier run is never reused (its counts would be added in).
    """
    if workers <= 1:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return None
    path = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _run_uvicorn(uvicorn: Any, args: argparse.Namespace, settings: Any, workers: int) -> None:
    server = settings.server
    uvicorn.run(
        "llm_gateway.composition.root:app_from_env",
        factory=True,
        host=args.host or server.host,
        port=server.port if args.port is None else args.port,
        workers=workers,
        access_log=False,
        log_level=settings.logging.level,
        # open streams end themselves at the grace deadline (app.py); uvicorn's own cut comes only after that
        timeout_graceful_shutdown=math.ceil(server.shutdown_grace_seconds) + 2,
        server_header=False,
        # nothing reads a client's address (limits and logs go by key and request id), so uvicorn's X-Forwarded-*
        # rewriting would only cost a pass over every request's headers
        proxy_headers=False,
        timeout_keep_alive=max(1, math.ceil(server.keep_alive_seconds)),
        h11_max_incomplete_event_size=server.max_header_bytes,  # when httptools is missing (h11 parses)
        **_http_protocol(),
    )


def _http_protocol() -> dict[str, Any]:
    """httptools with the gateway's HTTP limits (server/http_limits.py), when httptools is installed."""
    try:
        from llm_gateway.server.http_limits import LimitedHttpToolsProtocol
    except ImportError:
        return {}
    return {"http": LimitedHttpToolsProtocol}
