"""The usage figures of the whole fleet: each worker of each replica publishes its own to the shared Redis every few
seconds (under its replica id and pid, expiring when it stops), and /ui or `gateway stats` merges what all have
published, so the page shows every replica's traffic, not the one worker that answered.

Counts add up exactly; latency percentiles cannot be merged from percentiles, so the fleet's p50/p95 are the slowest
member's (an upper bound), and each member's own figures stay listed under `replicas`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

log = logging.getLogger("gateway.observe")
PREFIX = "gw:stats:"
PUBLISH_SECONDS = 2.0
TTL_SECONDS = 10  # a stopped worker's figures vanish from the fleet view this long after its last publish
_COUNTS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "spend_usd")
_PERCENTILES = ("p50_seconds", "p95_seconds")


class RedisBoard:
    """Where members' snapshots meet: one Redis key per worker, set with an expiry."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def publish(self, member: str, snapshot: dict[str, Any]) -> None:
        await self.client.set(PREFIX + member, orjson.dumps(snapshot), ex=TTL_SECONDS)

    async def collect(self) -> list[dict[str, Any]]:
        keys = [key async for key in self.client.scan_iter(match=PREFIX + "*", count=500)]
        if not keys:
            return []
        return [orjson.loads(raw) for raw in await self.client.mget(keys) if raw]

    async def aclose(self) -> None:
        await self.client.aclose()


class FleetStats:
    """Publishes this worker's figures in the background; merges everyone's on request."""

    def __init__(self, board: Any, member: str, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.board = board
        self.member = member
        self.snapshot = snapshot
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """From inside the serving loop (the first request), once."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._publish_forever())

    async def _publish_forever(self) -> None:
        while True:
            try:
                await self.board.publish(self.member, self.snapshot())
            except Exception as exc:  # noqa: BLE001 - Redis away: the fleet view misses this member until it is back
                log.debug("publishing usage figures failed: %s", exc)
            await asyncio.sleep(PUBLISH_SECONDS)

    async def merged(self) -> dict[str, Any]:
        """The fleet's figures; this worker's alone (with the reason) when the board cannot be read."""
        own = self.snapshot()
        try:
            await self.board.publish(self.member, own)
            members = await self.board.collect()
        except Exception as exc:  # noqa: BLE001 - a stats page must answer even while Redis is away
            return {**own, "fleet_error": f"the shared figures are unavailable ({type(exc).__name__}); this worker's"}
        return merge(members or [own], own)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.board.aclose()


def merge(members: list[dict[str, Any]], own: dict[str, Any]) -> dict[str, Any]:
    """One stats answer from several workers' (same shape as one worker's, plus `replicas`)."""
    out = dict(own)
    out["totals"] = {**_merge_groups([m["totals"] for m in members]),
                     "outcomes": _sum_maps([m["totals"].get("outcomes", {}) for m in members])}
    for group in ("by_alias", "by_key"):
        names = sorted({n for m in members for n in m.get(group, {})})
        out[group] = {n: _merge_groups([m[group][n] for m in members if n in m.get(group, {})]) for n in names}
    series: dict[float, list[dict[str, Any]]] = {}
    for m in members:
        for bucket in m.get("series", []):
            series.setdefault(bucket["t"], []).append(bucket)
    out["series"] = [_merge_bucket(t, buckets) for t, buckets in sorted(series.items())]
    for name in ("in_flight", "open_streams"):
        out[name] = sum(int(m.get(name, 0)) for m in members)
    recording = _sum_maps([{k: v for k, v in m["recording"].items() if k != "hit_rate"} for m in members])
    looked_up = recording.get("hits", 0) + recording.get("misses", 0)
    recording["hit_rate"] = round(recording.get("hits", 0) / looked_up, 6) if looked_up else None
    out["recording"] = recording
    out["replicas"] = sorted(
        ({"replica": m.get("replica", ""), "pid": m.get("pid"), "requests": m["totals"]["requests"],
          "in_flight": m.get("in_flight", 0), "now": m.get("now")} for m in members),
        key=lambda r: (r["replica"], r["pid"] or 0))
    return out


def _merge_groups(groups: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: sum(g.get(k, 0) for g in groups) for k in _COUNTS}
    merged["spend_usd"] = round(merged["spend_usd"], 8)
    for k in _PERCENTILES:
        values = [g[k] for g in groups if g.get(k) is not None]
        merged[k] = max(values) if values else None
    return merged


def _merge_bucket(t: float, buckets: list[dict[str, Any]]) -> dict[str, Any]:
    out = {"t": t, **_merge_groups(buckets)}
    for group in ("by_alias", "by_key"):
        names = sorted({n for b in buckets for n in b.get(group, {})})
        out[group] = {n: _merge_groups([b[group][n] for b in buckets if n in b.get(group, {})]) for n in names}
    return out


def _sum_maps(maps: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in maps:
        for k, v in m.items():
            out[k] = out.get(k, 0) + v
    return out
