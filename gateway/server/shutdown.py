"""Graceful shutdown: SIGTERM turns /readyz to 503 at once and starts the grace period open streams get to finish.

At startup (inside uvicorn, whose handlers are installed by then) the SIGTERM/SIGINT handlers are wrapped so the
Drain hears the signal the moment it arrives; uvicorn's own handler then runs as before: it stops accepting, waits
for in-flight requests (its timeout_graceful_shutdown is set above the grace period by `gateway serve`) and runs the
lifespan shutdown that flushes recordings and spend. A stream still open at the deadline ends itself with an error
event (app.py `_frames`). uvicorn restores the original handlers when it returns, which removes the wrapper.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    """The shutdown state of one app: `draining` once a stop was asked for, `deadline` (monotonic) for streams."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.deadline: float | None = None

    @property
    def draining(self) -> bool:
        return self.deadline is not None

    def begin(self) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.grace_seconds

    def remaining(self) -> float | None:
        """Seconds left before open streams must end; None while not draining."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def listen_for_signals(self) -> None:
        """Begin draining on SIGTERM/SIGINT, then let the server's own handler run. Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return  # an in-thread test server: stopped by its owner, not by signals
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
        self.drain.begin()
        self.previous(sig, frame)
