"""One call through the layers: input policies -> recorder -> router -> output policies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import orjson

from llm_gateway.config.settings import Price
from llm_gateway.engine.router import Router
from llm_gateway.recordings.base import PassthroughRecorder, Recorder
from llm_gateway.vocab.errors import GatewayError
from llm_gateway.vocab.tokens import count_call_prompt, count_text
from llm_gateway.vocab.types import Call, Frames, Policy, RequestContext, Usage

policy_log = logging.getLogger("gateway.policy")


class Pipeline:
    def __init__(
        self,
        router: Router,
        policies: Sequence[Policy] = (),
        recorder: Recorder | None = None,
        prices: Mapping[str, Price] | None = None,
    ) -> None:
        self.router = router
        self.policies = list(policies)
        self.recorder: Recorder = recorder or PassthroughRecorder()
        self.prices = dict(prices or {})

    def account(self, call: Call, ctx: RequestContext, usage: Any) -> None:
        """Record real usage (and its cost at the alias's price) on the context, for limits, budgets and metrics."""
        if not isinstance(usage, dict):
            return
        prompt = usage.get("prompt_tokens") or 0
        completion = usage.get("completion_tokens") or 0
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return
        ctx.usage = Usage(prompt, completion)
        price = self.prices.get(call.alias)
        if price is not None and ctx.outcome not in ("replay", "cache_hit"):  # an answer from the store cost nothing
            ctx.cost_usd = price.cost(prompt, completion)

    async def admit(self, ctx: RequestContext) -> None:
        for policy in self.policies:
            try:
                await policy.admit(ctx)
            except GatewayError as exc:
                _denied(policy, exc, ctx)
                raise

    def visible(self, aliases: list[str], ctx: RequestContext) -> list[str]:
        for policy in self.policies:
            aliases = policy.visible(aliases, ctx)
        return aliases

    async def aclose(self) -> None:
        await self.recorder.aclose()
        for policy in self.policies:
            aclose = getattr(policy, "aclose", None)
            if aclose is not None:
                await aclose()

    async def before(self, call: Call, ctx: RequestContext) -> Call:
        for policy in self.policies:
            try:
                rewritten = await policy.before(call, ctx)
            except GatewayError as exc:
                _denied(policy, exc, ctx)
                raise
            if rewritten is not None:
                call = rewritten
        ctx.call = call  # as the input policies left it (redacted): what a content request log may show
        return call

    async def send(self, call: Call, ctx: RequestContext) -> dict[str, Any]:
        call = await self.before(call, ctx)
        try:
            response = await self.recorder.send(call, ctx, self.router.send)
        except BaseException:
            await self._abandon(call, ctx)
            raise
        self.account(call, ctx, response.get("usage"))
        for policy in self.policies:
            rewritten = await policy.after(call, response, ctx)
            if rewritten is not None:
                response = rewritten
        return response

    async def _abandon(self, call: Call, ctx: RequestContext) -> None:
        """A call admitted by the policies failed (or its client left): policies holding something give it back."""
        for policy in self.policies:
            abandon = getattr(policy, "abandon", None)
            if abandon is not None:
                await abandon(call, ctx)

    async def stream(self, call: Call, ctx: RequestContext, *, frames: bool = False) -> AsyncIterator[Any]:
        """A primed stream: errors up to the first upstream chunk are raised here, as HTTP errors.

        Its items are chunks (dicts), or Frames where `frames` says the client takes the upstream's own events and
        no policy reads this stream's chunks (Call.frames): then the upstream's bytes pass through untouched.
        """
        call = await self.before(call, ctx)
        readers = [(i, p) for i, p in enumerate(self.policies) if _reads_chunks(p, call, ctx)]
        if frames and not readers:
            call.frames = True
        try:
            chunks = await self.recorder.stream(call, ctx, self.router.stream)
        except BaseException:
            await self._abandon(call, ctx)
            raise
        return self._filtered(call, ctx, chunks, readers)

    async def _filtered(
        self, call: Call, ctx: RequestContext, chunks: AsyncIterator[Any], readers: list[tuple[int, Policy]]
    ) -> AsyncIterator[Any]:
        relayed = _Relayed()
        frame_policies = [p.on_frames for p in self.policies if hasattr(p, "on_frames")] if call.frames else []
        try:
            async with aclosing(chunks):
                try:
                    async for chunk in chunks:
                        if type(chunk) is Frames:  # no policy reads chunks (see stream): only the usage is taken
                            if chunk.usage:
                                self.account(call, ctx, chunk.usage)
                            elif ctx.usage is None:
                                relayed.add_frames(chunk)
                            for on_frames in frame_policies:
                                chunk = await on_frames(call, chunk, ctx) or chunk
                            yield chunk
                            continue
                        usage = chunk.get("usage")
                        if usage:
                            self.account(call, ctx, usage)
                        elif ctx.usage is None:
                            relayed.add(chunk)
                        if not readers:
                            yield chunk
                            continue
                        for out in await self._through(call, ctx, [chunk], readers, 0):
                            yield out
                except Exception:
                    await self._settle_failed(call, ctx, relayed)
                    raise
                for i, policy in enumerate(self.policies):
                    held = await policy.end_stream(call, ctx)
                    if held:
                        for out in await self._through(call, ctx, held, readers, i + 1):
                            yield out
        finally:
            await self._abandon(call, ctx)  # a stream that ended cleanly has settled already: this is a no-op

    async def _settle_failed(self, call: Call, ctx: RequestContext, relayed: _Relayed) -> None:
        """A stream that broke after it began: what the upstream already generated is charged (no usage chunk came,
        so it is counted here), and every policy still settles its stream; what they held back is never sent."""
        if ctx.usage is None:
            self.account(call, ctx, relayed.usage(call))
        for policy in self.policies:
            try:
                await policy.end_stream(call, ctx)
            except Exception:  # noqa: BLE001 - logged; the stream's own error is the one to report
                policy_log.exception("policy %s failed settling a broken stream", policy.name,
                                     extra={"request_id": ctx.request_id})

    async def _through(
        self, call: Call, ctx: RequestContext, chunks: list[dict[str, Any]], readers: list[tuple[int, Policy]],
        start: int,
    ) -> list[dict[str, Any]]:
        """Pass chunks through the policies that read them, from policy index `start` on; each may hold back,
        rewrite or split."""
        for i, policy in readers:
            if i < start:
                continue
            out: list[dict[str, Any]] = []
            for chunk in chunks:
                result = await policy.on_chunk(call, chunk, ctx)
                if result is None:
                    out.append(chunk)
                else:
                    out.extend(result)
            chunks = out
            if not chunks:
                break
        return chunks


class _Relayed:
    """The text a stream relayed so far, to charge a stream that broke before its usage chunk.

    The first KEEP_CHARS characters are kept and counted with tiktoken when needed; past them only a character count
    is kept (at ~4 characters a token), so an endless stream costs no memory here. Frames (relayed unparsed) are
    kept only for their first KEEP_FRAME_BYTES and parsed only if the stream breaks; the bytes past them are
    charged at the tokens per byte of those kept.
    """

    KEEP_CHARS = 16384
    KEEP_FRAME_BYTES = 16384
    __slots__ = ("chars", "frame_bytes", "frames", "pieces")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.chars = 0
        self.frames: list[bytes] = []
        self.frame_bytes = 0  # all the Frames' bytes, kept or not

    def add(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            text = (delta.get("content") if delta else choice.get("text")) or ""
            if delta and delta.get("tool_calls"):
                text += "".join(str((tc.get("function") or {}).get("arguments") or "") for tc in delta["tool_calls"])
            if text:
                if self.chars < self.KEEP_CHARS:
                    self.pieces.append(text)
                self.chars += len(text)

    def add_frames(self, frames: Frames) -> None:
        room = self.KEEP_FRAME_BYTES - self.frame_bytes
        if room > 0:
            data = frames.data
            self.frames.append(data if len(data) <= room else data[:room])  # a cut event is skipped later
        self.frame_bytes += len(frames.data)

    def usage(self, call: Call) -> dict[str, int]:
        frames_completion = self._frames_completion()
        kept = "".join(self.pieces)
        completion = count_text(kept) + max(0, self.chars - len(kept)) // 4 + frames_completion
        return {"prompt_tokens": count_call_prompt(call.kind, call.body), "completion_tokens": completion}

    def _frames_completion(self) -> int:
        """Tokens of the kept Frames' text, extrapolated to all the Frames' bytes."""
        if not self.frames:
            return 0
        kept = b"".join(self.frames)
        text = _Relayed()
        for line in kept.split(b"\n"):
            if line.startswith(b"data:"):
                try:
                    chunk = orjson.loads(line[5:])
                except orjson.JSONDecodeError:
                    continue  # the event the keep limit cut
                if isinstance(chunk, dict):
                    text.add(chunk)
        tokens = count_text("".join(text.pieces))
        return round(tokens * self.frame_bytes / len(kept))


def _reads_chunks(policy: Policy, call: Call, ctx: RequestContext) -> bool:
    """A policy without `reads_chunks` (written before it existed) is taken to read every chunk."""
    reads = getattr(policy, "reads_chunks", None)
    return True if reads is None else reads(call, ctx)


def _denied(policy: Policy, exc: GatewayError, ctx: RequestContext) -> None:
    """Mark the request as refused by `policy` (metrics and the request log read this) and log it, without content."""
    ctx.denied_by = policy.name  # the one record of a denial: metrics and the log read the outcome from it
    policy_log.info(
        "request %s denied by %s: %s %s", ctx.request_id, policy.name, exc.status, exc.code,
        extra={"request_id": ctx.request_id, "policy": policy.name, "status": exc.status, "code": exc.code,
               "key": ctx.key.name if ctx.key is not None else None},
    )
