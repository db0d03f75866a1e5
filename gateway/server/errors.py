"""The one place a GatewayError becomes an HTTP answer: status, headers and body, for every route.

The raw ASGI model endpoints, Starlette's routes and exception handlers all come here; a stream that fails after
its first byte ends with the wire's error frame, built from the same body (`Wire.error_body`). The answer always
carries the request's one id and whatever the policies set for it (x-ratelimit-* on a 429 too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response

from llm_gateway.server.asgi_io import Send, send_json
from llm_gateway.vocab.errors import GatewayError
from llm_gateway.vocab.types import RequestContext

ErrorBody = Callable[[GatewayError], dict[str, Any]]


def openai_error_body(exc: GatewayError) -> dict[str, Any]:
    return exc.to_body()


def error_headers(exc: GatewayError, ctx: RequestContext) -> dict[str, str]:
    headers = {**exc.headers, "x-request-id": ctx.request_id}
    if ctx.deployment:
        headers.setdefault("x-gateway-deployment", ctx.deployment)
    for name, value in ctx.response_headers.items():  # e.g. x-ratelimit-*, on errors too
        headers.setdefault(name, value)
    return headers


def note_error(exc: GatewayError, ctx: RequestContext) -> None:
    """What the request's own facts say about an error answer (metrics and the log read them)."""
    if ctx.outcome == "upstream":
        ctx.outcome = "error"
    ctx.error = exc


async def send_error(send: Send, ctx: RequestContext, exc: GatewayError, body: ErrorBody = openai_error_body) -> None:
    """An error answer on the raw ASGI path."""
    await send_json(send, exc.status, orjson.dumps(body(exc)), error_headers(exc, ctx))


def error_response(exc: GatewayError, ctx: RequestContext, body: ErrorBody = openai_error_body) -> Response:
    """An error answer on a Starlette route."""
    return Response(orjson.dumps(body(exc)), exc.status, error_headers(exc, ctx), media_type="application/json")
