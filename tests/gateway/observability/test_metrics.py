"""/metrics after a mixed workload: every count equals what was sent; labels stay bounded; workers are summed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from llm_gateway.composition.root import create_app
from llm_gateway.observability.metrics import DeltaSync, GatewayMetrics, MetricBatch
from llm_gateway.vocab.counters import int_counters
from llm_gateway.vocab.errors import PermissionDenied
from llm_gateway.vocab.types import BasePolicy, Call, RequestContext
from tests.conftest import make_settings
from tests.support.gateway_process import gateway_process
from tests.support.server import running
from tests.support.upstream import FakeUpstream

MADE_UP = "sk-live-made-up-model-9f8e7d"


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(v for n, ls, v in samples(text) if n == name and all(ls.get(k) == w for k, w in labels.items()))


class DenyBlockedUser(BasePolicy):
    """Stands in for a real policy: refuses requests whose `user` is "blocked", as policies report a denial."""

    name = "test_guard"

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        if call.body.get("user") == "blocked":
            ctx.denied_by = self.name
            raise PermissionDenied("blocked for the test")
        return None


@pytest.fixture()
def mixed(upstream: FakeUpstream, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    settings = make_settings(
        upstream.url,  # type: ignore[attr-defined]
        recording={"mode": "auto", "path": str(tmp_path / "recordings.db")},
        logging={"access_log": False},
    )
    app = create_app(settings)
    app.state.gateway.pipeline.policies.append(DenyBlockedUser())
    with running(app) as url:
        yield url, app.state.gateway


def test_one_scrape_after_a_mixed_workload_counts_exactly_what_was_sent(mixed: tuple[str, Any]) -> None:
    url, gateway = mixed
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-client-secret", max_retries=0)
    hello = [{"role": "user", "content": "hello metrics"}]
    first = client.chat.completions.create(model="mock", messages=hello)  # mock, recorded (auto mode)
    again = client.chat.completions.create(model="mock", messages=hello)  # answered from the recording
    upstream = client.chat.completions.create(model="echo", messages=hello)  # the real fake upstream
    chunks = list(
        client.chat.completions.create(
            model="mock",
            messages=[{"role": "user", "content": "a stream"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="mock", messages=hello, user="blocked")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="fail-500", messages=hello)  # 1 attempt: a 500 is not asked again
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=MADE_UP, messages=hello)

    scrape = httpx.get(url + "/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    req = "gateway_requests_total"
    assert value(text, req) == 7  # one per client request
    assert value(text, req, alias="mock", provider="mock", outcome="upstream", status_class="2xx") == 2
    assert value(text, req, alias="mock", provider="mock", outcome="cache_hit", status_class="2xx") == 1
    assert value(text, req, alias="echo", provider="up", outcome="upstream", status_class="2xx") == 1
    assert value(text, req, alias="mock", outcome="denied", status_class="4xx") == 1
    assert value(text, req, alias="fail-500", provider="up", outcome="error", status_class="5xx") == 1
    assert value(text, req, alias="", outcome="error", status_class="4xx") == 1  # the made-up model
    assert value(text, "gateway_upstream_errors_total", provider="up", kind="5xx") == 1
    assert value(text, "gateway_policy_denials_total", policy="test_guard", code="model_not_allowed") == 1
    assert value(text, "gateway_recording_hits_total") == 1
    assert value(text, "gateway_recording_records_total") == gateway.pipeline.recorder.counters.records >= 3
    assert value(text, "gateway_recording_misses_total") == gateway.pipeline.recorder.counters.misses
    assert value(text, "gateway_recording_store_errors_total") == 0
    prompt = first.usage.prompt_tokens + again.usage.prompt_tokens + chunks[-1].usage.prompt_tokens
    completion = first.usage.completion_tokens + again.usage.completion_tokens + chunks[-1].usage.completion_tokens
    assert value(text, "gateway_prompt_tokens_total", alias="mock") == prompt
    assert value(text, "gateway_completion_tokens_total", alias="mock") == completion
    assert value(text, "gateway_prompt_tokens_total", alias="echo") == upstream.usage.prompt_tokens
    assert value(text, "gateway_time_to_first_token_seconds_count", alias="mock") == 1
    assert value(text, "gateway_stream_duration_seconds_count", alias="mock") == 1
    assert value(text, "gateway_request_duration_seconds_count") == 7
    assert value(text, "gateway_overhead_seconds_count") == 7
    assert value(text, "gateway_requests_in_flight") == 0
    assert value(text, "gateway_open_streams") == 0
    assert value(text, "gateway_deployment_healthy", deployment="mock/mock-1") == 1
    assert value(text, "gateway_deployment_healthy", deployment="up/fail-500") == 1  # the only one: kept
    # bounded, clean labels: no made-up model, no key, no prompt text
    for secret in (MADE_UP, "sk-client-secret", "sk-upstream", "hello metrics"):
        assert secret not in text


def test_overhead_is_the_request_time_minus_the_upstream_wait(mixed: tuple[str, Any]) -> None:
    url, _ = mixed
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "overhead"}])
    text = httpx.get(url + "/metrics").text
    total = value(text, "gateway_request_duration_seconds_sum")
    upstream = value(text, "gateway_upstream_duration_seconds_sum")
    overhead = value(text, "gateway_overhead_seconds_sum")
    assert 0 < upstream < total
    assert overhead == pytest.approx(total - upstream, abs=1e-6)


def test_metrics_can_be_disabled() -> None:
    app = create_app(make_settings(metrics={"enabled": False}, logging={"access_log": False}))
    with running(app) as url:
        httpx.post(url + "/v1/chat/completions", json={"model": "mock", "messages": [{"role": "user", "content": "x"}]})
        response = httpx.get(url + "/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "metrics_disabled"


def test_metrics_with_require_master_key_is_an_admin_request() -> None:
    seen: list[bool] = []

    class RecordAdmit(BasePolicy):
        name = "record_admit"

        async def admit(self, ctx: RequestContext) -> None:
            seen.append(ctx.admin)
            if ctx.admin and ctx.headers.get("authorization") != "Bearer sk-master":
                raise PermissionDenied("master key required", code="master_key_required")

    app = create_app(make_settings(metrics={"require_master_key": True}, logging={"access_log": False}))
    app.state.gateway.pipeline.policies.append(RecordAdmit())
    with running(app) as url:
        assert httpx.get(url + "/metrics").status_code == 403
        assert httpx.get(url + "/metrics", headers={"authorization": "Bearer sk-master"}).status_code == 200
    assert all(seen)


def test_a_failing_observer_never_fails_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(make_settings(logging={"access_log": False}))
    observer = app.state.gateway.observer

    def broken(*args: Any) -> None:
        raise RuntimeError("metrics backend broke")

    monkeypatch.setattr(observer, "_count", broken)
    with running(app) as url:
        response = httpx.post(
            url + "/v1/chat/completions", json={"model": "mock", "messages": [{"role": "user", "content": "x"}]}
        )
    assert response.status_code == 200


def test_delta_sync_counts_only_what_is_new() -> None:
    counted: list[float] = []
    sync = DeltaSync()
    for seen in (0, 3, 3, 5):
        sync.push("hits", seen, counted.append)
    assert counted == [3, 2]
    sync.push("hits", 1, counted.append)  # the source restarted: no negative increment
    sync.push("hits", 4, counted.append)
    assert counted == [3, 2, 3]


def test_int_counters_reads_dataclasses_objects_and_dicts() -> None:
    from llm_gateway.recordings.base import RecorderCounters

    assert dict(int_counters(RecorderCounters(hits=2))) == {"hits": 2, "misses": 0, "records": 0, "store_errors": 0}
    assert dict(int_counters({"redactions": 4, "enabled": True, "name": "x"})) == {"redactions": 4}
    assert list(int_counters(None)) == []


def test_a_policys_own_counters_are_exported() -> None:
    class Redactor(BasePolicy):
        name = "redactor"

        def __init__(self) -> None:
            self.counters = {"redactions": 0}

        async def before(self, call: Call, ctx: RequestContext) -> Call | None:
            self.counters["redactions"] += 2
            return None

    app = create_app(make_settings(logging={"access_log": False}))
    app.state.gateway.pipeline.policies.append(Redactor())
    with running(app) as url:
        for _ in range(3):
            httpx.post(
                url + "/v1/chat/completions", json={"model": "mock", "messages": [{"role": "user", "content": "x"}]}
            )
        text = httpx.get(url + "/metrics").text
    assert value(text, "gateway_policy_events_total", policy="redactor", event="redactions") == 6


def test_two_workers_are_summed_in_one_scrape(tmp_path: Path) -> None:
    config = """workers = 2

