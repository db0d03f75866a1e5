"""The recording file format: stable pretty JSON, round trips, precise errors for broken files."""

from __future__ import annotations

import pytest

from llm_gateway.recordings.model import Chunk, CorruptRecording, Meta, Recording

REQUEST = {"endpoint": "/v1/chat/completions", "alias": "m", "body": {"messages": []}}


def test_round_trip_is_stable_and_pretty() -> None:
    recording = Recording("a" * 32, REQUEST, Meta(alias="m", provider="up", created=1.5, usage={"total_tokens": 3}),
                          chunks=[Chunk(0.1, {"b": 1, "a": 2})])
    text = recording.to_json()
    again = Recording.from_json(text, "x.json")
    assert again.to_json() == text
    assert text.endswith(b"}\n") and b'\n  "format": 1,\n' in text
    assert text.index(b'"b": 1') < text.index(b'"a": 2')  # the upstream's key order, never re-sorted


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"format": 1, "key": "ab', "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"format": 9}', "unknown format 9"),
        (b'{"format": 1, "key": "k", "request": {}, "meta": {}}', "expected an error, or a response and/or chunks"),
        (b'{"format": 1, "key": "k", "request": {}, "meta": {}, "chunks": [{"delay": 0}]}', "KeyError"),
    ],
)
def test_broken_recordings_name_the_file_and_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(CorruptRecording) as caught:
        Recording.from_json(raw, "fixtures/k.json")
    assert str(caught.value).startswith("fixtures/k.json: corrupt recording: ") and reason in str(caught.value)
