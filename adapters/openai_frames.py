"""An OpenAI-compatible stream's events: parsed into chunks (`OpenAIEvents`, the translation every other layer can
read), or cut at event boundaries and relayed as the upstream sent them (`FrameCutter`, when nothing reads chunks).

The relay path looks only for what the gateway must know: the end marker (`data: [DONE]`), an error event, and the
usage event. Its framing check is one pass of the regex engine over a read: every event one `data: {...}` line
(what OpenAI, vLLM and llama.cpp's server send). A JSON string cannot hold a raw newline, so that proves every
event whole and of that shape without looking at each; the JSON inside is the upstream's, as a proxy passes it.
A read that is anything else (comments, `event:` or
`id:` lines, `data:` without its space, multi-line data, an error, a usage value not found where expected, an event
larger than the read's own check can vouch for) takes the careful path: each event parsed as OpenAIEvents parses
it, the bytes still relayed as they came (CR line ends normalised to LF, which SSE treats alike).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from llm_gateway.adapters.http_read import event_too_large
from llm_gateway.vocab.errors import UpstreamError, UpstreamMalformed, UpstreamStatusError
from llm_gateway.vocab.types import Frames

END_MARKER = "[DONE]"
_DONE_EVENTS = (b"data: [DONE]\n\n", b"data:[DONE]\n\n")
# every event one `data: {...}` line: one pass of the regex engine, linear (a line cannot hold a newline)
_ONE_LINE_EVENTS = re.compile(rb"(?:data: \{[^\n]*\}\n\n)+")
_USAGE_NULL = (b'"usage":null', b'"usage": null')
_USAGE_OBJECT = (b'"usage":{', b'"usage": {')


def parse_event(provider: str, data: bytes) -> dict[str, Any]:
    """One event's data as a chunk; a malformed line or an error event raises the shared errors."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamMalformed(
            f"upstream {provider!r} sent a malformed stream line: {data[:200]!r}", provider=provider, kind="malformed"
        ) from None
    if not isinstance(chunk, dict):
        raise UpstreamMalformed(
            f"upstream {provider!r} sent a stream event that is not a JSON object: {data[:200]!r}",
            provider=provider,
            kind="malformed",
        )
    if "error" in chunk and "choices" not in chunk:
        raise stream_error(provider, chunk)
    return chunk


class OpenAIEvents:
    """An OpenAI-compatible stream: each event one chunk as it is; whole only at `data: [DONE]`."""

    __slots__ = ("complete", "provider")
    end_marker = END_MARKER

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.complete = False

    def feed(self, event: str, data: bytes) -> tuple[dict[str, Any], ...]:
        if data == b"[DONE]":
            self.complete = True
            return ()
        return (parse_event(self.provider, data),)


