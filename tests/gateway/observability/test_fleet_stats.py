"""Merging several workers' usage figures: counts add up, percentiles are the slowest member's, series line up."""

from __future__ import annotations

from llm_gateway.observability.fleet_stats import merge
from llm_gateway.observability.usage_stats import UsageStats


def member(name: str, latencies: list[float], clock: float = 100.0) -> dict:
    usage = UsageStats(clock=lambda: clock)
    for latency in latencies:
        usage.add("mock", "ci", "upstream", False, latency, 10, 5, 0.001)
    return {"replica": name, "pid": 1, "now": clock, "in_flight": 1, "open_streams": 0,
            "recording": {"hits": 1, "misses": 1, "records": 0, "store_errors": 0, "hit_rate": 0.5},
            **usage.snapshot()}


def test_counts_add_up_and_percentiles_are_an_upper_bound() -> None:
    a, b = member("a", [0.1, 0.2]), member("b", [1.0], clock=105.0)
    merged = merge([a, b], a)
    assert merged["totals"]["requests"] == 3 and merged["totals"]["total_tokens"] == 45
    assert merged["totals"]["spend_usd"] == 0.003 and merged["totals"]["outcomes"] == {"upstream": 3}
    assert merged["totals"]["p95_seconds"] == 1.0
    assert merged["by_alias"]["mock"]["requests"] == 3 and merged["by_key"]["ci"]["requests"] == 3
    assert [(s["t"], s["requests"]) for s in merged["series"]] == [(100.0, 3)]  # one 10 s bucket
    assert merged["in_flight"] == 2 and merged["recording"]["hit_rate"] == 0.5
    assert [r["replica"] for r in merged["replicas"]] == ["a", "b"]
