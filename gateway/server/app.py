"""The ASGI app: the model endpoints on raw ASGI (see asgi_io), everything else on Starlette routes.

The Gateway holds what lives as long as the server and serves requests; it is handed its parts already built (the
composition root builds them from settings). Errors become answers in server/errors.py, one id per request in
server/context.py.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Container, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llm_gateway import __version__
from llm_gateway.config.settings import Settings
from llm_gateway.engine.pipeline import Pipeline
from llm_gateway.engine.router import Router
from llm_gateway.observability.observer import Observer
from llm_gateway.server.asgi_io import ClientGone, Receive, Scope, Send, read_body, send_json
from llm_gateway.server.context import request_context
from llm_gateway.server.errors import ErrorFormat, error_response, note_error, send_error
from llm_gateway.server.operator_routes import operator_routes
from llm_gateway.server.shutdown import Drain
from llm_gateway.server.sse_writer import send_event_stream
from llm_gateway.vocab.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from llm_gateway.vocab.tokens import encoding
from llm_gateway.vocab.types import Adapter, Call, RequestContext
from llm_gateway.wire.anthropic.api import COUNT_TOKENS_PATH, MESSAGES_PATH, MessagesWire
from llm_gateway.wire.openai_wire import Framer, OpenAIWire, Wire
from llm_gateway.wire.responses.api import RESPONSES_PATH, ResponsesWire

log = logging.getLogger("gateway")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Gateway:
    """Holds what lives as long as the server (settings, adapters, router, pipeline, observer) and serves requests."""

    def __init__(
        self,
        settings: Settings,
        *,
        adapters: Mapping[str, Adapter],
        router: Router,
        pipeline: Pipeline,
        observer: Observer,
        drain: Drain,
        preload_tokens: bool = True,
    ) -> None:
        self.settings = settings
        self.adapters = dict(adapters)
        self.router = router
        self.pipeline = pipeline
        self.observer = observer
        self.drain = drain
        self.created = int(time.time())
        self.ready = True
        self.preload_tokens = preload_tokens  # load tiktoken's table at start, not on the first request needing it

    async def aclose(self) -> None:
        self.ready = False
        await self.pipeline.aclose()
        for adapter in self.adapters.values():
            await adapter.aclose()
        if self.observer.fleet is not None:
            await self.observer.fleet.aclose()
        self.observer.close()

    # handlers

    async def serve(self, scope: Scope, receive: Receive, send: Send, wire: Wire) -> None:
        """One POST to a model endpoint, as a raw ASGI app (see asgi_io): a JSON answer, an SSE stream or an error.

        `wire` says what the client's body is to the pipeline and back (OpenAI's own, or /v1/responses').
        """
        ctx = request_context(scope)
        self.observer.start(ctx, wire.label)
        try:
            # authenticate first: without a valid key the answer is 401, before the body is read, validated or its
            # model looked up (so neither the aliases nor the schema can be probed without a key)
            await self.pipeline.admit(ctx)
            body, state = wire.request(await self._read_json(ctx, receive))
            call = wire.parse(body, self.settings.models)
            call.request_id = ctx.request_id
            call.traceparent = ctx.traceparent
            ctx.alias = call.alias
            wire.bind(call, state, ctx)
            if call.stream:
                stream = await self._stream(call, ctx, wire.framer(state), wire)
            else:
                result = wire.answer(await self.pipeline.send(call, ctx), state)
        except GatewayError as exc:
            await self._send_error(send, ctx, exc, wire)
            return
        except ClientGone:
            self.observer.finish(ctx, 499)  # nginx's "client closed request": nobody to answer
            return
        except Exception:  # the client gets a 500 in OpenAI's shape; the traceback goes to the log
            log.exception("unhandled error on POST %s", scope["path"], extra={"request_id": ctx.request_id})
            await self._send_error(
                send, ctx, GatewayError("The gateway hit an internal error; it has been logged."), wire
            )
            return
        if call.stream:
            await stream(scope, receive, send)
            return
        if self.observer.request_log.log_content:
            ctx.answer = result
        self.observer.finish(ctx, 200)
        await send_json(send, 200, orjson.dumps(result), wire.response_headers(_headers(ctx)))

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send, wire: TokenCountWire) -> None:
        """POST /v1/messages/count_tokens: exact from a backend that counts, else the gateway's own estimate; the
        answer's x-gateway-token-count header says which. Keys and model access apply as to a message."""
        ctx = request_context(scope)
        self.observer.start(ctx, wire.label)
        try:
            await self.pipeline.admit(ctx)  # authenticate first, as serve() does
            call = wire.count_call(await self._read_json(ctx, receive), ctx, self.settings.models)
            call.traceparent = ctx.traceparent
            ctx.alias = call.alias
            if not self.pipeline.visible([call.alias], ctx):
                raise PermissionDenied(f"This key may not use the model {call.alias!r}.", param="model")
            count = await self.router.count_tokens(call)
            source = "exact" if count is not None else "estimate"
            if count is None:
                count = wire.estimate(call)
        except GatewayError as exc:
            await self._send_error(send, ctx, exc, wire)
            return
        except ClientGone:
            self.observer.finish(ctx, 499)
            return
        except Exception:  # the client gets a 500 in its protocol's shape; the traceback goes to the log
            log.exception("unhandled error on POST %s", scope["path"], extra={"request_id": ctx.request_id})
            await self._send_error(
                send, ctx, GatewayError("The gateway hit an internal error; it has been logged."), wire
            )
            return
        self.observer.finish(ctx, 200)
        headers = wire.response_headers({**_headers(ctx), "x-gateway-token-count": source})
        await send_json(send, 200, orjson.dumps({"input_tokens": count}), headers)

    async def _send_error(self, send: Send, ctx: RequestContext, exc: GatewayError, wire: ErrorFormat) -> None:
        note_error(exc, ctx)
        self.observer.finish(ctx, wire.error_status(exc))
        await send_error(send, ctx, exc, wire)

    async def list_models(self, request: Request) -> Response:
        ctx = request_context(request.scope)
        await self.pipeline.admit(ctx)
        aliases = self.pipeline.visible(list(self.settings.models), ctx)
        return JSONResponse({"object": "list", "data": [self._model_card(a) for a in aliases]}, headers=_headers(ctx))

    async def retrieve_model(self, request: Request) -> Response:
        ctx = request_context(request.scope)
        await self.pipeline.admit(ctx)
        alias = request.path_params["model"]
        if alias not in self.pipeline.visible(list(self.settings.models), ctx):
            raise ModelNotFound(f"The model `{alias}` does not exist or you do not have access to it.", param="model")
        return JSONResponse(self._model_card(alias), headers=_headers(ctx))

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(self, request: Request) -> Response:
        if not self.ready or self.drain.draining:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        return JSONResponse({"status": "ready", "models": len(self.settings.models)})

    def _model_card(self, alias: str) -> dict[str, Any]:
        m = self.settings.models[alias]
        owner = m.owned_by or (m.deployments[0].provider if m.deployments else "llm-gateway")
        return {"id": alias, "object": "model", "created": self.created, "owned_by": owner}

    async def _stream(
        self, call: Any, ctx: RequestContext, framer: Framer, wire: Wire
    ) -> Callable[[Scope, Receive, Send], Any]:
        """Prime the stream (errors up to its first chunk are HTTP errors), then answer it as an SSE stream."""
        chunks = await self.pipeline.stream(call, ctx, frames=framer.takes_frames)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = None
        except BaseException:
            await chunks.aclose()
            raise
        self.observer.stream_opened(ctx)
        frames = _frames(framer, first, chunks, ctx, lambda: self.observer.finish(ctx, 200), self.drain)
        headers = wire.response_headers(_headers(ctx))

        async def respond(scope: Scope, receive: Receive, send: Send) -> None:
            await send_event_stream(receive, send, frames, headers)

        return respond

    async def _read_json(self, ctx: RequestContext, receive: Receive) -> Any:
        raw = await read_body(receive, ctx.headers.get("content-length"), self.settings.server.max_body_bytes)
        if not raw:
            raise InvalidRequest("The request body is empty; expected a JSON object.")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}.") from None


