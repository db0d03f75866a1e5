"""OpenTelemetry traces: one span per client request, with the GenAI semantic conventions' attributes.

A client's W3C `traceparent` makes the span its child; the span's own trace context goes upstream in the call's
`traceparent` header, so the upstream's spans join the same trace. Spans are exported over OTLP/HTTP in batches off
the request path. Built only when [tracing] enabled = true (the `otel` extra); off, nothing of OpenTelemetry is
imported and the observer makes no span.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from llm_gateway.config.tracing_settings import TracingSettings
from llm_gateway.vocab.types import RequestContext

TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_OPERATIONS = {"chat": "chat", "responses": "chat", "messages": "chat", "completions": "text_completion",
               "completion": "text_completion", "embeddings": "embeddings", "embedding": "embeddings"}


class MissingExtra(RuntimeError):
    pass


class Tracing:
    def __init__(self, settings: TracingSettings, replica: str, provider_types: Mapping[str, str],
                 exporter: Any = None) -> None:
        """`exporter` (tests: an in-memory one) replaces the OTLP exporter and is flushed per span."""
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
            from opentelemetry.trace import SpanKind, Status, StatusCode
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError as exc:
            raise MissingExtra("[tracing] is on but OpenTelemetry is not installed: pip install 'llm-gateway[otel]'"
                               ) from exc
        if exporter is None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError as exc:
                raise MissingExtra("[tracing] needs the OTLP exporter: pip install 'llm-gateway[otel]'") from exc
            processor: Any = BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.endpoint,
                                                                 headers=dict(settings.headers)))
        else:
            processor = SimpleSpanProcessor(exporter)
        resource = Resource.create({"service.name": settings.service_name, "service.instance.id": replica})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("llm_gateway")
        self.propagator = TraceContextTextMapPropagator()
        self.provider_types = dict(provider_types)
        self._server_kind = SpanKind.SERVER
        self._status = (Status, StatusCode)

    def begin(self, ctx: RequestContext) -> None:
        parent = self.propagator.extract(ctx.headers) if "traceparent" in ctx.headers else None
        span = self.tracer.start_span("gateway request", context=parent, kind=self._server_kind)
        ctx.span = span
        sc = span.get_span_context()
        ctx.traceparent = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"

    def end(self, ctx: RequestContext, status: int) -> None:
        span, ctx.span = ctx.span, None
        operation = _OPERATIONS.get(ctx.endpoint, ctx.endpoint or "request")
        span.update_name(f"{operation} {ctx.alias}" if ctx.alias else operation)
        provider = ctx.provider
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.system": self.provider_types.get(provider, provider) or "llm-gateway",
            "http.response.status_code": status,
            "gateway.request_id": ctx.request_id,
            "gateway.outcome": ctx.outcome,
            "gateway.replay": ctx.outcome == "replay",
            "gateway.cache_hit": ctx.outcome == "cache_hit",
        }
        if ctx.alias:
            attributes["gen_ai.request.model"] = ctx.alias
        if ctx.deployment:
            attributes["gateway.deployment"] = ctx.deployment
            attributes["gen_ai.response.model"] = ctx.deployment.partition("/")[2]
        if ctx.usage is not None:
            attributes["gen_ai.usage.input_tokens"] = ctx.usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = ctx.usage.completion_tokens
        if ctx.key is not None:
            attributes["gateway.key"] = ctx.key.name
        if ctx.denied_by:
            attributes["gateway.denied_by"] = ctx.denied_by
        span.set_attributes(attributes)
        if status >= 500 or ctx.outcome == "error":
            status_type, code = self._status
            attributes_error = type(ctx.error).__name__ if ctx.error is not None else str(status)
            span.set_attribute("error.type", attributes_error)
            span.set_status(status_type(code.ERROR))
        span.end()

    def close(self) -> None:
        self.provider.shutdown()
