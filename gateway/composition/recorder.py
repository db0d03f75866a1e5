"""Build the recorder for the configured [recording] mode."""

from __future__ import annotations

from llm_gateway import __version__
from llm_gateway.config.settings import RecordingSettings, Settings
from llm_gateway.recordings.base import PassthroughRecorder, Recorder
from llm_gateway.recordings.keys import KeyMaker
from llm_gateway.recordings.recorder import StoreRecorder
from llm_gateway.recordings.store import open_store


def key_maker(settings: RecordingSettings) -> KeyMaker:
    return KeyMaker(settings.ignore_fields, [(s.pattern, s.replacement) for s in settings.scrubbers])


def store_path(settings: Settings) -> str:
    """Where the recordings are: [recording] path, or for the postgres store the [state] database."""
    r = settings.recording
    return settings.state.database_url if r.store == "postgres" else r.path


def build_recorder(settings: Settings) -> Recorder:
    r = settings.recording
    if r.mode == "off":
        return PassthroughRecorder()
    return StoreRecorder(
        r.mode,
        open_store(r.store, store_path(settings)),
        key_maker(r),
        replay_timing=r.replay_timing,
        timing_scale=r.timing_scale,
        match=r.match,
        nearest_threshold=r.nearest_threshold,
        ttl_seconds=r.ttl_seconds,
        record_errors=r.record_errors,
        gateway_version=__version__,
    )
