"""Graceful shutdown: SIGTERM turns /readyz to 503 at once and starts the grace period open streams get to finish.

uvicorn's signal handler (`Server.handle_exit`) is wrapped so every live Drain hears the signal the moment it
arrives, before uvicorn stops listening; uvicorn itself then waits for in-flight requests (its
timeout_graceful_shutdown is set just above the grace period by `gateway serve`) and runs the lifespan shutdown
that flushes recordings and spend. A stream still open at the deadline ends itself with an error event (app.py).
"""

from __future__ import annotations

import time
import weakref
from typing import Any

_drains: weakref.WeakSet[Drain] = weakref.WeakSet()
_installed = False


class Drain:
    """The shutdown state of one app: `draining` once a stop was asked for, `deadline` (monotonic) for streams."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.deadline: float | None = None
        _drains.add(self)
        _install_uvicorn_hook()

    @property
    def draining(self) -> bool:
        return self.deadline is not None

    def begin(self) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.grace_seconds

    def remaining(self) -> float | None:
        """Seconds left before open streams must end; None while not draining."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


def _install_uvicorn_hook() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    try:
        from uvicorn.server import Server
    except ImportError:  # not served by uvicorn: the lifespan shutdown still marks the gateway not ready
        return
    original = Server.handle_exit

    def handle_exit(self: Any, sig: int, frame: Any) -> None:
        for drain in list(_drains):
            drain.begin()
        original(self, sig, frame)

    Server.handle_exit = handle_exit  # type: ignore[method-assign]
