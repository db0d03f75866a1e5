"""What the gateway tells its operators about each request: metrics and the request log."""

from __future__ import annotations

from gateway.config import Settings
from gateway.types import RequestContext


class Observer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def start(self, ctx: RequestContext, endpoint: str) -> None:
        ctx.state["observer.endpoint"] = endpoint

    def finish(self, ctx: RequestContext, status: int) -> None:
        """Called once per client request: when the JSON answer is ready, or when a stream ends."""
        return None
