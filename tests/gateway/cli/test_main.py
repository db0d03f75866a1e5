"""The `gateway` command line: check, version, and serve started the way a user starts it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from tests.support.server import free_port

ROOT = Path(__file__).parents[3]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llm_gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_version() -> None:
    assert run_cli("--version").stdout.startswith("llm-gateway ")


def test_check_prints_resolved_config_with_secrets_masked() -> None:
    result = run_cli("check", env={"OPENAI_API_KEY": "sk-abcdefghijklmnop"})
    assert result.returncode == 0, result.stderr
    assert "sk-abcdefghijklmnop" not in result.stdout and '"mock"' in result.stdout


def test_check_reports_problems_and_exits_non_zero(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text('[server]\nport = "x"\n[models.a]\nprovider = "none"\n')
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 2
    assert "server.port" in result.stderr and 'models."a".provider' in result.stderr


def test_serve_on_the_shipped_config_answers_the_sdk(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "GATEWAY_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_gateway", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "gateway serve did not come up"
            time.sleep(0.1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Mock reply to: hi"
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="mock", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
        assert text == "Mock reply to: hi"
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        except openai.APIStatusError as exc:
            assert exc.status_code == 503 and "OPENAI_API_KEY" in exc.message
        else:
            raise AssertionError("an alias without a key must answer 503")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
