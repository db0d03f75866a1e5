"""Issue 17's targets judged on a synthetic run: each ratio against the pass-through, met or missed as numbers say."""

from __future__ import annotations

from bench.report import full_report, markdown
from bench.verdict import verdicts


def _load(rps: float, p50: float = 0.5) -> dict:
    return {"rps": rps, "p50_ms": p50, "p99_ms": 2 * p50, "errors": 0, "requests": 1000, "peak_rss_mb": 100}


def _stream(ms: float, chunks: float, chunks8: float) -> dict:
    return {"frames": 201, "frames_min": 201, "frames_max": 201, "ttfb_ms": 0.5, "stream_ms": ms,
            "chunks_per_s": chunks, "chunks_per_s_8_streams": chunks8}


def _target(label: str, rps: tuple[float, float, float], p50: float, stream: dict | None = None, **extra) -> dict:
    entry = {"label": label, "skipped": None, "load": {c: _load(r, p50) for c, r in zip(("1", "8", "64"), rps)}}
    if stream:
        entry["stream"] = stream
    return {**entry, **extra}


def results() -> dict:
    points = [{"offered_rps": 400, "achieved_rps": 400, "p99_ms": 2.0, "lag_p50_ms": 0.1, "errors": 0},
              {"offered_rps": 3000, "achieved_rps": 2900, "p99_ms": 30.0, "lag_p50_ms": 0.1, "errors": 0}]
    frontier = {"peak_rps": 4000, "points": points,
                "frontier": {"5": {"rps": 400, "at_least": False, "generator_limited": False},
                             "50": {"rps": 2900, "at_least": True, "generator_limited": False}}}
    open_streams = [
        {"streams": 1000, "attempted": 1000, "opened": 1000, "failed": 0, "open_seconds": 2.0, "idle_rss_mb": 100,
         "rss_mb": 140, "rss_at_count_mb": 140, "limited_by": None, "first_error": None, "hold_cpu_percent": 9},
        {"streams": 10000, "attempted": 9900, "opened": 9900, "failed": 0, "open_seconds": 20.0, "idle_rss_mb": 100,
         "rss_mb": 990, "rss_at_count_mb": 999, "limited_by": "RLIMIT_NOFILE 20000 here", "first_error": None},
    ]
    return {
        "machine": {"cpu": "x", "cores": 2, "memory_gb": 1, "kernel": "k", "python": "3"},
        "loadgen": "wrk", "upstream": "nginx", "seconds": 1, "connections": [1, 8, 64], "leak": None,
        "frontier_settings": {"seconds": 2, "connections": 64, "fractions": [0.1, 1.0], "bounds_ms": [5, 50]},
        "targets": {
            "direct": _target("upstream direct", (30000, 45000, 48000), 0.03, frontier=frontier),
            "minimal": _target("minimal", (2000, 4000, 3500), 0.40, _stream(1.0, 200000, 220000), frontier=frontier),
            "gateway-off": _target("gateway, policies off", (1900, 4100, 3400), 0.44, _stream(1.4, 140000, 150000),
                                   frontier=frontier, open_streams=open_streams),
            "gateway-quiet": _target("gateway, quiet", (2000, 4200, 3700), 0.43, _stream(1.4, 145000, 150000),
                                     frontier=frontier),
            "gateway-policies": _target("gateway, policies", (1500, 3300, 2700), 0.6, _stream(2.1, 9e4, 9e4),
                                        frontier=frontier),
            "gateway-replay": _target("gateway, replay", (5000, 8100, 7000), 0.2, _stream(1.6, 1e5, 1e5),
                                      frontier=frontier),
        },
    }


def by_name() -> dict:
    return {v.target: v for v in verdicts(results())}


def test_stream_time_is_judged_against_the_pass_through() -> None:
    found = by_name()
    assert found["200-chunk stream, policies off"].met is True  # 1.4x <= 1.5x
    assert found["200-chunk stream, replay hits"].met is False  # 1.6x
    assert found["200-chunk stream, auth+rate limit+PII"].met is False  # 2.1x > 2x
    assert found["200-chunk stream, replay hits"].measured.startswith("1.60x")


def test_request_ratios_at_8_and_64_connections() -> None:
    found = by_name()
    assert found["policies off vs pass-through, c=8"].met is True  # 4100 / 4000
    assert found["policies off vs pass-through, c=64"].met is False  # 3400 / 3500
    assert found["auth+rate limit+PII vs pass-through, c=64"].met is False  # 0.77x
    assert found["replay hits vs pass-through, c=8"].met is True and found["replay hits vs pass-through, c=64"].met


def test_observability_cost_is_the_difference_between_the_two_gateway_targets() -> None:
    found = by_name()
    assert found["metrics + log cost, req/s c=8"].met is True  # 2.4%
    assert found["metrics + log cost, req/s c=64"].met is False  # 8.1%
    assert found["metrics + log cost, req/s c=64"].measured.startswith("+8.1%")
    assert found["metrics + log cost, chunks/s, 1 stream"].met is True  # 3.4%
    assert found["metrics + log cost, chunks/s, 8 streams"].met is True  # 0%


def test_added_latency_is_against_the_pass_through_s_own() -> None:
    # gateway adds 0.41 ms over direct, the pass-through 0.37: within 0.05 ms
    assert by_name()["added p50 latency at c=1, policies off"].met is True


def test_open_streams_and_an_fd_limited_count_extrapolated_and_said_so() -> None:
    found = by_name()
    assert found["1,000 open streams, policies off"].met is True
    ten = found["10,000 open streams, policies off"]
    assert ten.met is True and "9,900 open (descriptor limit)" in ten.measured and "~999 MB" in ten.measured


def test_leak_and_frontier_rows() -> None:
    found = by_name()
    assert found["RSS flat over 100k streamed requests"].met is None  # not run
    assert found["throughput frontier"].met is True


def test_the_markdown_report_has_one_section_per_part() -> None:
    report = full_report(results(), markdown)
    for title in ("Run", "Requests", "Streams", "Throughput frontier", "Memory and processes", "Targets"):
        assert f"### {title}\n" in report
    assert "| gateway, policies off | 4.00k | 400 | >= 2.90k |" in report
    assert "10,000 open streams (gateway, policies off): 9,900 open of 9,900 tried" in report
    assert "~999 MB at 10,000 by slope" in report
