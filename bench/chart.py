"""The PNG: requests/s per target at each concurrency (log scale), and p50 latency at one connection."""

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
    fig, (rps_ax, lat_ax) = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"width_ratios": [3, 2]})
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
    m = results["machine"]
    fig.suptitle(f"llm-gateway benchmark, {results['started']} - {m['cores']} cores, {m['cpu']}; "
                 f"load {results['loadgen']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
