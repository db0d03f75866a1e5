"""Any OpenAI-compatible upstream (OpenAI, vLLM, Ollama's /v1, llama.cpp server, Groq, Together ...).

Bodies pass through untouched but for the upstream model name; the provider's key is sent, never the client's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from llm_gateway.adapters.http import (
    CONTEXT_MARKERS,
    HttpUpstream,
    correlation_headers,
    fetch_json,
    make_client,
    status_error,
    stream_sse,
)
from llm_gateway.vocab.errors import UpstreamError, UpstreamMalformed, UpstreamStatusError
from llm_gateway.vocab.types import Call


class OpenAIAdapter:
    def __init__(self, upstream: HttpUpstream, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = upstream.name
        self.upstream = upstream
        headers = dict(upstream.headers)
        if upstream.api_key:
            headers["authorization"] = f"Bearer {upstream.api_key}"
        self.client = make_client(upstream, headers, transport)
        # OpenAI's own API reads max_completion_tokens; other OpenAI-compatible servers (llama-cpp-python's, vLLM's
        # older ones, LiteLLM's passthroughs) read only max_tokens: they get both, or a limit is silently ignored
        self._also_max_tokens = "api.openai.com" not in upstream.base_url

    async def chat(self, call: Call) -> dict[str, Any]:
        return await self._post("/chat/completions", call)

    def stream_chat(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        return self._stream("/chat/completions", call)

    async def complete(self, call: Call) -> dict[str, Any]:
        return await self._post("/completions", call)

    def stream_complete(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        return self._stream("/completions", call)

    async def embed(self, call: Call) -> dict[str, Any]:
        return await self._post("/embeddings", call)

    async def moderate(self, call: Call) -> dict[str, Any]:
        return await self._post("/moderations", call)

    async def list_models(self) -> list[dict[str, Any]]:
        data, _ = await fetch_json(self.client, self.upstream, "GET", "/models", self._status_error)
        return list(data.get("data") or [])

    async def aclose(self) -> None:
        await self.client.aclose()

    def _body(self, call: Call) -> dict[str, Any]:
        body = call.upstream_body()
        if self._also_max_tokens and body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
            body["max_tokens"] = body["max_completion_tokens"]
        return body

    def _status_error(self, status: int, content: bytes, headers: Mapping[str, str]) -> UpstreamError:
        return status_error(self.name, status, content, headers, context_markers=CONTEXT_MARKERS)

    async def _post(self, path: str, call: Call) -> dict[str, Any]:
        data, body = await fetch_json(
            self.client, self.upstream, "POST", path, self._status_error,
            content=orjson.dumps(self._body(call)), headers=_headers_for(call, self.upstream),
        )
        if "error" in data and "choices" not in data and "data" not in data:
            raise status_error(self.name, 502, body, {})  # some servers answer 200 with an error body
        return data

    def _stream(self, path: str, call: Call) -> AsyncIterator[dict[str, Any]]:
        return stream_sse(
            self.client, self.upstream, path, self._status_error, _OpenAIEvents(self.name),
            content=orjson.dumps(self._body(call)), headers=_headers_for(call, self.upstream, stream=True),
        )


class _OpenAIEvents:
    """An OpenAI-compatible stream: each event one chunk as it is; whole only at `data: [DONE]`."""

    __slots__ = ("complete", "provider")
    end_marker = "[DONE]"

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.complete = False

    def feed(self, event: str, data: bytes) -> tuple[dict[str, Any], ...]:
        if data == b"[DONE]":
            self.complete = True
            return ()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamMalformed(
                f"upstream {self.provider!r} sent a malformed stream line: {data[:200]!r}",
                provider=self.provider,
                kind="malformed",
            ) from None
        if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
            raise _stream_error(self.provider, chunk)
        return (chunk,)


def _headers_for(call: Call, upstream: HttpUpstream, *, stream: bool = False) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    headers.update(correlation_headers(upstream, call.request_id))
    if call.traceparent:
        headers["traceparent"] = call.traceparent
    return headers


def _stream_error(provider: str, chunk: dict[str, Any]) -> UpstreamError:
    err = chunk.get("error")
    message = err.get("message") if isinstance(err, dict) else str(err)
    code = err.get("code") if isinstance(err, dict) else None
    return UpstreamStatusError(
        f"upstream {provider!r} failed mid-stream: {message}",
        provider=provider,
        upstream_status=502,
        code=str(code) if code else "upstream_stream_error",
        kind="5xx",
    )
