"""build_recorder: the [recording] table decides the recorder."""

from __future__ import annotations

from pathlib import Path

from llm_gateway.composition.recorder import build_recorder
from llm_gateway.recordings.base import PassthroughRecorder, RecorderCounters
from llm_gateway.recordings.directory_store import DirectoryStore
from llm_gateway.recordings.recorder import StoreRecorder
from llm_gateway.recordings.sqlite_store import SQLiteStore
from tests.conftest import make_settings


def test_mode_off_passes_through_and_still_has_counters() -> None:
    recorder = build_recorder(make_settings())
    assert isinstance(recorder, PassthroughRecorder) and recorder.counters == RecorderCounters()


def test_modes_build_a_store_recorder_with_the_configured_store_and_key(tmp_path: Path) -> None:
    recording = {
        "mode": "replay",
        "store": "directory",
        "path": str(tmp_path),
        "ignore_fields": ["seed"],
        "scrubbers": [{"pattern": "run-[0-9]+", "replacement": "<RUN>"}],
        "match": "nearest",
        "nearest_threshold": 0.95,
        "replay_timing": "recorded",
        "timing_scale": 0.1,
    }
    recorder = build_recorder(make_settings(recording=recording))
    assert isinstance(recorder, StoreRecorder) and isinstance(recorder.store, DirectoryStore)
    assert (recorder.mode, recorder.match, recorder.nearest_threshold, recorder.timing_scale) == (
        "replay",
        "nearest",
        0.95,
        0.1,
    )
    a = recorder.keys.normalize("/v1/chat/completions", "mock", {"seed": 1, "messages": [{"content": "run-1"}]})
    b = recorder.keys.normalize("/v1/chat/completions", "mock", {"seed": 2, "messages": [{"content": "run-2"}]})
    assert a.key == b.key
    assert isinstance(
        build_recorder(make_settings(recording={"mode": "auto", "path": str(tmp_path / "r.db")})).store, SQLiteStore
    )
