"""`gateway serve` and `gateway check`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from gateway.config import RECORD_MODES, ConfigError, default_config_path, load_settings, masked


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="config file (default: $GATEWAY_CONFIG or ./gateway.toml)")
    serve.add_argument("--host", help="override [server] host")
    serve.add_argument("--port", type=int, help="override [server] port")
    serve.add_argument("--workers", type=int, help="override [server] workers")
    serve.add_argument("--record-mode", choices=RECORD_MODES, help="override [recording] mode")
    serve.set_defaults(func=run_serve)

    check = sub.add_parser("check", help="validate the config and print it resolved, secrets masked")
    check.add_argument("--config", help="config file (default: $GATEWAY_CONFIG or ./gateway.toml)")
    check.set_defaults(func=run_check)


def _load(args: argparse.Namespace):
    path = args.config or default_config_path()
    if getattr(args, "record_mode", None):
        os.environ["GATEWAY_RECORD_MODE"] = args.record_mode
    try:
        return path, load_settings(path)
    except ConfigError as exc:
        print(f"gateway: {len(exc.problems)} problem(s) in the config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return path, None


def run_check(args: argparse.Namespace) -> int:
    path, settings = _load(args)
    if settings is None:
        return 2
    print(json.dumps(masked(settings), indent=2, default=str))
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{path}: ok ({len(settings.models)} models, {len(settings.providers)} providers)", file=sys.stderr)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    path, settings = _load(args)
    if settings is None:
        return 2
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    # workers re-read the file in their own process: hand them the same path
    os.environ["GATEWAY_CONFIG"] = os.path.abspath(path)
    server = settings.server
    uvicorn.run(
        "gateway.app:app_from_env",
        factory=True,
        host=args.host or server.host,
        port=server.port if args.port is None else args.port,
        workers=args.workers or server.workers,
        access_log=False,
        log_level=settings.logging.level,
        timeout_graceful_shutdown=int(server.shutdown_grace_seconds) + 1,
        server_header=False,
    )
    return 0
