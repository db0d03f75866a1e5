"""The throughput frontier: the highest requests/s a target serves while its p99 stays under a bound (5 and 50 ms).

An open-loop rate sweep (bench/openloop.py): offered rates are fractions of the target's closed-loop peak (its best
req/s under wrk), lowest first; a first breach of a bound is measured twice; the sweep stops once p99 passes the
largest bound. The frontier for a bound is the
highest achieved rate of the points, taken in order of offered rate, before the first one whose p99 reaches the bound
("stays under": a later point under the bound again does not count). A point where the generator itself lagged
measured the generator, not the target: it ends the sweep and marks the frontier as a lower bound ("at_least").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

BOUNDS_MS = (5.0, 50.0)
FRACTIONS = (0.1, 0.25, 0.4, 0.55, 0.7, 0.8, 0.9, 1.0)
GENERATOR_LAG_MS = 1.5  # the generator's median lateness past this (1 ms timer steps): out of CPU, it measured itself
GENERATOR_CPU = 0.85  # or its own CPU time past this share of a core

Point = dict[str, Any]  # one bench.openloop result


def usable(point: Point) -> bool:
    return (point.get("lag_p50_ms") or 0.0) <= GENERATOR_LAG_MS and (point.get("generator_cpu") or 0.0) <= GENERATOR_CPU


def breached(point: Point, bound_ms: float) -> bool:
    p99 = point.get("p99_ms")
    return p99 is None or p99 >= bound_ms or bool(point.get("errors"))


def frontier(points: Sequence[Point], bound_ms: float) -> dict[str, Any]:
    """{"rps": best achieved req/s under the bound or None, "at_least": True when no point breached the bound, so the
    true frontier lies higher than the sweep reached (or the generator ran out first)}."""
    best = None
    for point in sorted(points, key=lambda p: p["offered_rps"]):
        if not usable(point):
            return {"rps": best, "at_least": True, "generator_limited": True}
        if breached(point, bound_ms):
            return {"rps": best, "at_least": False, "generator_limited": False}
        best = max(best or 0.0, point["achieved_rps"])
    return {"rps": best, "at_least": True, "generator_limited": False}


def frontiers(points: Sequence[Point], bounds: Sequence[float] = BOUNDS_MS) -> dict[str, dict[str, Any]]:
    return {f"{bound:g}": frontier(points, bound) for bound in bounds}


def sweep(measure: Callable[[float], Point], peak_rps: float, fractions: Sequence[float] = FRACTIONS,
          bounds: Sequence[float] = BOUNDS_MS) -> dict[str, Any]:
    """Measure each offered rate (`measure(rate) -> point`) up the ladder; the points and the frontier per bound.

    A point that breaches a bound no earlier point breached is measured once more and the lower p99 kept: on a shared
    machine one burst of someone else's work would otherwise end the frontier; a real limit breaches twice."""
    points: list[Point] = []
    for fraction in fractions:
        rate = max(1.0, peak_rps * fraction)
        point = measure(rate)
        fresh = [b for b in bounds if breached(point, b) and not any(breached(p, b) for p in points)]
        if fresh and usable(point):
            again = measure(rate)
            if usable(again) and not breached(again, min(fresh)):
                point = {**again, "retried": point.get("p99_ms")}
            else:
                point = {**point, "retried": again.get("p99_ms")}
        points.append(point)
        if not usable(point) or breached(point, max(bounds)):
            break  # past here every bound is already decided
    return {"peak_rps": peak_rps, "points": points, "frontier": frontiers(points, bounds)}


def describe(result: dict[str, Any] | None, bound_ms: float) -> str:
    """'2.31k', '>= 4.80k' (never breached), '>= 9.9k (generator)', or 'none' (breached at the lowest rate)."""
    if not result:
        return "-"
    found = result["frontier"].get(f"{bound_ms:g}")
    if not found or found["rps"] is None:
        return "none" if found and not found["generator_limited"] else "- (generator)"
    value = f"{found['rps'] / 1000:.2f}k" if found["rps"] >= 1000 else f"{found['rps']:.0f}"
    if found["generator_limited"]:
        return f">= {value} (generator)"
    return f">= {value}" if found["at_least"] else value
