"""Build the recorder for the configured [recording] mode."""

from __future__ import annotations

from gateway.config import Settings
from recordings.base import PassthroughRecorder, Recorder


def build_recorder(settings: Settings) -> Recorder:
    return PassthroughRecorder()
