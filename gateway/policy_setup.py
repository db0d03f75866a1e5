"""Build the configured policy chain, in order, from settings."""

from __future__ import annotations

from gateway.config import Settings
from gateway.types import Policy


def build_policies(settings: Settings) -> list[Policy]:
    return []
