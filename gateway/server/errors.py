"""The one place a GatewayError becomes an HTTP answer: status, headers and body, for every route.

The raw ASGI model endpoints, Starlette's routes and exception handlers all come here; a stream that fails after
its first byte ends with the wire's error frame, built from the same body (`Wire.error_body`). The answer always
carries the request's one id and whatever the policies set for it (x-ratelimit-* on a 429 too).
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from starlette.responses import Response

from llm_gateway.server.asgi_io import Send, send_json
from llm_gateway.vocab.errors import GatewayError
from llm_gateway.vocab.types import RequestContext


class ErrorFormat(Protocol):
    """How a client protocol states an error: its envelope, its status, its names for headers (a Wire is one)."""

    def error_body(self, exc: GatewayError) -> dict[str, Any]: ...

    def error_status(self, exc: GatewayError) -> int: ...

    def response_headers(self, headers: dict[str, str]) -> dict[str, str]: ...


class OpenAIErrors:
    def error_body(self, exc: GatewayError) -> dict[str, Any]:
        return exc.to_body()

    def error_status(self, exc: GatewayError) -> int:
        return exc.status

    def response_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return headers


OPENAI_ERRORS = OpenAIErrors()


def error_headers(exc: GatewayError, ctx: RequestContext, fmt: ErrorFormat = OPENAI_ERRORS) -> dict[str, str]:
    headers = {**exc.headers, "x-request-id": ctx.request_id}
    if ctx.deployment:
        headers.setdefault("x-gateway-deployment", ctx.deployment)
    for name, value in ctx.response_headers.items():  # e.g. x-ratelimit-*, on errors too
        headers.setdefault(name, value)
    return fmt.response_headers(headers)


def note_error(exc: GatewayError, ctx: RequestContext) -> None:
    """What the request's own facts say about an error answer (metrics and the log read them)."""
    if ctx.outcome == "upstream":
        ctx.outcome = "error"
    ctx.error = exc


async def send_error(send: Send, ctx: RequestContext, exc: GatewayError, fmt: ErrorFormat = OPENAI_ERRORS) -> None:
    """An error answer on the raw ASGI path, in the client protocol `fmt` (the endpoint's Wire)."""
    body = orjson.dumps(fmt.error_body(exc))
    await send_json(send, fmt.error_status(exc), body, error_headers(exc, ctx, fmt))


def error_response(exc: GatewayError, ctx: RequestContext, fmt: ErrorFormat = OPENAI_ERRORS) -> Response:
    """An error answer on a Starlette route."""
    body = orjson.dumps(fmt.error_body(exc))
    return Response(body, fmt.error_status(exc), error_headers(exc, ctx, fmt), media_type="application/json")
