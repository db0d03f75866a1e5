"""Usage figures over time: buckets, percentiles, groups by alias and key."""

from __future__ import annotations

from llm_gateway.observability.usage_stats import UsageStats, percentile
from tests.support.clock import Clock


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0 and percentile(values, 0.50) == 50.0


def test_requests_fall_into_time_buckets_and_groups() -> None:
    clock = Clock()
    stats = UsageStats(bucket_seconds=10, keep=3, clock=clock)
    stats.add("mock", "team-a", "upstream", False, 0.1, 5, 7, 0.001)
    stats.add("mock", "", "cache_hit", False, 0.3, 5, 7, 0.0)
    clock.now += 10
    stats.add("gpt", "team-a", "error", True, 0.2, 0, 0, 0.0)
    snap = stats.snapshot()
    assert snap["totals"]["requests"] == 3 and snap["totals"]["errors"] == 1
    assert snap["totals"]["outcomes"] == {"upstream": 1, "cache_hit": 1, "error": 1}
    assert snap["totals"]["p50_seconds"] == 0.2
    assert snap["by_alias"]["mock"]["total_tokens"] == 24 and snap["by_alias"]["mock"]["spend_usd"] == 0.001
    assert snap["by_key"] == {"team-a": snap["by_key"]["team-a"]} and snap["by_key"]["team-a"]["requests"] == 2
    assert [b["requests"] for b in snap["series"]] == [2, 1]
    assert [b["t"] for b in snap["series"]] == [1000.0, 1010.0]
    assert snap["series"][0]["by_alias"]["mock"]["p95_seconds"] == 0.3


def test_old_buckets_roll_off_and_a_closed_bucket_is_summarised_once() -> None:
    clock = Clock()
    stats = UsageStats(bucket_seconds=10, keep=2, clock=clock)
    for _ in range(3):
        stats.add("mock", "", "upstream", False, 0.1, 1, 1, 0.0)
        clock.now += 10
    first = stats.snapshot()["series"]
    assert len(first) == 2 and stats.snapshot()["totals"]["requests"] == 3
    assert stats.snapshot()["series"][0] is first[0]  # computed once, then reused
