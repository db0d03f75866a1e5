"""bench.profile's readings of perf stat and py-spy output (the tool itself runs against live processes)."""

from __future__ import annotations

from pathlib import Path

from bench.profile import _by_self_time, _perf_counts, render


def test_perf_stat_csv_gives_counts_and_skips_unsupported_counters(tmp_path: Path) -> None:
    out = tmp_path / "perf.txt"
    out.write_text(
        "# started on Mon\n\n9041200,,instructions:u,5000000,100.00,,\n<not supported>,,cycles:u,0,100.00,,\n"
    )
    assert _perf_counts(out) == {"instructions": 9041200}
    assert _perf_counts(tmp_path / "missing.txt") == {}


def test_self_time_is_shared_by_the_innermost_frame() -> None:
    stacks = (
        "main (gateway:6);serve (gateway/app.py:102);send_json (gateway/asgi_io.py:57) 3\n"
        "run (asyncio/runners.py:118);_request (/v/lib/python3.11/site-packages/aiohttp/client.py:558) 1\n"
        "garbage line\n"
    )
    shares = _by_self_time(stacks)
    assert shares["samples"] == 4
    assert shares["self_by_file"] == [("gateway/asgi_io.py", 75.0), ("aiohttp/client.py", 25.0)]
    assert shares["self_by_function"][0] == ("send_json (gateway/asgi_io.py:57)", 75.0)


def test_the_report_names_the_target_and_its_per_request_figures() -> None:
    text = render(
        {
            "target": "gateway, policies off",
            "rps": 2000.0,
            "connections": 8,
            "p50_ms": 3.9,
            "errors": 0,
            "instructions_per_request": 845000,
            "notes": ["py-spy not installed"],
        },
        10,
    )
    assert "gateway, policies off: 2000 req/s at c=8" in text
    assert "instructions per request: 845k" in text and "note: py-spy not installed" in text


def test_a_stream_profile_reports_per_chunk_and_scales_self_time_to_us_per_chunk() -> None:
    text = render(
        {
            "target": "gateway, policies off",
            "rps": 100.0,
            "connections": 8,
            "p50_ms": 5.0,
            "errors": 0,
            "unit": "chunk",
            "cpu_us_per_request": 4000.0,
            "cpu_us_per_chunk": 20.0,
            "cpu_user_share": 0.75,
            "notes": [],
            "samples": 100,
            "self_by_file": [("uvicorn/protocols/http/httptools_impl.py", 50.0)],
            "self_by_function": [("RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:544)", 25.0)],
        },
        10,
    )
    assert "100 streams/s at c=8" in text
    assert "CPU per chunk: 20.0 us (4000 us per stream), 75% user space" in text
    assert " 25.0%    5.00 us  RequestResponseCycle.send" in text
