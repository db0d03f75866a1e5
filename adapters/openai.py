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
    relay_sse,
    status_error,
    stream_sse,
)
from llm_gateway.adapters.openai_frames import FrameCutter, OpenAIEvents
from llm_gateway.vocab.errors import UpstreamError
from llm_gateway.vocab.types import Call, Frames


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

    def stream_chat(self, call: Call) -> AsyncIterator[dict[str, Any] | Frames]:
        return self._stream("/chat/completions", call)

    async def complete(self, call: Call) -> dict[str, Any]:
        return await self._post("/completions", call)

    def stream_complete(self, call: Call) -> AsyncIterator[dict[str, Any] | Frames]:
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

    def _stream(self, path: str, call: Call) -> AsyncIterator[Any]:
        """Parsed chunks, or (call.frames: nothing downstream reads them) the upstream's own events as Frames."""
        content = orjson.dumps(self._body(call))
        headers = _headers_for(call, self.upstream, stream=True)
        if call.frames:
            cutter = FrameCutter(self.name, self.upstream.max_event_bytes)
            return relay_sse(self.client, self.upstream, path, self._status_error, cutter,
                             content=content, headers=headers)
        return stream_sse(self.client, self.upstream, path, self._status_error, OpenAIEvents(self.name),
                          content=content, headers=headers)


def _headers_for(call: Call, upstream: HttpUpstream, *, stream: bool = False) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    headers.update(correlation_headers(upstream, call.request_id))
    if call.traceparent:
        headers["traceparent"] = call.traceparent
    return headers
