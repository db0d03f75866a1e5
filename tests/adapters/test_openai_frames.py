"""The relay path's cutter: whole events out as they came, only the end marker, errors and usage read."""

from __future__ import annotations

import json

import orjson
import pytest

from llm_gateway.adapters.openai_frames import FrameCutter, OpenAIEvents
from llm_gateway.vocab.errors import UpstreamMalformed, UpstreamStatusError, UpstreamTooLarge


def event(content: str, **extra: object) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}]}
    chunk.update(extra)
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def cutter(limit: int = 1 << 20) -> FrameCutter:
    return FrameCutter("up", limit)


def test_whole_events_of_one_read_go_out_as_they_came() -> None:
    data = event("a") + event("b") + event("c")
    frames = cutter().feed(data)
    assert frames is not None
    assert frames.data == data and frames.usage is None


def test_an_event_split_across_reads_waits_for_its_end_and_nothing_else_is_held() -> None:
    c = cutter()
    first, second = event("a"), event("b")
    out = c.feed(first + second[:10])
    assert out is not None and out.data == first
    assert c.feed(second[10:20]) is None
    out = c.feed(second[20:])
    assert out is not None and out.data == second


def test_the_end_marker_completes_the_stream_and_is_not_relayed() -> None:
    c = cutter()
    out = c.feed(event("a") + b"data: [DONE]\n\n" + b"data: after the end\n\n")
    assert c.complete
    assert out is not None and out.data == event("a")


def test_the_end_marker_alone_gives_no_frames() -> None:
    c = cutter()
    assert c.feed(b"data:[DONE]\n\n") is None and c.complete


def test_done_inside_content_is_text_not_the_end() -> None:
    c = cutter()
    data = event("data: [DONE]") + event("[DONE]")
    out = c.feed(data)
    assert not c.complete and out is not None and out.data == data


def test_usage_is_read_only_where_it_is_an_object() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    data = event("a", usage=None) + event("b", usage=None) + b"data: " + orjson.dumps(
        {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    ) + b"\n\n"
    out = cutter().feed(data)
    assert out is not None and out.usage == usage and out.data == data


def test_usage_with_other_spacing_is_found_by_parsing() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    spaced = json.dumps({"choices": [], "usage": usage}, separators=(",", " : ")).encode()
    out = cutter().feed(b"data: " + spaced + b"\n\n")
    assert out is not None and out.usage == usage


def test_the_word_usage_in_content_is_not_usage() -> None:
    out = cutter().feed(event('"usage": {"prompt_tokens": 9}'))
    assert out is not None and out.usage is None


def test_crlf_line_ends_are_normalised_even_split_between_reads() -> None:
    c = cutter()
    crlf = event("a").replace(b"\n", b"\r\n")
    assert c.feed(crlf[:-1]) is None  # ends in CR: its LF may follow
    out = c.feed(crlf[-1:] + b"data: [DONE]\r\n\r\n")
    assert out is not None and out.data == event("a") and c.complete


def test_comments_and_event_fields_are_relayed_and_checked() -> None:
    data = b": keep-alive\n\n" + b"id: 7\n" + event("a") + b"data:" + event("b")[6:]
    out = cutter().feed(data)
    assert out is not None and out.data == data


def test_an_error_event_raises_the_upstreams_error() -> None:
    with pytest.raises(UpstreamStatusError, match="overloaded"):
        cutter().feed(b'data: {"error": {"message": "overloaded", "code": "busy"}}\n\n')
    c = cutter()
    c.feed(event("a") + b'data: {"error": {"message": "overloaded", "code": "busy"}}\n\n')
    assert isinstance(c.failure, UpstreamStatusError)


def test_a_malformed_line_is_refused() -> None:
    with pytest.raises(UpstreamMalformed, match="malformed stream line"):
        cutter().feed(b"data: {not json\n\n")


def test_a_cut_json_event_is_refused_by_the_framing_check() -> None:
    with pytest.raises(UpstreamMalformed):
        cutter().feed(b'data: {"id": "c1", "choi\n\n')


def test_an_endless_line_stops_at_the_event_limit() -> None:
    c = cutter(limit=1000)
    c.feed(b"data: {" + b"x" * 600)
    with pytest.raises(UpstreamTooLarge):
        c.feed(b"x" * 600)


def test_an_event_larger_than_the_limit_inside_one_read_is_refused() -> None:
    with pytest.raises(UpstreamTooLarge):
        cutter(limit=100).feed(event("x" * 200) + event("y"))


def test_at_the_end_whole_lines_count_and_a_cut_line_does_not() -> None:
    c = cutter()
    assert c.feed(event("a")[:-1]) is None
    out = c.end()
    assert out is not None and out.data == event("a")
    c = cutter()
    c.feed(event("a")[:-5])
    assert c.end() is None


def test_the_parsed_path_reads_the_same_events() -> None:
    events = OpenAIEvents("up")
    assert events.feed("", orjson.dumps({"choices": []})) == ({"choices": []},)
    assert events.feed("", b"[DONE]") == () and events.complete


def test_the_events_before_a_bad_one_go_out_first() -> None:
    c = cutter()
    out = c.feed(event("a") + b"data: {not json\n\n" + event("b"))
    assert out is not None and out.data == event("a")
    assert isinstance(c.failure, UpstreamMalformed)


def test_a_usage_only_event_is_marked_so_it_can_be_dropped() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    last = b"data: " + orjson.dumps({"id": "c1", "choices": [], "usage": usage}) + b"\n\n"
    for data in (event("a") + last, b": ping\n\n" + event("a") + last):  # the counted path and the parsed one
        out = cutter().feed(data)
        assert out is not None and out.usage == usage
        dropped = out.without_usage_event()
        assert dropped.data == data[: -len(last)]


def test_whole_events_go_out_before_an_oversized_line_of_the_same_read() -> None:
    c = cutter(limit=1000)
    out = c.feed(event("a") + b"data: {" + b"x" * 2000)
    assert out is not None and out.data == event("a")
    assert isinstance(c.failure, UpstreamTooLarge)


def test_an_end_marker_before_other_events_ends_the_stream_there() -> None:
    c = cutter()
    out = c.feed(event("a") + b"data: [DONE]\n\n" + event("b"))
    assert c.complete and out is not None and out.data == event("a")
