"""Replay mode never reaches an upstream, not even for the gateway's own calls: the moderation guard's question goes
through the recorder like a client's call (a real `gateway serve`, first recording, then replaying)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.gateway_process import gateway_process
from tests.support.raw_upstream import RawUpstream


def _config(upstream: RawUpstream, recordings: Path, mode: str) -> str:
    return f"""
[recording]
mode = "{mode}"
store = "directory"
path = "{recordings}"

[providers.moderator]
type = "openai"
base_url = "{upstream.base_url}"

[providers.mock]
type = "mock"

[models.moderator]
provider = "moderator"
model = "ok"

[models.chat]
provider = "mock"

[guards.moderation]
alias = "moderator"
on_error = "deny"
"""


def _ask(url: str) -> httpx.Response:
    body = {"model": "chat", "messages": [{"role": "user", "content": "is this fine?"}]}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=30)


def test_the_moderation_guard_is_answered_from_recordings_in_replay_mode(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    (tmp_path / "record").mkdir()
    (tmp_path / "replay").mkdir()
    with RawUpstream() as upstream:
        with gateway_process(tmp_path / "record", _config(upstream, recordings, "record")) as gateway:
            assert _ask(gateway.url).status_code == 200
        assert upstream.seen == ["ok"]  # recording: the moderator was asked once, and that answer stored
        assert len(list(recordings.glob("*.json"))) == 2  # the client's call and the guard's own
        with gateway_process(tmp_path / "replay", _config(upstream, recordings, "replay")) as gateway:
            replayed = _ask(gateway.url)
            assert replayed.status_code == 200, replayed.text
            assert replayed.headers.get("x-gateway-recording")
        assert upstream.seen == ["ok"]  # replay reached no upstream, for the client or for the guard
