"""Authentication with virtual keys (or the master key) and per-key model access.

Clients send `Authorization: Bearer <key>` or Azure's `api-key: <key>`. A key is looked up by its SHA-256 and the
stored hash is compared in constant time; a wrong, expired or revoked key gets the same 401, which says nothing about
whether the key exists. Lookups are cached for `cache_ttl_seconds` (misses too, so a flood of made-up keys does not
become a flood of queries), which is how long a revocation takes to reach every worker; expiry is checked on every
request. Concurrent first requests with one key share a single lookup. A store that can report revocations as they
happen (PostgreSQL's LISTEN/NOTIFY: `watch()`) has them dropped from the cache at once, so a key revoked on any
machine is refused by every replica within a second, whatever the TTL.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable

from llm_gateway.policies.key_store import KeyRecord, KeyStore, hash_key
from llm_gateway.vocab.errors import AuthenticationFailed, PermissionDenied
from llm_gateway.vocab.types import BasePolicy, Call, KeyInfo, RequestContext

MASTER = KeyInfo(id="master", name="master", is_master=True)
MAX_CACHED_KEYS = 10_000  # a bound on memory under a flood of made-up keys; cleared, not grown, past it

_MISSING_KEY = (
    "You didn't provide an API key. Send it as `Authorization: Bearer <key>` (or in an `api-key` header)."
)
_INVALID_KEY = "Incorrect API key provided: the key is wrong, expired or revoked."


def presented_key(headers: dict[str, str]) -> str | None:
    """The key a client sent, from `Authorization: Bearer` or `api-key` (headers are lower-cased)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = (headers.get("api-key") or "").strip()
    return api_key or None


class AuthPolicy(BasePolicy):
    name = "auth"

    def __init__(
        self,
        store: KeyStore,
        *,
        master_key: str = "",
        cache_ttl_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._master_hash = hash_key(master_key) if master_key else None
        self.cache_ttl_seconds = cache_ttl_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._lookups: dict[str, asyncio.Task[KeyRecord | None]] = {}
        self.counters = {"lookups": 0, "cache_hits": 0}
        self._watching = False
        self._generation = 0

    async def authenticate(self, ctx: RequestContext) -> KeyInfo:
        """The key this request carries, set on ctx.key; AuthenticationFailed otherwise."""
        if ctx.key is not None:
            return ctx.key
        plain = presented_key(ctx.headers)
        if plain is None:
            raise AuthenticationFailed(_MISSING_KEY)
        digest = hash_key(plain)
        if self._master_hash is not None and hmac.compare_digest(digest, self._master_hash):
            ctx.key = MASTER
            return MASTER
        record = await self._record(digest)
        if record is None or not hmac.compare_digest(record.hash, digest) or not record.usable(self._wall_clock()):
            raise AuthenticationFailed(_INVALID_KEY)
        ctx.key = record.info
        return record.info

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        key = await self.authenticate(ctx)
        if key.models and call.alias not in key.models:
            raise PermissionDenied(
                f"The key `{key.name}` may not use model `{call.alias}`; it may use: {', '.join(key.models)}.",
                param="model",
            )
        return None

    async def admit(self, ctx: RequestContext) -> None:
        key = await self.authenticate(ctx)
        if ctx.admin and not key.is_master:
            raise PermissionDenied("This endpoint needs the gateway's master key.", code="master_key_required")

    def visible(self, aliases: list[str], ctx: RequestContext) -> list[str]:
        key = ctx.key
        if key is None or not key.models:
            return aliases
        return [alias for alias in aliases if alias in key.models]

    def forget(self, digest: str | None) -> None:
        """Drop one key's cached lookup (None: all of them), as its store reports a change."""
        self._generation += 1  # a lookup under way when this arrived may have read the old row: it is not cached
        if digest is None:
            self._cache.clear()
            return
        self.counters["revocations_heard"] += 1
        self._cache.pop(digest, None)

    async def _record(self, digest: str) -> KeyRecord | None:
        if not self._watching:
            self._watching = True
            watch = getattr(self.store, "watch", None)
            if watch is not None:
                self.counters["revocations_heard"] = 0
                watch(self.forget)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            self.counters["cache_hits"] += 1
            return cached[1]
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = self._lookups[digest] = asyncio.ensure_future(self._lookup(digest))
            lookup.add_done_callback(lambda _: self._lookups.pop(digest, None))
        # shielded: one waiter's cancellation (client gone) must not cancel the lookup the others wait on
        return await asyncio.shield(lookup)

    async def _lookup(self, digest: str) -> KeyRecord | None:
        self.counters["lookups"] += 1
        generation = self._generation
        record = await self.store.find(digest)
        if generation != self._generation:
            return record
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[digest] = (self._clock() + self.cache_ttl_seconds, record)
        return record

    async def aclose(self) -> None:
        await self.store.aclose()
