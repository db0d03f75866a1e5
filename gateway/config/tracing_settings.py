"""[tracing]: OpenTelemetry traces, one span per request (the `otel` extra: pip install 'llm-gateway[otel]').

Off by default, and then free: nothing of OpenTelemetry is imported and no span is made.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_gateway.config.toml_reader import Table


@dataclass(frozen=True, slots=True)
class TracingSettings:
    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"  # an OTLP/HTTP collector's traces URL
    service_name: str = "llm-gateway"
    headers: tuple[tuple[str, str], ...] = ()  # sent with each export (e.g. an API key for a hosted collector)


def parse_tracing(t: Table) -> TracingSettings:
    d = TracingSettings()
    s = TracingSettings(
        enabled=t.boolean("enabled", d.enabled),
        endpoint=t.string("endpoint", d.endpoint),
        service_name=t.string("service_name", d.service_name),
        headers=tuple(sorted(t.string_map("headers").items())),
    )
    t.finish()
    if s.enabled and not s.endpoint.startswith(("http://", "https://")):
        t.error("endpoint", f"expected an http:// or https:// URL, got {s.endpoint!r}")
    return s
