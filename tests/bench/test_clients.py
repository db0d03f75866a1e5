"""`python -m bench.clients` (the upstream-client comparison in BENCHMARKS.md) runs and reports every client."""

from __future__ import annotations

import os

import pytest

from bench import clients, nginx


def test_every_client_is_measured_on_whole_answers_and_streams(capsys: pytest.CaptureFixture[str]) -> None:
    if nginx.nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is installed by .ci/run: the comparison must run in CI")
        pytest.skip("needs nginx (apt-get install nginx-light)")
    assert clients.main(["--requests", "400", "--concurrency", "4"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "req/s" not in line]
    assert len(rows) == 2 * len(clients.CLIENTS)
    for row in rows:
        name, _, rate, cpu = (cell.strip() for cell in row.strip("|").split("|"))
        assert name in clients.CLIENTS and float(rate.replace(",", "")) > 0 and float(cpu) > 0