class FrameCutter:
    """One stream's upstream reads cut into Frames of whole events; `complete` once `data: [DONE]` arrived.

    What follows the last whole event of a read is held until the next read brings its end (never more than
    `max_event_bytes`); nothing else is held.
    """

    __slots__ = ("complete", "failure", "max_event_bytes", "partial", "partial_len", "provider")
    end_marker = END_MARKER

    def __init__(self, provider: str, max_event_bytes: int) -> None:
        self.provider = provider
        self.max_event_bytes = max_event_bytes
        self.complete = False
        self.failure: UpstreamError | None = None  # raised once the frames before it went out
        self.partial: list[bytes] = []
        self.partial_len = 0

    def feed(self, piece: bytes) -> Frames | None:
        """The whole events this read completes (None when it completes none)."""
        if b"\n" not in piece and b"\r" not in piece:
            self._hold(piece)
            return None
        if self.partial:
            self.partial.append(piece)
            piece = b"".join(self.partial)
            self.partial, self.partial_len = [], 0
        carry = b""
        if b"\r" in piece:
            if piece.endswith(b"\r"):  # its LF may be the next read's first byte: decided then
                piece, carry = piece[:-1], b"\r"
            piece = _lf(piece)
        end = piece.rfind(b"\n\n")
        if end < 0:
            self._hold(piece + carry)
            return None
        frames = self._frames(piece[: end + 2])
        rest = piece[end + 2 :] + carry
        if rest:
            try:
                self._hold(rest)
            except UpstreamError as exc:  # the whole events before the oversized one still go out first
                if frames is None:
                    raise
                self.failure = exc
        return frames

    def end(self) -> Frames | None:
        """At the end of the body: an event whose lines are whole but whose blank line never came still counts
        (lenient, as browsers are); a line cut mid-way does not."""
        held = _lf(b"".join(self.partial))
        self.partial, self.partial_len = [], 0
        if not held.endswith(b"\n"):
            return None
        return self._frames(held + b"\n")

    def _hold(self, piece: bytes) -> None:
        self.partial.append(piece)
        self.partial_len += len(piece)
        if self.partial_len > self.max_event_bytes:
            raise event_too_large(self.provider, self.max_event_bytes)

    def _frames(self, whole: bytes) -> Frames | None:
        if whole.endswith(b"[DONE]\n\n"):  # where the end marker comes: last (one after other events: _parsed)
            whole = self._before_done(whole)
            if not whole:
                return None
        if len(whole) <= self.max_event_bytes and _ONE_LINE_EVENTS.fullmatch(whole) and b'"error"' not in whole:
            found = self._usage(whole)
            if found is not None:
                return Frames(whole, *found)
        return self._parsed(whole)

    def _before_done(self, whole: bytes) -> bytes:
        """`whole` without the end marker's event that closes it, marking the stream complete."""
        for line in _DONE_EVENTS:
            at = len(whole) - len(line)
            if whole.endswith(line) and (at == 0 or whole[at - 1] == 10):
                self.complete = True
                return whole[:at]
        return whole

    def _usage(self, whole: bytes) -> tuple[dict[str, Any] | None, tuple[int, int] | None] | None:
        """(the usage an event of `whole` carries, the range of a usage-only event); None when the byte counts
        cannot tell where usage is."""
        named = whole.count(b'"usage"')
        if not named:
            return None, None
        nulls = whole.count(_USAGE_NULL[0])
        if named == nulls:  # include_usage: every chunk says `"usage":null`, the last one gives it
            return None, None
        nulls += whole.count(_USAGE_NULL[1])
        usage, span, objects = None, None, 0
        for marker in _USAGE_OBJECT:
            at = whole.find(marker)
            while at >= 0:
                objects += 1
                start = whole.rfind(b"\n\n", 0, at)
                start = 0 if start < 0 else start + 2
                stop = whole.find(b"\n\n", at) + 2
                chunk = parse_event(self.provider, whole[start + 6 : stop - 2])
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                    span = (start, stop) if not chunk.get("choices") else span
                at = whole.find(marker, at + 1)
        return (usage, span) if named == nulls + objects else None

    def _parsed(self, whole: bytes) -> Frames | None:
        """The careful path: every event parsed, its size checked; the bytes relayed as they are, up to the end
        marker. The events before a bad one still go out, as the parsed path sends them, and the error waits in
        `failure`."""
        usage, span = None, None
        offset = 0
        for block in whole.split(b"\n\n"):
            try:
                if len(block) > self.max_event_bytes:
                    raise event_too_large(self.provider, self.max_event_bytes)
                data = [line[6:] if line[5:6] == b" " else line[5:]
                        for line in block.split(b"\n") if line[:5] == b"data:"]
                joined = data[0] if len(data) == 1 else b"\n".join(data)
                if joined == b"[DONE]":
                    self.complete = True
                    return Frames(whole[:offset], usage, span) if offset else None
                chunk = parse_event(self.provider, joined) if data else None
            except UpstreamError as exc:
                if not offset:
                    raise
                self.failure = exc
                return Frames(whole[:offset], usage, span)
            start, offset = offset, offset + len(block) + 2
            if chunk is not None and chunk.get("usage"):
                usage = chunk["usage"]
                span = (start, offset) if not chunk.get("choices") else span
        return Frames(whole, usage, span)


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def stream_error(provider: str, chunk: dict[str, Any]) -> UpstreamError:
    err = chunk.get("error")
    message = err.get("message") if isinstance(err, dict) else str(err)
    code = err.get("code") if isinstance(err, dict) else None
    return UpstreamStatusError(
        f"upstream {provider!r} failed mid-stream: {message}",
        provider=provider,
        upstream_status=502,
        code=str(code) if code else "upstream_stream_error",
        kind="5xx",
    )
