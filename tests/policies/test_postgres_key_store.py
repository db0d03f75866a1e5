"""PostgresKeyStore on a real PostgreSQL: the SQLite KeyStore's contract, spend summed across replicas, revocations
heard through LISTEN/NOTIFY, and a 503 (never a wrong 401) when the database does not answer."""

from __future__ import annotations

import asyncio

import pytest

from llm_gateway.policies.auth import AuthPolicy
from llm_gateway.policies.key_store import DuplicateKeyName, KeyStoreUnavailable, UsageRow, hash_key
from llm_gateway.policies.postgres_key_store import PostgresKeyStore
from llm_gateway.vocab.errors import AuthenticationFailed
from llm_gateway.vocab.types import RequestContext
from tests.support.server import free_port


@pytest.fixture
async def pg_store(database_url: str):
    store = PostgresKeyStore(database_url)
    yield store
    await store.aclose()


async def test_create_find_list_revoke(pg_store: PostgresKeyStore) -> None:
    record, plain = await pg_store.create("ci", models=("mock",), rpm=5, budget_usd=1.5)
    found = await pg_store.find(hash_key(plain))
    assert found is not None and found.info == record.info and found.usable(record.created_at)
    assert await pg_store.find(hash_key("sk-gw-nope")) is None
    with pytest.raises(DuplicateKeyName):
        await pg_store.create("ci")
    assert [r.info.id for r in await pg_store.revoke("ci")] == [record.info.id]
    assert (await pg_store.find(hash_key(plain))).revoked_at is not None
    assert [r.status(record.created_at) for r in await pg_store.list_keys()] == ["revoked"]
    await pg_store.create("ci")  # the name is free again


async def test_spend_from_several_replicas_is_summed(database_url: str) -> None:
    stores = [PostgresKeyStore(database_url) for _ in range(3)]
    batches = [[UsageRow("k1", "mock", 1, 10, 5, 0.01), UsageRow("k2", "gpt", 2, 1, 1, 0.02)] for _ in range(30)]
    await asyncio.gather(*(stores[i % 3].add_usage(batch) for i, batch in enumerate(batches)))
    assert await stores[0].spent("k1") == pytest.approx(0.3)
    rows = {(u.key_id, u.alias): u for u in await stores[1].usage()}
    assert rows[("k2", "gpt")] == UsageRow("k2", "gpt", 60, 30, 30, pytest.approx(0.6))
    for s in stores:
        await s.aclose()


async def test_a_revocation_anywhere_drops_the_cached_key_at_once(database_url: str) -> None:
    admin, serving = PostgresKeyStore(database_url), PostgresKeyStore(database_url)
    _, plain = await admin.create("roaming")
    auth = AuthPolicy(serving, cache_ttl_seconds=3600)
    ctx = RequestContext(request_id="a", headers={"authorization": f"Bearer {plain}"})
    await auth.authenticate(ctx)  # cached now, for an hour; the watcher connects in the background
    await asyncio.sleep(0.3)
    await admin.revoke("roaming")
    for _ in range(100):
        if auth.counters["revocations_heard"]:
            break
        await asyncio.sleep(0.01)
    assert auth.counters["revocations_heard"] == 1
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(RequestContext(request_id="b", headers={"authorization": f"Bearer {plain}"}))
    await admin.aclose()
    await auth.aclose()


async def test_an_unreachable_database_is_a_503_not_a_401() -> None:
    store = PostgresKeyStore(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    with pytest.raises(KeyStoreUnavailable) as caught:
        await store.find(hash_key("sk-gw-x"))
    assert caught.value.status == 503 and "127.0.0.1" not in caught.value.message
    with pytest.raises(KeyStoreUnavailable):
        await store.spent("k")
    await store.aclose()
