"""The HTTP layer's limits, where uvicorn has none: header size and count (431), a deadline for a request's headers
and one for its body (408), closing a connection that never sends a request, and a cap on open connections (503).

uvicorn's httptools protocol parses without limits on header size or count and arms no timer until a first answer
is sent (then `timeout_keep_alive`, which `gateway serve` sets from `[server] keep_alive_seconds`). This subclass
adds the missing bounds inside the parser's own callbacks, so a refusal happens before the request reaches the app;
each refusal is an OpenAI-style error body, then the connection closes. One timer per connection serves both
deadlines (it is moved, not re-created, per request), so a keep-alive connection adds no timer per request.
`configure()` sets the limits for this process (each worker calls it when it builds its app).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_SECONDS = 2.0  # how long a refused connection's further bytes are read and dropped before it closes
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 64 * 1024  # request line + every header name and value
    max_headers: int = 100
    header_timeout: float = 10.0  # from a request's first byte (or the connection's opening) to its last header
    body_timeout: float = 60.0  # from the last header to the body's last byte
    max_connections: int = 4096


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a refused request (the answer is already written)."""


def _answer(status: int, message: str, code: str) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
        b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body),
        body,
    ])


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits = HttpLimits()

    @classmethod
    def configure(cls, limits: HttpLimits) -> None:
        cls.limits = limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._phase: str | None = "idle"  # idle (no byte of a request yet) | headers | body | None (answering)
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    # connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self.limits
        if len(self.connections) > limits.max_connections:
            self._refuse(503, f"The gateway has {limits.max_connections} connections open, its limit "
                              "([server] max_connections); try again shortly.", "too_many_connections")
            return
        self._watch(limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        try:
            super().data_received(data)
        except _Refused:  # only when uvicorn let it through: it catches HttpParserError itself
            pass

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a callback of ours refused the request: the answer is already written
            super().send_400_response(msg)

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._phase != "headers":  # a new request on a kept-alive connection: its headers get their own time
            self._watch(self.limits.header_timeout)
        self._phase = "headers"

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._header_bytes += len(url)
        if self._header_bytes > self.limits.max_header_bytes:
            self._too_large()

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.limits.max_header_bytes or len(headers) >= self.limits.max_headers:
            self._too_large()
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._phase = "body"
        self._deadline = self.loop.time() + self.limits.body_timeout
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = None
        super().on_message_complete()

    # refusals

    def _too_large(self) -> None:
        limits = self.limits
        self._refuse(431, f"The request's headers are larger than the gateway reads ({limits.max_headers} headers, "
                          f"{limits.max_header_bytes} bytes; [server] max_headers, max_header_bytes).",
                     "request_header_fields_too_large")
        raise _Refused

    def _refuse(self, status: int, message: str, code: str) -> None:
        self._refused = True
        self._phase = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app, if it runs, sees the client gone and sends nothing
            self.cycle.message_event.set()
        transport = self.transport
        if transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            transport.write(_answer(status, message, code))
        # a lingering close: closing with the client's bytes unread would reset the connection, and a reset can
        # discard the answer before the client reads it; so stop writing, drop what still arrives, close shortly
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    # one timer per connection

    def _watch(self, seconds: float) -> None:
        self._deadline = deadline = self.loop.time() + seconds
        timer = self._timer
        if timer is not None and timer.when() > deadline:  # set for a later phase's deadline: bring it forward
            timer.cancel()
            timer = None
        if timer is None:
            self._timer = self.loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        phase = self._phase
        if phase is None or self._refused or self.transport.is_closing():
            return  # answering, or gone: uvicorn's keep-alive timer takes over once the answer is sent
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._check)
            return
        if phase == "idle":
            self._refused = True
            self.transport.close()  # never sent a byte: nothing to answer
        elif phase == "headers":
            self._refuse(408, f"The request's headers did not arrive within {self.limits.header_timeout:g}s "
                              "([server] header_timeout_seconds).", "request_timeout")
        else:
            self._refuse(408, f"The request's body did not arrive within {self.limits.body_timeout:g}s "
                              "([server] body_timeout_seconds).", "request_timeout")

