"""How an endpoint's bodies look on the wire around the pipeline: OpenAI's own as they are, or a translation.

Gateway.serve runs every model endpoint the same way (read, validate, policies, recorder, router, answer or stream);
a Wire says what the client's body becomes for the pipeline, what the pipeline's answer becomes for the client, and
how stream chunks are framed. /v1/responses (wire/responses/) and /v1/messages (wire/anthropic/) are the
translating ones.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, Protocol

import orjson

from llm_gateway.vocab.errors import GatewayError
from llm_gateway.vocab.types import Call, Frames, Kind, RequestContext
from llm_gateway.wire.schema import parse_call


class Framer(Protocol):
    """One stream's SSE bytes: a frame per chunk (b"" when nothing goes out yet), the end, or a failure."""

    takes_frames: bool  # feed() also takes Frames: the upstream's own events, already in this framing

    def feed(self, chunk: dict[str, Any]) -> bytes: ...

    def finish(self) -> bytes: ...

    def fail(self, exc: GatewayError) -> bytes: ...


class Wire(Protocol):
    kind: Kind  # what the pipeline serves (a translated endpoint may ride on "chat")
    label: str  # the endpoint's name in metrics and request log lines

    def request(self, body: Any) -> tuple[Any, Any]:
        """(the body to validate as `kind`, what answer() and framer() need to know of the request)."""
        ...

    def parse(self, body: Any, aliases: Container[str]) -> Call:
        """The Call for the body request() gave (validated as `kind` by wire/schema.py, or by the wire itself)."""
        ...

    def bind(self, call: Call, state: Any, ctx: RequestContext) -> None:
        """What the wire adds to the parsed call (the client's own body, for a backend of the same protocol)."""
        ...

    def answer(self, result: dict[str, Any], state: Any) -> dict[str, Any]: ...

    def framer(self, state: Any) -> Framer: ...

    def error_body(self, exc: GatewayError) -> dict[str, Any]:
        """An error answer in the client protocol's own envelope (server/errors.py sends it)."""
        ...

    def error_status(self, exc: GatewayError) -> int:
        """The error's status in the client protocol (Anthropic's 529 for overloaded)."""
        ...

    def response_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """The answer's headers as the client protocol names them (rate-limit headers differ)."""
        ...


class OpenAIShapes:
    """What OpenAI's own wires and the Responses translation share: OpenAI's schema, errors, statuses and headers."""

    kind: Kind

    def parse(self, body: Any, aliases: Container[str]) -> Call:
        return parse_call(self.kind, body, aliases)

    def bind(self, call: Call, state: Any, ctx: RequestContext) -> None:
        return None

    def error_body(self, exc: GatewayError) -> dict[str, Any]:
        return exc.to_body()

    def error_status(self, exc: GatewayError) -> int:
        return exc.status

    def response_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return headers


class OpenAIFramer:
    """`data: {chunk}\\n\\n` per chunk and `data: [DONE]\\n\\n` at the end, exactly as OpenAI frames a stream;
    Frames (an OpenAI-compatible upstream's own events) go out as they came."""

    takes_frames = True

    def feed(self, chunk: dict[str, Any] | Frames) -> bytes:
        if type(chunk) is Frames:
            return chunk.data
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def finish(self) -> bytes:
        return b"data: [DONE]\n\n"

    def fail(self, exc: GatewayError) -> bytes:
        return b"data: " + orjson.dumps(exc.to_body()) + b"\n\n"


_OPENAI_FRAMER = OpenAIFramer()  # keeps no state: one serves every stream


class OpenAIWire(OpenAIShapes):
    """/v1/chat/completions, /v1/completions, /v1/embeddings: bodies pass as they are, both ways."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.label = kind

    def request(self, body: Any) -> tuple[Any, None]:
        return body, None

    def answer(self, result: dict[str, Any], state: None) -> dict[str, Any]:
        return result

    def framer(self, state: None) -> Framer:
        return _OPENAI_FRAMER
