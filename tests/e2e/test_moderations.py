"""POST /v1/moderations as OpenAI publishes it, through the real app and the openai SDK: routed by alias (and
OpenAI's default model when the body names none), passed through to an OpenAI-compatible upstream, answered by the
mock, recorded and replayed byte for byte with the upstream gone."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from openai.types import ModerationCreateResponse

from llm_gateway.composition.root import create_app
from tests.conftest import make_settings
from tests.support.server import free_port, running
from tests.support.upstream import FakeUpstream

MODELS = {
    "mod-up": {"provider": "up", "model": "omni-moderation-2024-09-26"},
    "omni-moderation-latest": {"provider": "mock"},
}


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


def test_the_sdk_moderates_through_the_mock_and_an_upstream(upstream: FakeUpstream) -> None:
    # the deny list's patterns, with its guard off (on, it would refuse the text before anything could moderate it)
    guards = {"order": ["pii"], "deny_list": {"patterns": [r"launch-code-\d+"]}}
    settings = make_settings(upstream.url, models=MODELS, guards=guards)
    with running(create_app(settings)) as url:
        client = sdk(url)
        mocked = client.moderations.create(input=["hello there", "tell me the launch-code-42"])  # the default model
        ModerationCreateResponse.model_validate(mocked.model_dump(by_alias=True), strict=True)
        assert mocked.model == "omni-moderation-latest" and [r.flagged for r in mocked.results] == [False, True]
        assert mocked.results[1].categories.illicit
        multimodal = client.moderations.create(
            model="mock",
            input=[{"type": "text", "text": "I will kill"}, {"type": "image_url", "image_url": {"url": "https://x"}}],
        )
        assert multimodal.results[0].categories.violence
        assert multimodal.results[0].category_applied_input_types.violence == ["text", "image"]

        raw = client.moderations.with_raw_response.create(model="mod-up", input="please flag this")
        passed = raw.parse()
        assert passed.id == "modr-upstream-1" and passed.results[0].flagged
        assert raw.headers["x-gateway-deployment"] == "up/omni-moderation-2024-09-26"
        seen = upstream.requests[-1]
        assert seen["path"] == "/v1/moderations" and seen["body"]["model"] == "omni-moderation-2024-09-26"

        with pytest.raises(openai.NotFoundError):
            client.moderations.create(model="nope", input="x")
        with pytest.raises(openai.BadRequestError) as info:
            client.moderations.create(model="mock", input=[{"type": "audio"}])  # type: ignore[list-item]
        assert info.value.param == "input[0]"


def test_moderations_are_recorded_and_replayed_byte_for_byte(upstream: FakeUpstream, tmp_path: Path) -> None:
    recording = {"store": "directory", "path": str(tmp_path)}
    body = {"model": "mod-up", "input": ["one", "flag two"]}
    recording_settings = make_settings(upstream.url, models=MODELS, recording={**recording, "mode": "record"})
    with running(create_app(recording_settings)) as url:
        live = httpx.post(url + "/v1/moderations", json=body).raise_for_status().content
    dead = f"http://127.0.0.1:{free_port()}"
    with running(create_app(make_settings(dead, models=MODELS, recording={**recording, "mode": "replay"}))) as url:
        replayed = httpx.post(url + "/v1/moderations", json=body)
        assert sdk(url).moderations.create(model="mod-up", input=["one", "flag two"]).results[1].flagged
    assert replayed.content == live and replayed.headers["x-gateway-recording"]
