"""A real OpenAI-compatible upstream for end-to-end tests. Its behaviour is chosen by the upstream model name.

model "echo" (default): a chat completion whose content echoes the last user message; streams in 3 chunks.
model "tools": asks for the tool it was offered; answers the tool result when it gets one.
model "fail-500" / "fail-503" / "fail-429" / "fail-400" / "context": error statuses (429 with retry-after: 0).
model "error-200": 200 with an error body.  "malformed": invalid JSON / a malformed SSE line.
model "slow": waits 30s (less if the client leaves).  "reset": streams two chunks, then drops the connection.
Every request's body and headers are kept in `requests` for assertions.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/moderations", self.moderations, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    async def moderations(self, request: Request) -> Response:
        """OpenAI's moderation shape, every category unflagged, scores fixed; "flag" in the text flags harassment."""
        body = orjson.loads(await request.body())
        self.requests.append({"body": body, "headers": dict(request.headers), "path": request.url.path})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        names = ["harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
                 "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
                 "violence/graphic"]
        results = [
            {
                "flagged": "flag" in str(text),
                "categories": {n: n == "harassment" and "flag" in str(text) for n in names},
                "category_scores": {n: 0.000123 for n in names},
                "category_applied_input_types": {n: ["text"] for n in names},
            }
            for text in inputs
        ]
        return Response(orjson.dumps({"id": "modr-upstream-1", "model": body["model"], "results": results}),
                        media_type="application/json")

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append({"body": body, "headers": dict(request.headers), "path": request.url.path})
        model = body.get("model", "echo")
        failure = await _failure(model, request)
        if failure is not None:
            return failure
        if model == "malformed" and not body.get("stream"):
            return Response(b'{"id": "chatcmpl-x", "choices": [', media_type="application/json")
        message, finish = _answer(body)
        completion = {
            "id": "chatcmpl-upstream-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            "system_fingerprint": "fp_upstream",
        }
        if not body.get("stream"):
            return Response(orjson.dumps(completion), media_type="application/json")
        return StreamingResponse(_chunks(completion, body, model), media_type="text/event-stream")

    async def completions(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append({"body": body, "headers": dict(request.headers), "path": request.url.path})
        failure = await _failure(body.get("model", ""))
        if failure is not None:
            return failure
        return Response(
            orjson.dumps(
                {
                    "id": "cmpl-upstream-1",
                    "object": "text_completion",
                    "created": 1700000000,
                    "model": body["model"],
                    "choices": [{"text": " completed", "index": 0, "logprobs": None, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
                }
            ),
            media_type="application/json",
        )

    async def embeddings(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append({"body": body, "headers": dict(request.headers), "path": request.url.path})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return Response(
            orjson.dumps(
                {
                    "object": "list",
                    "model": body["model"],
                    "data": [
                        {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))
                    ],
                    "usage": {"prompt_tokens": 3, "total_tokens": 3},
                }
            ),
            media_type="application/json",
        )

    async def models(self, request: Request) -> Response:
        return Response(
            orjson.dumps(
                {"object": "list", "data": [{"id": "echo", "object": "model", "created": 0, "owned_by": "x"}]}
            ),
            media_type="application/json",
        )


def _error(
    status: int,
    message: str,
    etype: str = "invalid_request_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


async def _failure(model: str, request: Request | None = None) -> Response | None:
    if model == "fail-500":
        return _error(500, "upstream exploded", "server_error")
    if model == "fail-503":
        return _error(503, "upstream overloaded", "server_error")
    if model == "fail-429":
        return _error(429, "slow down", "rate_limit_error", "rate_limit_exceeded", {"retry-after": "0"})
    if model == "fail-400":
        return _error(400, "bad parameter foo", code="invalid_value")
    if model == "context":
        return _error(400, "This model's maximum context length is 10 tokens.", code="context_length_exceeded")
    if model == "error-200":
        return Response(b'{"error": {"message": "quota gone", "type": "server_error"}}', media_type="application/json")
    if model == "slow":  # 30s, or until the client gives up (so stopping the server never waits on it)
        for _ in range(600):
            if request is not None and await request.is_disconnected():
                break
            await asyncio.sleep(0.05)
    return None


def _answer(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if body.get("model") == "tools" and body.get("tools") and last.get("role") != "tool":
        name = body["tools"][0]["function"]["name"]
        call = {"id": "call_up_1", "type": "function", "function": {"name": name, "arguments": '{"city": "Paris"}'}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    text = last.get("content") if isinstance(last.get("content"), str) else ""
    prefix = "tool said: " if last.get("role") == "tool" else "echo: "
    return {"role": "assistant", "content": prefix + text}, "stop"


async def _chunks(completion: dict[str, Any], body: dict[str, Any], model: str):
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    message = completion["choices"][0]["message"]

    def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    yield frame({"role": "assistant", "content": ""})
    if model == "malformed":
        yield b"data: {not json\n\n"
        return
    if message.get("tool_calls"):
        tc = message["tool_calls"][0]
        yield frame(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": tc["id"],
                        "type": "function",
                        "function": {"name": tc["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        yield frame({"tool_calls": [{"index": 0, "function": {"arguments": tc["function"]["arguments"]}}]})
    else:
        text = message["content"]
        half = len(text) // 2
        yield frame({"content": text[:half]})
        if model == "reset":
            await asyncio.sleep(0.05)
            raise ConnectionResetError("upstream dropped the connection")
        yield frame({"content": text[half:]})
    yield frame({}, completion["choices"][0]["finish_reason"])
    if (body.get("stream_options") or {}).get("include_usage"):
        yield b"data: " + orjson.dumps({**base, "choices": [], "usage": completion["usage"]}) + b"\n\n"
    yield b"data: [DONE]\n\n"
