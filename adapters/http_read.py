"""Reading an upstream's answer with bounds: whole bodies up to a cap, error bodies only as far as their message
needs, gzip/deflate inflated in bounded steps, and server-sent events parsed in linear time with a cap per event.

An upstream is not trusted to be small, honest about its length, or ever to stop: a `content-length` over the cap is
refused before a byte is read, an endless body or stream line stops at the cap, and a 1 MB gzip that inflates to
1 GiB never exists inflated in memory. The responses read here are the two clients' (httpx's and aiohttp's, see
aiohttp_client), both of which hand out the raw, still-encoded bytes through `aiter_raw()`.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import httpx

from llm_gateway.vocab.errors import UpstreamIncomplete, UpstreamMalformed, UpstreamTimeout, UpstreamTooLarge

log = logging.getLogger("gateway.upstream")
ERROR_BODY_BYTES = 64 * 1024  # an error's message, type and code fit many times over
INFLATE_STEP = 64 * 1024  # bytes inflated per step: a compressed piece never becomes more than this at once
_ENCODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}  # zlib wbits (deflate: RFC 9110 says zlib-wrapped)


class RawResponse(Protocol):
    status_code: int
    headers: Mapping[str, str]

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...


def content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


def decoded(response: RawResponse, provider: str) -> AsyncIterator[bytes]:
    """The body's bytes, inflated in bounded steps when the upstream compressed it though asked not to."""
    if getattr(response, "is_stream_consumed", False):  # an httpx.Response a test's mock transport read already
        return _once(response.content)  # type: ignore[attr-defined]
    encoding = _encoding(response)
    if encoding in ("identity", ""):
        return response.aiter_raw()
    wbits = _ENCODINGS.get(encoding)
    if wbits is None:
        raise UpstreamMalformed(
            f"upstream {provider!r} answered in content-encoding {encoding!r}, which the gateway does not read "
            "(it asks for identity)",
            provider=provider,
            kind="malformed",
            code="upstream_encoding_unsupported",
        )
    return _inflated(response.aiter_raw(), zlib.decompressobj(wbits), provider)


def _encoding(response: RawResponse) -> str:
    if getattr(response, "is_stream_consumed", False):
        return "identity"  # already read, and decoded, by httpx
    return (response.headers.get("content-encoding") or "identity").strip().lower()


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def _inflated(pieces: AsyncIterator[bytes], inflater: Any, provider: str) -> AsyncIterator[bytes]:
    async for piece in pieces:
        while piece:
            try:
                out = inflater.decompress(piece, INFLATE_STEP)
            except zlib.error as exc:
                raise UpstreamMalformed(
                    f"upstream {provider!r} sent a body that does not inflate: {exc}", provider=provider,
                    kind="malformed",
                ) from None
            if out:
                yield out
            piece = inflater.unconsumed_tail


async def read_body(response: RawResponse, provider: str, limit: int) -> bytes:
    """A whole answer, at most `limit` bytes (after inflating); refused before reading when it says it is larger."""
    declared = content_length(response.headers)
    if declared is not None and declared > limit:
        raise _too_large(provider, f"says it is {declared} bytes", limit)
    encoded = _encoding(response) not in ("identity", "")
    if declared is not None and not encoded:  # the common case: a length within the cap, read in one call
        body = await response.aread()
        if len(body) < declared:
            raise _truncated(provider, len(body), declared)
        return body
    pieces: list[bytes] = []
    size = 0
    async for piece in decoded(response, provider):
        size += len(piece)
        if size > limit:
            if encoded:
                raise _too_large(provider, "inflates past", limit, code="upstream_inflated_too_large")
            raise _too_large(provider, "is larger than", limit)
        pieces.append(piece)
    body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    return body


def _truncated(provider: str, got: int, declared: int) -> UpstreamIncomplete:
    return UpstreamIncomplete(
        f"upstream {provider!r} sent {got} of the {declared} bytes it announced",
        provider=provider,
        kind="malformed",
        code="upstream_answer_truncated",
    )


