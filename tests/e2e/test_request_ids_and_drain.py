"""One request, one id, whatever route answers it (and its request log line says the same); and draining is
visible: during the shutdown grace /readyz answers 503 rather than refusing the connection (a real `gateway serve`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.support.gateway_process import gateway_process

MASTER = "sk-master-0123456789abcdef"
CONFIG = f"""shutdown_grace_seconds = 3

[auth]
mode = "keys"
master_key = "{MASTER}"

[providers.mock]
type = "mock"

[models.mock]
provider = "mock"
"""


def _log_lines(stderr: str) -> list[dict]:
    lines = []
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            lines.append(entry)
    return lines


def test_a_starlette_routed_error_carries_the_id_of_its_log_line(tmp_path: Path) -> None:
    with gateway_process(tmp_path, CONFIG) as gateway:
        generated = httpx.get(gateway.url + "/v1/models", headers={"authorization": "Bearer sk-wrong"}, timeout=5)
        given = httpx.get(gateway.url + "/v1/models/mock", headers={"x-request-id": "client-id-7"}, timeout=5)
        unknown = httpx.get(gateway.url + "/v1/nowhere", timeout=5)
        gateway.terminate()
        _, stderr = gateway.wait(30)
    assert generated.status_code == 401 and given.status_code == 401 and unknown.status_code == 404
    assert given.headers["x-request-id"] == "client-id-7"
    entries = _log_lines(stderr)
    for response in (generated, given, unknown):
        request_id = response.headers["x-request-id"]
        mine = [e for e in entries if e.get("request_id") == request_id]
        assert any(e.get("status") == response.status_code for e in mine), (request_id, stderr[-2000:])
        assert response.json()["error"]["code"] in ("invalid_api_key", "unknown_url")


def test_readyz_answers_503_during_the_grace(tmp_path: Path) -> None:
    with gateway_process(tmp_path, CONFIG) as gateway:
        assert httpx.get(gateway.url + "/readyz", timeout=5).status_code == 200
        gateway.terminate()
        time.sleep(0.3)
        during = httpx.get(gateway.url + "/readyz", timeout=5)
        assert during.status_code == 503 and during.json()["status"] == "shutting down"
        code, _ = gateway.wait(30)
    assert code in (0, -15)  # uvicorn re-raises the SIGTERM it handled, once it has shut down
