"""Any OpenAI-compatible upstream (OpenAI, vLLM, Ollama's /v1, llama.cpp server, Groq, Together ...).

Bodies pass through untouched but for the upstream model name; the provider's key is sent, never the client's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

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
        try:
            response = await self.client.get("/models")
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        if response.status_code >= 400:
            raise status_error(self.name, response.status_code, response.content, response.headers)
        return list(parse_json(response.content, self.name).get("data") or [])

    async def aclose(self) -> None:
        await self.client.aclose()

    def _body(self, call: Call) -> dict[str, Any]:
        body = call.upstream_body()
        if self._also_max_tokens and body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
            body["max_tokens"] = body["max_completion_tokens"]
        return body

    async def _post(self, path: str, call: Call) -> dict[str, Any]:
        content = orjson.dumps(self._body(call))
        try:
            async with asyncio.timeout(self.upstream.total_timeout):
                response = await self.client.post(path, content=content, headers=_headers_for(call, self.upstream))
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        except TimeoutError:
            raise transport_error(httpx.ReadTimeout("total timeout"), self.name) from None
        if response.status_code >= 400:
            raise status_error(
                self.name, response.status_code, response.content, response.headers, context_markers=CONTEXT_MARKERS
            )
        data = parse_json(response.content, self.name)
        if "error" in data and "choices" not in data and "data" not in data:
            # some servers answer 200 with an error body
            raise status_error(self.name, 502, response.content, response.headers)
        return data

    async def _stream(self, path: str, call: Call) -> AsyncIterator[dict[str, Any]]:
        content = orjson.dumps(self._body(call))
        headers = _headers_for(call, self.upstream, stream=True)
        request = self.client.build_request("POST", path, content=content, headers=headers)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        try:
            if response.status_code >= 400:
                body = await response.aread()
                raise status_error(
                    self.name, response.status_code, body, response.headers, context_markers=CONTEXT_MARKERS
                )
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                # a server that ignored "stream": answer whole; relay it as a body-shaped error or a parsed chunk
                body = await response.aread()
                data = parse_json(body, self.name)
                if "error" in data:
                    raise status_error(self.name, 502, body, response.headers)
                raise UpstreamMalformed(
                    f"upstream {self.name!r} answered a stream request without an event stream",
                    provider=self.name,
                    kind="malformed",
                )
            async for _event, data in iter_sse(response):
                if data == b"[DONE]":
                    return
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamMalformed(
                        f"upstream {self.name!r} sent a malformed stream line: {data[:200]!r}",
                        provider=self.name,
                        kind="malformed",
                    ) from None
                if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                    raise _stream_error(self.name, chunk)
                yield chunk
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        finally:
            await response.aclose()


def _headers_for(call: Call, upstream: HttpUpstream, *, stream: bool = False) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    headers.update(correlation_headers(upstream, call.request_id))
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
