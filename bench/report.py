"""Tables from a run's results: a side-by-side summary and a per-concurrency detail, as text or Markdown."""

from __future__ import annotations

from typing import Any

from bench import frontier
from bench.verdict import verdicts

Table = tuple[list[str], list[list[str]]]


def _k(rps: float) -> str:
    return f"{rps / 1000:.2f}k" if rps >= 1000 else f"{rps:.0f}"


def summary_table(results: dict[str, Any]) -> Table:
    conns = results["connections"]
    header = ["target", *(f"req/s c={c}" for c in conns), "p50 c=1 ms", "added p50 c=1 ms", "peak RSS MB", "note"]
    rows = []
    direct = results["targets"].get("direct", {}).get("load", {})
    for key, entry in results["targets"].items():
        load = entry.get("load", {})
        if entry.get("skipped") or not load:
            rows.append(
                [entry["label"], *("-" for _ in conns), "-", "-", "-", entry.get("skipped") or entry.get("error", "")]
            )
            continue
        first = load.get(str(conns[0]), {})
        base = direct.get(str(conns[0]))
        added = f"{first['p50_ms'] - base['p50_ms']:+.3f}" if base and first and key != "direct" else "-"
        errors = sum(row["errors"] for row in load.values())
        note = f"{errors} errors" if errors else entry.get("error", "")
        rows.append(
            [
                entry["label"],
                *(_k(load[str(c)]["rps"]) if str(c) in load else "-" for c in conns),
                f"{first.get('p50_ms', 0):.3f}",
                added,
                f"{max(row['peak_rss_mb'] for row in load.values()):.0f}",
                note,
            ]
        )
    return header, rows


def detail_table(results: dict[str, Any]) -> Table:
    header = ["target", "conns", "req/s", "p50 ms", "p99 ms", "added p50 ms", "peak RSS MB", "errors"]
    rows = []
    direct = results["targets"].get("direct", {}).get("load", {})
    for key, entry in results["targets"].items():
        for c, row in entry.get("load", {}).items():
            base = direct.get(c)
            added = f"{row['p50_ms'] - base['p50_ms']:+.3f}" if base and key != "direct" else "-"
            rows.append(
                [
                    entry["label"],
                    c,
                    f"{row['rps']:.0f}",
                    f"{row['p50_ms']:.3f}",
                    f"{row['p99_ms']:.3f}",
                    added,
                    f"{row['peak_rss_mb']:.0f}",
                    str(row["errors"]),
                ]
            )
    return header, rows


def stream_table(results: dict[str, Any]) -> Table:
    header = ["target", "TTFB ms", "200-chunk stream ms", "x pass-through", "chunks/s, 1 stream",
              "chunks/s, 8 streams", "events"]
    rows = []
    reference = (results["targets"].get("minimal") or {}).get("stream")
    for entry in results["targets"].values():
        s = entry.get("stream")
        if s:
            events = f"{s['frames_min']:.0f}" if s["frames_min"] == s["frames_max"] else (
                f"{s['frames_min']:.0f}-{s['frames_max']:.0f} (cut or merged!)")
            rows.append(
                [
                    entry["label"],
                    f"{s['ttfb_ms']:.2f}",
                    f"{s['stream_ms']:.2f}",
                    f"{s['stream_ms'] / reference['stream_ms']:.2f}x" if reference else "-",
                    f"{s['chunks_per_s']:,.0f}",
                    f"{s['chunks_per_s_8_streams']:,.0f}",
                    events,
                ]
            )
    return header, rows


def frontier_table(results: dict[str, Any]) -> Table:
    """Per target: the closed-loop peak, then the highest open-loop req/s with p99 under each bound."""
    bounds = frontier.BOUNDS_MS
    header = ["target", "peak req/s (wrk)", *(f"req/s at p99 < {b:g} ms" for b in bounds), "points (offered: p99 ms)"]
    rows = []
    for entry in results["targets"].values():
        found = entry.get("frontier")
        if not found:
            continue
        points = ", ".join(
            f"{_k(p['offered_rps'])}: {'never' if p['p99_ms'] is None else format(p['p99_ms'], '.1f')}"
            + ("" if frontier.usable(p) else " (generator lag)")
            for p in found["points"]
        )
        rows.append([entry["label"], _k(found["peak_rps"]), *(frontier.describe(found, b) for b in bounds), points])
    return header, rows


def workers_scaling(results: dict[str, Any]) -> list[tuple[int, float]]:
    one = results["targets"].get("gateway-off", {}).get("load", {})
    two = results["targets"].get("gateway-workers2", {}).get("load", {})
    return [
        (c, two[str(c)]["rps"] / one[str(c)]["rps"])
        for c in results["connections"]
        if str(c) in one and str(c) in two and one[str(c)]["rps"]
    ]


