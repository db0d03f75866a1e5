"""A real Anthropic Messages API upstream for end-to-end tests; its behaviour is chosen by the model name.

It checks what the real API checks (x-api-key, anthropic-version, max_tokens, alternating roles, tool_result ids)
and answers with the exact wire shapes of the `anthropic` SDK types (Message, RawMessageStreamEvent).
model "claude-echo" (default): text echoing the last user text.  "claude-tools": a tool_use for the first tool
offered, then "tool said: <result>" once it gets the tool_result.  "overloaded": 529.  "fail-500": 500.
"context": 400 prompt is too long.  "error-200": 200 with an error body.  "malformed": bad JSON / a bad SSE line.
"stream-error": an error event mid-stream.  "reset": drops the connection mid-stream.  "slow": waits 30s.
"claude-think": a signed thinking block, then the echo, with cache usage.  "claude-search": a web search
(server_tool_use, web_search_tool_result) and a text block with a citation.
POST /v1/messages/count_tokens answers {"input_tokens": 4242} (on any model).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

API_KEY = "sk-ant-test"


class FakeAnthropic:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.dropped = 0  # "slow" requests whose client closed the connection (a gateway that gave up must)
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    async def messages(self, request: Request) -> Response:
        # the API takes x-api-key (what the gateway sends); the anthropic SDK 2.x sends the same key as a Bearer token
        if API_KEY not in (
            request.headers.get("x-api-key"),
            request.headers.get("authorization", "").removeprefix("Bearer "),
        ):
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        body = orjson.loads(await request.body())
        self.requests.append({"body": body, "headers": dict(request.headers)})
        problem = _invalid(body)
        if problem:
            return _error(400, "invalid_request_error", problem)
        model = body["model"]
        if model == "slow":  # until the client gives up, so stopping the server never waits on it
            for _ in range(300):
                if await request.is_disconnected():
                    self.dropped += 1
                    break
                await asyncio.sleep(0.05)
        failure = _failure(model, bool(body.get("stream")))
        if failure is not None:
            return failure
        message = _answer(body)
        if not body.get("stream"):
            return Response(orjson.dumps(message), media_type="application/json")
        return StreamingResponse(_events(message, model), media_type="text/event-stream")

    async def count_tokens(self, request: Request) -> Response:
        if request.headers.get("x-api-key") != API_KEY:
            return _error(401, "authentication_error", "invalid x-api-key")
        body = orjson.loads(await request.body())
        self.requests.append({"body": body, "headers": dict(request.headers), "path": "/v1/messages/count_tokens"})
        if "max_tokens" in body:
            return _error(400, "invalid_request_error", "max_tokens: Extra inputs are not permitted")
        return Response(orjson.dumps({"input_tokens": 4242}), media_type="application/json")

    async def models(self, request: Request) -> Response:
        data = [{"type": "model", "id": "claude-echo", "display_name": "Echo", "created_at": "2025-01-01T00:00:00Z"}]
        return Response(
            orjson.dumps({"data": data, "has_more": False, "first_id": "claude-echo", "last_id": "claude-echo"}),
            media_type="application/json",
        )


def _error(status: int, etype: str, message: str) -> Response:
    return Response(
        orjson.dumps({"type": "error", "error": {"type": etype, "message": message}}),
        status_code=status,
        media_type="application/json",
    )


def _invalid(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages") or []
    tool_ids: set[str] = set()
    for i, m in enumerate(messages):
        if m.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if i and messages[i - 1]["role"] == m["role"]:
            return "messages: roles must alternate between user and assistant"
        for block in m["content"] if isinstance(m["content"], list) else []:
            if block.get("type") == "text" and not block.get("text"):
                return f"messages.{i}: text content blocks must be non-empty"
            if block.get("type") == "tool_use":
                tool_ids.add(block["id"])
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in tool_ids:
                return f"messages.{i}: tool_result block(s) provided without a matching tool_use"
    return None


def _failure(model: str, stream: bool) -> Response | None:
    if model == "overloaded":
        return _error(529, "overloaded_error", "Overloaded")
    if model == "fail-500":
        return _error(500, "api_error", "Internal server error")
    if model == "context":
        return _error(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")
    if model == "error-200":
        return Response(
            b'{"type": "error", "error": {"type": "api_error", "message": "quota gone"}}', media_type="application/json"
        )
    if model == "malformed" and not stream:
        return Response(b'{"id": "msg_x", "content": [', media_type="application/json")
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]
    results = (
        [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
        if isinstance(last["content"], list)
        else []
    )
    if results:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": "tool said: " + _text(results[0]["content"])}]
        stop = "end_turn"
    elif (
        body["model"] == "claude-tools" and body.get("tools") and (body.get("tool_choice") or {}).get("type") != "none"
    ):
        tool = body["tools"][0]
        blocks = [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01", "name": tool["name"], "input": {"city": "Paris"}},
        ]
        stop = "tool_use"
    else:
        blocks = [{"type": "text", "text": "echo: " + _text(last["content"])}]
        stop = "end_turn"
    usage = {"input_tokens": 21, "output_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    if body["model"] == "claude-think":
        blocks.insert(0, {"type": "thinking", "thinking": "Let me think it over.", "signature": "sig-abc123"})
        usage.update(cache_creation_input_tokens=100, cache_read_input_tokens=2000)
    elif body["model"] == "claude-search":
        blocks = SEARCH_BLOCKS
    return {
        "id": "msg_01fake",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


CITATION = {"type": "web_search_result_location", "url": "https://example.com/paris", "title": "Paris",
            "encrypted_index": "enc-1", "cited_text": "Paris is the capital of France."}
SEARCH_BLOCKS: list[dict[str, Any]] = [
    {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "capital of France"}},
    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [
        {"type": "web_search_result", "url": "https://example.com/paris", "title": "Paris",
         "encrypted_content": "enc-content", "page_age": None}]},
    {"type": "text", "text": "The capital is Paris.", "citations": [CITATION]},
]


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def _events(message: dict[str, Any], model: str) -> AsyncIterator[bytes]:
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    yield _sse({"type": "message_start", "message": start})
    yield _sse({"type": "ping"})
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            head = {"type": "thinking", "thinking": "", "signature": ""}
            yield _sse({"type": "content_block_start", "index": index, "content_block": head})
            delta = {"type": "thinking_delta", "thinking": block["thinking"]}
            yield _sse({"type": "content_block_delta", "index": index, "delta": delta})
            delta = {"type": "signature_delta", "signature": block["signature"]}
            yield _sse({"type": "content_block_delta", "index": index, "delta": delta})
        elif block["type"] == "web_search_tool_result":
            yield _sse({"type": "content_block_start", "index": index, "content_block": block})
        elif block["type"] == "server_tool_use":
            yield _sse({"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}})
            delta = {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
            yield _sse({"type": "content_block_delta", "index": index, "delta": delta})
        elif block["type"] == "text" and block.get("citations"):
            head = {"type": "text", "text": "", "citations": []}
            yield _sse({"type": "content_block_start", "index": index, "content_block": head})
            for citation in block["citations"]:
                delta = {"type": "citations_delta", "citation": citation}
                yield _sse({"type": "content_block_delta", "index": index, "delta": delta})
            yield _sse({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta",
                                                                                 "text": block["text"]}})
        elif block["type"] == "text":
            yield _sse({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            text = block["text"]
            half = len(text) // 2
            yield _sse(
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text[:half]}}
            )
            if model == "reset":
                await asyncio.sleep(0.05)
                raise ConnectionResetError("upstream dropped the connection")
            if model == "malformed":
                yield b"event: content_block_delta\ndata: {not json\n\n"
                return
            if model == "stream-error":
                yield _sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                return
            yield _sse(
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text[half:]}}
            )
        else:
            head = {**block, "input": {}}
            yield _sse({"type": "content_block_start", "index": index, "content_block": head})
            arguments = orjson.dumps(block["input"]).decode()
            for piece in (arguments[:5], arguments[5:]):
                yield _sse(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    }
                )
        yield _sse({"type": "content_block_stop", "index": index})
    yield _sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {**message["usage"]},
        }
    )
    yield _sse({"type": "message_stop"})
