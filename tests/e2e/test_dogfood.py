"""Dogfood: our own end-to-end suite replays committed recordings, with no upstream running.

tests/recordings/fixtures/dogfood/ was recorded by `python -m tests.recordings.record_dogfood` against the fake
upstream; this replays it through the real app and the openai SDK, as a team's CI would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llm_gateway.composition.root import create_app
from tests.conftest import make_settings
from tests.recordings.record_dogfood import EXPECTED, RECORDINGS
from tests.recordings.suite import run_suite
from tests.support.server import free_port, running
from tests.support.upstream import FakeUpstream


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads(EXPECTED.read_text())


@pytest.fixture(scope="module")
def replay_client() -> Iterator[openai.OpenAI]:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        nobody_listens, recording={"mode": "replay", "store": "directory", "path": str(RECORDINGS)}
    )
    with running(create_app(settings)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="sk-ci-has-no-real-key", max_retries=0)


def test_committed_recordings_replay_exactly(replay_client: openai.OpenAI, expected: dict[str, Any]) -> None:
    replayed = run_suite(replay_client)
    assert replayed == expected
    assert replayed["chat"]["id"] == "chatcmpl-upstream-1"
    assert replayed["chat"]["choices"][0]["message"]["content"] == "echo: What is the capital of France?"
    assert replayed["chat"]["usage"]["total_tokens"] == 18
    tool_call = replayed["tool_call"]["choices"][0]["message"]["tool_calls"][0]
    assert (tool_call["id"], tool_call["function"]["name"], tool_call["function"]["arguments"]) == (
        "call_up_1",
        "get_weather",
        '{"city": "Paris"}',
    )
    assert replayed["tool_result"]["choices"][0]["message"]["content"] == "tool said: sunny, 21C"
    pieces = [c["choices"][0]["delta"]["content"] for c in replayed["chat_stream"] if c["choices"]]
    assert pieces == ["", "echo: Tell me a stor", "y about a lighthouse.", None]
    assert replayed["chat_stream"][-1]["choices"] == [] and replayed["chat_stream"][-1]["usage"]["total_tokens"] == 18
    assert [c["choices"][0]["delta"]["tool_calls"] is not None for c in replayed["tool_stream"]] == [
        False,
        True,
        True,
        False,
    ]


def test_committed_recordings_still_match_the_upstream(upstream: FakeUpstream, expected: dict[str, Any]) -> None:
    """If this fails the fake upstream changed: re-record with `python -m tests.recordings.record_dogfood`."""
    with running(create_app(make_settings(upstream.url))) as url:  # type: ignore[attr-defined]
        live = run_suite(openai.OpenAI(base_url=f"{url}/v1", api_key="sk-x", max_retries=0))
    assert live == expected