def verdict_table(results: dict[str, Any]) -> Table:
    return ["target", "wanted", "measured", "status"], [
        [v.target, v.wanted, v.measured, v.status] for v in verdicts(results)
    ]


def text(table: Table) -> str:
    header, rows = table
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    # the last column (notes) is left ragged so a long skip reason does not widen every line
    widths[-1] = len(header[-1])
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def markdown(table: Table) -> str:
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cpus_line(cpus: dict[str, Any] | None) -> str:
    if not cpus:
        return "cpus: not pinned (one CPU, no taskset, or --no-pin)"
    return (
        f"cpus: load generator and upstream on {cpus['load_and_upstream']}, each one-worker target on "
        f"{cpus['targets']}; --workers 2 on all"
    )


def _open_streams_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for o in results["targets"].get("gateway-off", {}).get("open_streams") or []:
        lines.append(
            f"{o['streams']:,} open streams (gateway, policies off): {o['opened']:,} open of {o['attempted']:,} tried "
            f"in {o['open_seconds']:.1f} s, "
            f"RSS {o['idle_rss_mb']:.1f} MB idle -> {o['rss_mb']:.1f} MB, {o['failed']} failed, "
            f"{o.get('hold_cpu_percent', 0):.0f}% of a core while held"
            + (f"; stalled (under 0.5% more opened in 10 s) at {o['opened']:,}" if o.get("stalled") else "")
            + (f" (first: {o['first_error']})" if o.get("first_error") else "")
            + (f"; {o['limited_by']}; ~{o['rss_at_count_mb']:.0f} MB at {o['streams']:,} by slope"
               if o.get("limited_by") else "")
        )
    return lines


def _leak_lines(results: dict[str, Any]) -> list[str]:
    found = results.get("leak")
    lines = []
    for kind in ("whole", "streamed"):
        one = (found or {}).get(kind)
        if not one:
            continue
        step = max(1, len(one["samples"]) // 10)
        series = ", ".join(f"{_k(n)}: {rss:.1f}" for n, rss in one["samples"][::step])
        lines.append(
            f"leak check, {kind} requests ({found['target']}): {one['requests']} requests, {one['errors']} errors, "
            f"RSS MB {series}; growth {one['growth_mb']:+.1f} MB after warm-up"
        )
    return lines


def sections(results: dict[str, Any], render=text) -> list[tuple[str, str]]:
    """(title, body) for each part of the report, in the order BENCHMARKS.md holds them."""
    m = results["machine"]
    out = [("Run", "\n".join([
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}, Python {m['python']}",
        (
            f"load: {results['loadgen']}, {results['seconds']:g}s per point, median of {results.get('rounds', 1)} "
            f"round(s); upstream: {results['upstream']}"
        ),
        _cpus_line(results.get("cpus")),
        f"open files limit (bench and every target): {results.get('open_files_limit', '?')}",
    ]))]
    out.append(("Requests", render(summary_table(results))))
    out.append(("Requests, each concurrency", render(detail_table(results))))
    streams = stream_table(results)
    if streams[1]:
        out.append(("Streams", render(streams)))
    frontiers = frontier_table(results)
    if frontiers[1]:
        settings = results.get("frontier_settings") or {}
        note = (
            f"open loop (bench/openloop.py): offered rates of {settings.get('fractions')} x the peak, "
            f"{settings.get('seconds', '?')} s each on {settings.get('connections', '?')} connections, up to the first "
            "point past 50 ms (a first breach measured twice); '>=': never breached in the sweep; '(generator)': the "
            "Python generator ran out first"
        )
        out.append(("Throughput frontier", note + "\n\n" + render(frontiers)))
    memory = _open_streams_lines(results) + _leak_lines(results)
    native = [
        f"{e['label']}: {', '.join(e['native']) or 'neither'}"
        for e in results["targets"].values()
        if e.get("native") is not None and "gateway" in e["label"]
    ]
    if native:
        memory.append("uvloop/httptools loaded: " + "; ".join(native))
    scaling = workers_scaling(results)
    if scaling:
        memory.append("gateway --workers 2 over one worker: " + ", ".join(f"{r:.2f}x at c={c}" for c, r in scaling))
    if memory:
        out.append(("Memory and processes", "\n".join(memory if render is text else (f"- {line}" for line in memory))))
    out.append(("Targets", render(verdict_table(results))))
    return out


def full_report(results: dict[str, Any], render=text) -> str:
    if render is markdown:
        return "\n\n".join(f"### {title}\n\n{body}" for title, body in sections(results, render))
    return "\n\n".join(body for _, body in sections(results, render))
