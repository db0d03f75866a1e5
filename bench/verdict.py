"""The targets of issue 17 (and LiteLLM's from before), judged on one run's figures: met, missed (by how much), or not
measured (and why). Every ratio is within the run: the gateway targets against the minimal pass-through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import frontier, leak

PASS = "minimal"


@dataclass(frozen=True)
class Verdict:
    target: str
    wanted: str
    measured: str
    met: bool | None  # None: not measured in this run

    @property
    def status(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


def _entry(results: dict[str, Any], key: str) -> dict[str, Any]:
    return results["targets"].get(key) or {}


def _rps(results: dict[str, Any], key: str, connections: int) -> float | None:
    row = _entry(results, key).get("load", {}).get(str(connections))
    if not row or row.get("errors"):
        return None
    return row["rps"]


def _stream(results: dict[str, Any], key: str, figure: str) -> float | None:
    stream = _entry(results, key).get("stream")
    if not stream or stream.get("frames_min") != stream.get("frames_max"):
        return None  # a stream cut short or merged is not a figure
    return stream[figure]


def _ratio(results: dict, name: str, key: str, ref: str, connections: tuple[int, ...], floor: float) -> list[Verdict]:
    verdicts = []
    for c in connections:
        if c not in results["connections"]:
            continue
        mine, theirs = _rps(results, key, c), _rps(results, ref, c)
        if mine is None or theirs is None:
            verdicts.append(Verdict(f"{name}, c={c}", f">= {floor:g}x {ref}", "-", None))
            continue
        ratio = mine / theirs
        verdicts.append(Verdict(f"{name}, c={c}", f">= {floor:g}x {ref}",
                                f"{ratio:.2f}x ({mine:.0f} / {theirs:.0f} req/s)", ratio >= floor))
    return verdicts


def _stream_time(results: dict[str, Any], name: str, key: str, ceiling: float) -> Verdict:
    mine, theirs = _stream(results, key, "stream_ms"), _stream(results, PASS, "stream_ms")
    wanted = f"<= {ceiling:g}x pass-through"
    if mine is None or theirs is None:
        return Verdict(f"200-chunk stream, {name}", wanted, "-", None)
    ratio = mine / theirs
    return Verdict(f"200-chunk stream, {name}", wanted, f"{ratio:.2f}x ({mine:.2f} / {theirs:.2f} ms)",
                   ratio <= ceiling)


def _observability_cost(results: dict[str, Any]) -> list[Verdict]:
    """Metrics + request log: gateway-off (on, as shipped) against gateway-quiet (both off), all else equal."""
    pairs = [(f"req/s c={c}", _rps(results, "gateway-off", c), _rps(results, "gateway-quiet", c))
             for c in results["connections"]]
    pairs += [(f"chunks/s, {n} stream{'s' if n > 1 else ''}", _stream(results, "gateway-off", figure),
               _stream(results, "gateway-quiet", figure))
              for n, figure in ((1, "chunks_per_s"), (8, "chunks_per_s_8_streams"))]
    out = []
    for what, on, off in pairs:
        name = f"metrics + log cost, {what}"
        if on is None or off is None:
            out.append(Verdict(name, "<= 5%", "-", None))
            continue
        cost = (off - on) / off * 100
        out.append(Verdict(name, "<= 5%", f"{cost:+.1f}% ({on:.0f} on / {off:.0f} off)", cost <= 5.0))
    return out


def _added_latency(results: dict[str, Any]) -> Verdict:
    mine, theirs = added_p50(results, "gateway-off", 1), added_p50(results, PASS, 1)
    name, wanted = "added p50 latency at c=1, policies off", "<= pass-through's + 0.050 ms"
    if mine is None or theirs is None:
        return Verdict(name, wanted, "-", None)
    return Verdict(name, wanted, f"{mine:.3f} ms (pass-through {theirs:.3f}, +{mine - theirs:.3f})",
                   mine <= theirs + 0.05)


def _open_streams(results: dict[str, Any]) -> list[Verdict]:
    measured = {o["streams"]: o for o in _entry(results, "gateway-off").get("open_streams") or []}
    out = []
    for count, ceiling in ((1000, 150), (10000, 1024)):
        name, wanted = f"{count:,} open streams, policies off", f"< {ceiling} MB RSS"
        found = measured.get(count)
        if not found:
            out.append(Verdict(name, wanted, "-", None))
        elif found["opened"] < found.get("attempted", count):
            out.append(Verdict(name, wanted, f"only {found['opened']:,} of {found['attempted']:,} opened", False))
        elif found.get("limited_by"):
            out.append(Verdict(name, wanted, f"{found['rss_mb']:.0f} MB with {found['opened']:,} open (descriptor "
                                             f"limit), ~{found['rss_at_count_mb']:.0f} MB at {count:,} by slope",
                               found["rss_at_count_mb"] < ceiling))
        else:
            out.append(Verdict(name, wanted, f"{found['rss_mb']:.0f} MB", found["rss_mb"] < ceiling))
    smaller = sorted(n for n in measured if n not in (1000, 10000))
    for count in smaller:  # a smoke run's size: a figure, but not a target's
        found = measured[count]
        out.append(Verdict(f"{count} open streams", "(not a target's size)",
                           f"{found.get('rss_mb', 0):.0f} MB, {found['opened']}/{count} open", None))
    return out


def _leak(results: dict[str, Any]) -> list[Verdict]:
    found = results.get("leak")
    out = []
    for kind in ("whole", "streamed"):
        one = (found or {}).get(kind)
        name = f"RSS flat over 100k {kind} requests"
        if not one:
            out.append(Verdict(name, f"growth < {leak.FLAT_MB:g} MB", "- (run with --leak)", None))
            continue
        measured = (f"{one['baseline_rss_mb']:.1f} -> {one['final_rss_mb']:.1f} MB over {one['requests']} "
                    f"({found['target']})")
        met = leak.flat(one) if one["requests"] >= 100_000 else None
        out.append(Verdict(name, f"growth < {leak.FLAT_MB:g} MB", measured, met))
    return out


def _frontiers_reported(results: dict[str, Any]) -> Verdict:
    measured = {k: e for k, e in results["targets"].items() if e.get("load")}
    missing = [k for k, e in measured.items() if not e.get("frontier")]
    wanted = "p99 < " + " / ".join(f"{b:g}" for b in frontier.BOUNDS_MS) + " ms, every target"
    if not measured:
        return Verdict("throughput frontier", wanted, "-", None)
    if missing:
        return Verdict("throughput frontier", wanted, "missing: " + ", ".join(missing), False if results.get(
            "frontier_settings") else None)
    return Verdict("throughput frontier", wanted, f"{len(measured)} targets (see the frontier table)", True)


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    out = [
        _stream_time(results, "policies off", "gateway-off", 1.5),
        _stream_time(results, "replay hits", "gateway-replay", 1.5),
        _stream_time(results, "auth+rate limit+PII", "gateway-policies", 2.0),
    ]
    out += _ratio(results, "policies off vs pass-through", "gateway-off", PASS, (8, 64), 1.0)
    out += _ratio(results, "auth+rate limit+PII vs pass-through", "gateway-policies", PASS, (8, 64), 0.8)
    out += _ratio(results, "replay hits vs pass-through", "gateway-replay", PASS, (8, 64), 2.0)
    out += _ratio(results, "auth+rate limit on Redis+keys on PostgreSQL vs in-process", "gateway-auth-shared",
                  "gateway-auth-local", (8, 64), 0.85)
    out += _observability_cost(results)
    out.append(_added_latency(results))
    out += _open_streams(results)
    out += _leak(results)
    out.append(_frontiers_reported(results))
    out += _ratio(results, "policies off vs LiteLLM", "gateway-off", "litellm", (64,), 30.0)
    return out


def added_p50(results: dict[str, Any], key: str, connections: int) -> float | None:
    mine = _entry(results, key).get("load", {}).get(str(connections))
    direct = _entry(results, "direct").get("load", {}).get(str(connections))
    if not mine or not direct:
        return None
    return mine["p50_ms"] - direct["p50_ms"]
