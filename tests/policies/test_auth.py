"""The auth policy: where keys come from, one 401 for every bad key, model access, admin, and the lookup cache."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from llm_gateway.policies.auth import AuthPolicy, presented_key
from llm_gateway.policies.key_store import KeyStore, KeyStoreUnavailable
from llm_gateway.vocab.errors import AuthenticationFailed, PermissionDenied
from llm_gateway.vocab.types import Call, RequestContext
from tests.support.clock import Clock

MASTER = "sk-master-0123456789"




def ctx(key: str | None = None, header: str = "authorization", admin: bool = False) -> RequestContext:
    headers = {} if key is None else {header: f"Bearer {key}" if header == "authorization" else key}
    return RequestContext(request_id="req_1", headers=headers, admin=admin)


def call(alias: str = "mock") -> Call:
    return Call(kind="chat", alias=alias, body={"model": alias, "messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": "Bearer sk-1"}, "sk-1"),
        ({"authorization": "bearer  sk-1 "}, "sk-1"),
        ({"api-key": "sk-2"}, "sk-2"),
        ({"authorization": "Basic abc", "api-key": "sk-2"}, "sk-2"),
        ({"authorization": "Bearer "}, None),
        ({"api-key": "  "}, None),
        ({}, None),
    ],
)
def test_the_key_comes_from_bearer_or_api_key(headers: dict[str, str], expected: str | None) -> None:
    assert presented_key(headers) == expected


async def test_a_valid_key_sets_ctx_key_and_passes(store: KeyStore) -> None:
    record, plain = await store.create("ci", rpm=3)
    policy = AuthPolicy(store)
    c = ctx(plain)
    assert await policy.before(call(), c) is None
    assert c.key == record.info and not c.key.is_master


async def test_the_azure_api_key_header_works(store: KeyStore) -> None:
    _, plain = await store.create("azure")
    c = ctx(plain, header="api-key")
    await AuthPolicy(store).before(call(), c)
    assert c.key is not None and c.key.name == "azure"


async def test_wrong_expired_and_revoked_keys_get_the_same_answer(store: KeyStore) -> None:
    wall = Clock()
    wall.now = time.time()
    _, revoked = await store.create("revoked")
    await store.revoke("revoked")
    _, expiring = await store.create("expiring", expires_at=wall.now + 10)
    policy = AuthPolicy(store, wall_clock=wall)
    await policy.before(call(), ctx(expiring))  # still valid
    wall.now += 11
    messages = set()
    for key in ("sk-gw-wrong", revoked, expiring, expiring[:-1]):
        with pytest.raises(AuthenticationFailed) as info:
            await policy.before(call(), ctx(key))
        assert info.value.status == 401 and info.value.code == "invalid_api_key"
        assert key not in info.value.message
        messages.add(info.value.message)
    assert len(messages) == 1


async def test_a_missing_key_says_how_to_send_one(store: KeyStore) -> None:
    with pytest.raises(AuthenticationFailed, match="Authorization: Bearer"):
        await AuthPolicy(store).before(call(), ctx())


async def test_a_key_may_use_only_its_models(store: KeyStore) -> None:
    _, plain = await store.create("narrow", models=["mock"])
    policy = AuthPolicy(store)
    await policy.before(call("mock"), ctx(plain))
    with pytest.raises(PermissionDenied) as info:
        await policy.before(call("gpt-4o"), ctx(plain))
    assert info.value.status == 403 and info.value.code == "model_not_allowed" and info.value.param == "model"
    assert "`gpt-4o`" in info.value.message and "mock" in info.value.message


async def test_models_lists_only_what_the_key_may_use(store: KeyStore) -> None:
    _, narrow = await store.create("narrow", models=["b"])
    _, wide = await store.create("wide")
    policy = AuthPolicy(store)
    for key, expected in ((narrow, ["b"]), (wide, ["a", "b", "c"])):
        c = ctx(key)
        await policy.admit(c)
        assert policy.visible(["a", "b", "c"], c) == expected


async def test_the_master_key_may_do_everything(store: KeyStore) -> None:
    policy = AuthPolicy(store, master_key=MASTER)
    c = ctx(MASTER, admin=True)
    await policy.admit(c)
    assert c.key is not None and c.key.is_master
    await policy.before(call("anything"), ctx(MASTER))
    assert policy.counters["lookups"] == 0  # the master key never reaches the store


async def test_admin_requests_need_the_master_key(store: KeyStore) -> None:
    _, plain = await store.create("ci")
    policy = AuthPolicy(store, master_key=MASTER)
    await policy.admit(ctx(plain))  # /v1/models: any key
    with pytest.raises(PermissionDenied) as info:
        await policy.admit(ctx(plain, admin=True))
    assert info.value.code == "master_key_required"
    with pytest.raises(AuthenticationFailed):
        await policy.admit(ctx(admin=True))


async def test_without_a_master_key_nothing_is_the_master_key(store: KeyStore) -> None:
    with pytest.raises(AuthenticationFailed):
        await AuthPolicy(store, master_key="").admit(ctx("", admin=True))


async def test_a_revocation_takes_effect_once_the_cache_entry_expires(store: KeyStore) -> None:
    clock = Clock()
    _, plain = await store.create("ci")
    policy = AuthPolicy(store, cache_ttl_seconds=5, clock=clock)
    await policy.before(call(), ctx(plain))
    await store.revoke("ci")
    clock.now += 4.9
    await policy.before(call(), ctx(plain))  # cached: still accepted within the TTL
    clock.now += 0.2
    with pytest.raises(AuthenticationFailed):
        await policy.before(call(), ctx(plain))
    assert policy.counters == {"lookups": 2, "cache_hits": 1}


async def test_unknown_keys_are_cached_too(store: KeyStore) -> None:
    policy = AuthPolicy(store, clock=Clock())
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await policy.before(call(), ctx("sk-gw-made-up"))
    assert policy.counters["lookups"] == 1


async def test_concurrent_first_requests_share_one_lookup(store: KeyStore) -> None:
    _, plain = await store.create("ci")
    policy = AuthPolicy(store)
    contexts = [ctx(plain) for _ in range(20)]
    await asyncio.gather(*(policy.before(call(), c) for c in contexts))
    assert all(c.key is not None and c.key.name == "ci" for c in contexts)
    assert policy.counters["lookups"] == 1


async def test_an_unreadable_key_store_is_503_not_a_401_or_a_crash(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()  # a directory where the database should be
    policy = AuthPolicy(KeyStore(str(tmp_path / "state.db")))
    for _ in range(2):  # and the failure is not cached as "no such key"
        with pytest.raises(KeyStoreUnavailable) as info:
            await policy.before(call(), ctx("sk-gw-anything"))
        assert info.value.status == 503 and "state.db" not in info.value.message
    assert policy.counters["lookups"] == 2
