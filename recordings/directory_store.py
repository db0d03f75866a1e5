"""A directory of one pretty, key-sorted JSON file per recording (`<key>.json`), for fixtures committed to git.

A put writes a temporary file beside the target, fsyncs it and renames it over the target (os.replace is atomic),
so a crash or kill -9 never leaves a partial recording, and concurrent writers each land a whole file. File I/O runs
in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from llm_gateway.recordings.model import CorruptRecording, Recording

log = logging.getLogger("gateway.recordings")


class DirectoryStore:
    def __init__(self, path: str) -> None:
        self.location = path
        self.root = Path(path)
        self.corrupt: list[CorruptRecording] = []

    def file_for(self, key: str) -> Path:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a recording key: {key!r}")
        return self.root / f"{key}.json"

    async def get(self, key: str) -> Recording | None:
        return await asyncio.to_thread(self._read, self.file_for(key))

    def _read(self, file: Path) -> Recording | None:
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return None
        recording = Recording.from_json(raw, str(file))
        if recording.key != file.stem:
            raise CorruptRecording(str(file), f"its key {recording.key!r} does not match the file name")
        return recording

    async def put(self, key: str, recording: Recording) -> None:
        await asyncio.to_thread(self._write, self.file_for(key), recording.to_json())

    def _write(self, file: Path, data: bytes) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.stem}.", suffix=".tmp")
        try:
            # mkstemp makes it 0600; a recording is a fixture the team's CI user reads: the umask's usual mode
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, file)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    async def iter(self) -> AsyncIterator[Recording]:
        self.corrupt = []
        files = await asyncio.to_thread(lambda: sorted(self.root.glob("*.json")) if self.root.is_dir() else [])
        for file in files:
            try:
                recording = await asyncio.to_thread(self._read, file)
            except CorruptRecording as exc:
                log.warning("%s", exc)
                self.corrupt.append(exc)
                continue
            if recording is not None:
                yield recording

    async def delete(self, key: str) -> bool:
        def unlink() -> bool:
            try:
                self.file_for(key).unlink()
            except FileNotFoundError:
                return False
            return True

        return await asyncio.to_thread(unlink)

    async def touch(self, keys: Iterable[str], when: float) -> None:
        """Not tracked: a fixture directory in git should change only when recordings change."""
        return

    async def aclose(self) -> None:
        return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
