"""StoreRecorder: modes record, replay and auto (a cache) over a Store.

The hit path is kept as cheap as the mock backend: one normalization + hash, a dict lookup in the in-memory cache of
recordings already read, and an orjson round-trip for a private copy of the answer. The store is read only on the
first use of a key; the nearest-recording index is built only when a miss needs it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import replace
from typing import Any

import orjson

from llm_gateway.recordings.base import RecorderCounters, SendUpstream, StreamUpstream
from llm_gateway.recordings.diff import differences
from llm_gateway.recordings.keys import KeyMaker, NormalizedRequest
from llm_gateway.recordings.model import Chunk, CorruptRecording, Meta, Recording
from llm_gateway.recordings.nearest import NearestIndex
from llm_gateway.recordings.store import Store
from llm_gateway.recordings.streams import aggregate, fit_usage, synthesize
from llm_gateway.vocab.errors import GatewayError, RecordingNotFound, ServiceUnavailable, UpstreamError
from llm_gateway.vocab.types import Call, Frames, RequestContext

log = logging.getLogger("gateway.recordings")
MODES = ("record", "replay", "auto")
CACHE_ENTRIES = 4096  # parsed recordings kept in memory; the oldest read is dropped first
TOUCH_BATCH = 512  # used keys noted in memory before one batched write of `last_used`


class StoreRecorder:
    def __init__(
        self,
        mode: str,
        store: Store,
        keys: KeyMaker,
        *,
        replay_timing: str = "none",
        timing_scale: float = 1.0,
        match: str = "exact",
        nearest_threshold: float = 0.9,
        ttl_seconds: float | None = None,
        record_errors: bool = False,
        gateway_version: str = "",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"recorder mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.store = store
        self.keys = keys
        self.replay_timing = replay_timing
        self.timing_scale = timing_scale
        self.match = match
        self.nearest_threshold = nearest_threshold
        self.ttl_seconds = ttl_seconds
        self.record_errors = record_errors
        self.gateway_version = gateway_version
        self.counters = RecorderCounters()
        self._clock = clock
        self._sleep = sleep
        self._cache: dict[str, Recording] = {}
        self._index: NearestIndex | None = None
        self._index_lock = asyncio.Lock()
        self._used: set[str] = set()
        self._flushes: set[asyncio.Task[None]] = set()  # referenced until done, so they are not collected mid-write

    # the Recorder protocol

    async def send(self, call: Call, ctx: RequestContext, upstream: SendUpstream) -> dict[str, Any]:
        request = self.keys.normalize(call.endpoint, call.alias, call.body)
        if self.mode != "record":
            recording = await self._lookup(request, ctx)
            if recording is not None:
                return await self._replay_whole(recording)
            if self.mode == "replay":
                raise await self._miss_error(request)
        return await self._record_whole(request, call, ctx, upstream)

    async def stream(self, call: Call, ctx: RequestContext, upstream: StreamUpstream) -> AsyncIterator[dict[str, Any]]:
        request = self.keys.normalize(call.endpoint, call.alias, call.body)
        if self.mode != "record":
            recording = await self._lookup(request, ctx)
            if recording is not None:
                if recording.error is not None:
                    raise _recorded_error(recording)
                include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
                return self._replay_stream(recording, include_usage, frames=call.frames)
            if self.mode == "replay":
                raise await self._miss_error(request)
        started = time.perf_counter()
        if call.frames:
            call = replace(call, frames=False)  # recording keeps parsed chunks
        try:
            chunks = await upstream(call, ctx)
        except UpstreamError as exc:
            await self._record_error(request, call, ctx, exc, started, stream=True)
            raise
        return self._recording_stream(request, call, ctx, chunks, started)

    async def aclose(self) -> None:
        if self._flushes:
            await asyncio.gather(*self._flushes)
        await self._flush_used()
        await self.store.aclose()

    # lookup

    async def _lookup(self, request: NormalizedRequest, ctx: RequestContext) -> Recording | None:
        recording = self._cache.get(request.key)
        if recording is None:
            recording = await self._read(request.key)
        if recording is None and request.legacy_key is not None:
            # made before keys were canonical across protocols: still found under the key it was made with
            recording = self._cache.get(request.legacy_key) or await self._read(request.legacy_key)
        if recording is not None and self._expired(recording):
            recording = None
        score: float | None = None
        if recording is None and self.match == "nearest":
            recording, score = await self._nearest_served(request)
        if recording is None:
            self.counters.misses += 1
            return None
        self.counters.hits += 1
        ctx.outcome = "replay" if self.mode == "replay" else "cache_hit"
        ctx.deployment = recording.meta.deployment
        ctx.provider = recording.meta.provider
        ctx.response_headers["x-gateway-recording"] = recording.key
        if score is not None:
            ctx.response_headers["x-gateway-match"] = f"nearest;score={score:.3f}"
        self._note_used(recording.key)
        return recording

    async def _read(self, key: str) -> Recording | None:
        try:
            recording = await self.store.get(key)
            if recording is not None:
                self._check_key(recording)
        except CorruptRecording as exc:
            self.counters.store_errors += 1
            if self.mode == "replay":
                raise GatewayError(f"{exc}. Re-record it or delete it; other recordings are still served.",
                                   code="recording_corrupt") from None
            log.warning("%s; calling the upstream and recording it again", exc)
            return None
        except Exception as exc:  # noqa: BLE001 - any store failure: a cache falls back to the upstream
            self.counters.store_errors += 1
            if self.mode == "replay":
                raise ServiceUnavailable(f"the recording store {self.store.location} could not be read: {exc}",
                                         code="recording_store_unavailable") from None
            log.error("recording store %s could not be read: %s", self.store.location, exc)
            return None
        if recording is not None:
            self._remember(recording)
        return recording

    def _check_key(self, recording: Recording) -> None:
        reason = self.keys.mismatch(recording.key, recording.request)
        if reason is not None:
            file_for = getattr(self.store, "file_for", None)  # a directory store names the file itself
            where = str(file_for(recording.key)) if file_for else f"{self.store.location} (key {recording.key})"
            raise CorruptRecording(where, reason)

    def _remember(self, recording: Recording) -> None:
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.pop(next(iter(self._cache)))
        self._cache[recording.key] = recording

    def _expired(self, recording: Recording) -> bool:
        return (self.mode == "auto" and self.ttl_seconds is not None
                and self._clock() - recording.meta.created > self.ttl_seconds)

    def _note_used(self, key: str) -> None:
        self._used.add(key)
        if len(self._used) >= TOUCH_BATCH:
            task = asyncio.get_running_loop().create_task(self._flush_used())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush_used(self) -> None:
        used, self._used = self._used, set()
        try:
            await self.store.touch(used, self._clock())
        except Exception as exc:  # noqa: BLE001 - `last_used` is bookkeeping; never fail a request over it
            self.counters.store_errors += 1
            log.warning("could not note recording use in %s: %s", self.store.location, exc)

    # nearest recording

    async def _nearest_index(self) -> NearestIndex:
        async with self._index_lock:
            if self._index is None:
                index = NearestIndex()
                async for recording in self.store.iter():
                    if self.keys.mismatch(recording.key, recording.request) is None:  # never served: see _read
                        index.add(recording.key, _canonical(recording.request))
                self._index = index
        return self._index

    async def _nearest(self, request: NormalizedRequest, k: int = 10) -> list[tuple[Recording, float]]:
        try:
            candidates = (await self._nearest_index()).query(request.canonical, k)
        except Exception as exc:  # noqa: BLE001 - diagnostics must not hide the miss itself
            log.warning("could not search %s for the nearest recording: %s", self.store.location, exc)
            return []
        found = []
        for key, score in candidates:
            recording = self._cache.get(key)
            if recording is None:
                try:
                    recording = await self.store.get(key)
                except Exception as exc:  # noqa: BLE001 - a corrupt neighbour is skipped; the miss is still reported
                    log.warning("skipping unreadable recording %s: %s", key, exc)
                    continue
            if recording is not None:
                found.append((recording, score))
        return found

    async def _nearest_served(self, request: NormalizedRequest) -> tuple[Recording | None, float | None]:
        for recording, score in await self._nearest(request):
            same_target = recording.endpoint == request.endpoint and recording.request.get("alias") == request.alias
            if same_target and score >= self.nearest_threshold and not self._expired(recording):
                return recording, score
        return None, None

    async def _miss_error(self, request: NormalizedRequest) -> RecordingNotFound:
        message = (f"No recording for this request (key {request.key}: {request.endpoint}, model {request.alias!r}) "
                   f"in {self.store.location}. The gateway is in replay mode and never calls an upstream; record it in "
                   f"mode record or auto (gateway serve --record-mode, or pytest --gateway-record-mode).")
        nearest = await self._nearest(request, k=1)
        if not nearest:
            return RecordingNotFound(message + " The store holds no recordings.")
        recording, score = nearest[0]
        diff = differences(recording.request, request.as_dict())
        return RecordingNotFound(f"{message} Nearest recording: {recording.key} (similarity {score:.2f}); "
                                 f"recorded -> requested: {'; '.join(diff)}.")

    # replay

    async def _replay_whole(self, recording: Recording) -> dict[str, Any]:
        if recording.error is not None:
            raise _recorded_error(recording)
        if self.replay_timing == "recorded":
            await self._sleep(recording.meta.latency_seconds * self.timing_scale)
        if recording.response is not None:
            return recording.response_copy()
        assert recording.chunks is not None
        whole = aggregate([c.data for c in recording.chunks], recording.endpoint)
        if whole.get("usage") is None and recording.meta.usage:
            whole["usage"] = recording.meta.usage
        return orjson.loads(orjson.dumps(whole))

    async def _replay_stream(
        self, recording: Recording, include_usage: bool, *, frames: bool = False
    ) -> AsyncIterator[dict[str, Any] | Frames]:
        """The recorded chunks, at their recorded pace when replay_timing says so. With `frames` (nothing reads the
        chunks: Call.frames) an untimed replay is one Frames of every event, serialised once."""
        if recording.chunks is not None:
            delays = [c.delay for c in recording.chunks]
            chunks = fit_usage([c.data for c in recording.chunks], include_usage, recording.meta.usage)
        else:
            assert recording.response is not None
            chunks = synthesize(recording.response, recording.endpoint, include_usage)
            delays = [recording.meta.latency_seconds]
        timed = self.replay_timing == "recorded"
        if frames and not timed:
            events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]
            usage = next((c["usage"] for c in reversed(chunks) if c.get("usage")), None)
            data = b"".join(events)
            usage_only = bool(chunks) and bool(chunks[-1].get("usage")) and not chunks[-1].get("choices")
            yield Frames(data, usage, (len(data) - len(events[-1]), len(data)) if usage_only else None)
            return
        for i, chunk in enumerate(chunks):
            if timed and i < len(delays) and delays[i] > 0:
                await self._sleep(delays[i] * self.timing_scale)
            yield orjson.loads(orjson.dumps(chunk))  # a private copy: output policies may rewrite it

    # record

    async def _record_whole(
        self, request: NormalizedRequest, call: Call, ctx: RequestContext, upstream: SendUpstream
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            response = await upstream(call, ctx)
        except UpstreamError as exc:
            await self._record_error(request, call, ctx, exc, started, stream=False)
            raise
        meta = self._meta(call, ctx, started, response.get("usage"), stream=False)
        await self._save(Recording(request.key, request.as_dict(), meta, response=orjson.loads(orjson.dumps(response))))
        return response

    async def _recording_stream(
        self,
        request: NormalizedRequest,
        call: Call,
        ctx: RequestContext,
        chunks: AsyncIterator[dict[str, Any]],
        started: float,
    ) -> AsyncIterator[dict[str, Any]]:
        recorded: list[Chunk] = []
        usage = None
        last = started
        async with aclosing(chunks):
            async for chunk in chunks:
                now = time.perf_counter()
                recorded.append(Chunk(now - last, orjson.loads(orjson.dumps(chunk))))
                last = now
                usage = chunk.get("usage") or usage
                yield chunk
        # only a stream that ended normally is stored: a failed, cut (the adapter raises when the upstream's end
        # marker never came) or abandoned one would replay a truncated answer as if it were whole
        if recorded:
            meta = self._meta(call, ctx, started, usage, stream=True)
            await self._save(Recording(request.key, request.as_dict(), meta, chunks=recorded))

    async def _record_error(
        self, request: NormalizedRequest, call: Call, ctx: RequestContext, exc: UpstreamError, started: float,
        *, stream: bool,
    ) -> None:
        # only answers the upstream gave (an error status), not timeouts or refused connections
        if not self.record_errors or exc.upstream_status is None:
            return
        error = {"status": exc.status, "body": exc.to_body(), "headers": dict(exc.headers)}
        meta = self._meta(call, ctx, started, None, stream=stream)
        meta.provider = meta.provider or (exc.provider or "")
        await self._save(Recording(request.key, request.as_dict(), meta, error=error))

    def _meta(self, call: Call, ctx: RequestContext, started: float, usage: Any, *, stream: bool) -> Meta:
        provider, _, model = ctx.deployment.partition("/")
        return Meta(
            alias=call.alias,
            provider=ctx.provider or provider,
            model=model,
            deployment=ctx.deployment,
            created=self._clock(),
            gateway_version=self.gateway_version,
            latency_seconds=time.perf_counter() - started,
            usage=usage if isinstance(usage, dict) else None,
            stream=stream,
        )

    async def _save(self, recording: Recording) -> None:
        try:
            older = self._cache.get(recording.key) or await self.store.get(recording.key)
        except Exception as exc:  # noqa: BLE001 - an unreadable old recording is simply replaced
            log.warning("replacing unreadable recording %s: %s", recording.key, exc)
            older = None
        recording = recording.keeping_other_shape(older)
        try:
            await self.store.put(recording.key, recording)
        except Exception as exc:  # noqa: BLE001 - the client still gets its answer; the failure is logged and counted
            self.counters.store_errors += 1
            log.error("could not store recording %s in %s: %s", recording.key, self.store.location, exc)
            return
        self.counters.records += 1
        self._remember(recording)
        if self._index is not None:
            self._index.add(recording.key, _canonical(recording.request))


def _canonical(request: dict[str, Any]) -> bytes:
    return orjson.dumps(request, option=orjson.OPT_SORT_KEYS)


def _recorded_error(recording: Recording) -> GatewayError:
    """The upstream error exactly as it was answered: status, OpenAI type and code, message, headers."""
    assert recording.error is not None
    body = (recording.error.get("body") or {}).get("error") or {}
    exc = GatewayError(
        str(body.get("message", "recorded upstream error")),
        param=body.get("param"),
        code=body.get("code"),
        status=int(recording.error.get("status", 502)),
        headers={str(k): str(v) for k, v in (recording.error.get("headers") or {}).items()},
    )
    exc.type = str(body.get("type") or exc.type)
    return exc
