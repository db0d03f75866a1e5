"""asyncpg against psycopg 3 (async) on the two statements the gateway runs on PostgreSQL most: the key lookup by
hash (on a cache miss) and the batched spend upsert (every flush). `python -m bench.pg_drivers` starts a throw-away
PostgreSQL (tests/support/state_servers.py) and prints microseconds per operation, sequential and 32 at once."""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg
import psycopg
from psycopg_pool import AsyncConnectionPool

from tests.support.state_servers import PostgresServer, postgres_bindir

ROUNDS = 3
N = 2000
SETUP = [
    "CREATE TABLE IF NOT EXISTS k (hash TEXT PRIMARY KEY, name TEXT, models TEXT, rpm INT, budget DOUBLE PRECISION)",
    ("CREATE TABLE IF NOT EXISTS u (key_id TEXT, alias TEXT, requests BIGINT, spend DOUBLE PRECISION, "
     "PRIMARY KEY (key_id, alias))"),
]
LOOKUP = "SELECT hash, name, models, rpm, budget FROM k WHERE hash = {}"
UPSERT = ("INSERT INTO u SELECT * FROM unnest({}::text[], {}::text[], {}::bigint[], {}::float8[]) "
          "ON CONFLICT (key_id, alias) DO UPDATE SET requests = u.requests + excluded.requests, "
          "spend = u.spend + excluded.spend")


def batch() -> tuple[list[str], list[str], list[int], list[float]]:
    keys = [f"key_{i}" for i in range(20)]
    return keys, ["mock"] * 20, [3] * 20, [0.001] * 20


async def timed(op, n: int, parallel: int) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            await op()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n // parallel) for _ in range(parallel)))
    return (time.perf_counter() - started) / n * 1e6


async def run_asyncpg(url: str) -> dict[str, float]:
    pool = await asyncpg.create_pool(url, min_size=8, max_size=8)
    lookup, upsert = LOOKUP.format("$1"), UPSERT.format("$1", "$2", "$3", "$4")
    out = {}
    for parallel in (1, 32):
        out[f"lookup x{parallel}"] = await timed(lambda: pool.fetchrow(lookup, "h42"), N, parallel)
        out[f"upsert x{parallel}"] = await timed(lambda: pool.execute(upsert, *batch()), N // 4, parallel)
    await pool.close()
    return out


async def run_psycopg(url: str) -> dict[str, float]:
    pool = AsyncConnectionPool(url, min_size=8, max_size=8, open=False)
    await pool.open()
    lookup, upsert = LOOKUP.format("%s"), UPSERT.format("%s", "%s", "%s", "%s")

    async def fetch() -> None:
        async with pool.connection() as conn:
            await (await conn.execute(lookup, ("h42",), prepare=True)).fetchone()

    async def write() -> None:
        async with pool.connection() as conn:
            await conn.execute(upsert, batch(), prepare=True)

    out = {}
    for parallel in (1, 32):
        out[f"lookup x{parallel}"] = await timed(fetch, N, parallel)
        out[f"upsert x{parallel}"] = await timed(write, N // 4, parallel)
    await pool.close()
    return out


async def main() -> None:
    bindir = postgres_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer(bindir).start()
    try:
        url = server.url()
        conn = await asyncpg.connect(url)
        for statement in SETUP:
            await conn.execute(statement)
        await conn.executemany("INSERT INTO k VALUES ($1, 'n', '[]', 10, 5.0) ON CONFLICT DO NOTHING",
                               [(f"h{i}",) for i in range(1000)])
        await conn.close()
        results: dict[str, dict[str, list[float]]] = {"asyncpg": {}, "psycopg": {}}
        for _ in range(ROUNDS):
            for name, run in (("asyncpg", run_asyncpg), ("psycopg", run_psycopg)):
                for op, us in (await run(url)).items():
                    results[name].setdefault(op, []).append(us)
        print(f"PostgreSQL {psycopg.__version__=} {asyncpg.__version__=}; us per operation, median of {ROUNDS}")
        ops = list(results["asyncpg"])
        print(f"{'operation':<14}{'asyncpg':>10}{'psycopg':>10}")
        for op in ops:
            a, p = statistics.median(results["asyncpg"][op]), statistics.median(results["psycopg"][op])
            print(f"{op:<14}{a:>10.0f}{p:>10.0f}")
    finally:
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
