"""What every CLI command shares: the `--config` argument, loading it with one report of its problems, tables, dates,
durations and money, so each command reads and prints them the same way."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from llm_gateway.config.settings import ConfigError, Settings, default_config_path, load_settings

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $GATEWAY_CONFIG or ./gateway.toml)")


def config_path(args: argparse.Namespace) -> str:
    return getattr(args, "config", None) or default_config_path()


def report_config_error(exc: ConfigError, *, intro: str = "") -> None:
    print(intro or f"gateway: {len(exc.problems)} problem(s) in the config:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  - {problem}", file=sys.stderr)


def load_config(args: argparse.Namespace, *, intro: str = "") -> Settings | None:
    """The config `--config` names (or the default one), or None after reporting its problems on stderr."""
    try:
        return load_settings(config_path(args))
    except ConfigError as exc:
        report_config_error(exc, intro=intro)
        return None


def duration(text: str) -> float:
    """An argparse type: 90s, 30m, 12h, 7d, 2w (or plain seconds) as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 30m, 12h, 7d or 2w, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def date(when: float | None) -> str | None:
    """A unix time as ISO 8601 in UTC (None stays None)."""
    return None if not when else datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(value) or "all"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows])
