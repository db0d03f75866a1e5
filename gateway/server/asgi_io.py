"""The raw ASGI messages of the hot path: read a request body under a size cap, send a whole JSON answer.

The three POST endpoints that carry traffic skip Starlette's Request/Response objects and its middleware (each
layer wraps `send` and adds an await per message; header objects are built and parsed again): about a fifth of
the gateway's own time per request (BENCHMARKS.md). Everything else still goes through Starlette.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from llm_gateway.vocab.errors import PayloadTooLarge

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = (b"content-type", b"application/json")


class ClientGone(Exception):
    """The client disconnected before its request body arrived: there is no one to answer."""


def scope_headers(scope: Scope) -> dict[str, str]:
    """Lower-cased request headers; a repeated header keeps its first value (as Starlette's headers.get() does)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}


async def read_body(receive: Receive, declared_length: str | None, limit: int) -> bytes:
    """The whole request body, refused as soon as it is known to exceed `limit` bytes."""
    if declared_length and declared_length.isdigit() and int(declared_length) > limit:
        raise PayloadTooLarge(f"Request body of {declared_length} bytes exceeds the limit of {limit} bytes.")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the common case: one message holds the body
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        return body
    pieces = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        piece = message.get("body", b"")
        size += len(piece)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        pieces.append(piece)
    return b"".join(pieces)


async def send_json(send: Send, status: int, content: bytes, headers: Mapping[str, str]) -> None:
    """One whole JSON answer: `content` is already encoded (orjson), header values are latin-1 text."""
    raw = [_JSON, (b"content-length", str(len(content)).encode())]
    raw += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})
