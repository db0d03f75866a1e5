"""Spend per key: every answered request's tokens and cost are kept per key and alias; a key past its budget gets 429.

Cost is the pipeline's (`ctx.cost_usd`, from real usage at the alias's price; replays cost nothing). Writes are
batched off the hot path: usage is added to an in-memory batch that a background task writes every
`flush_seconds`, and aclose() writes what is left at shutdown. A budget check reads the key's stored spend at most
once per `refresh_seconds` and adds what this worker has recorded since, so one worker sees its own spend at once
and other workers' within refresh + flush. Requests in flight when the budget runs out still finish, so a key can
overshoot by what those cost.

Admission also holds an estimate of the request's cost (prompt + max tokens at the alias's price, from the injected
`estimate`) in a Ledger (policies/budget_ledger.py) until the real cost settles it, so parallel requests on a nearly
spent key see each other: a key ends at most one request's estimate above its budget. The ledger is this worker's
own by default and Redis's, shared by every replica, when [state] redis_url is set.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from llm_gateway.policies.budget_ledger import InProcessLedger, Ledger
from llm_gateway.policies.key_store import KeyStore, UsageRow
from llm_gateway.vocab.counters import int_counters
from llm_gateway.vocab.errors import QuotaExceeded, ServiceUnavailable
from llm_gateway.vocab.types import BasePolicy, Call, RequestContext

log = logging.getLogger("gateway.policy")
_RECORDED = "budget.recorded"
_HELD = "budget.held"  # ctx.state: (key id, ticket) of this request's reservation
Estimate = Callable[[Call], float]


_TICKET_PREFIX = f"{os.getpid()}-{os.urandom(4).hex()}-"  # unique across replicas: one reservation per request


class BudgetPolicy(BasePolicy):
    name = "budget"

    def __init__(
        self,
        store: KeyStore,
        *,
        flush_seconds: float = 1.0,
        refresh_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        estimate: Estimate | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.store = store
        self.estimate = estimate
        self.ledger = ledger if ledger is not None else InProcessLedger(self.spent, clock=clock)
        self._tickets = itertools.count()
        self.flush_seconds = flush_seconds
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._batch: dict[tuple[str, str], list[Any]] = {}  # (key id, alias) -> [requests, prompt, completion, usd]
        self._unflushed_usd: dict[str, float] = {}  # key id -> spend in the batch (and in a flush under way)
        self._stored_usd: dict[str, tuple[float, float]] = {}  # key id -> (read until, spend in the store)
        self._io = asyncio.Lock()  # a spend read never sees a flush half-done, so nothing is counted twice
        self._flusher: asyncio.Task[None] | None = None
        self.counters = {"exhausted": 0, "flushes": 0, "flush_errors": 0}

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        key = ctx.key
        if key is None or key.budget_usd is None:
            return None
        estimate = self.estimate(call) if self.estimate is not None else 0.0
        ticket = f"{_TICKET_PREFIX}{next(self._tickets)}"
        spent = await self.ledger.reserve(key.id, ticket, estimate, key.budget_usd)
        if spent is not None:
            self.counters["exhausted"] += 1
            raise QuotaExceeded(
                f"The key `{key.name}` has used its budget: {usd(spent)} of {usd(key.budget_usd)}. "
                "Ask the gateway's administrator for a higher budget or a new key."
            )
        ctx.state[_HELD] = (key.id, ticket)
        return None

    async def after(self, call: Call, response: dict[str, Any], ctx: RequestContext) -> dict[str, Any] | None:
        self.record(call, ctx)
        await self._release(ctx)
        return None

    async def end_stream(self, call: Call, ctx: RequestContext) -> list[dict[str, Any]]:
        self.record(call, ctx)
        await self._release(ctx)
        return []

    async def abandon(self, call: Call, ctx: RequestContext) -> None:
        """The request failed or its client left after admission: give its reservation back."""
        await self._release(ctx)

    async def _release(self, ctx: RequestContext) -> None:
        held = ctx.state.pop(_HELD, None)
        if held is not None:
            await self.ledger.settle(held[0], held[1], ctx.cost_usd)

    def record(self, call: Call, ctx: RequestContext) -> None:
        """Add this answered request to the batch (once)."""
        key = ctx.key
        if key is None or ctx.state.get(_RECORDED):
            return
        ctx.state[_RECORDED] = True
        row = self._batch.get((key.id, call.alias))
        if row is None:
            row = self._batch[(key.id, call.alias)] = [0, 0, 0, 0.0]
        row[0] += 1
        if ctx.usage is not None:
            row[1] += ctx.usage.prompt_tokens
            row[2] += ctx.usage.completion_tokens
        row[3] += ctx.cost_usd
        if ctx.cost_usd:
            self._unflushed_usd[key.id] = self._unflushed_usd.get(key.id, 0.0) + ctx.cost_usd
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_periodically())

    async def spent(self, key_id: str) -> float:
        """The key's spend: stored (re-read at most every refresh_seconds) plus this worker's unflushed spend."""
        now = self._clock()
        stored = self._stored_usd.get(key_id)
        if stored is None or stored[0] <= now:
            async with self._io:
                try:
                    value = await self.store.spent(key_id)
                except ServiceUnavailable:
                    if stored is None:
                        raise  # never read: nothing to check the budget against
                    value = stored[1]  # the store is away: the last figure read, plus our own spend, still holds
                self._stored_usd[key_id] = stored = (now + self.refresh_seconds, value)
        return stored[1] + self._unflushed_usd.get(key_id, 0.0)

    async def flush(self) -> None:
        """Write the batch in one transaction; on failure keep it for the next try."""
        if not self._batch:
            return
        async with self._io:
            batch, self._batch = self._batch, {}
            rows = [UsageRow(k, a, r[0], r[1], r[2], r[3]) for (k, a), r in batch.items()]
            try:
                await self.store.add_usage(rows)
            except BaseException:
                self.counters["flush_errors"] += 1
                for ident, row in batch.items():  # merge back under whatever arrived meanwhile
                    mine = self._batch.setdefault(ident, [0, 0, 0, 0.0])
                    for i in range(4):
                        mine[i] += row[i]
                raise
            self.counters["flushes"] += 1
            for row in rows:
                if not row.spend_usd:
                    continue
                # the stored figure we hold predates this write: move the spend from "unflushed" to "stored"
                left = self._unflushed_usd.get(row.key_id, 0.0) - row.spend_usd
                if left > 1e-12:
                    self._unflushed_usd[row.key_id] = left
                else:
                    self._unflushed_usd.pop(row.key_id, None)
                stored = self._stored_usd.get(row.key_id)
                if stored is not None:
                    self._stored_usd[row.key_id] = (stored[0], stored[1] + row.spend_usd)

    async def _flush_periodically(self) -> None:
        while self._batch:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:
                log.exception("writing key spend to %s failed; retrying in %ss", self.store.location,
                              self.flush_seconds)

    def counter_values(self) -> list[tuple[str, int]]:
        ledger = [(f"ledger_{n}", v) for n, v in int_counters(getattr(self.ledger, "counters", None))]
        return super().counter_values() + ledger

    async def aclose(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            try:
                await flusher
            except asyncio.CancelledError:
                pass
        try:
            await self.flush()
        finally:
            await self.ledger.aclose()
            await self.store.aclose()


def usd(value: float) -> str:
    """Dollars with the decimals the amount needs: a $0.00001 budget reads $0.00001, not $0.00."""
    if value == 0 or abs(value) >= 0.01:
        return f"${value:.2f}" if value == round(value, 2) else f"${value:.4f}"
    return f"${value:.8f}".rstrip("0")
