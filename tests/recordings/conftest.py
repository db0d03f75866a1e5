"""Fixtures for recorder tests: a scripted upstream that counts its calls, and a recorder over a temp store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from llm_gateway.recordings.keys import KeyMaker
from llm_gateway.recordings.recorder import StoreRecorder
from llm_gateway.recordings.store import open_store
from llm_gateway.vocab.types import Call, RequestContext

SCRUBBERS = [(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "<TIMESTAMP>")]


class ScriptedUpstream:
    """Stands in for Router.send / Router.stream: answers from the last message, sets the deployment."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.fail_with: Exception | None = None

    def _answer(self, call: Call) -> str:
        return "answer to " + str(call.body["messages"][-1]["content"])

    async def send(self, call: Call, ctx: RequestContext) -> dict[str, Any]:
        self.calls.append(call)
        if self.fail_with is not None:
            raise self.fail_with
        ctx.deployment, ctx.provider = "up/model-1", "up"
        return {
            "id": f"chatcmpl-{len(self.calls)}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "model-1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self._answer(call)},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }

    async def stream(self, call: Call, ctx: RequestContext) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(call)
        if self.fail_with is not None:
            raise self.fail_with
        ctx.deployment, ctx.provider = "up/model-1", "up"
        base = {
            "id": f"chatcmpl-{len(self.calls)}",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "model-1",
        }
        text = self._answer(call)
        include_usage = (call.body.get("stream_options") or {}).get("include_usage")

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            yield {
                **base,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
            }
            for piece in (text[:6], text[6:]):
                yield {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            if include_usage:
                yield {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}

        return chunks()


def chat(content: str, **extra: Any) -> Call:
    body = {"model": "m", "messages": [{"role": "user", "content": content}], **extra}
    return Call(kind="chat", alias="m", body=body, stream=bool(extra.get("stream")))


def ctx() -> RequestContext:
    return RequestContext(request_id="req_test", headers={"authorization": "Bearer sk-client-secret"})


@pytest.fixture
def scripted() -> ScriptedUpstream:
    return ScriptedUpstream()


@pytest.fixture(params=["directory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_location(request: pytest.FixtureRequest, tmp_path, store_kind: str) -> str:
    """A fresh store of the kind: a directory, a SQLite file, or an empty database on the test PostgreSQL."""
    if store_kind == "postgres":
        return request.getfixturevalue("database_url")
    return str(tmp_path / ("recordings" if store_kind == "directory" else "recordings.db"))


@pytest.fixture
async def make_recorder(store_location: str, store_kind: str) -> AsyncIterator[Callable[..., StoreRecorder]]:
    path = store_location
    made: list[StoreRecorder] = []

    def make(mode: str, **options: Any) -> StoreRecorder:
        recorder = StoreRecorder(
            mode,
            open_store(store_kind, path),
            KeyMaker(("user", "metadata"), SCRUBBERS),
            gateway_version="test",
            **options,
        )
        made.append(recorder)
        return recorder

    yield make
    for recorder in made:
        await recorder.aclose()
