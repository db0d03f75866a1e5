"""A deterministic offline backend for demos and tests: the same request always gets the same answer.

Replies echo the last user message with real token counts; a tool call is made when the request offers tools
and the prompt asks for one (or tool_choice requires it); embeddings are seeded from the input text.
`created` is a fixed instant so whole responses compare equal across runs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import re
import struct
from collections.abc import AsyncIterator
from typing import Any

import orjson

from llm_gateway.adapters.mock_moderation import moderation
from llm_gateway.vocab.tokens import count_messages, count_prompt, count_text, encoding, message_text
from llm_gateway.vocab.types import Call

CREATED = 1735689600  # 2025-01-01T00:00:00Z
FINGERPRINT = "fp_mock"
_TOOL_WORDS = ("call", "use", "tool", "function", "weather", "lookup", "look up", "search")


def _digest(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


class MockAdapter:
    def __init__(
        self,
        name: str = "mock",
        *,
        embedding_dim: int = 256,
        stream_delay_ms: int = 0,
        deny_patterns: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.embedding_dim = embedding_dim
        self.deny_patterns = tuple(re.compile(p, re.IGNORECASE) for p in deny_patterns)  # flagged by moderate()
        self.stream_delay = stream_delay_ms / 1000  # pause between streamed chunks (slow-stream demos, tests)

    # chat

    async def chat(self, call: Call) -> dict[str, Any]:
        body = call.body
        messages = body.get("messages") or []
        prompt_tokens = count_messages(messages)
        choices, completion_tokens = [], 0
        for index in range(_n(body)):
            message, finish, tokens = self._reply(call, index)
            choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish})
            completion_tokens += tokens
        return {
            "id": "chatcmpl-" + _digest(call.kind, body.get("messages"), body.get("tools"))[:24],
            "object": "chat.completion",
            "created": CREATED,
            "model": call.model or call.alias,
            "choices": choices,
            "usage": _usage(prompt_tokens, completion_tokens),
            "system_fingerprint": FINGERPRINT,
        }

    def stream_chat(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        return self._paced(self._chat_chunks(call))

    def stream_complete(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        return self._paced(self._completion_chunks(call))

    async def _paced(self, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        first = True
        async for chunk in chunks:
            if self.stream_delay and not first:
                await asyncio.sleep(self.stream_delay)
            first = False
            yield chunk

    async def _chat_chunks(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        whole = await self.chat(call)
        base = {
            "id": whole["id"],
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": whole["model"],
            "system_fingerprint": FINGERPRINT,
        }
        include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
        extra = {"usage": None} if include_usage else {}
        for choice in whole["choices"]:
            index, message = choice["index"], choice["message"]
            yield {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
                **extra,
            }
            for piece in _pieces(message.get("content") or ""):
                yield {
                    **base,
                    "choices": [{"index": index, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}],
                    **extra,
                }
            for i, tc in enumerate(message.get("tool_calls") or ()):
                head = {
                    "index": i,
                    "id": tc["id"],
                    "type": "function",
                    "function": {"name": tc["function"]["name"], "arguments": ""},
                }
                yield {
                    **base,
                    "choices": [
                        {"index": index, "delta": {"tool_calls": [head]}, "logprobs": None, "finish_reason": None}
                    ],
                    **extra,
                }
                for piece in _pieces(tc["function"]["arguments"], size=8):
                    delta = {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
                    yield {
                        **base,
                        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}],
                        **extra,
                    }
            yield {
                **base,
                "choices": [{"index": index, "delta": {}, "logprobs": None, "finish_reason": choice["finish_reason"]}],
                **extra,
            }
        if include_usage:
            yield {**base, "choices": [], "usage": whole["usage"]}

    def _reply(self, call: Call, index: int) -> tuple[dict[str, Any], str, int]:
        body = call.body
        messages = body.get("messages") or []
        tool = _wanted_tool(body, messages)
        if tool is not None:
            name = tool.get("name", "tool")
            arguments = orjson.dumps(_example_arguments(tool.get("parameters") or {}, messages)).decode()
            call_id = "call_" + _digest(messages, name, index)[:24]
            message = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
            }
            return message, "tool_calls", count_text(name) + count_text(arguments)
        text = _structured_reply(body, messages) or _reply_text(messages, index)
        text, finish = _truncate(text, body)
        return {"role": "assistant", "content": text, "refusal": None}, finish, count_text(text)

    # completions

    async def complete(self, call: Call) -> dict[str, Any]:
        body = call.body
        prompts = body.get("prompt")
        prompts = prompts if isinstance(prompts, list) and prompts and not isinstance(prompts[0], int) else [prompts]
        choices, completion_tokens, index = [], 0, 0
        for prompt in prompts:
            text = (
                prompt
                if isinstance(prompt, str)
                else encoding().decode([t for t in prompt or [] if isinstance(t, int)])
            )
            for _ in range(_n(body)):
                reply, finish = _truncate(f" Mock completion of: {text[-200:]}", body, default_max=16)
                if body.get("echo"):
                    reply = text + reply
                choices.append({"text": reply, "index": index, "logprobs": None, "finish_reason": finish})
                completion_tokens += count_text(reply)
                index += 1
        return {
            "id": "cmpl-" + _digest(call.kind, prompts)[:24],
            "object": "text_completion",
            "created": CREATED,
            "model": call.model or call.alias,
            "choices": choices,
            "usage": _usage(count_prompt(body.get("prompt")), completion_tokens),
            "system_fingerprint": FINGERPRINT,
        }

    async def _completion_chunks(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        whole = await self.complete(call)
        base = {"id": whole["id"], "object": "text_completion", "created": CREATED, "model": whole["model"]}
        for choice in whole["choices"]:
            for piece in _pieces(choice["text"]):
                yield {
                    **base,
                    "choices": [{"text": piece, "index": choice["index"], "logprobs": None, "finish_reason": None}],
                }
            yield {
                **base,
                "choices": [
                    {"text": "", "index": choice["index"], "logprobs": None, "finish_reason": choice["finish_reason"]}
                ],
            }
        if (call.body.get("stream_options") or {}).get("include_usage"):
            yield {**base, "choices": [], "usage": whole["usage"]}

    # embeddings

    async def embed(self, call: Call) -> dict[str, Any]:
        body = call.body
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dim = body.get("dimensions") or self.embedding_dim
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, item in enumerate(inputs or []):
            vector = _vector(item, dim)
            value: Any = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = count_prompt(body.get("input"))
        return {
            "object": "list",
            "data": data,
            "model": call.model or call.alias,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    # moderations

    async def moderate(self, call: Call) -> dict[str, Any]:
        return moderation(call.body, call.model or call.alias, self.deny_patterns)

    async def list_models(self) -> list[dict[str, Any]]:
        return [{"id": "mock", "object": "model", "created": CREATED, "owned_by": "llm-gateway"}]

    async def aclose(self) -> None:
        return None


def _n(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and n > 0 else 1


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _reply_text(messages: list[dict[str, Any]], index: int) -> str:
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"The tool returned: {message_text(last.get('content'))}"
    user = next((m for m in reversed(messages) if m.get("role") == "user"), last)
    said = message_text(user.get("content")).strip() or "(nothing)"
    suffix = f" (choice {index})" if index else ""
    return f"Mock reply to: {said}{suffix}"


def _structured_reply(body: dict[str, Any], messages: list[dict[str, Any]]) -> str | None:
    """JSON content for response_format json_schema / json_object, so structured-output clients can parse it."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        return orjson.dumps(_example_arguments(schema, messages)).decode()
    if fmt.get("type") == "json_object":
        return orjson.dumps({"reply": _reply_text(messages, 0)}).decode()
    return None


