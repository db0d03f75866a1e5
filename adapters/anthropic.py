"""Anthropic's Messages API behind the OpenAI shape (x-api-key, anthropic-version); translation in anthropic_format."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import aclosing
from typing import Any

import httpx
import orjson

from llm_gateway.adapters.anthropic_format import (
    NativeStreamTranslator,
    StreamTranslator,
    chat_to_text_completion,
    chunk_to_text_completion,
    completion_as_chat,
    native_chat_completion,
    to_chat_completion,
    to_messages_request,
)
from llm_gateway.adapters.http import (
    CONTEXT_MARKERS,
    HttpUpstream,
    correlation_headers,
    fetch_json,
    make_client,
    status_error,
    stream_sse,
)
from llm_gateway.vocab.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamMalformed,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from llm_gateway.vocab.types import Call, NativeRequest

# a Messages request the client sent (wire/anthropic) reaches this adapter as it was sent
MESSAGES_PROTOCOL = "anthropic.messages"

# Anthropic error `type` -> the OpenAI error type a client expects for the same status
_ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
    "api_error": "api_error",
    "overloaded_error": "api_error",
}


class AnthropicAdapter:
    native_protocols = frozenset({MESSAGES_PROTOCOL})

    def __init__(
        self,
        upstream: HttpUpstream,
        *,
        version: str = "2023-06-01",
        default_max_tokens: int = 4096,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`default_max_tokens` is sent when the client names none: Anthropic requires max_tokens, OpenAI does not."""
        self.name = upstream.name
        self.upstream = upstream
        self.default_max_tokens = default_max_tokens
        headers = {"anthropic-version": version, **upstream.headers}
        if upstream.api_key:
            headers["x-api-key"] = upstream.api_key
        self.client = make_client(upstream, headers, transport)
        # base_url is usually https://api.anthropic.com; tolerate one that already ends in /v1
        self.prefix = "" if upstream.base_url.rstrip("/").endswith("/v1") else "/v1"

    async def chat(self, call: Call) -> dict[str, Any]:
        native = _native(call)
        request = _native_body(call, native) if native else to_messages_request(call, self.default_max_tokens)
        request.pop("stream", None)
        data, body = await fetch_json(
            self.client,
            self.upstream,
            "POST",
            self.prefix + "/messages",
            self._status_error,
            content=orjson.dumps(request),
            headers=_headers(call, self.upstream, native=native),
        )
        if data.get("type") == "error" or ("error" in data and "content" not in data):
            raise self._status_error(502, body, {})  # a 200 carrying an error
        if not isinstance(data.get("content"), list):
            raise UpstreamMalformed(
                f"upstream {self.name!r} sent a message without content", provider=self.name, kind="malformed"
            )
        try:
            if native is not None:
                return native_chat_completion(data, request["model"])
            return to_chat_completion(data, request["model"])
        except (AttributeError, TypeError, ValueError) as exc:  # valid JSON, wrong shape (a block not an object...)
            raise self._malformed("message", exc) from None

    def stream_chat(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        return self._stream(call)

    async def complete(self, call: Call) -> dict[str, Any]:
        return chat_to_text_completion(await self.chat(completion_as_chat(call)))

    async def stream_complete(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        async with aclosing(self._stream(completion_as_chat(call))) as chunks:
            async for chunk in chunks:
                out = chunk_to_text_completion(chunk)
                if out is not None:
                    yield out

    async def embed(self, call: Call) -> dict[str, Any]:
        raise InvalidRequest(f"provider {self.name!r} (Anthropic) does not serve embeddings", param="model")

    async def list_models(self) -> list[dict[str, Any]]:
        data, _ = await fetch_json(self.client, self.upstream, "GET", self.prefix + "/models", self._status_error)
        return [
            {"id": m.get("id", ""), "object": "model", "created": 0, "owned_by": "anthropic"}
            for m in data.get("data") or []
        ]

    async def aclose(self) -> None:
        await self.client.aclose()

    async def count_tokens(self, call: Call) -> int | None:
        """The upstream's exact count of the request's input tokens; None when it does not serve count_tokens."""
        native = _native(call)
        request = _native_body(call, native) if native else to_messages_request(call, self.default_max_tokens)
        for name in (
            "max_tokens",
            "stream",
            "stop_sequences",
            "temperature",
            "top_p",
            "top_k",
            "metadata",
            "service_tier",
        ):
            request.pop(name, None)
        try:
            data, _ = await fetch_json(
                self.client,
                self.upstream,
                "POST",
                self.prefix + "/messages/count_tokens",
                self._status_error,
                content=orjson.dumps(request),
                headers=_headers(call, self.upstream, native=native),
            )
        except UpstreamStatusError as exc:
            if exc.upstream_status in (404, 405):  # a proxy or an older API without the endpoint
                return None
            raise
        count = data.get("input_tokens")
        return count if isinstance(count, int) else None

    def _stream(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        native = _native(call)
        request = _native_body(call, native) if native else to_messages_request(call, self.default_max_tokens)
        request["stream"] = True
        include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
        translator = (NativeStreamTranslator if native else StreamTranslator)(request["model"], include_usage)
        return stream_sse(
            self.client,
            self.upstream,
            self.prefix + "/messages",
            self._status_error,
            _AnthropicEvents(self, translator),
            content=orjson.dumps(request),
            headers=_headers(call, self.upstream, stream=True, native=native),
        )

    def _status_error(self, status: int, content: bytes, headers: Mapping[str, str]) -> UpstreamError:
        if status == 529:  # Anthropic is overloaded: a 503 to an OpenAI client, retryable elsewhere
            message = _message(content) or "overloaded"
            return UpstreamUnavailable(
                f"upstream {self.name!r} is overloaded: {message}",
                provider=self.name,
                upstream_status=529,
                kind="5xx",
                code="overloaded",
            )
        error = status_error(self.name, status, content, headers, context_markers=CONTEXT_MARKERS)
        upstream_type = _error_type(content)
        if upstream_type in _ERROR_TYPES and error.status < 500:
            error.type = _ERROR_TYPES[upstream_type]
        if upstream_type and error.code in (None, "bad_gateway"):
            error.code = upstream_type  # Anthropic has no error code; its type is the precise one
        if upstream_type == "overloaded_error":  # a 200 or 5xx whose body says overloaded
            return self._status_error(529, content, headers)
        return error

    def _malformed(self, what: str, exc: Exception) -> UpstreamMalformed:
        return UpstreamMalformed(
            f"upstream {self.name!r} sent a malformed {what}: {type(exc).__name__}: {exc}",
            provider=self.name,
            kind="malformed",
        )

    def _stream_error(self, event: dict[str, Any]) -> UpstreamError:
        err = event.get("error") or {}
        if err.get("type") == "overloaded_error":
            return self._status_error(529, orjson.dumps(event), {})
        return UpstreamStatusError(
            f"upstream {self.name!r} failed mid-stream: {err.get('message') or err.get('type')}",
            provider=self.name,
            upstream_status=502,
            code="upstream_stream_error",
            kind="5xx",
        )


class _AnthropicEvents:
    """A Messages stream: each event translated to OpenAI chunks; whole only at `message_stop`."""

    __slots__ = ("adapter", "translator")
    end_marker = "message_stop"

    def __init__(self, adapter: AnthropicAdapter, translator: StreamTranslator) -> None:
        self.adapter = adapter
        self.translator = translator

    @property
    def complete(self) -> bool:
        return bool(self.translator.done)

    def feed(self, event: str, data: bytes) -> Iterable[dict[str, Any]]:
        adapter = self.adapter
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise UpstreamMalformed(
                f"upstream {adapter.name!r} sent a malformed stream line: {data[:200]!r}",
                provider=adapter.name,
                kind="malformed",
            )
        if parsed.get("type") == "error":
            raise adapter._stream_error(parsed)
        try:
            return self.translator.feed(parsed)
        except (AttributeError, TypeError, ValueError) as exc:
            raise adapter._malformed(f"{parsed.get('type')!r} event", exc) from None


def _native(call: Call) -> NativeRequest | None:
    """The client's own Messages body, while it still says what the policies let through (see NativeRequest)."""
    native = call.native
    if native is None or native.protocol != MESSAGES_PROTOCOL or not native.matches(call.body):
        return None
    return native


def _native_body(call: Call, native: NativeRequest) -> dict[str, Any]:
    body = dict(native.body)
    body["model"] = call.model or call.alias
    limit = call.body.get("max_tokens")
    if isinstance(limit, int) and limit != body.get("max_tokens"):
        body["max_tokens"] = limit  # clamped by a policy ([limits] max_tokens)
    return body


def _headers(
    call: Call, upstream: HttpUpstream, *, stream: bool = False, native: NativeRequest | None = None
) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    headers.update(correlation_headers(upstream, call.request_id))
    if call.traceparent:
        headers["traceparent"] = call.traceparent
    if native is not None:
        headers.update(native.headers)  # anthropic-beta: the features the client asked for
    return headers


def _error_type(content: bytes) -> str | None:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    return err.get("type") if isinstance(err, dict) else None


def _message(content: bytes) -> str:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content[:200].decode("utf-8", "replace")
    err = data.get("error") if isinstance(data, dict) else None
    return str(err.get("message") or "") if isinstance(err, dict) else ""
