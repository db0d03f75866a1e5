"""StoreRecorder: record, replay, auto; misses, nearest matches, errors, faults and counters."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from llm_gateway.recordings.model import Chunk, Meta, Recording
from llm_gateway.vocab.errors import GatewayError, RecordingNotFound, UpstreamStatusError, UpstreamTimeout
from llm_gateway.vocab.types import Frames
from tests.recordings.conftest import ScriptedUpstream, chat, ctx


async def collect(iterator) -> list[dict]:
    return [chunk async for chunk in iterator]


async def test_replay_answers_what_was_recorded_without_calling_the_upstream(make_recorder, scripted: ScriptedUpstream):
    recorded = await make_recorder("record").send(chat("hello"), ctx(), scripted.send)
    replayer = make_recorder("replay")
    c = ctx()
    replayed = await replayer.send(chat("hello"), c, scripted.send)
    assert replayed == recorded and len(scripted.calls) == 1
    assert c.outcome == "replay" and c.deployment == "up/model-1" and c.provider == "up"
    assert len(c.response_headers["x-gateway-recording"]) == 32
    assert (replayer.counters.hits, replayer.counters.misses, replayer.counters.records) == (1, 0, 0)


async def test_replayed_answers_are_private_copies(make_recorder, scripted: ScriptedUpstream):
    await make_recorder("record").send(chat("hello"), ctx(), scripted.send)
    replayer = make_recorder("replay")
    first = await replayer.send(chat("hello"), ctx(), scripted.send)
    first["choices"][0]["message"]["content"] = "rewritten by a policy"
    second = await replayer.send(chat("hello"), ctx(), scripted.send)
    assert second["choices"][0]["message"]["content"] == "answer to hello"


async def test_replay_miss_names_key_nearest_recording_and_the_difference(make_recorder, scripted: ScriptedUpstream):
    await make_recorder("record").send(chat("What is the capital of France?"), ctx(), scripted.send)
    replayer = make_recorder("replay")
    with pytest.raises(RecordingNotFound) as caught:
        await replayer.send(chat("What is the capital of Spain?"), ctx(), scripted.send)
    message = caught.value.message
    assert caught.value.status == 404 and caught.value.code == "recording_not_found"
    assert "No recording for this request (key " in message
    assert "Nearest recording: " in message and "similarity" in message
    assert "body.messages[0].content:" in message and "France" in message and "Spain" in message
    assert len(scripted.calls) == 1 and replayer.counters.misses == 1


async def test_replay_miss_on_an_empty_store_says_so(make_recorder, scripted: ScriptedUpstream):
    with pytest.raises(RecordingNotFound, match="holds no recordings"):
        await make_recorder("replay").send(chat("hi"), ctx(), scripted.send)
    assert scripted.calls == []


async def test_volatile_fields_and_scrubbed_text_do_not_change_the_key(make_recorder, scripted: ScriptedUpstream):
    await make_recorder("record").send(chat("run at 2024-05-01T10:00:00Z", user="alice"), ctx(), scripted.send)
    replayer = make_recorder("replay")
    again = chat("run at 2031-12-31T23:59:59Z", user="bob", metadata={"run": "7"})
    response = await replayer.send(again, ctx(), scripted.send)
    assert response["choices"][0]["message"]["content"] == "answer to run at 2024-05-01T10:00:00Z"


async def test_a_recorded_stream_replays_with_the_same_chunks_and_whole(make_recorder, scripted: ScriptedUpstream):
    recorder = make_recorder("record")
    live = await collect(await recorder.stream(chat("tell", stream=True), ctx(), scripted.stream))
    replayer = make_recorder("replay")
    c = ctx()
    replayed = await collect(await replayer.stream(chat("tell", stream=True), c, scripted.stream))
    assert replayed == live and c.outcome == "replay"
    whole = await replayer.send(chat("tell"), ctx(), scripted.send)
    assert whole["id"] == live[0]["id"] and whole["object"] == "chat.completion"
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "answer to tell", "refusal": None}
    assert whole["choices"][0]["finish_reason"] == "stop"
    assert len(scripted.calls) == 1


async def test_usage_chunk_follows_the_replaying_clients_stream_options(make_recorder, scripted: ScriptedUpstream):
    await collect(
        await make_recorder("record").stream(
            chat("tell", stream=True, stream_options={"include_usage": True}), ctx(), scripted.stream
        )
    )
    replayer = make_recorder("replay")
    with_usage = await collect(
        await replayer.stream(chat("tell", stream=True, stream_options={"include_usage": True}), ctx(), scripted.stream)
    )
    without = await collect(await replayer.stream(chat("tell", stream=True), ctx(), scripted.stream))
    assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["total_tokens"] == 8
    assert without == with_usage[:-1]


async def test_with_frames_a_replay_is_one_frames_of_the_same_events_and_recording_asks_for_chunks(
    make_recorder, scripted: ScriptedUpstream
):
    options = {"stream_options": {"include_usage": True}}
    recording = chat("tell", stream=True, **options)
    recording.frames = True  # nothing downstream reads chunks: the recorder must still record parsed chunks
    live = await collect(await make_recorder("record").stream(recording, ctx(), scripted.stream))
    assert scripted.calls[-1].frames is False and all(isinstance(c, dict) for c in live)
    call = chat("tell", stream=True, **options)
    call.frames = True
    (frames,) = await collect(await make_recorder("replay").stream(call, ctx(), scripted.stream))
    assert isinstance(frames, Frames)
    assert frames.data == b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in live)
    assert frames.usage == live[-1]["usage"]
    start, stop = frames.usage_event  # the usage-only last event, for a client that did not ask for it
    assert frames.data[start:stop] == b"data: " + orjson.dumps(live[-1]) + b"\n\n" and stop == len(frames.data)


async def test_a_whole_recording_replays_as_a_synthesized_stream(make_recorder, scripted: ScriptedUpstream):
    whole = await make_recorder("record").send(chat("hello"), ctx(), scripted.send)
    chunks = await collect(
        await make_recorder("replay").stream(
            chat("hello", stream=True, stream_options={"include_usage": True}), ctx(), scripted.stream
        )
    )
    assert {c["id"] for c in chunks} == {whole["id"]}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "answer to hello"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == whole["usage"]


async def test_an_abandoned_stream_is_not_recorded(make_recorder, scripted: ScriptedUpstream):
    recorder = make_recorder("record")
    stream = await recorder.stream(chat("tell", stream=True), ctx(), scripted.stream)
    await anext(stream)
    await stream.aclose()
    assert recorder.counters.records == 0
    with pytest.raises(RecordingNotFound):
        await make_recorder("replay").send(chat("tell"), ctx(), scripted.send)


async def test_auto_records_a_miss_and_serves_the_next_one_as_a_cache_hit(make_recorder, scripted: ScriptedUpstream):
    cache = make_recorder("auto")
    first_ctx, second_ctx = ctx(), ctx()
    first = await cache.send(chat("hello"), first_ctx, scripted.send)
    second = await cache.send(chat("hello"), second_ctx, scripted.send)
    assert first == second and len(scripted.calls) == 1
    assert first_ctx.outcome == "upstream" and second_ctx.outcome == "cache_hit"
    assert (cache.counters.hits, cache.counters.misses, cache.counters.records) == (1, 1, 1)


async def test_auto_ttl_expires_a_recording(make_recorder, scripted: ScriptedUpstream):
    now = [1000.0]
    cache = make_recorder("auto", ttl_seconds=60, clock=lambda: now[0])
    await cache.send(chat("hello"), ctx(), scripted.send)
    now[0] += 59
    await cache.send(chat("hello"), ctx(), scripted.send)
    assert len(scripted.calls) == 1
    now[0] += 2
    again = await cache.send(chat("hello"), ctx(), scripted.send)
    assert len(scripted.calls) == 2 and again["id"] == "chatcmpl-2"


async def test_nearest_match_serves_a_close_request_and_says_so(make_recorder, scripted: ScriptedUpstream):
    await make_recorder("record").send(
        chat("Summarize the quarterly report for the board, please."), ctx(), scripted.send
    )
    fuzzy = make_recorder("replay", match="nearest", nearest_threshold=0.8)
    c = ctx()
    response = await fuzzy.send(chat("Summarize the quarterly report for the board please!"), c, scripted.send)
    assert response["choices"][0]["message"]["content"].startswith("answer to Summarize")
    assert c.response_headers["x-gateway-match"].startswith("nearest;score=0.")
    with pytest.raises(RecordingNotFound):
        await fuzzy.send(chat("Something else entirely: a haiku about spring"), ctx(), scripted.send)


async def test_upstream_errors_are_recorded_only_when_asked(make_recorder, scripted: ScriptedUpstream):
    scripted.fail_with = UpstreamStatusError(
        "bad parameter foo", upstream_status=400, code="invalid_value", provider="up"
    )
    with pytest.raises(UpstreamStatusError):
        await make_recorder("record").send(chat("bad"), ctx(), scripted.send)
    with pytest.raises(RecordingNotFound):
        await make_recorder("replay").send(chat("bad"), ctx(), scripted.send)

    with pytest.raises(UpstreamStatusError):
        await make_recorder("record", record_errors=True).send(chat("bad"), ctx(), scripted.send)
    for replay in (
        make_recorder("replay").send(chat("bad"), ctx(), scripted.send),
        make_recorder("replay").stream(chat("bad", stream=True), ctx(), scripted.stream),
    ):
        with pytest.raises(GatewayError) as caught:
            await replay
        assert (caught.value.status, caught.value.code, caught.value.type) == (
            400,
            "invalid_value",
            "invalid_request_error",
        )
        assert caught.value.message == "bad parameter foo"


async def test_timeouts_are_never_recorded(make_recorder, scripted: ScriptedUpstream):
    scripted.fail_with = UpstreamTimeout("no answer", kind="timeout")
    recorder = make_recorder("record", record_errors=True)
    with pytest.raises(UpstreamTimeout):
        await recorder.send(chat("slow"), ctx(), scripted.send)
    assert recorder.counters.records == 0


async def test_an_unwritable_store_still_answers_and_counts_the_failure(make_recorder, scripted, caplog):
    recorder = make_recorder("auto")

    async def broken_put(key, recording):
        raise PermissionError("read-only file system")

    recorder.store.put = broken_put  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="gateway.recordings"):
        response = await recorder.send(chat("hello"), ctx(), scripted.send)
        chunks = await collect(await recorder.stream(chat("tell", stream=True), ctx(), scripted.stream))
    assert response["choices"][0]["message"]["content"] == "answer to hello" and len(chunks) == 4
    assert recorder.counters.store_errors == 2 and recorder.counters.records == 0
    assert "could not store recording" in caplog.text and "read-only file system" in caplog.text


@pytest.mark.parametrize("store_kind", ["directory"])
async def test_a_corrupt_file_is_named_and_the_others_still_replay(make_recorder, scripted, tmp_path: Path):
    recorder = make_recorder("record")
    await recorder.send(chat("good"), ctx(), scripted.send)
    await recorder.send(chat("bad"), ctx(), scripted.send)
    bad_key = recorder.keys.normalize("/v1/chat/completions", "m", chat("bad").body).key
    bad_file = tmp_path / "recordings" / f"{bad_key}.json"
    bad_file.write_text('{"format": 1, "key": "trunc')
    replayer = make_recorder("replay")
    with pytest.raises(GatewayError) as caught:
        await replayer.send(chat("bad"), ctx(), scripted.send)
    assert str(bad_file) in caught.value.message and caught.value.code == "recording_corrupt"
    assert (await replayer.send(chat("good"), ctx(), scripted.send))["choices"][0]["message"][
        "content"
    ] == "answer to good"
    assert replayer.counters.store_errors == 1


async def test_recorded_timing_is_replayed_scaled(make_recorder, scripted: ScriptedUpstream):
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    recording = Recording(
        "0" * 32,
        {"endpoint": "/v1/chat/completions", "alias": "m", "body": {}},
        Meta(alias="m", latency_seconds=2.0),
        chunks=[
            Chunk(0.5, {"id": "x", "choices": [{"index": 0, "delta": {"content": "a"}}]}),
            Chunk(0.25, {"id": "x", "choices": [{"index": 0, "delta": {"content": "b"}}]}),
        ],
    )
    timed = make_recorder("replay", replay_timing="recorded", timing_scale=0.5, sleep=sleep)
    await collect(timed._replay_stream(recording, include_usage=False))
    await timed._replay_whole(recording)
    assert sleeps == [0.25, 0.125, 1.0]
    untimed = make_recorder("replay", sleep=sleep)
    await collect(untimed._replay_stream(recording, include_usage=False))
    assert len(sleeps) == 3


async def test_recordings_hold_no_client_headers_or_keys(make_recorder, scripted: ScriptedUpstream, tmp_path: Path,
                                                         store_kind: str):
    if store_kind == "postgres":
        pytest.skip("this scan reads the store's files; the PostgreSQL store keeps the same bytes as the SQLite one")
    c = ctx()
    c.headers["x-api-key"] = "sk-other-secret"
    await make_recorder("record").send(chat("hello"), c, scripted.send)
    await collect(await make_recorder("record").stream(chat("tell", stream=True), c, scripted.stream))
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"answer to hello" in stored and b" to tell" in stored  # the scan does see both recordings
    for secret in (b"sk-client-secret", b"sk-other-secret", b"authorization", b"Bearer"):
        assert secret not in stored


async def test_a_key_asked_whole_and_streamed_keeps_both_answers(make_recorder, scripted: ScriptedUpstream):
    recorder = make_recorder("record")
    whole = await recorder.send(chat("hello"), ctx(), scripted.send)
    live = await collect(await recorder.stream(chat("hello", stream=True), ctx(), scripted.stream))
    replayer = make_recorder("replay")
    assert await replayer.send(chat("hello"), ctx(), scripted.send) == whole
    assert await collect(await replayer.stream(chat("hello", stream=True), ctx(), scripted.stream)) == live


async def test_a_recording_made_before_canonical_keys_still_answers(make_recorder, scripted: ScriptedUpstream):
    """Stored under the key of its unfolded body (as the gateway keyed it before): found through legacy_key."""
    from llm_gateway.recordings.keys import KeyMaker
    from llm_gateway.vocab.types import Call
    from tests.recordings.test_keys import legacy

    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "old"}]}],
            "max_completion_tokens": 9}
    call = Call(kind="chat", alias="m", body=body)
    recorder = make_recorder("replay")
    answer = {"id": "chatcmpl-old", "object": "chat.completion", "choices": [], "usage": None}
    old_key = legacy(body)
    unfolded = {k: v for k, v in body.items() if k != "model"}
    meta = Meta(alias="m", provider="up", deployment="up/model-1")
    await recorder.store.put(old_key, Recording(old_key, {"endpoint": "/v1/chat/completions", "alias": "m",
                                                          "body": unfolded}, meta, response=answer))
    assert KeyMaker(("user", "metadata")).normalize("/v1/chat/completions", "m", body).key != old_key
    c = ctx()
    assert await recorder.send(call, c, scripted.send) == answer
    assert c.response_headers["x-gateway-recording"] == old_key and scripted.calls == []
