"""OpenAI's own wire: bodies pass as they are; streams framed exactly as OpenAI frames them."""

from __future__ import annotations

import orjson

from llm_gateway.vocab.errors import ServiceUnavailable
from llm_gateway.wire.openai_wire import OpenAIWire


def test_bodies_pass_through_unchanged_both_ways() -> None:
    wire = OpenAIWire("chat")
    body = {"model": "m", "messages": [], "unknown_field": {"kept": True}}
    assert wire.request(body) == (body, None) and wire.request(body)[0] is body
    answer = {"object": "chat.completion"}
    assert wire.answer(answer, None) is answer
    assert (wire.kind, wire.label) == ("chat", "chat")


def test_stream_frames_are_data_lines_then_done() -> None:
    framer = OpenAIWire("completion").framer(None)
    assert framer.feed({"a": 1}) == b'data: {"a":1}\n\n'
    assert framer.finish() == b"data: [DONE]\n\n"
    failed = framer.fail(ServiceUnavailable("going away", code="shutting_down"))
    assert failed.startswith(b"data: ") and failed.endswith(b"\n\n")
    assert orjson.loads(failed[6:])["error"]["code"] == "shutting_down"
