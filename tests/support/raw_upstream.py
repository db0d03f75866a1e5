"""A fake upstream that misbehaves at the socket level: it resets, drips, lies about lengths, sends gzip bombs and
endless bodies. An asyncio server on 127.0.0.1 in a thread; the request's `model` names the behaviour.

Every behaviour answers OpenAI's wire; `ok` answers normally (whole and streamed), so a test can show the gateway
still serves right after a bad one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Self

import orjson

CHUNK = {
    "id": "chatcmpl-raw",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "raw",
    "choices": [{"index": 0, "delta": {"content": "word "}, "logprobs": None, "finish_reason": None}],
}
COMPLETION = {
    "id": "chatcmpl-raw",
    "object": "chat.completion",
    "created": 1,
    "model": "raw",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


def event(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _json_head(status: int, length: int | None, extra: str = "") -> bytes:
    reason = {200: "OK", 500: "Internal Server Error"}.get(status, "X")
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n{extra}"
    if length is not None:
        head += f"content-length: {length}\r\n"
    return (head + "\r\n").encode()


def gzip_bomb(inflated: int) -> bytes:
    """A valid gzip of `inflated` zero bytes (1 GiB packs into about 1 MB), built in well under a second: after a
    full flush deflate forgets its history, so every MiB of zeros compresses to the same bytes, repeated."""
    block = b"\0" * (1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    once = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks = inflated >> 20
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    deflated = once * blocks + compressor.flush(zlib.Z_FINISH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + deflated + struct.pack("<II", crc, (blocks << 20) & 0xFFFFFFFF)


Behaviour = Callable[[asyncio.StreamWriter, dict], Awaitable[None]]


class RawUpstream:
    """Start with `with RawUpstream() as up:`; `up.base_url` is the OpenAI base URL; `up.seen` the models asked."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._bomb: bytes | None = None
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = orjson.loads(await reader.readexactly(length)) if length else {}
            model = str(body.get("model", "ok"))
            self.seen.append(model)
            await getattr(self, "_" + model.replace("-", "_"))(writer, body)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    # behaviours, by model name

    async def _ok(self, writer: asyncio.StreamWriter, body: dict) -> None:
        if body.get("stream"):
            writer.write(SSE_HEAD + event(CHUNK) + event(CHUNK) + b"data: [DONE]\n\n")
        else:
            payload = orjson.dumps(COMPLETION)
            writer.write(_json_head(200, len(payload)) + payload)
        await writer.drain()

    async def _cut(self, writer: asyncio.StreamWriter, body: dict) -> None:
        """Two chunks, then a TCP reset: no [DONE], no finish_reason."""
        writer.write(SSE_HEAD + event(CHUNK) + event(CHUNK))
        await writer.drain()
        await asyncio.sleep(0.2)
        _reset(writer)

    async def _cut_close(self, writer: asyncio.StreamWriter, body: dict) -> None:
        """Two chunks, then an orderly close (a proxy timing out, a crashed worker): still no [DONE]."""
        writer.write(SSE_HEAD + event(CHUNK) + event(CHUNK))
        await writer.drain()

    async def _anthropic_cut(self, writer: asyncio.StreamWriter, body: dict) -> None:
        """An Anthropic Messages stream: its start and two text deltas, then a reset before message_stop."""
        message = {"id": "msg_raw", "type": "message", "role": "assistant", "model": "claude-raw", "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}
        events = [
            ("message_start", {"type": "message_start", "message": message}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            *[("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "word "}})] * 2,
        ]
        writer.write(SSE_HEAD + b"".join(b"event: %s\n" % name.encode() + event(data) for name, data in events))
        await writer.drain()
        await asyncio.sleep(0.2)
        _reset(writer)

    async def _truncated(self, writer: asyncio.StreamWriter, body: dict) -> None:
        """A whole answer announced at 1000 bytes, of which 100 arrive before the connection closes."""
        writer.write(_json_head(200, 1000) + orjson.dumps(COMPLETION)[:100])
        await writer.drain()

    async def _huge_length(self, writer: asyncio.StreamWriter, body: dict) -> None:
        """Says 10 GB; would send them."""
        writer.write(_json_head(200, 10 * 1024**3) + b'{"id": "')
        await writer.drain()
        await self._endless_bytes(writer)

    async def _endless_body(self, writer: asyncio.StreamWriter, body: dict) -> None:
        writer.write(_json_head(200, None) + b'{"pad": "')
        await self._endless_bytes(writer)

    async def _endless_error(self, writer: asyncio.StreamWriter, body: dict) -> None:
        writer.write(_json_head(500, None) + b'{"error": {"message": "broken ' )
        await self._endless_bytes(writer)

    async def _gzip_bomb(self, writer: asyncio.StreamWriter, body: dict) -> None:
        if self._bomb is None:
            self._bomb = gzip_bomb(1 << 30)
        writer.write(_json_head(200, len(self._bomb), "content-encoding: gzip\r\n") + self._bomb)
        await writer.drain()

    async def _long_line(self, writer: asyncio.StreamWriter, body: dict) -> None:
        """A stream whose second event never ends its line."""
        writer.write(SSE_HEAD + event(CHUNK) + b'data: {"pad": "')
        await self._endless_bytes(writer)

    async def _drip(self, writer: asyncio.StreamWriter, body: dict) -> None:
        """A chunk, then one byte every 0.2 s, forever (each read arrives well within any read timeout)."""
        writer.write(SSE_HEAD + event(CHUNK))
        await writer.drain()
        while True:
            await asyncio.sleep(0.2)
            writer.write(b":")
            await writer.drain()

    async def _endless_stream(self, writer: asyncio.StreamWriter, body: dict) -> None:
        writer.write(SSE_HEAD)
        frame = event(CHUNK) * 50
        while True:
            writer.write(frame)
            await writer.drain()
            await asyncio.sleep(0.01)

    @staticmethod
    async def _endless_bytes(writer: asyncio.StreamWriter) -> None:
        block = b"x" * 65536
        while True:
            writer.write(block)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.contextmanager
def raw_upstream() -> Iterator[RawUpstream]:
    with RawUpstream() as up:
        yield up
