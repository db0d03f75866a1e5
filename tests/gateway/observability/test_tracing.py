"""OpenTelemetry: one span per request with the GenAI attributes, a client's traceparent honoured and the gateway's
own sent upstream; with tracing off, the client's traceparent still reaches the upstream and no span is made."""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")  # the `otel` extra; the test extra installs it
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_gateway.composition.root import create_app
from tests.conftest import make_settings
from tests.support.server import running
from tests.support.upstream import FakeUpstream

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


def test_a_request_is_one_span_child_of_the_clients_trace_and_the_upstream_joins_it(upstream: FakeUpstream) -> None:
    exporter = InMemorySpanExporter()
    settings = make_settings(upstream.url, tracing={"enabled": True}, state={"replica_id": "pod-1"})  # type: ignore[attr-defined]
    with running(create_app(settings, span_exporter=exporter)) as url:
        r = httpx.post(url + "/v1/chat/completions", headers={"traceparent": TRACEPARENT},
                       json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    [span] = exporter.get_finished_spans()
    assert span.name == "chat echo"
    assert f"{span.context.trace_id:032x}" == CLIENT_TRACE and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    attrs = dict(span.attributes)
    assert attrs["gen_ai.system"] == "openai" and attrs["gen_ai.request.model"] == "echo"
    assert attrs["gen_ai.usage.input_tokens"] == 11 and attrs["gen_ai.usage.output_tokens"] == 7
    assert attrs["gateway.deployment"] == "up/echo" and attrs["gateway.replay"] is False
    assert span.resource.attributes["service.instance.id"] == "pod-1"
    sent = upstream.requests[-1]["headers"]["traceparent"]
    assert sent == f"00-{CLIENT_TRACE}-{span.context.span_id:016x}-01"


def test_tracing_off_passes_the_clients_traceparent_through(upstream: FakeUpstream) -> None:
    with running(create_app(make_settings(upstream.url))) as url:  # type: ignore[attr-defined]
        httpx.post(url + "/v1/chat/completions", headers={"traceparent": TRACEPARENT},
                   json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
        httpx.post(url + "/v1/chat/completions", headers={"traceparent": "not-a-trace"},
                   json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert upstream.requests[-2]["headers"]["traceparent"] == TRACEPARENT
    assert "traceparent" not in upstream.requests[-1]["headers"]  # a malformed one is not forwarded