async def read_error_body(response: RawResponse, provider: str, limit: int = ERROR_BODY_BYTES) -> bytes:
    """The start of an error answer, as far as its message needs; the rest is never read (the connection closes)."""
    pieces: list[bytes] = []
    size = 0
    try:
        async for piece in decoded(response, provider):
            pieces.append(piece)
            size += len(piece)
            if size >= limit:
                break
    except (httpx.HTTPError, UpstreamMalformed) as exc:  # the status is still reported, with what arrived
        log.info("upstream %r: the error body broke off: %s", provider, type(exc).__name__)
    return b"".join(pieces)[:limit]


def _too_large(provider: str, what: str, limit: int, *, code: str = "upstream_answer_too_large") -> UpstreamTooLarge:
    return UpstreamTooLarge(
        f"upstream {provider!r}'s answer {what} the {limit} bytes the gateway reads from it "
        f"(providers.{provider}.max_answer_bytes)",
        provider=provider,
        kind="malformed",
        code=code,
    )


async def timed_reads(
    response: RawResponse, provider: str, *, deadline: float, read_timeout: float, total_timeout: float
) -> AsyncIterator[bytes]:
    """The body's reads as they arrive, until `deadline` (loop time): each read is checked against it, and the reads
    within `read_timeout` of it (where the client's own read timeout would fire too late) are cut at it."""
    loop = asyncio.get_running_loop()
    pieces = decoded(response, provider)
    while True:
        now = loop.time()
        if now >= deadline:
            raise past_total(provider, total_timeout)
        try:
            if deadline - now > read_timeout:
                piece = await anext(pieces)
            else:
                async with asyncio.timeout_at(deadline):
                    piece = await anext(pieces)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise past_total(provider, total_timeout) from None
        yield piece


async def sse_events(
    response: RawResponse,
    provider: str,
    *,
    max_event_bytes: int,
    deadline: float,
    read_timeout: float,
    total_timeout: float,
) -> AsyncIterator[tuple[str, bytes]]:
    """Yield (event, data) per server-sent event (data lines joined by newlines), in time linear in the bytes read.

    A line or an event past `max_event_bytes` stops the stream; so does `deadline` (see timed_reads). An event
    still open when the body ends was cut and is not dispatched; lines already whole are.
    """
    partial: list[bytes] = []  # a line's pieces until its newline arrives: joined once, never re-split
    partial_len = 0
    event = ""
    data: list[bytes] = []
    data_len = 0
    reads = timed_reads(
        response, provider, deadline=deadline, read_timeout=read_timeout, total_timeout=total_timeout
    )
    async for piece in reads:
        if b"\n" not in piece:
            partial.append(piece)
            partial_len += len(piece)
            if partial_len > max_event_bytes:
                raise event_too_large(provider, max_event_bytes)
            continue
        if partial:
            partial.append(piece)
            piece = b"".join(partial)
            partial.clear()
        lines = piece.split(b"\n")
        tail = lines.pop()
        partial_len = len(tail)
        if tail:
            partial.append(tail)
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    yield event, data[0] if len(data) == 1 else b"\n".join(data)
                event, data, data_len = "", [], 0
            elif line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                data_len += len(value)
                if data_len > max_event_bytes:
                    raise event_too_large(provider, max_event_bytes)
                data.append(value)
            elif line.startswith(b"event:"):
                event = line[6:].strip().decode("utf-8", "replace")
            # comments (": ping"), id: and retry: lines carry nothing a chat stream needs
        if partial_len > max_event_bytes:  # after the whole lines before it: those events were sent whole
            raise event_too_large(provider, max_event_bytes)
    if data:  # whole lines without the blank line that ends their event: lenient, as browsers are
        yield event, data[0] if len(data) == 1 else b"\n".join(data)


def event_too_large(provider: str, limit: int) -> UpstreamTooLarge:
    return UpstreamTooLarge(
        f"upstream {provider!r} sent a stream event larger than {limit} bytes (providers.{provider}.max_event_bytes)",
        provider=provider,
        kind="malformed",
        code="upstream_event_too_large",
    )


def past_total(provider: str, total: float) -> UpstreamTimeout:
    """The error for an answer, whole or streamed, that ran past the provider's total timeout."""
    return UpstreamTimeout(
        f"upstream {provider!r} did not finish within its total timeout of {total:g}s (providers.{provider}.timeout"
        ".total); the answer was cut there",
        provider=provider,
        kind="timeout",
        code="upstream_total_timeout",
    )

