"""`gateway recordings ls | show | rm | prune | export | import | stats | key`: look after the recording store."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from llm_gateway.cli.common import add_config_argument, date, duration, load_config
from llm_gateway.composition.recorder import key_maker
from llm_gateway.config.settings import RecordingSettings
from llm_gateway.recordings.model import Recording
from llm_gateway.recordings.store import STORE_KINDS, Store, open_store
from llm_gateway.vocab.types import ENDPOINTS


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("recordings", help="list, inspect, prune, export and import recordings")
    commands = group.add_subparsers(dest="recordings_command", required=True)

    def command(
        name: str, help: str, run: Callable[[argparse.Namespace, Store], Awaitable[int]], filters: bool = False
    ) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help)
        add_config_argument(p)
        p.add_argument("--store", choices=STORE_KINDS, help="override [recording] store")
        p.add_argument("--path", help="override [recording] path")
        if filters:
            p.add_argument("--alias", action="append", help="only this model alias (repeatable)")
            p.add_argument(
                "--older-than", type=duration, metavar="AGE", help="recorded more than AGE ago (30m, 12h, 7d, 2w)"
            )
            p.add_argument("--newer-than", type=duration, metavar="AGE", help="recorded less than AGE ago")
            p.add_argument(
                "--unused-since",
                type=duration,
                metavar="AGE",
                help="not replayed for AGE (SQLite store; a directory store counts from creation)",
            )
        p.set_defaults(func=lambda args: _run(args, run))
        return p

    command("ls", "list recordings", _ls, filters=True).add_argument(
        "--json", action="store_true", help="one JSON object a line"
    )
    command("show", "print one recording as JSON", _show).add_argument("key", help="a key or a unique prefix of one")
    command("rm", "delete recordings", _rm).add_argument("keys", nargs="+", metavar="key")
    prune = command("prune", "delete the recordings the filters select", _prune, filters=True)
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    export = command("export", "copy recordings into another store", _export, filters=True)
    export.add_argument("--to", required=True, dest="target",
                        help="target path (a directory, a .db file or a postgresql:// URL)")
    export.add_argument(
        "--to-store", choices=STORE_KINDS, default="directory", help="target store kind (default directory)"
    )
    imp = command("import", "copy recordings from another store into this one", _import, filters=True)
    imp.add_argument("--from", required=True, dest="source",
                     help="source path (a directory, a .db file or a postgresql:// URL)")
    imp.add_argument(
        "--from-store", choices=STORE_KINDS, default="directory", help="source store kind (default directory)"
    )
    command("stats", "counts by alias, endpoint and shape", _stats, filters=True)

    key = commands.add_parser("key", help="print the key and normalized body of a request read from a file or stdin")
    key.add_argument("file", nargs="?", help="the request body as JSON (default: stdin)")
    key.add_argument("--endpoint", choices=sorted(ENDPOINTS), default="chat", help="the call kind (default chat)")
    add_config_argument(key)
    key.set_defaults(func=_key)


def _settings(args: argparse.Namespace) -> RecordingSettings | None:
    if getattr(args, "store", None) and getattr(args, "path", None) and not args.config:
        return replace(RecordingSettings(), store=args.store, path=args.path)  # the store is named: no config needed
    settings = load_config(args)
    if settings is None:
        return None
    overrides = {k: v for k, v in (("store", getattr(args, "store", None)), ("path", getattr(args, "path", None))) if v}
    recording = replace(settings.recording, **overrides)
    if recording.store == "postgres" and not overrides.get("path"):
        recording = replace(recording, path=settings.state.database_url)  # --path may name another database
    return recording


def _run(args: argparse.Namespace, run: Callable[[argparse.Namespace, Store], Awaitable[int]]) -> int:
    settings = _settings(args)
    if settings is None:
        return 2

    async def main() -> int:
        store = open_store(settings.store, settings.path)
        try:
            return await run(args, store)
        finally:
            await store.aclose()

    return asyncio.run(main())


def _selected(args: argparse.Namespace, recording: Recording, now: float) -> bool:
    meta = recording.meta
    age = now - meta.created
    if args.alias and meta.alias not in args.alias:
        return False
    if args.older_than is not None and age < args.older_than:
        return False
    if args.newer_than is not None and age > args.newer_than:
        return False
    return args.unused_since is None or now - (meta.last_used or meta.created) >= args.unused_since


async def _matching(args: argparse.Namespace, store: Store) -> list[Recording]:
    now = time.time()
    found = [r async for r in store.iter() if _selected(args, r, now)]
    for problem in store.corrupt:
        print(f"warning: {problem}", file=sys.stderr)
    return found


def _shape(recording: Recording) -> str:
    if recording.error is not None:
        return f"error {recording.error.get('status')}"
    return "stream" if recording.chunks is not None else "whole"


def _when(seconds: float | None) -> str:
    return date(seconds) or "-"


async def _ls(args: argparse.Namespace, store: Store) -> int:
    for r in await _matching(args, store):
        if args.json:
            print(
                json.dumps(
                    {
                        "key": r.key,
                        "alias": r.meta.alias,
                        "endpoint": r.endpoint,
                        "shape": _shape(r),
                        "created": r.meta.created,
                        "last_used": r.meta.last_used,
                    }
                )
            )
        else:
            print(
                f"{r.key}  {r.meta.alias:<20} {r.endpoint:<22} {_shape(r):<9} {_when(r.meta.created)}  "
                f"used {_when(r.meta.last_used)}"
            )
    return 0


async def _find(store: Store, key: str) -> Recording | None:
    if re.fullmatch(r"[0-9a-f]{32}", key):
        return await store.get(key)
    found = [r async for r in store.iter() if r.key.startswith(key)]
    if len(found) > 1:
        print(f"gateway: {key!r} matches {len(found)} recordings; give more of the key", file=sys.stderr)
        return None
    return found[0] if found else None


async def _show(args: argparse.Namespace, store: Store) -> int:
    recording = await _find(store, args.key)
    if recording is None:
        print(f"gateway: no recording {args.key!r} in {store.location}", file=sys.stderr)
        return 1
    sys.stdout.write(recording.to_json().decode())
    return 0


async def _rm(args: argparse.Namespace, store: Store) -> int:
    missing = 0
    for key in args.keys:
        recording = await _find(store, key)
        if recording is not None and await store.delete(recording.key):
            print(f"deleted {recording.key}")
        else:
            print(f"gateway: no recording {key!r} in {store.location}", file=sys.stderr)
            missing += 1
    return 1 if missing else 0


async def _prune(args: argparse.Namespace, store: Store) -> int:
    if not (args.alias or args.older_than is not None or args.newer_than is not None or args.unused_since is not None):
        print("gateway: prune needs a filter (--alias, --older-than, --newer-than or --unused-since)", file=sys.stderr)
        return 2
    doomed = await _matching(args, store)
    for r in doomed:
        if not args.dry_run:
            await store.delete(r.key)
        print(f"{'would delete' if args.dry_run else 'deleted'} {r.key}  {r.meta.alias}  {_when(r.meta.created)}")
    print(f"{len(doomed)} recording(s) {'selected' if args.dry_run else 'deleted'}", file=sys.stderr)
    return 0


async def _copy(recordings: list[Recording], target: Store) -> int:
    for r in recordings:
        await target.put(r.key, r)
    return len(recordings)


async def _export(args: argparse.Namespace, store: Store) -> int:
    target = open_store(args.to_store, args.target)
    try:
        count = await _copy(await _matching(args, store), target)
    finally:
        await target.aclose()
    print(f"exported {count} recording(s) to {args.target}", file=sys.stderr)
    return 1 if store.corrupt else 0


async def _import(args: argparse.Namespace, store: Store) -> int:
    settings = _settings(args)
    assert settings is not None  # _run read them already
    keys = key_maker(settings)
    source = open_store(args.from_store, args.source)
    try:
        matching = await _matching(args, source)
        sound = []
        for r in matching:
            reason = keys.mismatch(r.key, r.request)
            if reason is None:
                sound.append(r)
                continue
            file_for = getattr(source, "file_for", None)
            where = str(file_for(r.key)) if file_for else f"{source.location} (key {r.key})"
            print(f"refused {where}: corrupt recording: {reason}", file=sys.stderr)
        count = await _copy(sound, store)
    finally:
        await source.aclose()
    print(f"imported {count} recording(s) into {store.location}", file=sys.stderr)
    return 1 if source.corrupt or len(sound) < len(matching) else 0


async def _stats(args: argparse.Namespace, store: Store) -> int:
    found = await _matching(args, store)
    created = [r.meta.created for r in found]
    print(
        json.dumps(
            {
                "store": store.location,
                "recordings": len(found),
                "corrupt": [str(p) for p in store.corrupt],
                "by_alias": dict(sorted(Counter(r.meta.alias for r in found).items())),
                "by_endpoint": dict(sorted(Counter(r.endpoint for r in found).items())),
                "by_shape": dict(sorted(Counter(_shape(r) for r in found).items())),
                "oldest": _when(min(created)) if created else None,
                "newest": _when(max(created)) if created else None,
                "never_used": sum(1 for r in found if r.meta.last_used is None),
            },
            indent=2,
        )
    )
    return 0


def _key(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    raw = Path(args.file).read_bytes() if args.file else sys.stdin.buffer.read()
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        print(f"gateway: the request is not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        print("gateway: expected a JSON object with a string `model`, as a client sends it", file=sys.stderr)
        return 2
    normalized = key_maker(settings).normalize(ENDPOINTS[args.endpoint], body["model"], body)
    print(normalized.key)
    print(orjson.dumps(normalized.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    return 0
