"""Anthropic's Messages API behind the OpenAI shape (x-api-key, anthropic-version); translation in anthropic_format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from llm_gateway.adapters.anthropic_format import (
    StreamTranslator,
    chat_to_text_completion,
    chunk_to_text_completion,
    completion_as_chat,
    to_chat_completion,
    to_messages_request,
)
from llm_gateway.adapters.http import (
    CONTEXT_MARKERS,
    HttpUpstream,
    correlation_headers,
    iter_sse,
    make_client,
    parse_json,
    status_error,
    transport_error,
)
from llm_gateway.vocab.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamMalformed,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from llm_gateway.vocab.types import Call

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
        request = to_messages_request(call, self.default_max_tokens)
        request.pop("stream", None)
        content = orjson.dumps(request)
        try:
            async with asyncio.timeout(self.upstream.total_timeout):
                headers = _headers(call, self.upstream)
                response = await self.client.post(self.prefix + "/messages", content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        except TimeoutError:
            raise transport_error(httpx.ReadTimeout("total timeout"), self.name) from None
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.content, response.headers)
        data = parse_json(response.content, self.name)
        if data.get("type") == "error" or ("error" in data and "content" not in data):
            raise self._status_error(502, response.content, response.headers)  # a 200 carrying an error
        if not isinstance(data.get("content"), list):
            raise UpstreamMalformed(
                f"upstream {self.name!r} sent a message without content", provider=self.name, kind="malformed"
            )
        try:
            return to_chat_completion(data, request["model"])
        except (
            AttributeError,
            TypeError,
            ValueError,
        ) as exc:  # valid JSON, wrong shape (a block that is not an object...)
            raise self._malformed("message", exc) from None

    def stream_chat(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        return self._stream(call)

    async def complete(self, call: Call) -> dict[str, Any]:
        return chat_to_text_completion(await self.chat(completion_as_chat(call)))

    async def stream_complete(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        chunks = self._stream(completion_as_chat(call))
        try:
            async for chunk in chunks:
                out = chunk_to_text_completion(chunk)
                if out is not None:
                    yield out
        finally:
            await chunks.aclose()

    async def embed(self, call: Call) -> dict[str, Any]:
        raise InvalidRequest(f"provider {self.name!r} (Anthropic) does not serve embeddings", param="model")

    async def list_models(self) -> list[dict[str, Any]]:
        try:
            response = await self.client.get(self.prefix + "/models")
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.content, response.headers)
        return [
            {"id": m.get("id", ""), "object": "model", "created": 0, "owned_by": "anthropic"}
            for m in parse_json(response.content, self.name).get("data") or []
        ]

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _stream(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        request = to_messages_request(call, self.default_max_tokens)
        request["stream"] = True
        include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
        translator = StreamTranslator(request["model"], include_usage)
        http_request = self.client.build_request(
            "POST",
            self.prefix + "/messages",
            content=orjson.dumps(request),
            headers=_headers(call, self.upstream, stream=True),
        )
        try:
            response = await self.client.send(http_request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        try:
            if response.status_code >= 400:
                raise self._status_error(response.status_code, await response.aread(), response.headers)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                body = await response.aread()
                data = parse_json(body, self.name)
                if data.get("type") == "error" or "error" in data:
                    raise self._status_error(502, body, response.headers)
                raise UpstreamMalformed(
                    f"upstream {self.name!r} answered a stream request without an event stream",
                    provider=self.name,
                    kind="malformed",
                )
            async for _event, data in iter_sse(response):
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError:
                    event = None
                if not isinstance(event, dict):
                    raise UpstreamMalformed(
                        f"upstream {self.name!r} sent a malformed stream line: {data[:200]!r}",
                        provider=self.name,
                        kind="malformed",
                    )
                if event.get("type") == "error":
                    raise self._stream_error(event)
                try:
                    chunks = translator.feed(event)
                except (AttributeError, TypeError, ValueError) as exc:
                    raise self._malformed(f"{event.get('type')!r} event", exc) from None
                for chunk in chunks:
                    yield chunk
                if translator.done:
                    return
            raise UpstreamError(
                f"upstream {self.name!r} ended the stream before message_stop", provider=self.name, kind="malformed"
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        finally:
            await response.aclose()

    def _status_error(self, status: int, content: bytes, headers: httpx.Headers) -> UpstreamError:
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
            return self._status_error(529, orjson.dumps(event), httpx.Headers())
        return UpstreamStatusError(
            f"upstream {self.name!r} failed mid-stream: {err.get('message') or err.get('type')}",
            provider=self.name,
            upstream_status=502,
            code="upstream_stream_error",
            kind="5xx",
        )


def _headers(call: Call, upstream: HttpUpstream, *, stream: bool = False) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    headers.update(correlation_headers(upstream, call.request_id))
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
