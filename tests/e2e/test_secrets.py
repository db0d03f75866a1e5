"""Secrets and topology stay in: `gateway check` masks every header value and the credentials in a URL, refuses a
base_url with credentials beside an api_key, and a client-facing error names the provider, never its address."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.gateway_process import gateway_process
from tests.support.server import free_port


def _check(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "gateway.toml"
    config.write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "llm_gateway", "check", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_check_masks_every_header_value_and_url_credentials(tmp_path: Path) -> None:
    result = _check(tmp_path, """
[providers.corp]
type = "openai"
base_url = "https://svc-user:hunter2-url-secret@llm.corp.test/v1"
headers = { "Cookie" = "session=cookie-secret-value", "X-Tenant" = "tenant-secret-42" }

[models.corp]
provider = "corp"
""")
    assert result.returncode == 0, result.stderr
    for secret in ("hunter2-url-secret", "svc-user", "cookie-secret-value", "tenant-secret-42"):
        assert secret not in result.stdout
    assert "https://****@llm.corp.test/v1" in result.stdout


def test_check_rejects_url_credentials_beside_an_api_key(tmp_path: Path) -> None:
    result = _check(tmp_path, """
[providers.corp]
type = "openai"
base_url = "https://svc-user:hunter2-url-secret@llm.corp.test/v1"
api_key = "sk-also-a-key"

[models.corp]
provider = "corp"
""")
    assert result.returncode != 0
    assert "providers.corp.base_url" in result.stderr + result.stdout
    assert "hunter2-url-secret" not in result.stderr + result.stdout


def test_an_unreachable_upstream_is_named_by_provider_not_address(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    body = f"""
[router]
retries = 0

[providers.backend]
type = "openai"
base_url = "http://127.0.0.1:{port}/v1"

[models.chat]
provider = "backend"
"""
    with gateway_process(tmp_path, body) as gateway:
        response = httpx.post(gateway.url + "/v1/chat/completions", timeout=30,
                              json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
        gateway.terminate()
        _, stderr = gateway.wait(30)
    assert response.status_code == 503, response.text
    message = response.json()["error"]["message"]
    assert "'backend'" in message and str(port) not in message and "127.0.0.1" not in message
    assert str(port) in stderr  # the address stays in the log
