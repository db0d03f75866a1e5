"""`gateway db migrate | status`: the shared PostgreSQL schema ([state] database_url), created or migrated in place.

`gateway serve` migrates at start too; this command lets an operator do it ahead of a rollout. Migrations only add:
no data is dropped. A database migrated by a newer gateway is refused, not touched.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from llm_gateway.config.settings import ConfigError, Settings, default_config_path, load_settings


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("db", help="create or migrate the shared PostgreSQL schema ([state] database_url)")
    commands = group.add_subparsers(dest="db_command", required=True)
    for name, help in (("migrate", "create missing tables and apply pending migrations"),
                       ("status", "print each component's schema version")):
        p = commands.add_parser(name, help=help)
        p.add_argument("--config", help="config file (default: $GATEWAY_CONFIG or ./gateway.toml)")
        p.set_defaults(func=run_migrate if name == "migrate" else run_status)


def _settings(args: argparse.Namespace) -> Settings | None:
    try:
        settings = load_settings(args.config or default_config_path())
    except ConfigError as exc:
        print(f"gateway: {len(exc.problems)} problem(s) in the config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return None
    if not settings.state.database_url:
        print("gateway db: no database configured: set [state] database_url or GATEWAY_DATABASE_URL", file=sys.stderr)
        return None
    return settings


def run_migrate(args: argparse.Namespace) -> int:
    from llm_gateway.composition.state import migrate_all
    from llm_gateway.vocab.postgres import DatabaseUnavailable, SchemaTooNew

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        versions = asyncio.run(migrate_all(settings))
    except (DatabaseUnavailable, SchemaTooNew) as exc:
        print(f"gateway db migrate: {exc}", file=sys.stderr)
        return 1
    for component, version in versions.items():
        print(f"{component}: schema version {version}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from llm_gateway.vocab.postgres import DatabaseUnavailable, open_pool, schema_versions

    settings = _settings(args)
    if settings is None:
        return 2

    async def versions() -> dict[str, int]:
        pool = await open_pool(settings.state.database_url, max_size=1)
        try:
            return await schema_versions(pool)
        finally:
            await pool.close()

    try:
        found = asyncio.run(versions())
    except DatabaseUnavailable as exc:
        print(f"gateway db status: {exc}", file=sys.stderr)
        return 1
    for component, version in sorted(found.items()):
        print(f"{component}: schema version {version}")
    if not found:
        print("no gateway tables yet (gateway db migrate creates them)")
    return 0
