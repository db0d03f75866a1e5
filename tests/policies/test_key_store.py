"""The key store: keys kept only as hashes, revocation, names, and running usage totals per key and alias."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llm_gateway.policies.key_store import KEY_PREFIX, DuplicateKeyName, KeyStore, UsageRow, hash_key


async def test_a_created_key_is_found_by_its_hash_and_never_stored_in_plain(store: KeyStore, tmp_path: Path) -> None:
    record, plain = await store.create("ci", models=["mock", "gpt"], rpm=5, tpm=100, budget_usd=2.5)
    assert plain.startswith(KEY_PREFIX) and len(plain) > 40
    found = await store.find(hash_key(plain))
    assert found is not None
    assert found.info.name == "ci" and found.info.models == ("mock", "gpt")
    assert (found.info.rpm, found.info.tpm, found.info.budget_usd) == (5, 100, 2.5)
    assert found.hash == hash_key(plain) and record.hint == plain[:10]
    await store.aclose()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir())
    assert plain.encode() not in raw
    assert plain[10:].encode() not in raw  # not even the part after the hint


async def test_an_unknown_hash_finds_nothing(store: KeyStore) -> None:
    await store.create("ci")
    assert await store.find(hash_key("sk-gw-made-up")) is None


async def test_two_keys_get_different_secrets_and_ids(store: KeyStore) -> None:
    a, plain_a = await store.create("a")
    b, plain_b = await store.create("b")
    assert plain_a != plain_b and a.info.id != b.info.id


async def test_an_active_name_cannot_be_reused_until_revoked(store: KeyStore) -> None:
    await store.create("ci")
    with pytest.raises(DuplicateKeyName, match="already named 'ci'"):
        await store.create("ci")
    revoked = await store.revoke("ci")
    assert [r.info.name for r in revoked] == ["ci"]
    await store.create("ci")  # a rotated key under the same name
    assert [r.status(time.time()) for r in await store.list_keys()] == ["revoked", "active"]


async def test_revoke_by_id_touches_only_that_key(store: KeyStore) -> None:
    a, plain_a = await store.create("a")
    _, plain_b = await store.create("b")
    assert [r.info.id for r in await store.revoke(a.info.id)] == [a.info.id]
    assert (await store.find(hash_key(plain_a))).revoked_at is not None  # type: ignore[union-attr]
    assert (await store.find(hash_key(plain_b))).revoked_at is None  # type: ignore[union-attr]
    assert await store.revoke(a.info.id) == []  # already revoked
    assert await store.revoke("nobody") == []


async def test_expiry_makes_a_key_unusable(store: KeyStore) -> None:
    record, _ = await store.create("old", expires_at=time.time() + 60)
    assert record.usable(time.time())
    assert not record.usable(time.time() + 61)
    assert record.status(time.time() + 61) == "expired"


async def test_usage_adds_up_per_key_and_alias(store: KeyStore) -> None:
    await store.add_usage([UsageRow("k1", "mock", 1, 10, 5, 0.5), UsageRow("k1", "gpt", 2, 20, 10, 1.0)])
    await store.add_usage([UsageRow("k1", "mock", 3, 1, 1, 0.25), UsageRow("k2", "mock", 1, 1, 1, 0.0)])
    await store.add_usage([])
    rows = {(u.key_id, u.alias): u for u in await store.usage()}
    assert rows[("k1", "mock")] == UsageRow("k1", "mock", 4, 11, 6, 0.75)
    assert rows[("k1", "gpt")].requests == 2
    assert await store.spent("k1") == pytest.approx(1.75)
    assert await store.spent("k3") == 0.0


async def test_the_store_reopens_after_being_closed(store: KeyStore) -> None:
    _, plain = await store.create("ci")
    await store.aclose()
    await store.aclose()  # twice is fine: several policies share one store
    assert await store.find(hash_key(plain)) is not None
