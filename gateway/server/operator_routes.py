"""The operator's endpoints: /metrics (Prometheus), /ui (the usage page) and /ui/api/stats (its figures as JSON).

The figures are admin requests: the auth policy requires the master key for them when auth is on (for /metrics only
when `[metrics] require_master_key = true`, since scrapers often cannot send one). The page itself is a static shell
that holds no figures; it asks for the key and sends it with its stats request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llm_gateway.observability.metrics import CONTENT_TYPE, render
from llm_gateway.observability.observer import Observer
from llm_gateway.server.context import request_context
from llm_gateway.vocab.errors import NotFound
from llm_gateway.vocab.types import RequestContext

Admit = Callable[[RequestContext], Awaitable[None]]  # the policies' check of a request that is not a call

# The page's files, shipped as package data; only these names are served (no path from the client reaches the disk).
UI_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_NO_STORE = {"cache-control": "no-store"}


def _asset(name: str) -> bytes:
    return resources.files("llm_gateway.server.ui").joinpath(name).read_bytes()


def operator_routes(observer: Observer, admit_request: Admit, *, require_master_key_for_metrics: bool) -> list[Route]:
    assets = {name: (_asset(name), media) for name, media in UI_ASSETS.items()}

    async def admit(request: Request, required: bool = True) -> str:
        ctx = request_context(request.scope)
        if required:
            ctx.admin = True
            await admit_request(ctx)
        return ctx.request_id

    async def metrics(request: Request) -> Response:
        if not observer.enabled:
            raise NotFound("Metrics are disabled ([metrics] enabled = false).", code="metrics_disabled")
        request_id = await admit(request, require_master_key_for_metrics)
        observer.sync()
        # rendering reads every series (every worker's file in multiprocess mode): off the event loop
        body = await asyncio.to_thread(render, observer.metrics)
        return Response(body, media_type=CONTENT_TYPE, headers={"x-request-id": request_id, **_NO_STORE})

    async def stats(request: Request) -> Response:
        if not observer.enabled:
            raise NotFound("Usage figures are disabled ([metrics] enabled = false).", code="metrics_disabled")
        request_id = await admit(request)
        body = orjson.dumps(await observer.fleet_stats())
        return Response(body, media_type="application/json", headers={"x-request-id": request_id, **_NO_STORE})

    async def page(request: Request) -> Response:
        name = request.path_params.get("asset") or "index.html"
        if name not in assets:
            raise NotFound(f"Unknown request URL: GET {request.url.path}.", code="unknown_url")
        content, media = assets[name]
        return Response(content, media_type=media, headers=_NO_STORE)

    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/ui", page, methods=["GET"]),
        Route("/ui/", page, methods=["GET"]),
        Route("/ui/api/stats", stats, methods=["GET"]),
        Route("/ui/{asset}", page, methods=["GET"]),
    ]
