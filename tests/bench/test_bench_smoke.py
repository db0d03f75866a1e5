"""`python -m bench` still works end to end: a very short run on the Python fallbacks (no nginx, no wrk needed).

A smoke run proves the tool, never the speed: nothing here looks at a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.load import parse_wrk
from bench.report import full_report, markdown

ROOT = Path(__file__).resolve().parents[2]

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8080/v1/chat/completions
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.50us  100.00us   3.00ms   90.00%
    Req/Sec    19.50k     1.00k   21.00k    70.00%
  Latency Distribution
     50%  400.00us
     75%  450.00us
     90%  500.00us
     99%    1.20ms
  39000 requests in 2.00s, 20.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  19500.00
Transfer/sec:     10.00MB
"""


def test_wrk_output_is_parsed_with_units_and_every_error_kind() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests == 39000
    assert result.rps == 19500.0
    assert result.p50_ms == 0.4
    assert result.p99_ms == 1.2
    assert result.errors == 8


def test_a_short_run_measures_each_target_and_writes_json_report_and_chart(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--python-only",
            "--seconds",
            "0.3",
            "--warmup",
            "0.1",
            "--connections",
            "1,4",
            "--targets",
            "direct,minimal,gateway-off",
            "--stream-runs",
            "2",
            "--open-streams",
            "5",
            "--frontier-seconds",
            "0.3",
            "--frontier-fractions",
            "0.2,0.5",
            "--leak",
            "150",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    assert results["loadgen"].startswith("python")
    assert list(results["targets"]) == ["direct", "minimal", "gateway-off"]
    for key, entry in results["targets"].items():
        assert entry["skipped"] is None, (key, entry)
        assert "error" not in entry, (key, entry["error"])
        for connections in ("1", "4"):
            row = entry["load"][connections]
            assert row["requests"] > 0 and row["errors"] == 0, (key, connections, row)
            assert row["peak_rss_mb"] > 0
        assert entry["stream"]["frames_min"] == entry["stream"]["frames_max"] == 201  # 200 chunks and [DONE]
        assert entry["stream"]["chunks_per_s"] > 0 and entry["stream"]["chunks_per_s_8_streams"] > 0
        sweep = entry["frontier"]  # the open-loop generator answered every point it tried
        assert sweep["points"] and all(p["requests"] > 0 for p in sweep["points"]), (key, sweep)
        assert set(sweep["frontier"]) == {"5", "50"}
    (opened,) = results["targets"]["gateway-off"]["open_streams"]
    assert (opened["streams"], opened["opened"], opened["failed"], opened["limited_by"]) == (5, 5, 0, None)
    leak = results["leak"]  # on policies off (policies not in this run): whole requests, then streamed ones
    assert leak["target"] == "gateway-off"
    for kind in ("whole", "streamed"):
        assert leak[kind]["requests"] >= 150 and leak[kind]["errors"] == 0, (kind, leak[kind])
    assert "upstream direct" in done.stdout and "gateway, policies off" in done.stdout
    # one row in the summary, one per concurrency in the detail, one in the stream and the frontier tables
    assert (tmp_path / "latest.md").read_text().count("| gateway, policies off |") == 5
    try:
        import matplotlib  # noqa: F401 - the chart is the optional `bench` extra
    except ImportError:
        assert "no chart" in done.stdout
    else:
        assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG")


def test_report_marks_a_skipped_target_with_its_reason() -> None:
    results = {
        "machine": {"cpu": "x", "cores": 2, "memory_gb": 1, "kernel": "k", "python": "3"},
        "loadgen": "wrk",
        "upstream": "nginx",
        "seconds": 1,
        "connections": [1],
        "leak": None,
        "targets": {"litellm": {"label": "LiteLLM", "skipped": "LiteLLM is not installed", "load": {}}},
    }
    report = full_report(results, markdown)
    assert "| LiteLLM | - | - | - | - | LiteLLM is not installed |" in report
    assert "not measured" in report
