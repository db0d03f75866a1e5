"""The issue's targets, judged on one run's figures: met, missed (by how much), or not measured (and why)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    target: str
    wanted: str
    measured: str
    met: bool | None  # None: not measured in this run

    @property
    def status(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


def _rps(results: dict[str, Any], key: str, connections: int) -> float | None:
    entry = results["targets"].get(key) or {}
    row = entry.get("load", {}).get(str(connections))
    if not row or row.get("errors"):
        return None
    return row["rps"]


def _ratio(results: dict, name: str, key: str, ref: str, connections: tuple[int, ...], floor: float) -> list[Verdict]:
    verdicts = []
    for c in connections:
        mine, theirs = _rps(results, key, c), _rps(results, ref, c)
        if c not in results["connections"]:
            continue
        if mine is None or theirs is None:
            verdicts.append(Verdict(f"{name}, c={c}", f">= {floor:g}x {ref}", "-", None))
            continue
        ratio = mine / theirs
        verdicts.append(Verdict(f"{name}, c={c}", f">= {floor:g}x {ref}",
                                f"{ratio:.2f}x ({mine:.0f} / {theirs:.0f} req/s)", ratio >= floor))
    return verdicts


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    out = []
    out += _ratio(results, "policies off vs minimal proxy", "gateway-off", "minimal", (8, 64), 0.8)
    out += _ratio(results, "auth+rate limit+PII vs minimal proxy", "gateway-policies", "minimal", (8, 64), 0.6)
    out += _ratio(results, "auth+rate limit on Redis+keys on PostgreSQL vs in-process", "gateway-auth-shared",
                  "gateway-auth-local", (8, 64), 0.85)
    out += _ratio(results, "replay hits vs minimal proxy", "gateway-replay", "minimal", (1, 8, 64), 1.0)
    out += _ratio(results, "policies off vs LiteLLM", "gateway-off", "litellm", (64,), 30.0)
    added = added_p50(results, "gateway-off", 1)
    out.append(Verdict("added p50 latency at c=1 (policies off)", "<= 0.300 ms over direct",
                       "-" if added is None else f"{added:.3f} ms", None if added is None else added <= 0.3))
    streams = (results["targets"].get("gateway-off") or {}).get("open_streams")
    if streams and streams["streams"] < 1000:  # a smoke run: a figure, but not the target's size
        out.append(Verdict(f"{streams['streams']} open streams", "< 200 MB RSS with 1000",
                           f"{streams['rss_mb']:.0f} MB", None))
    elif streams and streams["opened"] == streams["streams"]:
        out.append(Verdict(f"{streams['streams']} open streams", "< 200 MB RSS", f"{streams['rss_mb']:.0f} MB",
                           streams["rss_mb"] < 200))
    else:
        measured = f"only {streams['opened']} of {streams['streams']} opened" if streams else "-"
        out.append(Verdict("1000 open streams", "< 200 MB RSS", measured, False if streams else None))
    leak = results.get("leak")
    if leak:
        out.append(Verdict(f"RSS over {leak['requests']} requests ({leak['target']})", "flat (growth < 5 MB)",
                           f"{leak['baseline_rss_mb']:.1f} -> {leak['final_rss_mb']:.1f} MB",
                           leak["growth_mb"] < 5 and not leak["errors"]))
    else:
        out.append(Verdict("RSS flat over 100k requests", "growth < 5 MB", "- (run with --leak)", None))
    return out


def added_p50(results: dict[str, Any], key: str, connections: int) -> float | None:
    mine = (results["targets"].get(key) or {}).get("load", {}).get(str(connections))
    direct = (results["targets"].get("direct") or {}).get("load", {}).get(str(connections))
    if not mine or not direct:
        return None
    return mine["p50_ms"] - direct["p50_ms"]
