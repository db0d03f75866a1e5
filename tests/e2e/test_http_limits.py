"""The HTTP layer's limits, against a real `gateway serve`, with raw-socket clients: header size and count (431), a
dribbling header or body (408), idle connections closed, and a cap on open connections (503); each refusal an
OpenAI-style error body, and the gateway still answering a normal request right after."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess, gateway_process

CONFIG = """max_header_bytes = 16384
max_headers = 50
header_timeout_seconds = 1
body_timeout_seconds = 1
keep_alive_seconds = 1
max_connections = 20

[providers.mock]
type = "mock"

[models.mock]
provider = "mock"
"""
WAIT = 15  # seconds a socket read may block: far above the 1 s limits, far below "never"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("http-limits"), CONFIG) as process:
        yield process


def _connect(gateway: GatewayProcess) -> socket.socket:
    url = urlsplit(gateway.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=WAIT)
    return sock


def _read_to_close(sock: socket.socket) -> bytes:
    data = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece


def _error(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]


def _still_serves(gateway: GatewayProcess) -> None:
    body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]


def _send_all(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before we finished sending: the answer is what counts


@pytest.mark.parametrize(
    "headers",
    [b"x-big: " + b"a" * (1024 * 1024) + b"\r\n", b"".join(b"x-h%d: v\r\n" % i for i in range(20000))],
    ids=["one-1MiB-header", "20000-headers"],
)
def test_oversized_headers_are_431(gateway: GatewayProcess, headers: bytes) -> None:
    with _connect(gateway) as sock:
        _send_all(sock, b"GET /healthz HTTP/1.1\r\nhost: gw\r\n" + headers + b"\r\n")
        status, error = _error(_read_to_close(sock))
    assert status == 431 and error["code"] == "request_header_fields_too_large"
    _still_serves(gateway)


def test_dribbled_headers_are_408(gateway: GatewayProcess) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n")
        started = time.monotonic()
        answer = b""
        try:
            while time.monotonic() - started < WAIT:
                sock.sendall(b"x")  # a header name, one byte at a time, well within any read timeout
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_to_close(sock)
    status, error = _error(answer)
    assert status == 408 and error["code"] == "request_timeout" and "headers" in error["message"]
    _still_serves(gateway)


def test_an_unfinished_body_is_408(gateway: GatewayProcess) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                     b"content-length: 1000\r\n\r\n{\"model\": ")
        status, error = _error(_read_to_close(sock))
    assert status == 408 and error["code"] == "request_timeout" and "body" in error["message"]
    _still_serves(gateway)


def test_idle_connections_are_closed(gateway: GatewayProcess) -> None:
    with _connect(gateway) as never_asks:
        assert _read_to_close(never_asks) == b""  # closed without a word: it asked nothing
    with _connect(gateway) as kept_alive:
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
        answer = _read_to_close(kept_alive)  # returns only once the idle keep-alive connection is closed
    assert answer.startswith(b"HTTP/1.1 200")
    _still_serves(gateway)


def test_connections_past_the_cap_are_503(gateway: GatewayProcess) -> None:
    held = [_connect(gateway) for _ in range(19)]
    try:
        with _connect(gateway) as over:
            over.sendall(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")  # the 20th may be served, the 21st not
            extra = _connect(gateway)
            status, error = _error(_read_to_close(extra))
            extra.close()
        assert status == 503 and error["code"] == "too_many_connections"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)  # the held connections are gone on the server's side too
    _still_serves(gateway)
