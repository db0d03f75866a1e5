"""Run `gateway serve` as a real subprocess (as an operator starts it) for signal, worker and container-style tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.server import free_port


class GatewayProcess:
    def __init__(self, proc: subprocess.Popen[str], url: str, config: Path) -> None:
        self.proc = proc
        self.url = url
        self.config = config

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> tuple[int, str]:
        """Exit code and everything the server wrote to stderr."""
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def write_config(directory: Path, body: str) -> tuple[Path, int]:
    """A gateway.toml with [server] on a free loopback port prepended to `body`."""
    port = free_port()
    config = directory / "gateway.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\nstate_path = "{directory}/state.db"\n' + body)
    return config, port


@contextmanager
def gateway_process(
    directory: Path, body: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[GatewayProcess]:
    """Start `gateway serve` with this config; wait for /readyz; kill it on exit if it is still running."""
    config, port = write_config(directory, body)
    environment = {**os.environ, **(env or {})}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_gateway", "serve", "--config", str(config), *args],
        cwd=directory,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: cleanup reaches the workers too
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"gateway serve exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
                )
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gateway serve did not become ready")
            time.sleep(0.05)
        yield GatewayProcess(proc, url, config)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
