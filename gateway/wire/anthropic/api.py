"""POST /v1/messages (and /v1/messages/count_tokens): Anthropic's Messages API on the chat pipeline.

The body becomes the canonical chat body (request.py), so keys, limits, guards, recordings, routing and usage apply
as on /v1/chat/completions, and rides beside it as the Call's NativeRequest, which an Anthropic backend sends as it
is. Answers go back as a `message` (answer.py) or Anthropic's events (events.py) framed `event: <type>\\ndata: …`;
errors in Anthropic's envelope and statuses (529 when the upstream is overloaded), rate-limit headers as
anthropic-ratelimit-*.
"""

from __future__ import annotations

import re
import time
from collections.abc import Container, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from llm_gateway.vocab.errors import GatewayError, ModelNotFound
from llm_gateway.vocab.tokens import count_call_prompt, count_text
from llm_gateway.vocab.types import Call, Kind, NativeRequest, RequestContext
from llm_gateway.wire.anthropic.answer import to_message
from llm_gateway.wire.anthropic.events import MessageEvents
from llm_gateway.wire.anthropic.request import Translation, check_version, to_chat_body

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
PROTOCOL = "anthropic.messages"  # what an adapter that speaks Messages lists in its native_protocols
PASSED_HEADER = "anthropic-beta"  # passed on to an Anthropic backend: the beta features the client asked for

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
                413: "request_too_large", 429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}


class MessagesWire:
    kind: Kind = "chat"

    def __init__(self, label: str = "messages") -> None:
        self.label = label  # the `endpoint` label of this path's metrics and request log lines

    def request(self, body: Any) -> tuple[dict[str, Any], tuple[Any, Translation]]:
        translation = to_chat_body(body)
        return translation.chat, (body, translation)

    def parse(self, body: dict[str, Any], aliases: Container[str]) -> Call:
        """The chat body request() built is valid by construction (it checked the client's own fields, naming them
        as the client wrote them): only the alias is left to check."""
        alias = body["model"]
        if alias not in aliases:
            raise ModelNotFound(f"model: the model {alias!r} does not exist or you do not have access to it",
                                param="model")
        return Call(kind="chat", alias=alias, body=body, stream=body.get("stream") is True)

    def bind(self, call: Call, state: tuple[Any, Translation], ctx: RequestContext) -> None:
        """The client's own body beside the chat one, for a backend that speaks Messages."""
        check_version(ctx.headers.get("anthropic-version"))
        body, translation = state
        call.native = native_request(body, translation, call, ctx)

    def answer(self, result: dict[str, Any], state: Any) -> dict[str, Any]:
        return to_message(result)

    def framer(self, state: tuple[Any, Translation]) -> MessagesFramer:
        return MessagesFramer(MessageEvents(str(state[0].get("model", ""))))

    def error_body(self, exc: GatewayError) -> dict[str, Any]:
        return error_body(exc)

    def error_status(self, exc: GatewayError) -> int:
        return error_status(exc)

    def response_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return ratelimit_headers(headers)

    def count_call(self, body: Any, ctx: RequestContext, aliases: Container[str]) -> Call:
        """count_tokens: the same checks as a message request, without max_tokens."""
        check_version(ctx.headers.get("anthropic-version"))
        translation = to_chat_body(body, count_only=True)
        call = self.parse(translation.chat, aliases)
        call.request_id = ctx.request_id
        call.native = native_request(body, translation, call, ctx)
        return call

    def estimate(self, call: Call) -> int:
        tools = call.body.get("tools")
        return count_call_prompt("chat", call.body) + (count_text(orjson.dumps(tools).decode()) if tools else 0)


def native_request(body: dict[str, Any], translation: Translation, call: Call, ctx: RequestContext) -> NativeRequest:
    beta = ctx.headers.get(PASSED_HEADER)
    headers = {PASSED_HEADER: beta} if beta else {}
    return NativeRequest(PROTOCOL, body, headers, call.body.get("messages"), tuple(translation.untranslatable))


class MessagesFramer:
    takes_frames = False  # it translates parsed chunks

    def __init__(self, events: MessageEvents) -> None:
        self.events = events

    def feed(self, chunk: dict[str, Any]) -> bytes:
        return frames(self.events.feed(chunk))

    def finish(self) -> bytes:
        return frames(self.events.finish_events())

    def fail(self, exc: GatewayError) -> bytes:
        """An `error` event and nothing after it: the SDK raises it, and no message_stop pretends the answer ended."""
        return frames([error_body(exc)])


def frames(events: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def error_status(exc: GatewayError) -> int:
    """Anthropic's status: 529 when the upstream (or the gateway's only deployment) said it is overloaded."""
    if getattr(exc, "upstream_status", None) == 529 or exc.code in ("overloaded", "overloaded_error"):
        return 529
    return exc.status


def error_body(exc: GatewayError) -> dict[str, Any]:
    status = error_status(exc)
    etype = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": etype, "message": exc.message}}


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?")


def ratelimit_headers(headers: dict[str, str], now: float | None = None) -> dict[str, str]:
    """OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens} as anthropic-ratelimit-{unit}-{…}; a reset is
    an RFC 3339 instant, as Anthropic sends it. Other headers (retry-after, x-request-id) are kept."""
    if "x-ratelimit-limit-requests" not in headers and "x-ratelimit-limit-tokens" not in headers:
        return headers  # the rate-limit policy always sets both limits, or neither
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not name.startswith("x-ratelimit-"):
            out[name] = value
            continue
        what, _, unit = name.removeprefix("x-ratelimit-").partition("-")
        if what == "reset":
            value = _instant(value, time.time() if now is None else now)
        out[f"anthropic-ratelimit-{unit}-{what}"] = value
    return out


def _instant(duration: str, now: float) -> str:
    match = _DURATION.fullmatch(duration.strip())
    seconds = 0.0
    if match:
        hours, minutes, secs, millis = match.groups()
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0) + int(millis or 0) / 1000
    return datetime.fromtimestamp(now + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


