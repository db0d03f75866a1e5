"""gateway.toml parsed once into frozen, typed settings; the only module that reads the file or the environment."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llm_gateway.adapters.registry import PROVIDER_TYPES
from llm_gateway.config.masking import URL_USERINFO, without_userinfo
from llm_gateway.config.policy_settings import (
    AuthSettings,
    GuardSettings,
    RateLimitSettings,
    parse_auth,
    parse_guards,
    parse_limits,
)
from llm_gateway.config.state_settings import StateSettings, parse_state
from llm_gateway.config.toml_reader import ConfigError, Table
from llm_gateway.config.tracing_settings import TracingSettings, parse_tracing

RECORD_MODES = ("off", "record", "replay", "auto")
STRATEGIES = ("weighted", "least_busy", "lowest_latency")
DEFAULT_CONFIG = "gateway.toml"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 8 * 1024 * 1024
    shutdown_grace_seconds: float = 10.0
    state_path: str = ".gateway/state.db"  # SQLite file for keys, spend and (by default) recordings
    # the HTTP layer's limits (server/http_limits.py)
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    keep_alive_seconds: float = 5.0
    max_connections: int = 4096


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    read: float = 60.0
    total: float = 600.0
    first_token: float = 60.0


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str
    type: str
    base_url: str = ""
    api_key: str = ""
    api_key_env: tuple[str, ...] = ()  # the variables api_key referred to, for a precise "set X" error
    headers: Mapping[str, str] = field(default_factory=dict)
    timeouts: Timeouts = Timeouts()
    max_connections: int = 1000
    max_answer_bytes: int = 64 * 1024 * 1024  # a whole answer, inflated; larger ones are a 502
    max_event_bytes: int = 1024 * 1024  # one event (line) of a stream
    request_id_header: str = "x-request-id"  # "" sends no request id upstream
    request_id_format: str = "uuid"  # uuid | verbatim
    # anthropic
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = 4096
    # llamacpp
    model_path: str = ""
    n_ctx: int = 2048
    n_threads: int = 0
    concurrency: int = 1
    # mock
    embedding_dim: int = 256
    stream_delay_ms: int = 0  # pause between streamed chunks

    @property
    def needs_key(self) -> bool:
        kind = PROVIDER_TYPES.get(self.type)
        return kind is not None and kind.needs_key(bool(self.api_key_env))

    @property
    def missing_key(self) -> bool:
        return self.needs_key and not self.api_key


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: str
    model: str
    weight: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class Price:
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1_000_000


@dataclass(frozen=True, slots=True)
class ModelSettings:
    alias: str
    deployments: tuple[Deployment, ...]
    strategy: str = "weighted"
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()
    owned_by: str = ""
    price: Price = Price()
    rpm: int | None = None
    tpm: int | None = None
    allowed_params: tuple[str, ...] = ()  # empty: any parameter


@dataclass(frozen=True, slots=True)
class RouterSettings:
    retries: int = 2
    backoff_seconds: float = 0.25
    backoff_max_seconds: float = 4.0
    deadline_seconds: float = 120.0
    cooldown_failures: int = 3
    cooldown_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Scrubber:
    pattern: str
    replacement: str


DEFAULT_SCRUBBERS = (
    Scrubber(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<UUID>"),
    Scrubber(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b", "<TIMESTAMP>"),
    Scrubber(r"(?:/tmp|/var/folders|/private/var/folders)/[^\s\"']+", "<TMPPATH>"),
)


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    mode: str = "off"
    store: str = "sqlite"  # sqlite | directory | postgres (the [state] database_url)
    path: str = ".gateway/recordings.db"
    ignore_fields: tuple[str, ...] = ("user", "metadata", "stream", "stream_options", "store", "service_tier")
    scrubbers: tuple[Scrubber, ...] = DEFAULT_SCRUBBERS
    replay_timing: str = "none"  # none | recorded
    timing_scale: float = 1.0
    match: str = "exact"  # exact | nearest
    nearest_threshold: float = 0.9
    ttl_seconds: float | None = None
    record_errors: bool = False


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "info"
    format: str = "json"  # json | text
    log_content: bool = False
    access_log: bool = True


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    enabled: bool = True
    require_master_key: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings
    providers: Mapping[str, ProviderSettings]
    models: Mapping[str, ModelSettings]
    router: RouterSettings = RouterSettings()
    recording: RecordingSettings = RecordingSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    guards: GuardSettings = field(default_factory=GuardSettings)
    state: StateSettings = field(default_factory=StateSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    source: str = ""
    warnings: tuple[str, ...] = ()

    def with_overrides(self, **server: Any) -> Settings:
        return replace(self, server=replace(self.server, **{k: v for k, v in server.items() if v is not None}))


def default_config_path(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("GATEWAY_CONFIG") or DEFAULT_CONFIG


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, expand and validate the config file; raise ConfigError listing every problem."""
    env = dict(os.environ if env is None else env)
    path = Path(path or default_config_path(env))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    settings = parse_settings(raw, env)
    return replace(settings, source=str(path))


