"""The shared vocabulary: a Call, its per-request context, and the Adapter and Policy protocols.

Everything in adapters/, policies/ and recordings/ speaks only these (and gateway/errors.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from llm_gateway.vocab.counters import int_counters

Kind = Literal["chat", "completion", "embedding", "moderation"]

# The path each kind of call is served on; also part of a recording's key.
ENDPOINTS: dict[str, str] = {
    "chat": "/v1/chat/completions",
    "completion": "/v1/completions",
    "embedding": "/v1/embeddings",
    "moderation": "/v1/moderations",
}


@dataclass(slots=True)
class NativeRequest:
    """The client's own body, for an adapter that speaks the client's protocol (`protocol`, e.g. "anthropic.messages").

    `Call.body` stays the canonical OpenAI chat shape every policy, recording key and other adapter reads; this is
    the same request as the client sent it, so a backend of the same protocol loses nothing the chat shape cannot
    carry. It is valid only for the `messages` list it was translated with: a policy that rewrites the messages
    (PII redaction) makes a new list, and the adapter then translates the rewritten body instead (see `matches`).
    `untranslatable` lists (param, reason) for what the chat shape cannot carry; a backend that does not speak the
    protocol refuses the call naming the first (the router checks, knowing only that it is not spoken).
    """

    protocol: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # protocol headers to pass on (e.g. anthropic-beta)
    messages: Any = None  # the chat `messages` object this body was translated to
    untranslatable: tuple[tuple[str, str], ...] = ()

    def matches(self, body: dict[str, Any]) -> bool:
        return body.get("messages") is self.messages


@dataclass(slots=True)
class Call:
    """One normalized client request.

    `body` is the client's OpenAI-shaped body, unknown fields kept; `body["model"]` stays the alias.
    `model` is the upstream's own model name, set by the router for the deployment it picked.
    """

    kind: Kind
    alias: str
    body: dict[str, Any]
    stream: bool = False
    model: str = ""
    provider: str = ""
    request_id: str = ""  # sent upstream as x-request-id
    traceparent: str = ""  # W3C trace context sent upstream: the gateway's span, or the client's own header
    native: NativeRequest | None = None  # the client's own body, when its protocol is not OpenAI's (see NativeRequest)
    # set by the pipeline when nothing reads this stream's chunks (no output policy, no recorder, no translation):
    # an adapter that can may then yield the upstream's own SSE bytes as Frames instead of parsed chunks
    frames: bool = False

    @property
    def endpoint(self) -> str:
        return ENDPOINTS[self.kind]

    def routed(self, alias: str, model: str, provider: str) -> Call:
        """This call as sent to one deployment (dataclasses.replace did the same at 6x the cost, per request)."""
        return Call(
            self.kind, alias, self.body, self.stream, model, provider, self.request_id, self.traceparent, self.native,
            self.frames,
        )

    def upstream_body(self) -> dict[str, Any]:
        """The body with the upstream model name substituted (a shallow copy: the client's body is kept)."""
        body = dict(self.body)
        body["model"] = self.model or self.alias
        return body


class Frames:
    """Whole SSE events of an OpenAI-shaped stream, as the upstream framed them (one upstream read's worth), with
    the only fact the gateway needs of them: the usage an event carried.

    A stream's items are parsed chunks (dicts) or Frames; Frames reach only a client whose protocol is the
    upstream's (OpenAI's framer sends `data` as it is), and only when no policy or recorder reads chunks
    (Call.frames). The upstream's end marker is never inside `data`: the framer sends its own. `usage_event` is the
    byte range of an event that carries only usage (no choices), for a client that did not ask for it.
    """

    __slots__ = ("data", "usage", "usage_event")

    def __init__(
        self, data: bytes, usage: dict[str, Any] | None = None, usage_event: tuple[int, int] | None = None
    ) -> None:
        self.data = data
        self.usage = usage
        self.usage_event = usage_event

    def without_usage_event(self) -> Frames:
        if self.usage_event is None:
            return self
        start, stop = self.usage_event
        return Frames(self.data[:start] + self.data[stop:], self.usage)


@dataclass(slots=True)
class KeyInfo:
    """The virtual key a request was authenticated with (never the key itself)."""

    id: str
    name: str
    models: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    is_master: bool = False


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class RequestContext:
    """What the gateway learns about one request as it flows; policies and the recorder write to it."""

    request_id: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased client headers
    key: KeyInfo | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    outcome: str = "upstream"  # upstream | replay | cache_hit | error (a denial is `denied_by`)
    deployment: str = ""  # "<provider>/<model>" that served it
    provider: str = ""
    usage: Usage | None = None
    cost_usd: float = 0.0
    upstream_seconds: float = 0.0
    # the request's own facts, set by the layer that learns them (server, pipeline) and read by observability
    endpoint: str = ""  # the endpoint's label in metrics and logs ("chat", "responses", "models", ...)
    alias: str = ""  # the model alias asked for, once the body named one
    started: float = 0.0  # time.perf_counter() when the request arrived
    stream_opened: float | None = None  # perf_counter() when a stream's first chunk was ready to go out
    error: BaseException | None = None  # the error the client was answered with (or a stream ended with)
    denied_by: str = ""  # the policy that refused the request
    admin: bool = False  # an operator request (/metrics, /ui figures): the master key is required
    call: Call | None = None  # the call as the input policies left it (redacted): what a content log may show
    answer: dict[str, Any] | None = None  # a whole answer as the client got it, kept only for a content log
    span: Any = None  # the request's OpenTelemetry span, when [tracing] is on
    traceparent: str = ""  # what the call sends upstream as `traceparent` (see Call.traceparent)
    state: dict[str, Any] = field(default_factory=dict)  # the policies' scratch space, keyed by policy name


@runtime_checkable
class Adapter(Protocol):
    """A backend. Input and output are OpenAI-shaped dicts; wire translation stays inside the adapter."""

    name: str

    async def chat(self, call: Call) -> dict[str, Any]: ...

    def stream_chat(self, call: Call) -> AsyncIterator[dict[str, Any]]: ...

    async def complete(self, call: Call) -> dict[str, Any]: ...

    def stream_complete(self, call: Call) -> AsyncIterator[dict[str, Any]]: ...

    async def embed(self, call: Call) -> dict[str, Any]: ...

    # optional: `moderate(call)` for /v1/moderations; an adapter without it answers those with a 400 (router.py)

    async def list_models(self) -> list[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


class Policy(Protocol):
    """One concern applied around every call. Return None to keep the call / response / chunk unchanged."""

    name: str

    async def before(self, call: Call, ctx: RequestContext) -> Call | None: ...

    async def after(self, call: Call, response: dict[str, Any], ctx: RequestContext) -> dict[str, Any] | None: ...

    def reads_chunks(self, call: Call, ctx: RequestContext) -> bool:
        """Whether on_chunk must see this stream's chunks; when no policy does, the stream may relay Frames.

        A policy that needs only what Frames tell (usage, the usage-only event) may define
        `async on_frames(call, frames, ctx) -> Frames | None` instead: it is called for each Frames relayed."""
        ...

    async def on_chunk(self, call: Call, chunk: dict[str, Any], ctx: RequestContext) -> list[dict[str, Any]] | None:
        """Chunks to emit in place of `chunk` ([] holds it back, None passes it on)."""
        ...

    async def end_stream(self, call: Call, ctx: RequestContext) -> list[dict[str, Any]]:
        """Chunks still held back when the stream ends."""
        ...

    async def admit(self, ctx: RequestContext) -> None:
        """Check a request that is not a call (/v1/models, /metrics, /ui); raise to deny."""
        ...

    def visible(self, aliases: list[str], ctx: RequestContext) -> list[str]:
        """The aliases this request may see in /v1/models."""
        ...

    def counter_values(self) -> list[tuple[str, int]]:
        """(event, count so far) for the policy's events: what metrics show as gateway_policy_events_total."""
        ...

    async def aclose(self) -> None: ...


class BasePolicy:
    """Pass-through defaults, so a policy implements only the hooks it needs."""

    name = "policy"

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        return None

    async def after(self, call: Call, response: dict[str, Any], ctx: RequestContext) -> dict[str, Any] | None:
        return None

    def reads_chunks(self, call: Call, ctx: RequestContext) -> bool:
        return False

    async def on_chunk(self, call: Call, chunk: dict[str, Any], ctx: RequestContext) -> list[dict[str, Any]] | None:
        return None

    async def end_stream(self, call: Call, ctx: RequestContext) -> list[dict[str, Any]]:
        return []

    async def admit(self, ctx: RequestContext) -> None:
        return None

    def visible(self, aliases: list[str], ctx: RequestContext) -> list[str]:
        return aliases

    def counter_values(self) -> list[tuple[str, int]]:
        """The int fields of `counters` (and of an output guard's `output_counters`), wherever a policy keeps them."""
        values = list(int_counters(getattr(self, "counters", None)))
        values += int_counters(getattr(self, "output_counters", None))
        return values

    async def aclose(self) -> None:
        return None