async def _frames(
    framer: Framer,
    first: dict[str, Any] | None,
    chunks: AsyncIterator[dict[str, Any]],
    ctx: RequestContext,
    on_end: Callable[[], None],
    drain: Drain | None = None,
) -> AsyncIterator[bytes]:
    """The stream's SSE frames (`framer`: OpenAI's, or a translation); a failure after the first byte ends the stream
    with the framer's error frame.

    Once the server drains (SIGTERM), each chunk is awaited only until the grace deadline; a stream still open then
    ends with an error frame rather than a cut connection.
    """
    try:
        async with aclosing(chunks):
            async for frame in _framed(framer, first, chunks, ctx, drain):
                yield frame
    finally:  # after the inner stream closed: its end (usage settled, recording saved) is part of the request
        on_end()


async def _framed(
    framer: Framer,
    first: dict[str, Any] | None,
    chunks: AsyncIterator[dict[str, Any]],
    ctx: RequestContext,
    drain: Drain | None,
) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            frame = framer.feed(first)
            if frame:
                yield frame
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
                frame = framer.feed(chunk)
                if frame:
                    yield frame
        yield framer.finish()
    except GatewayError as exc:
        ctx.outcome = "error"
        ctx.error = exc
        yield framer.fail(exc)
    except Exception:  # the client gets a clean error frame; the traceback goes to the log
        log.exception("stream failed", extra={"request_id": ctx.request_id})
        ctx.outcome = "error"
        exc = GatewayError("The stream failed inside the gateway.")
        ctx.error = exc
        yield framer.fail(exc)


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-request-id": ctx.request_id}
    if ctx.deployment:
        headers["x-gateway-deployment"] = ctx.deployment
    if ctx.response_headers:
        headers.update(ctx.response_headers)
    return headers


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: GatewayError = NotFound(f"Unknown request URL: {request.method} {request.url.path}.", code="unknown_url")
    elif exc.status_code == 405:
        err = MethodNotAllowed(f"Method {request.method} is not allowed for {request.url.path}.")
    else:
        err = GatewayError(str(exc.detail), status=exc.status_code)
    return _route_error(request, err)


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _route_error(request, exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    ctx = request_context(request.scope)
    log.exception("unhandled error on %s %s", request.method, request.url.path, extra={"request_id": ctx.request_id})
    return _route_error(request, GatewayError("The gateway hit an internal error; it has been logged."))


def _route_error(request: Request, err: GatewayError) -> Response:
    """A Starlette route's error: answered and logged with the request's one id."""
    ctx = request_context(request.scope)
    request.app.state.gateway.observer.route_error(ctx, request.url.path, err.status, err)
    return error_response(err, ctx)


# every POST endpoint served by the pipeline, and how its bodies look on the wire
MODEL_ENDPOINTS: dict[str, Wire] = {
    "/v1/chat/completions": OpenAIWire("chat"),
    "/v1/completions": OpenAIWire("completion"),
    "/v1/embeddings": OpenAIWire("embedding"),
    "/v1/moderations": OpenAIWire("moderation"),
    RESPONSES_PATH: ResponsesWire(),
    MESSAGES_PATH: MessagesWire(),
}


class TokenCountWire(ErrorFormat, Protocol):
    label: str

    def count_call(self, body: Any, ctx: RequestContext, aliases: Container[str]) -> Call:
        """The call whose input tokens are counted (its native body for a backend that counts exactly)."""
        ...

    def estimate(self, call: Call) -> int:
        """The gateway's own count (tiktoken), when no backend counts exactly."""
        ...


TOKEN_COUNT_ENDPOINTS: dict[str, TokenCountWire] = {COUNT_TOKENS_PATH: MessagesWire("count_tokens")}


class ModelEndpoint:
    """A model endpoint as a raw ASGI app: Starlette's routing hands it the scope (for root paths, trailing slashes
    and 405s), GatewayApp calls it directly for the exact paths."""

    def __init__(self, gateway: Gateway, wire: Wire) -> None:
        self.gateway = gateway
        self.wire = wire

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.gateway.serve(scope, receive, send, self.wire)


class TokenCountEndpoint:
    def __init__(self, gateway: Gateway, wire: TokenCountWire) -> None:
        self.gateway = gateway
        self.wire = wire

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.gateway.count_tokens(scope, receive, send, self.wire)


class GatewayApp(Starlette):
    """Starlette, but a POST to a model endpoint goes straight to the gateway, ahead of Starlette's middleware and
    routing: those carry every request and cost about a fifth of the gateway's own time (BENCHMARKS.md).
    Gateway.serve answers every error itself, as Starlette's exception handlers would."""

    def __init__(
        self, gateway: Gateway, model_endpoints: Mapping[str, ModelEndpoint | TokenCountEndpoint], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.state.gateway = gateway
        self._model_endpoints = dict(model_endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self._model_endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def start_serving(gateway: Gateway) -> None:
    """What the server does before its first request (also after a SIGHUP reload, composition/reload.py)."""
    gateway.drain.listen_for_signals()
    if gateway.preload_tokens:
        await asyncio.to_thread(encoding)  # load tiktoken's table now, not on the first request
    # what startup built (settings, tiktoken, metrics, adapters) lives as long as the server: out of the
    # collector's sight, so full collections under load stop walking it (~6% of instructions at 64 connections)
    gc.freeze()


async def stop_serving(gateway: Gateway) -> None:
    await gateway.aclose()
    gc.unfreeze()  # an app stopped inside a longer-lived process (tests, the pytest plugin) can be collected


def asgi_app(gateway: Gateway) -> GatewayApp:
    """The app that serves `gateway`: model endpoints, /v1/models, health, the operator routes, and its lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await start_serving(gateway)
        try:
            yield
        finally:
            await stop_serving(gateway)

    model_endpoints: dict[str, ModelEndpoint | TokenCountEndpoint] = {
        path: ModelEndpoint(gateway, wire) for path, wire in MODEL_ENDPOINTS.items()
    }
    model_endpoints |= {path: TokenCountEndpoint(gateway, wire) for path, wire in TOKEN_COUNT_ENDPOINTS.items()}
    routes = [
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in model_endpoints.items()),
        Route("/v1/models", gateway.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", gateway.retrieve_model, methods=["GET"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/readyz", gateway.readyz, methods=["GET"]),
        *operator_routes(
            gateway.observer,
            gateway.pipeline.admit,
            require_master_key_for_metrics=gateway.settings.metrics.require_master_key,
        ),
    ]
    app = GatewayApp(
        gateway,
        model_endpoints,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, GatewayError: _gateway_error, Exception: _unexpected},
    )
    return app
