"""The Recorder protocol: it wraps "whatever serves a Call" and may answer from the store instead."""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from gateway.types import Call, RequestContext

SendUpstream = Callable[[Call, RequestContext], Awaitable[dict[str, Any]]]
StreamUpstream = Callable[[Call, RequestContext], Awaitable[AsyncIterator[dict[str, Any]]]]


class Recorder(Protocol):
    async def send(self, call: Call, ctx: RequestContext, upstream: SendUpstream) -> dict[str, Any]: ...

    async def stream(self, call: Call, ctx: RequestContext, upstream: StreamUpstream) -> AsyncIterator[dict[str, Any]]:
        """A primed stream, like Router.stream: errors before the first chunk are raised here."""
        ...

    async def aclose(self) -> None: ...


class PassthroughRecorder:
    """Mode `off`: every call goes upstream, nothing is stored."""

    async def send(self, call: Call, ctx: RequestContext, upstream: SendUpstream) -> dict[str, Any]:
        return await upstream(call, ctx)

    async def stream(self, call: Call, ctx: RequestContext, upstream: StreamUpstream) -> AsyncIterator[dict[str, Any]]:
        return await upstream(call, ctx)

    async def aclose(self) -> None:
        return None
