"""Done-when, end to end: a suite recorded against a real OpenAI-compatible upstream replays with it stopped.

The gateway runs under uvicorn and is driven by the official openai SDK; the replaying gateway's upstream URL points at
a port nobody listens on, so any call that escaped the recorder would fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llm_gateway.composition.root import create_app
from tests.conftest import make_settings
from tests.recordings.suite import run_suite
from tests.support.server import free_port, running
from tests.support.upstream import FakeUpstream


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client-secret", max_retries=0)


@pytest.fixture(scope="module")
def recorded(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """The suite run live through a recording gateway; returns the store path, the live results and the store kind."""
    directory = tmp_path_factory.mktemp("recordings")
    settings = make_settings(upstream.url, recording={"mode": "record", "store": "directory", "path": str(directory)})
    with running(create_app(settings)) as url:
        live = run_suite(client(url))
    return directory, live, "directory"


@pytest.fixture(scope="module")
def replaying(recorded: tuple[Path, dict[str, Any], str]) -> Iterator[str]:
    directory, _, kind = recorded
    dead_upstream = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(dead_upstream, recording={"mode": "replay", "store": kind, "path": str(directory)})
    with running(create_app(settings)) as url:
        yield url


def test_replay_gives_the_same_ids_content_tool_calls_usage_and_chunks(recorded, replaying, upstream) -> None:
    _, live, _ = recorded
    before = len(upstream.requests)
    replayed = run_suite(client(replaying))
    assert replayed == live
    assert len(upstream.requests) == before
    assert [c["choices"][0]["delta"]["content"] for c in live["chat_stream"] if c["choices"]][1:3] == [
        "echo: Tell me a stor",
        "y about a lighthouse.",
    ]  # the upstream's own chunk boundaries
    assert live["tool_call"]["choices"][0]["message"]["tool_calls"][0]["id"] == "call_up_1"
    assert live["chat_stream"][-1]["usage"]["total_tokens"] == 18


def test_replay_says_it_replayed(replaying) -> None:
    raw = client(replaying).chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0
    )
    assert len(raw.headers["x-gateway-recording"]) == 32 and raw.headers["x-gateway-deployment"] == "up/echo"


def test_stream_and_whole_replay_each_other(recorded, replaying) -> None:
    _, live, _ = recorded
    sdk = client(replaying)
    whole = sdk.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "Tell me a story about a lighthouse."}]
    )
    assert whole.id == live["chat_stream"][0]["id"]
    assert whole.choices[0].message.content == "echo: Tell me a story about a lighthouse."
    assert whole.usage.total_tokens == 18
    chunks = list(
        sdk.chat.completions.create(
            model="echo",
            stream=True,
            temperature=0,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == live["chat"]["choices"][0]["message"]["content"]
    assert chunks[-1].choices[0].finish_reason == "stop" and {c.id for c in chunks} == {live["chat"]["id"]}


def test_a_changed_prompt_fails_with_a_message_pointing_at_the_change(replaying) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(replaying).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "What is the capital of Germany?"}], temperature=0
        )
    error = caught.value
    assert error.code == "recording_not_found" and error.status_code == 404
    message = error.body["message"]
    assert "Nearest recording:" in message
    assert "body.messages[0].content: 'What is the capital of France?' -> 'What is the capital of Germany?'" in message


def test_recordings_hold_no_secrets(recorded) -> None:
    directory, _, _ = recorded
    stored = b"".join(p.read_bytes() for p in directory.iterdir())
    assert stored.count(b'"format": 1') == 6  # 7 calls: the tool call asked whole and streamed shares one key
    for secret in (b"sk-upstream", b"sk-client-secret", b"Bearer", b"authorization"):
        assert secret not in stored


def test_an_unwritable_store_still_answers_and_counts_the_failure(upstream: FakeUpstream, tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("a file where the store's directory should be")
    settings = make_settings(
        upstream.url,
        recording={
            "mode": "auto",
            "store": "directory",  # type: ignore[attr-defined]
            "path": str(tmp_path / "not-a-dir" / "recordings"),
        },
    )
    app = create_app(settings)
    with running(app) as url:
        answer = client(url).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "still here?"}]
        )
    assert answer.choices[0].message.content == "echo: still here?"
    counters = app.state.gateway.pipeline.recorder.counters
    assert (counters.store_errors, counters.records) == (2, 0)  # the lookup and the write both failed
