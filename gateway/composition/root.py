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
from llm_gateway.config.settings import Settings, load_settings
from llm_gateway.engine.pipeline import Pipeline
from llm_gateway.engine.router import Router
from llm_gateway.observability.observer import Observer
from llm_gateway.observability.request_log import configure_process_logging
from llm_gateway.server.app import Gateway, GatewayApp, asgi_app
from llm_gateway.server.shutdown import Drain


def build_gateway(
    settings: Settings, *, transports: Mapping[str, Any] | None = None, drain: Drain | None = None
) -> Gateway:
    """`transports` (tests) replaces the HTTP transport of the named providers (respx, httpx.MockTransport);
    `drain` is the running server's, handed to a gateway built by a reload so that SIGTERM still reaches it."""
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
    policies = build_policies(settings, router.send)
    recorder = build_recorder(settings)
    pipeline = Pipeline(router, policies, recorder, prices)
    observer = Observer(
        settings,
        recorder_counters=recorder.counters,
        health=router.health,
        policies=pipeline.policies,
    )
    router.on_upstream_error = observer.upstream_error
    drain = drain or Drain(settings.server.shutdown_grace_seconds)
    return Gateway(settings, adapters=adapters, router=router, pipeline=pipeline, observer=observer, drain=drain)


def create_app(settings: Settings, *, transports: Mapping[str, Any] | None = None) -> GatewayApp:
    return asgi_app(build_gateway(settings, transports=transports))


def app_from_env() -> ReloadingApp:
    """uvicorn factory: `gateway serve` passes the config path (and overrides) through the environment.

    The app reloads gateway.toml on SIGHUP (composition/reload.py)."""
    settings = load_settings()
    configure_process_logging(settings.logging)  # the server's own log lines in the configured level and format
    return ReloadingApp(create_app(settings), lambda drain: create_app_reloaded(drain))


def create_app_reloaded(drain: Drain) -> GatewayApp:
    """The app for the config file as it is now (raises ConfigError, so a bad file changes nothing)."""
    return asgi_app(build_gateway(load_settings(), drain=drain))
