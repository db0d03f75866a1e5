"""Both stores: the protocol, atomic writes, corrupt entries, and four processes recording at once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from llm_gateway.recordings.directory_store import DirectoryStore
from llm_gateway.recordings.model import CorruptRecording, Meta, Recording
from llm_gateway.recordings.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def recording(key: str, content: str = "hi", created: float = 1.0) -> Recording:
    return Recording(key, {"endpoint": "/v1/chat/completions", "alias": "m", "body": {"q": content}},
                     Meta(alias="m", created=created), response={"content": content})


def store_path(tmp_path: Path, kind: str) -> str:
    return str(tmp_path / ("rec" if kind == "directory" else "rec.db"))


@pytest.mark.parametrize("kind", ["directory", "sqlite", "postgres"])
async def test_get_put_iter_delete(tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue("database_url") if kind == "postgres" else store_path(tmp_path, kind)
    store = open_store(kind, path)
    try:
        assert await store.get("a" * 32) is None
        await store.put("a" * 32, recording("a" * 32, "first", created=2.0))
        await store.put("b" * 32, recording("b" * 32, created=1.0))
        await store.put("a" * 32, recording("a" * 32, "second", created=2.0))  # a re-record replaces
        got = await store.get("a" * 32)
        assert got is not None and got.response == {"content": "second"}
        in_order = ["a" * 32, "b" * 32] if kind == "directory" else ["b" * 32, "a" * 32]  # by file name / created
        assert [r.key async for r in store.iter()] == in_order
        await store.touch(["a" * 32], 99.0)
        assert await store.delete("a" * 32) and not await store.delete("a" * 32)
        assert [r.key async for r in store.iter()] == ["b" * 32]
    finally:
        await store.aclose()


async def test_sqlite_store_uses_wal_and_tracks_use(tmp_path: Path) -> None:
    store = open_store("sqlite", str(tmp_path / "rec.db"))
    await store.put("a" * 32, recording("a" * 32))
    await store.touch(["a" * 32], 1234.0)
    assert (await store.get("a" * 32)).meta.last_used == 1234.0
    await store.aclose()
    with sqlite3.connect(tmp_path / "rec.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_directory_store_writes_one_pretty_file_per_key_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    await store.put("a" * 32, recording("a" * 32))
    assert [p.name for p in tmp_path.iterdir()] == ["a" * 32 + ".json"]
    assert (tmp_path / ("a" * 32 + ".json")).read_bytes() == recording("a" * 32).to_json()


async def test_a_failed_write_keeps_the_old_recording_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DirectoryStore(str(tmp_path))
    await store.put("a" * 32, recording("a" * 32, "old"))

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("llm_gateway.recordings.directory_store.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        await store.put("a" * 32, recording("a" * 32, "new"))
    assert (await store.get("a" * 32)).response == {"content": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["a" * 32 + ".json"]  # the temp file is gone too


async def test_corrupt_entries_are_named_and_skipped_by_iter(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    await store.put("a" * 32, recording("a" * 32))
    (tmp_path / ("b" * 32 + ".json")).write_text("{not json")
    (tmp_path / ("c" * 32 + ".json")).write_bytes(recording("d" * 32).to_json())  # renamed by hand
    (tmp_path / ".leftover.tmp").write_text("partial")  # a crashed writer's temp file is never read
    assert [r.key async for r in store.iter()] == ["a" * 32]
    assert [Path(c.where).name for c in store.corrupt] == ["b" * 32 + ".json", "c" * 32 + ".json"]
    with pytest.raises(CorruptRecording, match="does not match the file name"):
        await store.get("c" * 32)


async def test_sqlite_corrupt_row_names_database_and_key(tmp_path: Path) -> None:
    store = open_store("sqlite", str(tmp_path / "rec.db"))
    await store.put("a" * 32, recording("a" * 32))
    await store.put("b" * 32, recording("b" * 32))
    await store.aclose()
    with sqlite3.connect(tmp_path / "rec.db") as db:
        db.execute("UPDATE recordings SET data = ? WHERE key = ?", (b"{broken", "b" * 32))
    store = open_store("sqlite", str(tmp_path / "rec.db"))
    try:
        with pytest.raises(CorruptRecording, match=f"rec.db \\(key {'b' * 32}\\)"):
            await store.get("b" * 32)
        assert [r.key async for r in store.iter()] == ["a" * 32] and len(store.corrupt) == 1
    finally:
        await store.aclose()


def test_directory_store_rejects_keys_that_are_not_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        DirectoryStore(str(tmp_path)).file_for("../../etc/passwd")


async def _stored_keys(kind: str, path: str) -> tuple[list[str], list[CorruptRecording]]:
    store = open_store(kind, path)
    try:
        return [r.key async for r in store.iter()], store.corrupt
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_four_processes_recording_in_parallel_lose_nothing(tmp_path: Path, kind: str) -> None:
    path = store_path(tmp_path, kind)
    per_worker = 25
    workers = [subprocess.Popen([sys.executable, "-m", "tests.recordings.parallel_writer", kind, path, str(w),
                                 str(per_worker)], cwd=ROOT, stderr=subprocess.PIPE) for w in range(4)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    keys, corrupt = asyncio.run(_stored_keys(kind, path))
    assert corrupt == [] and len(keys) == len(set(keys)) == 4 * per_worker + 1


def _count(kind: str, path: str) -> int:
    if kind == "directory":
        return len(list(Path(path).glob("*.json"))) if Path(path).is_dir() else 0
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return db.execute("SELECT count(*) FROM recordings").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_kill_9_mid_recording_leaves_only_whole_recordings(tmp_path: Path, kind: str) -> None:
    path = store_path(tmp_path, kind)
    writer = subprocess.Popen([sys.executable, "-m", "tests.recordings.parallel_writer", kind, path, "0", "100000"],
                              cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _count(kind, path) < 20 and time.monotonic() < deadline and writer.poll() is None:
            time.sleep(0.02)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    keys, corrupt = asyncio.run(_stored_keys(kind, path))
    assert len(keys) >= 20 and corrupt == []


async def test_postgres_store_keeps_both_shapes_recorded_concurrently_by_two_replicas(database_url: str) -> None:
    from llm_gateway.recordings.model import Chunk

    replicas = [open_store("postgres", database_url) for _ in range(2)]
    key = "c" * 32
    whole = recording(key, "whole")
    streamed = Recording(key, whole.request, Meta(alias="m", created=1.0), chunks=[Chunk(0.0, {"delta": "x"})])
    await asyncio.gather(*(replicas[i % 2].put(key, whole if i % 2 else streamed) for i in range(20)))
    got = await replicas[0].get(key)
    assert got is not None and got.response == {"content": "whole"} and got.chunks == [Chunk(0.0, {"delta": "x"})]
    await replicas[1].touch([key], 5.0)
    assert (await replicas[0].get(key)).meta.last_used == 5.0
    for r in replicas:
        await r.aclose()


async def test_postgres_store_lists_corrupt_rows_and_goes_on(database_url: str) -> None:
    import asyncpg

    store = open_store("postgres", database_url)
    await store.put("a" * 32, recording("a" * 32))
    conn = await asyncpg.connect(database_url)
    await conn.execute("INSERT INTO gateway_recordings VALUES ($1, 'm', 'e', 2, NULL, $2)", "b" * 32, b"{nope")
    await conn.close()
    assert [r.key async for r in store.iter()] == ["a" * 32]
    assert len(store.corrupt) == 1 and "b" * 32 in str(store.corrupt[0])
    with pytest.raises(CorruptRecording):
        await store.get("b" * 32)
    await store.aclose()


async def test_directory_recordings_are_readable_by_the_team_not_0600(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        await DirectoryStore(str(tmp_path)).put("a" * 32, recording("a" * 32))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / ("a" * 32 + ".json")).stat().st_mode) == 0o644


@pytest.mark.parametrize("kind", ["directory", "sqlite", "postgres"])
async def test_every_store_keeps_the_upstreams_key_order(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue("database_url") if kind == "postgres" else store_path(tmp_path, kind)
    store = open_store(kind, path)
    answer = {"id": "x", "object": "chat.completion", "created": 1, "choices": [{"index": 0, "message": {}}]}
    try:
        await store.put("e" * 32, Recording("e" * 32, {"endpoint": "e", "alias": "m", "body": {}}, Meta(alias="m"),
                                            response=answer))
        got = await store.get("e" * 32)
    finally:
        await store.aclose()
    assert got is not None and orjson.dumps(got.response) == orjson.dumps(answer)  # byte for byte: never re-sorted
