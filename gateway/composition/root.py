"""The composition root: settings in, a running gateway out. The only module that knows every part.

Adapters come from the provider registry, the router over them, the policy chain and the recorder from their
settings, the pipeline joins them, the observer is handed the counters and health it reports, and the server gets
it all already built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_gateway.composition.adapters import build_adapters, share_deny_list
from llm_gateway.composition.policies import build_policies
from llm_gateway.composition.recorder import build_recorder
from llm_gateway.composition.reload import ReloadingApp
from llm_gateway.composition.state import fleet_stats
from llm_gateway.config.settings import Settings, load_settings
from llm_gateway.engine.pipeline import Pipeline
from llm_gateway.engine.router import Router
from llm_gateway.observability.observer import Observer
from llm_gateway.observability.request_log import configure_process_logging
from llm_gateway.server.app import Gateway, GatewayApp, asgi_app
from llm_gateway.server.shutdown import Drain
from llm_gateway.vocab.types import Call, RequestContext


def build_gateway(
    settings: Settings,
    *,
    transports: Mapping[str, Any] | None = None,
    span_exporter: Any = None,
    drain: Drain | None = None,
) -> Gateway:
    """`transports` (tests) replaces the HTTP transport of the named providers (respx, httpx.MockTransport);
    `span_exporter` (tests) receives the spans instead of the OTLP exporter; `drain` is the running server's, handed
    to a gateway built by a SIGHUP reload so that SIGTERM still reaches it."""
    adapters = build_adapters(settings.providers, transports)
    share_deny_list(adapters, settings.guards.deny_list.patterns, settings.guards.deny_list.keywords)
    missing = {
        name: (", ".join(p.api_key_env) or f"providers.{name}.api_key")
        for name, p in settings.providers.items()
        if p.missing_key
    }
    first_token = {name: p.timeouts.first_token for name, p in settings.providers.items()}
    router = Router(settings.models, adapters, settings.router, missing_keys=missing, first_token_timeouts=first_token)
    prices = {alias: m.price for alias, m in settings.models.items()}
    recorder = build_recorder(settings)

    async def send_on_own_behalf(call: Call, ctx: RequestContext) -> dict[str, Any]:
        # the gateway's own calls (the moderation guard's) go through the recorder like a client's: replay mode
        # answers them from recordings and never reaches an upstream
        return await recorder.send(call, ctx, router.send)

    policies = build_policies(settings, send_on_own_behalf)
    pipeline = Pipeline(router, policies, recorder, prices)
    observer = Observer(
        settings,
        recorder_counters=recorder.counters,
        health=router.health,
        policies=pipeline.policies,
    )
    observer.fleet = fleet_stats(settings, observer.stats)
    if settings.tracing.enabled:
        from llm_gateway.observability.tracing import Tracing

        provider_types = {name: p.type for name, p in settings.providers.items()}
        observer.tracing = Tracing(settings.tracing, settings.state.replica_id, provider_types, span_exporter)
    router.on_upstream_error = observer.upstream_error
    drain = drain or Drain(settings.server.shutdown_grace_seconds, in_flight=lambda: observer.in_flight)
    # tiktoken's table (~40 MB a worker) is loaded at start where requests count tokens as they are served (limits,
    # budgets, the mock backend); elsewhere only a stream that breaks before its usage, or a count_tokens estimate,
    # needs it, and the first such request loads it
    preload = bool(policies) or any(p.type == "mock" for p in settings.providers.values())
    return Gateway(settings, adapters=adapters, router=router, pipeline=pipeline, observer=observer, drain=drain,
                   preload_tokens=preload)


def create_app(settings: Settings, *, transports: Mapping[str, Any] | None = None,
               span_exporter: Any = None) -> GatewayApp:
    return asgi_app(build_gateway(settings, transports=transports, span_exporter=span_exporter))


def configure_http_limits(settings: Settings) -> None:
    """This process's HTTP limits ([server]), for the protocol `gateway serve` runs uvicorn with."""
    try:
        from llm_gateway.server.http_limits import HttpLimits, LimitedHttpToolsProtocol
    except ImportError:  # no httptools: uvicorn parses with h11 and its own header limit
        return
    s = settings.server
    LimitedHttpToolsProtocol.configure(HttpLimits(
        max_header_bytes=s.max_header_bytes, max_headers=s.max_headers, header_timeout=s.header_timeout_seconds,
        body_timeout=s.body_timeout_seconds, max_connections=s.max_connections,
    ))


def app_from_env() -> ReloadingApp:
    """uvicorn factory: `gateway serve` passes the config path (and overrides) through the environment.

    The app reloads gateway.toml on SIGHUP (composition/reload.py)."""
    settings = load_settings()
    configure_process_logging(settings.logging)  # the server's own log lines in the configured level and format
    configure_http_limits(settings)
    return ReloadingApp(create_app(settings), create_app_reloaded)


def create_app_reloaded(drain: Drain) -> GatewayApp:
    """The app for the config file as it is now (raises ConfigError, so a bad file changes nothing)."""
    settings = load_settings()
    configure_http_limits(settings)
    return asgi_app(build_gateway(settings, drain=drain))
