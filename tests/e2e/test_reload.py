"""SIGHUP reloads gateway.toml in a real `gateway serve`: a good file takes over for new requests while a stream in
flight finishes on the old config; a bad file keeps the running config, and the log says why."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx

from tests.support.gateway_process import gateway_process

BEFORE = """
[providers.mock]
type = "mock"
stream_delay_ms = 100

[models.mock]
provider = "mock"
"""
AFTER = BEFORE + """
[models.added]
provider = "mock"
"""


def aliases(url: str) -> list[str]:
    return sorted(m["id"] for m in httpx.get(url + "/v1/models").json()["data"])


def eventually(condition, tries: int = 200) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_sighup_reloads_a_good_file_and_keeps_the_running_config_on_a_bad_one(tmp_path: Path) -> None:
    with gateway_process(tmp_path, BEFORE) as gw:
        assert aliases(gw.url) == ["mock"]
        body = {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "word " * 40}]}
        streamed: list[bytes] = []

        def stream() -> None:
            with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=30) as response:
                streamed.extend(response.iter_bytes())

        in_flight = threading.Thread(target=stream)
        in_flight.start()
        assert eventually(lambda: bool(streamed))  # the stream is open on the old config
        header = gw.config.read_text().split("[providers.mock]")[0]
        gw.config.write_text(header + AFTER)
        gw.proc.send_signal(signal.SIGHUP)
        assert eventually(lambda: aliases(gw.url) == ["added", "mock"])
        in_flight.join(30)
        assert b"".join(streamed).endswith(b"data: [DONE]\n\n")  # finished on the old config, uncut

        gw.config.write_text(header + AFTER + '\n[models.broken]\nprovider = "${1BAD}"\n')
        gw.proc.send_signal(signal.SIGHUP)
        time.sleep(1)  # nothing to wait for: a refused reload changes nothing (checked below)
        assert aliases(gw.url) == ["added", "mock"] and gw.proc.poll() is None
        gw.terminate()
        _, stderr = gw.wait(30)
    assert "SIGHUP: reloaded" in stderr
    assert "SIGHUP: gateway.toml not reloaded, the running config stays" in stderr and "1BAD" in stderr
