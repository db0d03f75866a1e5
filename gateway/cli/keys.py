"""`gateway keys create | list | revoke | usage`: virtual keys in the state database ([server] state_path, or the
shared PostgreSQL of [state] database_url / GATEWAY_DATABASE_URL, from any machine).

The plain key is printed once, by `create`; only its hash is stored. A revocation reaches running gateways within
their `[auth] cache_ttl_seconds`. Usage figures are what the gateways have flushed (every `spend_flush_seconds`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from llm_gateway.cli.common import add_config_argument, cell, date, load_config, table
from llm_gateway.cli.recordings import duration
from llm_gateway.composition.state import key_store
from llm_gateway.config.settings import Settings
from llm_gateway.policies.key_store import DuplicateKeyName, KeyRecord, KeyStore


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("keys", help="create, list and revoke virtual keys; show their spend")
    commands = group.add_subparsers(dest="keys_command", required=True)

    def command(name: str, help: str, run: Callable[[argparse.Namespace, Settings, KeyStore], Awaitable[int]]
                ) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help)
        add_config_argument(p)
        p.add_argument("--state-path", help="override [server] state_path (the SQLite state database)")
        p.set_defaults(func=lambda args: _run(args, run))
        return p

    create = command("create", "create a key and print it (once)", _create)
    create.add_argument("--name", required=True, help="who or what the key is for (shown in logs and metrics)")
    create.add_argument("--models", type=_aliases, default=(), metavar="A,B",
                        help="the aliases the key may use (default: all)")
    create.add_argument("--rpm", type=_positive_int, help="requests per minute (default: [limits] rpm)")
    create.add_argument("--tpm", type=_positive_int, help="tokens per minute (default: [limits] tpm)")
    create.add_argument("--budget-usd", type=_positive_float, metavar="USD", help="spend after which the key gets 429")
    create.add_argument("--expires", type=expiry, metavar="WHEN",
                        help="an age (30m, 12h, 90d) or a date (2027-01-31, 2027-01-31T12:00:00Z)")
    create.add_argument("--json", action="store_true", help="print the key and its record as JSON")
    command("list", "list keys (never the keys themselves)", _list).add_argument("--json", action="store_true")
    revoke = command("revoke", "revoke a key by id, or the active key(s) with a name", _revoke)
    revoke.add_argument("key", help="a key id (key_...) or name")
    usage = command("usage", "spend and tokens per key and alias", _usage)
    usage.add_argument("--key", help="only this key (id or name)")
    usage.add_argument("--json", action="store_true")


def expiry(text: str) -> float:
    """A Unix time from an age ("90d") or an ISO date/datetime (UTC unless it says otherwise)."""
    try:
        return time.time() + duration(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an age such as 12h or 90d, or a date such as 2027-01-31, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _aliases(text: str) -> tuple[str, ...]:
    aliases = tuple(a.strip() for a in text.split(",") if a.strip())
    if not aliases:
        raise argparse.ArgumentTypeError("expected a comma-separated list of model aliases")
    return aliases


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive amount, got {text!r}")
    return value


def _run(args: argparse.Namespace, run: Callable[[argparse.Namespace, Settings, KeyStore], Awaitable[int]]) -> int:
    settings = load_config(args)
    if settings is None:
        return 2

    async def main() -> int:
        unreachable: tuple[type[BaseException], ...] = ()
        if args.state_path or not settings.state.database_url:
            store: Any = KeyStore(args.state_path or settings.server.state_path)
        else:
            from llm_gateway.vocab.postgres import DatabaseUnavailable

            store = key_store(settings)  # the shared PostgreSQL: the same keys from any machine
            unreachable = (DatabaseUnavailable,)
        try:
            return await run(args, settings, store)
        except unreachable as exc:
            print(f"gateway keys: {exc}", file=sys.stderr)
            return 1
        finally:
            await store.aclose()

    return asyncio.run(main())


async def _create(args: argparse.Namespace, settings: Settings, store: KeyStore) -> int:
    unknown = [a for a in args.models if a not in settings.models]
    if unknown:
        known = ", ".join(sorted(settings.models)) or "none"
        print(f"gateway keys create: unknown model alias(es) {', '.join(unknown)} (configured: {known})",
              file=sys.stderr)
        return 2
    if args.expires is not None and args.expires <= time.time():
        print("gateway keys create: --expires is in the past", file=sys.stderr)
        return 2
    try:
        record, plain = await store.create(args.name, models=args.models, rpm=args.rpm, tpm=args.tpm,
                                           budget_usd=args.budget_usd, expires_at=args.expires)
    except DuplicateKeyName as exc:
        print(f"gateway keys create: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"key": plain, **_row(record)}, indent=2))
        return 0
    print(plain)
    print(f"\nkey {record.info.id} named {record.info.name!r} created. This is the only time the key is shown: "
          "store it now.", file=sys.stderr)
    if not settings.auth.enabled:
        print("note: [auth] mode is \"none\" in this config, so the gateway does not ask for keys yet.",
              file=sys.stderr)
    return 0


async def _list(args: argparse.Namespace, settings: Settings, store: KeyStore) -> int:
    rows = [_row(r) for r in await store.list_keys()]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    header = ["id", "name", "key", "status", "models", "rpm", "tpm", "budget_usd", "expires", "created"]
    cells = [[cell(row[h if h != "key" else "hint"]) for h in header] for row in rows]
    print(table(header, cells) if rows else "no keys")
    return 0


async def _revoke(args: argparse.Namespace, settings: Settings, store: KeyStore) -> int:
    revoked = await store.revoke(args.key)
    if not revoked:
        print(f"gateway keys revoke: no active key with id or name {args.key!r}", file=sys.stderr)
        return 1
    for record in revoked:
        within = "a second" if settings.state.database_url else f"{settings.auth.cache_ttl_seconds:g}s"
        print(f"revoked {record.info.id} ({record.info.name}); running gateways refuse it within {within}")
    return 0


async def _usage(args: argparse.Namespace, settings: Settings, store: KeyStore) -> int:
    names = {r.info.id: r.info.name for r in await store.list_keys()}
    names.setdefault("master", "master")
    rows = [
        {"key_id": u.key_id, "key": names.get(u.key_id, "?"), "alias": u.alias, "requests": u.requests,
         "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "spend_usd": round(u.spend_usd, 8)}
        for u in await store.usage()
        if args.key is None or args.key in (u.key_id, names.get(u.key_id))
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print("no usage recorded")
        return 0
    header = ["key", "key_id", "alias", "requests", "prompt_tokens", "completion_tokens", "spend_usd"]
    cells = [[cell(row[h]) for h in header] for row in rows]
    totals: dict[str, list[Any]] = {}
    for row in rows:
        total = totals.setdefault(row["key"], [0, 0, 0, 0.0])
        for i, field in enumerate(("requests", "prompt_tokens", "completion_tokens", "spend_usd")):
            total[i] += row[field]
    for name, (requests, prompt, completion, spend) in totals.items():
        cells.append([name, "", "(all)", str(requests), str(prompt), str(completion), f"{spend:.6f}"])
    print(table(header, cells))
    return 0


def _row(record: KeyRecord) -> dict[str, Any]:
    info = record.info
    return {
        "id": info.id, "name": info.name, "hint": record.hint + "...", "status": record.status(time.time()),
        "models": list(info.models), "rpm": info.rpm, "tpm": info.tpm, "budget_usd": info.budget_usd,
        "expires": date(record.expires_at), "created": date(record.created_at), "revoked": date(record.revoked_at),
    }
