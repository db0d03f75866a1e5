"""POST /v1/responses: the OpenAI Responses API served by the chat pipeline.

A Responses body becomes a chat Call (gateway/responses_format.py, gateway/responses_events.py), so policies, recordings, routing and usage
accounting apply as they do to /v1/chat/completions; the answer goes back as a `response` object, or as Responses
events framed `event: <type>\\ndata: {json}\\n\\n` (no `[DONE]` line: response.completed ends the stream).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson
from sse_starlette import EventSourceResponse
from starlette.routing import Route

from gateway.asgi_io import ClientGone, Receive, Scope, Send, send_json
from gateway.errors import GatewayError, ServiceUnavailable
from gateway.responses_events import ResponseEvents
from gateway.responses_format import echo_fields, to_chat_body, to_response
from gateway.schema import parse_call
from gateway.shutdown import Drain
from gateway.types import Call, RequestContext

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("gateway")
PATH = "/v1/responses"
ENDPOINT_LABEL = "responses"  # the `endpoint` label of this path's metrics and request log lines


class ResponsesEndpoint:
    """POST /v1/responses as a raw ASGI app, like app.ModelEndpoint: Gateway.serve's steps, with the translation
    on both sides of the pipeline."""

    def __init__(self, gateway: Gateway) -> None:
        # app.py's response headers (x-request-id, x-gateway-deployment, policy headers); imported here, once,
        # because app.py imports this module to build its routes
        from gateway.app import _headers

        self.gateway = gateway
        self.headers = _headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.gateway
        ctx = gateway._context(scope)
        gateway.observer.start(ctx, ENDPOINT_LABEL)
        try:
            body = await gateway._read_json(ctx, receive)
            call = parse_call("chat", to_chat_body(body), gateway.settings.models)
            echo = echo_fields(body)
            call.request_id = ctx.request_id
            ctx.state["observer.alias"] = call.alias
            if call.stream:
                stream = await self._stream(call, ctx, echo)
            else:
                result = to_response(await gateway.pipeline.send(call, ctx), echo)
        except GatewayError as exc:
            await gateway._send_error(send, ctx, exc)
            return
        except ClientGone:
            gateway.observer.finish(ctx, 499)  # nginx's "client closed request": nobody to answer
            return
        except Exception:  # the client gets a 500 in OpenAI's shape; the traceback goes to the log
            log.exception("unhandled error on POST %s", scope["path"], extra={"request_id": ctx.request_id})
            await gateway._send_error(send, ctx, GatewayError("The gateway hit an internal error; it has been logged."))
            return
        if call.stream:
            await stream(scope, receive, send)
            return
        if gateway.observer.request_log.log_content:
            ctx.state["observer.response"] = result
        gateway.observer.finish(ctx, 200)
        await send_json(send, 200, orjson.dumps(result), self.headers(ctx))

    async def _stream(self, call: Call, ctx: RequestContext, echo: dict[str, Any]) -> EventSourceResponse:
        """Errors up to the first chat chunk are HTTP errors (raised here); later ones end the stream in events."""
        gateway = self.gateway
        started = time.perf_counter()
        chunks = await gateway.pipeline.stream(call, ctx)
        try:
            first = await anext(chunks)
            ctx.first_token_seconds = time.perf_counter() - started
        except StopAsyncIteration:
            first = None
        except BaseException:
            await chunks.aclose()
            raise
        gateway.observer.stream_opened(ctx)
        frames = event_frames(ResponseEvents(echo), first, chunks, ctx, lambda: gateway.observer.finish(ctx, 200),
                              gateway.drain)
        grace = gateway.drain.grace_seconds + 1  # as app.py: our frames end the stream cleanly before sse-starlette
        return EventSourceResponse(frames, headers=self.headers(ctx), sep="\n", ping=15,
                                   shutdown_grace_period=grace)


async def event_frames(
    events: ResponseEvents,
    first: dict[str, Any] | None,
    chunks: AsyncIterator[dict[str, Any]],
    ctx: RequestContext,
    on_end: Callable[[], None],
    drain: Drain | None = None,
) -> AsyncIterator[bytes]:
    """The chat chunks as Responses SSE frames; a failure after the first frame ends the stream with `error` and
    `response.failed` events. Once the server drains, a chunk is awaited only until the grace deadline."""
    try:
        if first is not None:
            for event in events.feed(first):
                yield _frame(event)
            while True:
                remaining = drain.remaining() if drain is not None else None
                try:
                    if remaining is None:
                        chunk = await anext(chunks)
                    else:
                        chunk = await asyncio.wait_for(anext(chunks), remaining)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise ServiceUnavailable(
                        "The gateway is shutting down and the stream did not finish within the grace period.",
                        code="shutting_down",
                    ) from None
                for event in events.feed(chunk):
                    yield _frame(event)
        for event in events.finish():
            yield _frame(event)
    except GatewayError as exc:
        ctx.outcome = "error"
        ctx.state["observer.error"] = exc
        for event in events.fail(exc):
            yield _frame(event)
    except Exception:  # the client gets clean error events; the traceback goes to the log
        log.exception("stream failed", extra={"request_id": ctx.request_id})
        ctx.outcome = "error"
        for event in events.fail(GatewayError("The stream failed inside the gateway.")):
            yield _frame(event)
    finally:
        await chunks.aclose()
        on_end()


def _frame(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def responses_routes(gateway: Gateway) -> list[Route]:
    """The routes to add to the app: POST /v1/responses (GatewayApp may also dispatch PATH straight to it)."""
    return [Route(PATH, ResponsesEndpoint(gateway), methods=["POST"])]
