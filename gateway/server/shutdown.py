"""Graceful shutdown: SIGTERM turns /readyz to 503 at once and starts the grace period open streams get to finish.

At startup (inside uvicorn, whose handlers are installed by then) the SIGTERM/SIGINT handlers are wrapped so the
Drain hears the signal the moment it arrives. The server keeps accepting during the grace, so a load balancer's
readiness probe sees the 503 (not a refused connection) and takes it out of rotation; uvicorn's own handler runs
once nothing is in flight (after at least IDLE_DRAIN_SECONDS, so a probe can see it) or when the grace ends, and a
second signal runs it at once. It then stops accepting, waits for in-flight requests (its timeout_graceful_shutdown
is set above the grace period by `gateway serve`) and runs the lifespan shutdown that flushes recordings and
spend. A stream still open at the deadline ends itself with an error event (app.py `_frames`). uvicorn restores
the original handlers when it returns, which removes the wrapper.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
IDLE_DRAIN_SECONDS = 2.0  # with nothing in flight, still this long answering /readyz 503 (capped by the grace)


class Drain:
    """The shutdown state of one app: `draining` once a stop was asked for, `deadline` (monotonic) for streams."""

    def __init__(self, grace_seconds: float, in_flight: Callable[[], int] = lambda: 0) -> None:
        self.grace_seconds = grace_seconds
        self.deadline: float | None = None
        self.in_flight = in_flight  # requests being served (the observer's count)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Task[None] | None = None

    @property
    def draining(self) -> bool:
        return self.deadline is not None

    def begin(self) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.grace_seconds

    def remaining(self) -> float | None:
        """Seconds left before open streams must end; None while not draining."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def stop_later(self, stop: Callable[[], Any]) -> None:
        """Call `stop` (the server's own shutdown) once nothing is in flight, or when the grace ends."""
        if self.loop is None:
            stop()
            return

        async def wait_then_stop() -> None:
            began = time.monotonic()
            idle_wait = min(IDLE_DRAIN_SECONDS, self.grace_seconds)
            while (self.remaining() or 0) > 0 and (self.in_flight() > 0 or time.monotonic() - began < idle_wait):
                await asyncio.sleep(0.05)
            stop()

        def start() -> None:
            self._stopping = asyncio.ensure_future(wait_then_stop())

        self.loop.call_soon_threadsafe(start)

    def listen_for_signals(self) -> None:
        """Begin draining on SIGTERM/SIGINT, then let the server's own handler run. Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return  # an in-thread test server: stopped by its owner, not by signals
        self.loop = asyncio.get_running_loop()
        for sig in HANDLED_SIGNALS:
            previous = signal.getsignal(sig)
            if callable(previous) and not isinstance(previous, _DrainingHandler):
                signal.signal(sig, _DrainingHandler(self, previous))


class _DrainingHandler:
    """A signal handler that starts the drain and then calls the one it replaced.

    It exposes the replaced bound method's `__self__` (the uvicorn Server) because sse-starlette finds the server
    that way to notice a shutdown.
    """

    def __init__(self, drain: Drain, previous: Callable[[int, FrameType | None], Any]) -> None:
        self.drain = drain
        self.previous = previous
        owner = getattr(previous, "__self__", None)
        if owner is not None:
            self.__self__ = owner

    def __call__(self, sig: int, frame: FrameType | None) -> None:
        if self.drain.draining:  # a second signal: stop accepting now
            self.previous(sig, frame)
            return
        self.drain.begin()
        self.drain.stop_later(lambda: self.previous(sig, frame))
