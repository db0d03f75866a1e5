"""`gateway stats`: the usage page's figures in a terminal, read from a running gateway's /ui/api/stats."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from llm_gateway.cli.common import add_config_argument, config_path, load_config
from llm_gateway.config.settings import ConfigError, Settings, load_settings

_SPARK = "▁▂▃▄▅▆▇█"


def register(sub: argparse._SubParsersAction) -> None:
    stats = sub.add_parser("stats", help="print a running gateway's usage: requests, latency, tokens, spend, health")
    stats.add_argument("--url", help="the gateway's base URL (default: [server] host and port of the config)")
    add_config_argument(stats)
    stats.add_argument("--key", help="the master key, when auth is on (default: the config's [auth] master_key)")
    stats.add_argument("--json", action="store_true", help="print the stats JSON as the gateway answered it")
    stats.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    settings = None
    if not args.url or not args.key:  # where it listens and its master key: from the config, unless given
        intro = "gateway stats: give --url, or a config whose [server] says where the gateway listens:"
        settings = load_config(args, intro=intro) if not args.url else _quietly(args)
        if settings is None and not args.url:
            return 2
    url = args.url or _url_of(settings)
    key = args.key or (settings.auth.master_key if settings is not None else "")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(url.rstrip("/") + "/ui/api/stats", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        print(f"gateway stats: could not reach {url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        print(f"gateway stats: {url} answered {response.status_code}: {message}", file=sys.stderr)
        return 1
    stats = response.json()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(format_stats(stats, url))
    return 0


def _quietly(args: argparse.Namespace) -> Settings | None:
    try:
        return load_settings(config_path(args))
    except ConfigError:
        return None  # --url was given: the config was only asked for its master key


def _url_of(settings: Settings | None) -> str:
    assert settings is not None
    server = settings.server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    return f"http://{host}:{server.port}"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def sparkline(values: list[float]) -> str:
    top = max(values, default=0) or 1
    return "".join(_SPARK[min(len(_SPARK) - 1, int(v / top * (len(_SPARK) - 1) + 0.5))] for v in values)


def _table(title: str, header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return [f"{title}: none"]
    cells = [header] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title]
    for row in cells:
        lines.append(
            "  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        )
    return lines


def _groups(groups: dict[str, dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            name,
            g["requests"],
            g["errors"],
            seconds(g["p50_seconds"]),
            seconds(g["p95_seconds"]),
            g["prompt_tokens"],
            g["completion_tokens"],
            usd(g["spend_usd"]),
        ]
        for name, g in groups.items()
    ]


def format_stats(stats: dict[str, Any], url: str) -> str:
    t = stats["totals"]
    rec = stats["recording"]
    lines = [
        f"{url}  replica {stats.get('replica', '?')}  worker pid {stats['pid']}  record mode {stats['record_mode']}"
        + (f"  ({len(stats['replicas'])} workers across the fleet)" if stats.get("replicas") else ""),
        (
            f"requests {t['requests']}  errors {t['errors']}  p50 {seconds(t['p50_seconds'])}  "
            f"p95 {seconds(t['p95_seconds'])}  tokens {t['total_tokens']}  spend {usd(t['spend_usd'])}  "
            f"recording hit rate {rate(rec['hit_rate'])}  in flight {stats['in_flight']}"
        ),
    ]
    series = stats["series"]
    if series:
        lines.append(f"requests per {stats['bucket_seconds']:g} s  {sparkline([b['requests'] for b in series])}")
    lines.append("")
    group_header = ["", "requests", "errors", "p50", "p95", "prompt tokens", "completion tokens", "spend"]
    lines += _table("by alias", ["alias"] + group_header[1:], _groups(stats["by_alias"]))
    lines += _table("by key", ["key"] + group_header[1:], _groups(stats["by_key"]))
    lines += _table(
        "recordings",
        ["", "hits", "misses", "records", "store errors", "hit rate"],
        [["", rec["hits"], rec["misses"], rec["records"], rec["store_errors"], rate(rec["hit_rate"])]],
    )
    lines += _table(
        "deployments",
        ["alias", "deployment", "health", "cooldown s", "in flight", "served", "errors", "cooldowns"],
        [
            [
                d["alias"],
                d["deployment"],
                "healthy" if d["healthy"] else "cooling down",
                d["cooldown_seconds_left"],
                d["in_flight"],
                d["served"],
                d["errors"],
                d["cooldowns"],
            ]
            for d in stats["deployments"]
        ],
    )
    return "\n".join(lines)
