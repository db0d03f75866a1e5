"""The raw-ASGI stream writer: ready frames batched into one send, pings on idle, a client that leaves ends it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from llm_gateway.server.sse_writer import PING, send_event_stream


class Client:
    """An ASGI peer: records what was sent; `leave()` makes receive() answer http.disconnect."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def test_frames_ready_at_once_go_out_in_one_write_and_a_wait_flushes_first() -> None:
    client = Client()
    resume = asyncio.Event()

    async def frames() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"  # ready without waiting: the same write as the first
        await resume.wait()
        yield b"data: 3\n\n"

    task = asyncio.create_task(send_event_stream(client.receive, client.send, frames(), {"x-request-id": "r1"}))
    await asyncio.sleep(0.01)
    assert client.bodies() == [b"data: 1\n\ndata: 2\n\n"]  # flushed before waiting for the third
    resume.set()
    await task
    assert client.bodies() == [b"data: 1\n\ndata: 2\n\n", b"data: 3\n\n", b""]
    start = client.sent[0]
    assert start["status"] == 200 and (b"x-request-id", b"r1") in start["headers"]
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]


async def test_an_idle_stream_is_pinged_so_proxies_keep_it_open() -> None:
    client = Client()

    async def frames() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        await asyncio.sleep(0.25)
        yield b"data: 2\n\n"

    await send_event_stream(client.receive, client.send, frames(), {}, ping_seconds=0.1)
    bodies = client.bodies()
    assert bodies[0] == b"data: 1\n\n" and PING in bodies and bodies[-2:] == [b"data: 2\n\n", b""]


async def test_a_client_that_leaves_ends_the_stream_and_closes_its_source() -> None:
    client = Client()
    closed = asyncio.Event()

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            await asyncio.sleep(30)  # an upstream that would go on
            yield b"data: 2\n\n"
        finally:
            closed.set()

    task = asyncio.create_task(send_event_stream(client.receive, client.send, frames(), {}))
    await asyncio.sleep(0.01)
    client.gone.set()
    await asyncio.wait_for(task, 5)  # returns normally: nobody is left to answer
    assert closed.is_set() and client.bodies() == [b"data: 1\n\n"]
