"""The request log: one JSON (or text) line per request, no content or secrets unless asked, never blocking."""

from __future__ import annotations

import io
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

import httpx
import openai
import orjson
import pytest

from llm_gateway.adapters.http import upstream_request_id
from llm_gateway.composition.root import create_app
from llm_gateway.config.settings import LoggingSettings
from llm_gateway.observability.request_log import RequestLog
from llm_gateway.vocab.types import BasePolicy, Call, RequestContext
from tests.conftest import make_settings
from tests.support.server import running
from tests.support.upstream import FakeUpstream

SECRET_PROMPT = "my card is 4111 1111 1111 1111"


def _app_with_log(settings: Any) -> tuple[Any, io.StringIO]:
    app = create_app(settings)
    stream = io.StringIO()
    observer = app.state.gateway.observer
    observer.request_log.close()
    observer.request_log = RequestLog(settings.logging, stream)
    return app, stream


def _lines(app: Any, stream: io.StringIO) -> list[dict[str, Any]]:
    app.state.gateway.observer.request_log.close()  # drains the queue
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_line_per_request_with_the_fields_and_no_content(upstream: FakeUpstream) -> None:
    app, stream = _app_with_log(make_settings(upstream.url))  # type: ignore[attr-defined]
    with running(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-client-secret-123", max_retries=0)
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": SECRET_PROMPT}],
            extra_headers={"x-request-id": "job-42.a"},
        )
        list(
            client.chat.completions.create(
                model="mock", messages=[{"role": "user", "content": SECRET_PROMPT}], stream=True
            )
        )
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    lines = _lines(app, stream)
    assert len(lines) == 3
    whole, streamed, missing = lines
    assert whole["request_id"] == "job-42.a"
    assert {k: whole[k] for k in ("endpoint", "alias", "provider", "deployment", "status", "outcome", "stream")} == {
        "endpoint": "chat",
        "alias": "echo",
        "provider": "up",
        "deployment": "up/echo",
        "status": 200,
        "outcome": "upstream",
        "stream": False,
    }
    assert whole["prompt_tokens"] == 11 and whole["completion_tokens"] == 7
    assert 0 < whole["upstream_seconds"] <= whole["latency_seconds"]
    for field in ("time", "level", "cost_usd", "key", "flags", "first_token_seconds"):
        assert field in whole
    assert streamed["stream"] is True and streamed["first_token_seconds"] > 0
    assert missing["status"] == 404 and missing["error_code"] == "model_not_found" and missing["alias"] == ""
    raw = stream.getvalue()
    for secret in (SECRET_PROMPT, "sk-client-secret-123", "sk-upstream", "Mock reply"):
        assert secret not in raw


def test_log_content_shows_only_what_passed_the_redaction_policies() -> None:
    class Redact(BasePolicy):
        name = "redact"

        async def before(self, call: Call, ctx: RequestContext) -> Call | None:
            body = dict(call.body)
            body["messages"] = [{**m, "content": "[REDACTED]"} for m in body["messages"]]
            return replace(call, body=body)

    app, stream = _app_with_log(make_settings(logging={"log_content": True}))
    app.state.gateway.pipeline.policies.append(Redact())
    with running(app) as url:
        body = {"model": "mock", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
        assert httpx.post(url + "/v1/chat/completions", json=body).status_code == 200
    (line,) = _lines(app, stream)
    assert line["request"]["messages"] == [{"role": "user", "content": "[REDACTED]"}]
    assert line["response"]["choices"][0]["message"]["content"] == "Mock reply to: [REDACTED]"
    assert SECRET_PROMPT not in stream.getvalue()


def test_text_format_and_access_log_off() -> None:
    app, stream = _app_with_log(make_settings(logging={"format": "text"}))
    with running(app) as url:
        httpx.post(url + "/v1/chat/completions", json={"model": "mock", "messages": [{"role": "user", "content": "x"}]})
    app.state.gateway.observer.request_log.close()
    (line,) = stream.getvalue().splitlines()
    assert " INFO    gateway.request " in line and "alias=mock" in line and "status=200" in line

    quiet, quiet_stream = _app_with_log(make_settings(logging={"access_log": False}))
    with running(quiet) as url:
        httpx.post(url + "/v1/chat/completions", json={"model": "mock", "messages": [{"role": "user", "content": "x"}]})
    assert _lines(quiet, quiet_stream) == []


def test_a_hostile_request_id_is_replaced_and_a_good_one_goes_upstream(upstream: FakeUpstream) -> None:
    app, stream = _app_with_log(make_settings(upstream.url))  # type: ignore[attr-defined]
    body = {"model": "echo", "messages": [{"role": "user", "content": "ids"}]}
    with running(app) as url:
        for hostile in ("x" * 5000, "a b", "é", "a\tb", "<script>", "../../etc/passwd"):
            response = httpx.post(
                url + "/v1/chat/completions", json=body, headers={"x-request-id": hostile.encode("utf-8")}
            )
            assert response.status_code == 200
            given = response.headers["x-request-id"]
            assert given != hostile and given.startswith("req_") and len(given) < 64
            assert upstream.requests[-1]["headers"]["x-request-id"] == str(uuid.UUID(given[4:]))  # the same digits
        good = httpx.post(url + "/v1/chat/completions", json=body, headers={"x-request-id": "trace-7:abc"})
        assert good.headers["x-request-id"] == "trace-7:abc"
        assert upstream.requests[-1]["headers"]["x-request-id"] == upstream_request_id("trace-7:abc")  # a UUID
        # errors carry one too: a bad body, an unknown URL, a wrong method, a hostile id on an error
        assert httpx.post(url + "/v1/chat/completions", content=b"{").headers["x-request-id"].startswith("req_")
        assert httpx.get(url + "/nope").headers["x-request-id"].startswith("req_")
        assert httpx.get(url + "/v1/chat/completions").headers["x-request-id"].startswith("req_")
        assert httpx.get(url + "/nope", headers={"x-request-id": "ok-1"}).headers["x-request-id"] == "ok-1"
        assert httpx.get(url + "/nope", headers={"x-request-id": "bad id"}).headers["x-request-id"].startswith("req_")
        # control characters never reach the app: the HTTP server refuses the request itself
        refused = httpx.post(url + "/v1/chat/completions", json=body, headers={"x-request-id": b"abc\x01def"})
        assert refused.status_code == 400 and "abc" not in refused.headers.get("x-request-id", "")
    assert "x" * 200 not in stream.getvalue()


def test_writing_a_line_never_waits_for_the_output() -> None:
    release = threading.Event()

    class StuckPipe(io.StringIO):
        def write(self, text: str) -> int:
            release.wait(10)  # a full pipe, a slow disk
            return super().write(text)

    pipe = StuckPipe()
    log = RequestLog(LoggingSettings(), pipe)
    started = time.perf_counter()
    for i in range(100):
        log.write({"request_id": f"r{i}"})
    elapsed = time.perf_counter() - started
    release.set()
    log.close()
    assert elapsed < 5  # would be 100 x 10 s if a write waited on the pipe
    assert len(pipe.getvalue().splitlines()) == 100
