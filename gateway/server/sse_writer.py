"""A server-sent event stream on raw ASGI: frames out as they come, one write for every frame ready at once.

Every frame is a whole SSE event (the framer's), so events are never merged or split; what is coalesced is the
write: the frames that are ready without waiting (the events of one upstream read, or a replayed stream) go out in
one ASGI send, and the batch is flushed before the writer waits for anything. That is what a pass-through proxy
does (one write per upstream read): with a send per event, uvicorn's write and its syscall were most of a streamed
chunk's cost. A batch never holds more than MAX_BATCH_BYTES.

Beside the writer, one task per stream watches for the client leaving (the writer is cancelled, which closes the
upstream request) and sends a comment line when the stream has been idle for `ping_seconds`, so proxies keep it open.
sse-starlette did the same with an anyio task group and a cancel scope around every send (~6 us a chunk).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator, Mapping
from contextlib import aclosing
from typing import Any

from llm_gateway.server.asgi_io import Receive, Send

MAX_BATCH_BYTES = 64 * 1024
PING = b": ping\n\n"
_START_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx in front: relay each write, do not buffer the stream
)


class _Resumed:
    """The rest of an `anext()` that suspended on its first step: awaiting this finishes it."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Any, yielded: Any) -> None:
        self.coro = coro
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self.coro, self.yielded
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:  # noqa: BLE001 - cancellation or close of the awaiting task: passed inside
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def next_or_wait(frames: AsyncIterator[bytes]) -> tuple[bytes | None, _Resumed | None]:
    """(frame, None) when the next frame is ready without suspending; (None, awaitable) when it is not.

    The step is run by hand up to its first suspension, so a ready frame costs no trip through the event loop.
    Raises StopAsyncIteration at the end.
    """
    coro = frames.__anext__()
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return stop.value, None
    return None, _Resumed(coro, yielded)


async def send_event_stream(
    receive: Receive,
    send: Send,
    frames: AsyncIterator[bytes],
    headers: Mapping[str, str],
    *,
    ping_seconds: float = 15.0,
) -> None:
    """200, then `frames` until they end (or the client leaves); `frames` is closed either way."""
    raw_headers = [*_START_HEADERS, *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
    writer = asyncio.current_task()
    state = _StreamState()
    watcher = asyncio.create_task(_watch(receive, send, writer, state, ping_seconds))
    try:
        async with aclosing(frames):
            await _write(send, frames, state)
        state.done = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not state.client_left:
            raise
        if writer is not None:
            writer.uncancel()  # our own cancellation, for a client that left: the request ends normally
    finally:
        state.done = True
        watcher.cancel()


class _StreamState:
    __slots__ = ("client_left", "done", "last_write")

    def __init__(self) -> None:
        self.client_left = False
        self.done = False
        self.last_write = time.monotonic()


async def _write(send: Send, frames: AsyncIterator[bytes], state: _StreamState) -> None:
    batch: list[bytes] = []
    size = 0
    while True:
        try:
            frame, rest = next_or_wait(frames)
            if rest is not None:
                if batch:  # nothing more is ready: flush before waiting
                    await _send_body(send, batch, state)
                    batch, size = [], 0
                frame = await rest
        except StopAsyncIteration:
            break
        if frame:
            batch.append(frame)
            size += len(frame)
            if size >= MAX_BATCH_BYTES:
                await _send_body(send, batch, state)
                batch, size = [], 0
    if batch:
        await _send_body(send, batch, state)


async def _send_body(send: Send, batch: list[bytes], state: _StreamState) -> None:
    body = batch[0] if len(batch) == 1 else b"".join(batch)
    await send({"type": "http.response.body", "body": body, "more_body": True})
    state.last_write = time.monotonic()


async def _watch(
    receive: Receive, send: Send, writer: asyncio.Task[Any] | None, state: _StreamState, ping_seconds: float
) -> None:
    """Cancel the writer when the client disconnects; ping a stream idle for `ping_seconds`."""
    while not state.done:
        try:
            async with asyncio.timeout(ping_seconds):  # no task of its own per wait, as wait_for makes on 3.11
                message = await receive()
        except TimeoutError:
            if not state.done and time.monotonic() - state.last_write >= ping_seconds:
                await send({"type": "http.response.body", "body": PING, "more_body": True})
                state.last_write = time.monotonic()
            continue
        if message["type"] == "http.disconnect":
            if not state.done and writer is not None:
                state.client_left = True
                writer.cancel()
            return
