"""The PostgreSQL opener: migrations applied once and in order, never dropping data; a newer schema refused."""

from __future__ import annotations

import pytest

from llm_gateway.vocab.postgres import DatabaseUnavailable, SchemaTooNew, migrate, open_pool, safe_url, schema_versions
from tests.support.server import free_port

V1 = (("CREATE TABLE t (a INT)",),)
V2 = (*V1, ("ALTER TABLE t ADD COLUMN b INT",))


async def test_migrations_apply_once_in_order_and_keep_the_rows(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        assert await migrate(pool, "thing", V1) == 1
        await pool.execute("INSERT INTO t (a) VALUES (1)")
        assert await migrate(pool, "thing", V1) == 1  # again: nothing to do (CREATE TABLE would fail if rerun)
        assert await migrate(pool, "thing", V2) == 2
        assert await pool.fetchval("SELECT a FROM t WHERE b IS NULL") == 1
        assert await schema_versions(pool) == {"thing": 2}
    finally:
        await pool.close()


async def test_a_schema_newer_than_the_gateway_knows_is_refused(database_url: str) -> None:
    pool = await open_pool(database_url)
    try:
        await migrate(pool, "thing", V2)
        with pytest.raises(SchemaTooNew, match="version 2, newer than this gateway knows \\(1\\)"):
            await migrate(pool, "thing", V1)
    finally:
        await pool.close()


async def test_an_unreachable_server_is_named_without_its_password() -> None:
    url = f"postgresql://gw:hunter2@127.0.0.1:{free_port()}/gw"
    with pytest.raises(DatabaseUnavailable) as caught:
        await open_pool(url)
    assert "hunter2" not in str(caught.value) and "postgresql://gw:****@127.0.0.1" in str(caught.value)
    assert safe_url("redis://h:1") == "redis://h:1"