[providers.mock]
type = "mock"

[models.mock]
provider = "mock"
model = "mock-1"

[logging]
level = "warning"
"""
    with gateway_process(tmp_path, config) as gw:

        async def burst(n: int) -> None:
            async def one(i: int) -> None:
                async with httpx.AsyncClient() as fresh:  # a new connection each: the kernel spreads them
                    body = {"model": "mock", "messages": [{"role": "user", "content": f"r{i}"}]}
                    assert (await fresh.post(gw.url + "/v1/chat/completions", json=body)).status_code == 200

            await asyncio.gather(*(one(i) for i in range(n)))

        async def per_worker() -> dict[int, int]:
            async def one() -> dict[str, Any]:
                async with httpx.AsyncClient() as fresh:
                    return (await fresh.get(gw.url + "/ui/api/stats")).json()

            answers = await asyncio.gather(*(one() for _ in range(20)))
            return {a["pid"]: a["totals"]["requests"] for a in answers}

        sent, workers = 0, {}
        for _ in range(20):  # until both workers have answered some of the traffic
            asyncio.run(burst(20))
            sent += 20
            workers = asyncio.run(per_worker())
            if len(workers) == 2 and all(workers.values()):
                break
        assert len(workers) == 2, "the kernel never handed the second worker a connection"
        text = httpx.get(gw.url + "/metrics").text
    assert sum(workers.values()) == sent  # each worker saw part of it ...
    assert max(workers.values()) < sent
    assert value(text, "gateway_requests_total", alias="mock", status_class="2xx") == sent  # ... the scrape sums all


def test_replay_mode_counts_replays_and_misses(tmp_path: Path) -> None:
    store = str(tmp_path / "recordings.db")
    body = {"model": "mock", "messages": [{"role": "user", "content": "recorded once"}]}
    recording = create_app(make_settings(recording={"mode": "record", "path": store}, logging={"access_log": False}))
    with running(recording) as url:
        assert httpx.post(url + "/v1/chat/completions", json=body).status_code == 200
    replaying = create_app(make_settings(recording={"mode": "replay", "path": store}, logging={"access_log": False}))
    with running(replaying) as url:
        assert httpx.post(url + "/v1/chat/completions", json=body).status_code == 200
        missing = {"model": "mock", "messages": [{"role": "user", "content": "never recorded"}]}
        assert httpx.post(url + "/v1/chat/completions", json=missing).status_code == 404
        text = httpx.get(url + "/metrics").text
    req = "gateway_requests_total"
    assert value(text, req, alias="mock", provider="mock", outcome="replay", status_class="2xx") == 1
    assert value(text, req, alias="mock", outcome="error", status_class="4xx") == 1
    assert value(text, "gateway_recording_hits_total") == 1
    assert value(text, "gateway_recording_misses_total") == 1
    assert value(text, "gateway_upstream_errors_total") == 0  # nothing went upstream


def test_a_client_that_leaves_mid_stream_is_counted_once_and_leaves_no_stream_open() -> None:
    settings = make_settings(providers={"mock": {"type": "mock", "stream_delay_ms": 50}}, logging={"access_log": False})
    app = create_app(settings)
    observer = app.state.gateway.observer
    with running(app) as url:
        body = {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "leave " * 40}]}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body) as response:
            next(response.iter_lines())  # the first event, then hang up
        for _ in range(200):  # the server notices the disconnect on its own schedule
            if observer.open_streams == 0:
                break
            threading.Event().wait(0.05)
        text = httpx.get(url + "/metrics").text
    assert observer.open_streams == 0 and observer.in_flight == 0
    assert value(text, "gateway_open_streams") == 0 and value(text, "gateway_requests_in_flight") == 0
    assert value(text, "gateway_requests_total") == 1
    assert value(text, "gateway_stream_duration_seconds_count") == 1


def test_an_upstream_failing_mid_stream_is_one_upstream_error_and_one_errored_request(mixed: tuple[str, Any]) -> None:
    url, gateway = mixed
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model="reset", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass
    text = httpx.get(url + "/metrics").text
    assert value(text, "gateway_upstream_errors_total", provider="up") == 1
    assert value(text, "gateway_requests_total", alias="reset", provider="up", outcome="error") == 1
    assert gateway.observer.stats()["totals"]["errors"] == 1  # the usage page counts it as failed despite its 200


def test_guard_counters_reach_prometheus_flattened() -> None:
    from dataclasses import dataclass, field


    @dataclass
    class Counters:
        requests_blocked: int = 2
        redacted: dict = field(default_factory=lambda: {"email": 3, "phone": 1})
        enabled: bool = True

    assert sorted(int_counters(Counters())) == [("redacted_email", 3), ("redacted_phone", 1), ("requests_blocked", 2)]


def test_a_batch_flushed_equals_the_same_values_observed_live() -> None:
    live, batched = GatewayMetrics(), GatewayMetrics()
    values = [0.0, 0.005, 0.0051, 0.3, 2.5, 7.0, 1000.0, 0.025, 0.025]  # on bounds, between, past the last one
    batch = MetricBatch()
    for v in values:
        live.duration.labels("chat", "a").observe(v)
        live.requests.labels("chat", "a", "p", "2xx", "upstream").inc()
        live.prompt_tokens.labels("a", "").inc(3)
        batch.observe(batched.duration.labels("chat", "a"), v)
        batch.inc(batched.requests.labels("chat", "a", "p", "2xx", "upstream"))
        batch.inc(batched.prompt_tokens.labels("a", ""), 3)

    def exposed(metrics: GatewayMetrics) -> list[tuple[str, dict[str, str], float]]:
        return [s for s in samples(generate_latest(metrics.registry).decode()) if not s[0].endswith("_created")]

    assert exposed(batched) != exposed(live)  # nothing is added before a flush
    batch.flush()
    assert exposed(batched) == exposed(live)
    batch.flush()  # a second flush adds nothing twice
    assert exposed(batched) == exposed(live)


def test_a_scrape_includes_requests_finished_a_moment_before() -> None:
    app = create_app(make_settings())
    with TestClient(app) as client:
        for _ in range(3):
            client.post("/v1/chat/completions", json={"model": "mock", "messages": [{"role": "user", "content": "x"}]})
        text = client.get("/metrics").text
    assert value(text, "gateway_requests_total", alias="mock", status_class="2xx") == 3
    assert value(text, "gateway_request_duration_seconds_count", alias="mock") == 3
