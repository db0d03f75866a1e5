"""SIGHUP reloads gateway.toml: the file is validated first (a bad one keeps the running config, and the log says
why), then a whole new gateway is built from it and takes the new requests, while requests in flight finish on the
old one, which is closed once the last of them ends.

Only `gateway serve` with one worker reloads this way (it is the process that gets the signal); with `--workers N`
uvicorn's supervisor restarts its workers on SIGHUP, each reading the file as it starts.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable

from llm_gateway.config.settings import ConfigError
from llm_gateway.server.app import GatewayApp, start_serving, stop_serving
from llm_gateway.server.asgi_io import Receive, Scope, Send
from llm_gateway.server.shutdown import Drain

log = logging.getLogger("gateway.reload")

Rebuild = Callable[[Drain], GatewayApp]  # the app for the file as it is now; raises ConfigError


class ReloadingApp:
    """The ASGI app uvicorn serves: the current GatewayApp, swapped on SIGHUP."""

    def __init__(self, app: GatewayApp, rebuild: Rebuild) -> None:
        self.current = app
        self._rebuild = rebuild
        self._active: dict[int, int] = {}  # id(app) -> requests it is serving
        self._retired: list[GatewayApp] = []  # replaced, still finishing requests
        self._reloading: asyncio.Task[None] | None = None
        self.reloads = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self.current  # this request stays on it, whatever a reload does meanwhile
        key = id(app)
        self._active[key] = self._active.get(key, 0) + 1
        try:
            await app(scope, receive, send)
        finally:
            self._active[key] -= 1
            if app is not self.current and not self._active[key]:
                await self._close(app)

    async def reload(self) -> bool:
        """Build from the file as it is now and swap; False (running config kept, reason logged) on a bad file."""
        old = self.current
        try:
            new = await asyncio.to_thread(self._rebuild, old.state.gateway.drain)
        except ConfigError as exc:
            log.error("SIGHUP: gateway.toml not reloaded, the running config stays: %d problem(s): %s",
                      len(exc.problems), "; ".join(exc.problems))
            return False
        except Exception:
            log.exception("SIGHUP: gateway.toml not reloaded, the running config stays")
            return False
        await start_serving(new.state.gateway)
        self.current = new
        self.reloads += 1
        settings = new.state.gateway.settings
        log.warning("SIGHUP: reloaded %s (%d models, %d providers); requests in flight finish on the old config",
                    settings.source or "gateway.toml", len(settings.models), len(settings.providers))
        if not self._active.get(id(old)):
            await self._close(old)
        else:
            self._retired.append(old)
        return True

    async def _close(self, app: GatewayApp) -> None:
        if app in self._retired:
            self._retired.remove(app)
        self._active.pop(id(app), None)
        await app.state.gateway.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            await start_serving(self.current.state.gateway)
            self._listen_for_sighup()
        except Exception as exc:  # noqa: BLE001 - reported to uvicorn, which stops
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        for app in [*self._retired, self.current]:
            await stop_serving(app.state.gateway)
        await send({"type": "lifespan.shutdown.complete"})

    def _listen_for_sighup(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # an in-thread test server
        loop = asyncio.get_running_loop()

        def on_sighup() -> None:
            if self._reloading is None or self._reloading.done():
                self._reloading = loop.create_task(self.reload())

        loop.add_signal_handler(signal.SIGHUP, on_sighup)