def parse_settings(raw: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    problems: list[str] = []
    warnings: list[str] = []
    root = Table(raw, "", problems, env)
    server = _parse_server(root.table("server"))
    providers = {name: _parse_provider(name, t, warnings) for name, t in root.table("providers").children()}
    models = {alias: _parse_model(alias, t) for alias, t in root.table("models").children()}
    router = _parse_router(root.table("router"))
    recording = _parse_recording(root.table("recording"), env)
    logging = _parse_logging(root.table("logging"))
    metrics = _parse_metrics(root.table("metrics"))
    auth = parse_auth(root.table("auth"), warnings)
    limits = parse_limits(root.table("limits"))
    guards = parse_guards(root.table("guards"))
    state = parse_state(root.table("state"), env)
    tracing = parse_tracing(root.table("tracing"))
    root.finish()
    _check_references(providers, models, problems, warnings)
    if not models:
        problems.append('models: no model alias is configured; add one, e.g. [models.mock] with provider = "mock"')
    if recording.store == "postgres" and not state.database_url:
        problems.append('recording.store: "postgres" needs [state] database_url (or GATEWAY_DATABASE_URL)')
    if guards.moderation.alias and guards.moderation.alias not in models:
        problems.append(f"guards.moderation.alias: unknown alias {guards.moderation.alias!r}")
    if problems:
        raise ConfigError(problems)
    return Settings(
        server=server,
        providers=providers,
        models=models,
        router=router,
        recording=recording,
        logging=logging,
        metrics=metrics,
        auth=auth,
        limits=limits,
        guards=guards,
        state=state,
        tracing=tracing,
        warnings=tuple(warnings),
    )


def _parse_server(t: Table) -> ServerSettings:
    d = ServerSettings()
    s = ServerSettings(
        host=t.string("host", d.host),
        port=t.integer("port", d.port, minimum=0, maximum=65535),
        workers=t.integer("workers", d.workers, minimum=1, maximum=64),
        max_body_bytes=t.integer("max_body_bytes", d.max_body_bytes, minimum=1024),
        shutdown_grace_seconds=t.number("shutdown_grace_seconds", d.shutdown_grace_seconds, minimum=0),
        state_path=t.string("state_path", d.state_path),
        max_header_bytes=t.integer("max_header_bytes", d.max_header_bytes, minimum=1024),
        max_headers=t.integer("max_headers", d.max_headers, minimum=8),
        header_timeout_seconds=t.number("header_timeout_seconds", d.header_timeout_seconds, minimum=0.1),
        body_timeout_seconds=t.number("body_timeout_seconds", d.body_timeout_seconds, minimum=0.1),
        keep_alive_seconds=t.number("keep_alive_seconds", d.keep_alive_seconds, minimum=0.1),
        max_connections=t.integer("max_connections", d.max_connections, minimum=1),
    )
    t.finish()
    return s


def _parse_timeouts(t: Table) -> Timeouts:
    d = Timeouts()
    result = Timeouts(
        connect=t.number("connect", d.connect, minimum=0.001),
        read=t.number("read", d.read, minimum=0.001),
        total=t.number("total", d.total, minimum=0.001),
        first_token=t.number("first_token", d.first_token, minimum=0.001),
    )
    t.finish()
    return result


def _parse_provider(name: str, t: Table, warnings: list[str]) -> ProviderSettings:
    d = ProviderSettings(name=name, type="mock")
    kind = t.string("type", "", choices=tuple(PROVIDER_TYPES))
    if not t.has("type"):
        t.error("type", f"required: one of {', '.join(PROVIDER_TYPES)}")
    default_url = PROVIDER_TYPES[kind].default_url if kind in PROVIDER_TYPES else ""
    p = ProviderSettings(
        name=name,
        type=kind or "mock",
        base_url=t.string("base_url", default_url).rstrip("/"),
        api_key=t.string("api_key", ""),
        api_key_env=tuple(t.unset_env.get("api_key", ())) or _env_names(t.data.get("api_key")),
        headers=t.string_map("headers"),
        timeouts=_parse_timeouts(t.table("timeout")),
        max_connections=t.integer("max_connections", d.max_connections, minimum=1),
        max_answer_bytes=t.integer("max_answer_bytes", d.max_answer_bytes, minimum=1024),
        max_event_bytes=t.integer("max_event_bytes", d.max_event_bytes, minimum=1024),
        request_id_header=t.string("request_id_header", d.request_id_header),
        request_id_format=t.string("request_id_format", d.request_id_format, choices=("uuid", "verbatim")),
        anthropic_version=t.string("anthropic_version", d.anthropic_version),
        default_max_tokens=t.integer("default_max_tokens", d.default_max_tokens, minimum=1),
        model_path=t.string("model_path", d.model_path),
        n_ctx=t.integer("n_ctx", d.n_ctx, minimum=16),
        n_threads=t.integer("n_threads", d.n_threads, minimum=0),
        concurrency=t.integer("concurrency", d.concurrency, minimum=1),
        embedding_dim=t.integer("embedding_dim", d.embedding_dim, minimum=1, maximum=65536),
        stream_delay_ms=t.integer("stream_delay_ms", d.stream_delay_ms, minimum=0, maximum=60000),
    )
    t.finish()
    if default_url and not p.base_url.startswith(("http://", "https://")):  # a remote backend
        t.error("base_url", f"expected an http:// or https:// URL, got {without_userinfo(p.base_url)!r}")
    elif default_url and URL_USERINFO.match(p.base_url) and p.api_key:
        t.error(
            "base_url",
            "credentials in the URL and an api_key both authenticate every request: keep one "
            "(the api_key, with the URL's user:password@ removed)",
        )
    if p.missing_key:
        names = ", ".join(p.api_key_env) or "api_key"
        warnings.append(f"providers.{name}.api_key: empty (set {names}); its aliases answer 503 until it is set")
    if kind == "llamacpp":
        _warn_local_model(name, p.model_path, warnings)
    return p


def _warn_local_model(name: str, model_path: str, warnings: list[str]) -> None:
    """The local model loads on first use; say now (without loading it) what its requests would fail on."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        warnings.append(
            f"providers.{name}: llama-cpp-python is not installed (pip install 'llm-gateway[local]'); "
            "its aliases answer 503 until it is"
        )
    elif model_path and not Path(model_path).is_file():
        warnings.append(
            f"providers.{name}.model_path: no file at {model_path!r}; its aliases answer 503 until there is"
        )


def _env_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, str):
        return ()
    return tuple(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", value))


def _parse_model(alias: str, t: Table) -> ModelSettings:
    deployments: list[Deployment] = []
    if t.has("provider") or t.has("model"):
        deployments.append(Deployment(provider=t.string("provider"), model=t.string("model", alias) or alias))
    for dt in t.tables("deployments"):
        deployments.append(
            Deployment(
                provider=dt.string("provider"),
                model=dt.string("model", alias) or alias,
                weight=dt.number("weight", 1.0, minimum=0),
            )
        )
        dt.finish()
    if not deployments:
        t.error("provider", "required: a provider (or a deployments array)")
    price = t.table("price")
    m = ModelSettings(
        alias=alias,
        deployments=tuple(deployments),
        strategy=t.string("strategy", "weighted", choices=STRATEGIES),
        fallbacks=t.strings("fallbacks"),
        context_window_fallbacks=t.strings("context_window_fallbacks"),
        owned_by=t.string("owned_by", ""),
        price=Price(
            input_per_mtok=price.number("input_per_mtok", 0.0, minimum=0),
            output_per_mtok=price.number("output_per_mtok", 0.0, minimum=0),
        ),
        rpm=t.integer("rpm", None, minimum=1),
        tpm=t.integer("tpm", None, minimum=1),
        allowed_params=t.strings("allowed_params"),
    )
    price.finish()
    t.finish()
    return m


def _parse_router(t: Table) -> RouterSettings:
    d = RouterSettings()
    r = RouterSettings(
        retries=t.integer("retries", d.retries, minimum=0, maximum=20),
        backoff_seconds=t.number("backoff_seconds", d.backoff_seconds, minimum=0),
        backoff_max_seconds=t.number("backoff_max_seconds", d.backoff_max_seconds, minimum=0),
        deadline_seconds=t.number("deadline_seconds", d.deadline_seconds, minimum=0.001),
        cooldown_failures=t.integer("cooldown_failures", d.cooldown_failures, minimum=1),
        cooldown_seconds=t.number("cooldown_seconds", d.cooldown_seconds, minimum=0),
    )
    t.finish()
    return r


def _parse_recording(t: Table, env: Mapping[str, str]) -> RecordingSettings:
    d = RecordingSettings()
    scrubbers = d.scrubbers
    if t.has("scrubbers"):
        scrubbers = tuple(_parse_scrubber(st) for st in t.tables("scrubbers"))
    r = RecordingSettings(
        mode=t.string("mode", d.mode, choices=RECORD_MODES),
        store=t.string("store", d.store, choices=("sqlite", "directory", "postgres")),
        path=t.string("path", d.path),
        ignore_fields=t.strings("ignore_fields", d.ignore_fields),
        scrubbers=scrubbers,
        replay_timing=t.string("replay_timing", d.replay_timing, choices=("none", "recorded")),
        timing_scale=t.number("timing_scale", d.timing_scale, minimum=0),
        match=t.string("match", d.match, choices=("exact", "nearest")),
        nearest_threshold=t.number("nearest_threshold", d.nearest_threshold, minimum=0, maximum=1),
        ttl_seconds=t.number("ttl_seconds", None, minimum=0),
        record_errors=t.boolean("record_errors", d.record_errors),
    )
    t.finish()
    override = env.get("GATEWAY_RECORD_MODE")
    if override:
        if override not in RECORD_MODES:
            t.problems.append(f"GATEWAY_RECORD_MODE: expected one of {', '.join(RECORD_MODES)}, got {override!r}")
        else:
            r = replace(r, mode=override)
    return r


def _parse_scrubber(t: Table) -> Scrubber:
    s = Scrubber(pattern=t.string("pattern"), replacement=t.string("replacement", "<SCRUBBED>"))
    try:
        re.compile(s.pattern)
    except re.error as exc:
        t.error("pattern", f"invalid regular expression: {exc}")
    t.finish()
    return s


def _parse_logging(t: Table) -> LoggingSettings:
    d = LoggingSettings()
    s = LoggingSettings(
        level=t.string("level", d.level, choices=("debug", "info", "warning", "error")),
        format=t.string("format", d.format, choices=("json", "text")),
        log_content=t.boolean("log_content", d.log_content),
        access_log=t.boolean("access_log", d.access_log),
    )
    t.finish()
    return s


def _parse_metrics(t: Table) -> MetricsSettings:
    d = MetricsSettings()
    s = MetricsSettings(
        enabled=t.boolean("enabled", d.enabled),
        require_master_key=t.boolean("require_master_key", d.require_master_key),
    )
    t.finish()
    return s


def _check_references(
    providers: Mapping[str, ProviderSettings],
    models: Mapping[str, ModelSettings],
    problems: list[str],
    warnings: list[str],
) -> None:
    for alias, m in models.items():
        for i, dep in enumerate(m.deployments):
            if dep.provider and dep.provider not in providers:
                where = (
                    f'models."{alias}".provider' if len(m.deployments) == 1 else f'models."{alias}".deployments[{i}]'
                )
                known = ", ".join(sorted(providers)) or "none"
                problems.append(f"{where}: unknown provider {dep.provider!r} (configured: {known})")
        for key, targets in (("fallbacks", m.fallbacks), ("context_window_fallbacks", m.context_window_fallbacks)):
            for target in targets:
                if target not in models:
                    problems.append(f'models."{alias}".{key}: unknown alias {target!r}')
                elif target == alias:
                    problems.append(f'models."{alias}".{key}: an alias cannot fall back to itself')
