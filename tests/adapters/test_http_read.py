"""Bounded reads of an upstream's answer: whole bodies, error bodies, inflation, and SSE events (adapters/http_read)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Iterable

import pytest

from llm_gateway.adapters.http_read import read_body, read_error_body, sse_events
from llm_gateway.vocab.errors import UpstreamIncomplete, UpstreamMalformed, UpstreamTimeout, UpstreamTooLarge


class Response:
    def __init__(self, pieces: Iterable[bytes], headers: dict[str, str] | None = None) -> None:
        self.pieces = list(pieces)
        self.headers = headers or {}
        self.status_code = 200
        self.read = 0

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.read += 1
            yield piece

    async def aread(self) -> bytes:
        self.read += len(self.pieces)
        return b"".join(self.pieces)


async def events(response: Response, cap: int = 1024, *, deadline: float | None = None) -> list[tuple[str, bytes]]:
    loop = asyncio.get_running_loop()
    found = sse_events(response, "up", max_event_bytes=cap, deadline=deadline or loop.time() + 3600,
                       read_timeout=60, total_timeout=5)
    return [e async for e in found]


async def test_events_split_anywhere_come_out_whole() -> None:
    stream = b'event: a\r\ndata: {"x":\ndata: 1}\n\n: ping\n\ndata: [DONE]\n\n'
    for size in (1, 2, 3, 7, len(stream)):
        pieces = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert await events(Response(pieces)) == [("a", b'{"x":\n1}'), ("", b"[DONE]")]


async def test_a_line_arriving_in_many_pieces_is_joined_once() -> None:
    line = b"data: " + b"x" * 20000
    pieces = [line[i:i + 10] for i in range(0, len(line), 10)] + [b"\n\n"]
    assert await events(Response(pieces), cap=30000) == [("", b"x" * 20000)]


async def test_a_cut_event_at_the_end_is_not_dispatched() -> None:
    assert await events(Response([b"data: 1\n\ndata: {\"half"])) == [("", b"1")]
    assert await events(Response([b"data: 1\n\ndata: 2\n"])) == [("", b"1"), ("", b"2")]  # a whole line is kept


@pytest.mark.parametrize(
    "pieces",
    [[b"data: " + b"x" * 600, b"x" * 600], [b"data: " + b"x" * 500 + b"\n", b"data: " + b"x" * 600 + b"\n"]],
    ids=["one-endless-line", "many-data-lines"],
)
async def test_an_event_past_the_cap_stops_the_stream(pieces: list[bytes]) -> None:
    with pytest.raises(UpstreamTooLarge) as info:
        await events(Response(pieces), cap=1000)
    assert info.value.code == "upstream_event_too_large" and info.value.status == 502


async def test_a_stream_past_its_deadline_is_cut() -> None:
    response = Response([b"data: 1\n\n"] * 100)
    with pytest.raises(UpstreamTimeout) as info:
        await events(response, deadline=asyncio.get_running_loop().time() - 1)
    assert info.value.code == "upstream_total_timeout" and response.read == 0


async def test_read_body_bounds() -> None:
    assert await read_body(Response([b"ab", b"cd"], {"content-length": "4"}), "up", 10) == b"abcd"
    huge = Response([b"x"], {"content-length": str(10 * 1024**3)})
    with pytest.raises(UpstreamTooLarge, match="says it is"):
        await read_body(huge, "up", 1000)
    assert huge.read == 0  # refused before reading
    with pytest.raises(UpstreamTooLarge) as endless:
        await read_body(Response([b"x" * 400] * 10), "up", 1000)
    assert endless.value.code == "upstream_answer_too_large"
    with pytest.raises(UpstreamIncomplete) as short:
        await read_body(Response([b"x" * 10], {"content-length": "100"}), "up", 1000)
    assert short.value.code == "upstream_answer_truncated"


async def test_a_gzip_bomb_is_refused_while_inflating() -> None:
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))
    assert len(bomb) < 20000
    with pytest.raises(UpstreamTooLarge) as info:
        await read_body(Response([bomb], {"content-encoding": "gzip"}), "up", 1024 * 1024)
    assert info.value.code == "upstream_inflated_too_large"
    small = gzip.compress(b'{"ok": 1}')
    assert await read_body(Response([small], {"content-encoding": "gzip"}), "up", 1000) == b'{"ok": 1}'
    with pytest.raises(UpstreamMalformed) as br:
        await read_body(Response([b"x"], {"content-encoding": "br"}), "up", 1000)
    assert br.value.code == "upstream_encoding_unsupported"


async def test_an_error_body_is_read_only_as_far_as_needed() -> None:
    endless = Response([b"x" * 1000] * 1000)
    body = await read_error_body(endless, "up", limit=5000)
    assert len(body) == 5000 and endless.read == 5
