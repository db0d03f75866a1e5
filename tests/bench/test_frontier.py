"""The frontier is read off synthetic sweep points: "stays under" the bound, lower bounds, the generator's limit."""

from __future__ import annotations

from bench.frontier import describe, frontier, frontiers, sweep
from bench.openloop import percentile


def point(offered: float, achieved: float, p99: float | None, *, lag: float = 0.1, errors: int = 0) -> dict:
    return {"offered_rps": offered, "achieved_rps": achieved, "p99_ms": p99, "lag_p50_ms": lag, "errors": errors}


def test_the_frontier_is_the_best_rate_before_the_first_point_at_or_past_the_bound() -> None:
    points = [point(300, 299, 9.0), point(100, 100, 1.0), point(200, 198, 4.0), point(400, 380, 3.0)]
    # taken in offered order: 100 (1 ms), 200 (4 ms), 300 (9 ms) breaches 5 ms; 400 under again does not count
    assert frontier(points, 5.0) == {"rps": 198, "at_least": False, "generator_limited": False}
    assert frontier(points, 50.0) == {"rps": 380, "at_least": True, "generator_limited": False}


def test_a_breach_at_the_lowest_rate_gives_no_frontier_and_errors_count_as_a_breach() -> None:
    assert frontier([point(100, 100, 7.0)], 5.0)["rps"] is None
    assert frontier([point(100, 100, 1.0), point(200, 200, 1.0, errors=3)], 5.0)["rps"] == 100
    assert frontier([point(100, 100, None)], 50.0)["rps"] is None  # never answered within the drain window


def test_a_point_where_the_generator_lagged_ends_the_frontier_as_a_lower_bound() -> None:
    points = [point(1000, 1000, 1.0), point(5000, 4100, 2.0, lag=3.0)]
    assert frontier(points, 5.0) == {"rps": 1000, "at_least": True, "generator_limited": True}
    assert describe({"frontier": frontiers(points)}, 5.0) == ">= 1.00k (generator)"


def test_describe_formats_each_kind_of_result() -> None:
    points = [point(1000, 1000, 1.0), point(2500, 2480, 6.0), point(4000, 3900, 80.0)]
    result = {"frontier": frontiers(points)}
    assert describe(result, 5.0) == "1.00k"
    assert describe(result, 50.0) == "2.48k"
    assert describe({"frontier": frontiers([point(10, 10, 1.0)])}, 50.0) == ">= 10"
    assert describe({"frontier": frontiers([point(10, 10, 90.0)])}, 50.0) == "none"
    assert describe(None, 5.0) == "-"


def test_the_sweep_climbs_fractions_of_the_peak_and_stops_past_the_largest_bound() -> None:
    offered = []

    def measure(rate: float) -> dict:
        offered.append(rate)
        return point(rate, rate, 1.0 if rate < 500 else 60.0)

    result = sweep(measure, 1000, fractions=(0.1, 0.3, 0.6, 0.9))
    assert offered == [100, 300, 600, 600]  # 600 passed 50 ms twice: 900 is never offered
    assert result["frontier"]["5"]["rps"] == 300 and result["frontier"]["50"]["rps"] == 300
    assert result["peak_rps"] == 1000 and len(result["points"]) == 3
    assert result["points"][-1]["retried"] == 60.0


def test_a_first_breach_is_measured_again_and_a_passing_retry_kept() -> None:
    answers = iter([1.0, 9.0, 2.0, 3.0])  # the second rate breaches 5 ms once (noise), then passes

    def measure(rate: float) -> dict:
        return point(rate, rate, next(answers))

    result = sweep(measure, 1000, fractions=(0.1, 0.5, 0.9))
    assert [p["p99_ms"] for p in result["points"]] == [1.0, 2.0, 3.0]
    assert result["points"][1]["retried"] == 9.0
    assert result["frontier"]["5"] == {"rps": 900, "at_least": True, "generator_limited": False}


def test_percentile_is_nearest_rank_and_counts_unfinished_requests_as_infinite() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99
    assert percentile([1.0] * 98 + [float("inf")] * 2, 0.99) == float("inf")
    assert percentile([], 0.99) == 0.0
