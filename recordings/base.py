"""The Recorder protocol: it wraps "whatever serves a Call" and may answer from the store instead."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from llm_gateway.vocab.types import Call, RequestContext

SendUpstream = Callable[[Call, RequestContext], Awaitable[dict[str, Any]]]
StreamUpstream = Callable[[Call, RequestContext], Awaitable[AsyncIterator[dict[str, Any]]]]


@dataclass(slots=True)
class RecorderCounters:
    """Monotonic counts since start, read by the metrics endpoint."""

    hits: int = 0  # answered from a recording (replay or cache hit, exact or nearest)
    misses: int = 0  # looked up and not found (or expired)
    records: int = 0  # recordings written
    store_errors: int = 0  # store reads or writes that failed (corrupt, unwritable, locked)


class Recorder(Protocol):
    counters: RecorderCounters

    async def send(self, call: Call, ctx: RequestContext, upstream: SendUpstream) -> dict[str, Any]: ...

    async def stream(self, call: Call, ctx: RequestContext, upstream: StreamUpstream) -> AsyncIterator[dict[str, Any]]:
        """A primed stream, like Router.stream: errors before the first chunk are raised here."""
        ...

    async def aclose(self) -> None: ...


class PassthroughRecorder:
    """Mode `off`: every call goes upstream, nothing is stored."""

    def __init__(self) -> None:
        self.counters = RecorderCounters()

    async def send(self, call: Call, ctx: RequestContext, upstream: SendUpstream) -> dict[str, Any]:
        return await upstream(call, ctx)

    async def stream(self, call: Call, ctx: RequestContext, upstream: StreamUpstream) -> AsyncIterator[dict[str, Any]]:
        return await upstream(call, ctx)

    async def aclose(self) -> None:
        return None