def _truncate(text: str, body: dict[str, Any], default_max: int | None = None) -> tuple[str, str]:
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    limit = default_max if limit is None else limit
    if isinstance(limit, int) and limit >= 0:  # 0 answers nothing (with echo: just the prompt, as OpenAI scores it)
        tokens = encoding().encode(text, disallowed_special=())
        if len(tokens) > limit:
            return encoding().decode(tokens[:limit]), "length"
    return text, "stop"


def _pieces(text: str, size: int = 4) -> list[str]:
    """Split text into word-ish pieces so a stream has several chunks; joined they are the text."""
    words = text.split(" ")
    out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [p if i == 0 else " " + p for i, p in enumerate(out)] if text else []


def _wanted_tool(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = [
        t.get("function") or {}
        for t in body.get("tools") or ()
        if isinstance(t, dict) and t.get("type", "function") == "function"
    ]
    if not tools or (messages and messages[-1].get("role") == "tool"):
        return None
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == name), tools[0])
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    text = message_text(last_user.get("content")).lower()
    named = next((t for t in tools if str(t.get("name", "")).lower() in text), None)
    if named is not None:
        return named
    if choice == "required" or any(w in text for w in _TOOL_WORDS):
        return tools[0]
    return None


def _example_arguments(schema: dict[str, Any], messages: list[dict[str, Any]]) -> Any:
    """A deterministic value that satisfies a JSON schema (tool parameters, or a response_format json_schema)."""
    rng = random.Random(_digest(messages, schema))
    return _example_value(schema, schema.get("$defs") or schema.get("definitions") or {}, rng, "value", 0)


def _example_value(schema: dict[str, Any], defs: dict[str, Any], rng: random.Random, name: str, depth: int) -> Any:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs and depth < 8:
        return _example_value(defs[ref.rsplit("/", 1)[-1]], defs, rng, name, depth + 1)
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(combinator) or () if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return _example_value(options[0], defs, rng, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        return {key: _example_value(props.get(key) or {}, defs, rng, key, depth + 1) for key in required if depth < 8}
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [_example_value(items, defs, rng, name, depth + 1)] if depth < 8 and schema.get("minItems", 1) else []
    if kind == "integer":
        return rng.randint(1, 100)
    if kind == "number":
        return round(rng.uniform(0, 100), 2)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"example {name}"


def _vector(item: Any, dim: int) -> list[float]:
    rng = random.Random(_digest(item))
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]
