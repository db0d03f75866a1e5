"""The PNG: requests/s per target at each concurrency (log scale), p50 latency at one connection, and each target's
p99 against the open-loop rate it served (the frontier sweep), with the 5 and 50 ms bounds drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_chart(results: dict[str, Any], path: Path) -> str | None:
    """Write the chart; None when done, else why not (matplotlib is the optional `bench` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    measured = {k: e for k, e in results["targets"].items() if e.get("load")}
    if not measured:
        return "nothing was measured: no chart"
    conns = results["connections"]
    labels = [e["label"] for e in measured.values()]
    swept = {k: e for k, e in measured.items() if (e.get("frontier") or {}).get("points")}
    panels = 3 if swept else 2
    fig, axes = plt.subplots(1, panels, figsize=(15 + 6 * (panels - 2), 6),
                             gridspec_kw={"width_ratios": [3, 2, 3][:panels]})
    rps_ax, lat_ax = axes[0], axes[1]
    width = 0.8 / len(conns)
    for i, c in enumerate(conns):
        values = [e["load"].get(str(c), {}).get("rps", 0) for e in measured.values()]
        positions = [x + (i - (len(conns) - 1) / 2) * width for x in range(len(labels))]
        bars = rps_ax.bar(positions, values, width, label=f"{c} conn")
        rps_ax.bar_label(bars, labels=[f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}" for v in values],
                         fontsize=6, rotation=90, padding=2)
    rps_ax.set_yscale("log")
    rps_ax.set_ylabel("requests/s (log)")
    rps_ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    rps_ax.legend()
    rps_ax.set_title("throughput")
    first = str(conns[0])
    p50 = [e["load"].get(first, {}).get("p50_ms", 0) for e in measured.values()]
    p99 = [e["load"].get(first, {}).get("p99_ms", 0) for e in measured.values()]
    lat_ax.barh(range(len(labels)), p99, color="#c8d7ea", label="p99")
    lat_ax.barh(range(len(labels)), p50, color="#3b6fb6", label="p50")
    lat_ax.set_yticks(range(len(labels)), labels, fontsize=8)
    lat_ax.invert_yaxis()
    lat_ax.set_xscale("log")
    lat_ax.set_xlabel(f"latency at {first} connection, ms (log)")
    lat_ax.legend()
    lat_ax.set_title("latency")
    if swept:
        _frontier_panel(axes[2], swept)
    m = results["machine"]
    fig.suptitle(f"llm-gateway benchmark, {results['started']} - {m['cores']} cores, {m['cpu']}; "
                 f"load {results['loadgen']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _frontier_panel(ax: Any, swept: dict[str, Any]) -> None:
    for entry in swept.values():
        points = [p for p in entry["frontier"]["points"] if p["p99_ms"] is not None]
        if points:
            ax.plot([p["achieved_rps"] for p in points], [p["p99_ms"] for p in points], marker="o", markersize=3,
                    label=entry["label"])
    for bound in (5, 50):
        ax.axhline(bound, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requests/s served, open loop (log)")
    ax.set_ylabel("p99 ms (log)")
    ax.legend(fontsize=6)
    ax.set_title("frontier: p99 under offered load")
