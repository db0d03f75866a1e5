"""OpenAI chat <-> Anthropic Messages translation: request bodies, whole answers and the event stream.

Pure functions and one small stateful stream translator; the HTTP side lives in adapters/anthropic.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from llm_gateway.vocab.errors import InvalidRequest
from llm_gateway.vocab.types import Call

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}

# Anthropic's sampling temperature is 0..1 where OpenAI's is 0..2; larger values are clamped, not rejected.
_MAX_TEMPERATURE = 1.0


def to_messages_request(call: Call, default_max_tokens: int) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat body."""
    body = call.body
    if (body.get("n") or 1) > 1:
        raise InvalidRequest("n > 1 is not supported by Anthropic models", param="n")
    system, messages = _split_messages(body.get("messages") or [])
    request: dict[str, Any] = {
        "model": call.model or call.alias,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens,
        "messages": messages,
    }
    if system:
        request["system"] = system
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("temperature") is not None:
        request["temperature"] = min(float(body["temperature"]), _MAX_TEMPERATURE)
    if body.get("top_p") is not None:
        request["top_p"] = body["top_p"]
    if body.get("top_k") is not None:  # not OpenAI, but some clients send it for Anthropic models
        request["top_k"] = body["top_k"]
    if isinstance(body.get("user"), str):
        request["metadata"] = {"user_id": body["user"]}
    tools = [_tool(t, i) for i, t in enumerate(body.get("tools") or [])]
    if tools:
        request["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and tools:
        request["tool_choice"] = choice
    if call.stream:
        request["stream"] = True
    return request


def _split_messages(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """System/developer text goes to the top-level `system`; the rest becomes alternating user/assistant turns."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role in ("system", "developer"):
            text = _plain_text(m.get("content"), f"messages[{i}].content")
            if text:
                system.append(text)
        elif role == "user":
            _append(turns, "user", _content_blocks(m.get("content"), f"messages[{i}].content"))
        elif role == "assistant":
            blocks = _content_blocks(m.get("content"), f"messages[{i}].content")
            for j, tc in enumerate(m.get("tool_calls") or []):
                fn = tc.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": tc.get("id") or f"toolu_{i}_{j}",
                        "name": fn.get("name", ""),
                        "input": _arguments(fn.get("arguments"), f"messages[{i}].tool_calls[{j}].function.arguments"),
                    }
                )
            _append(turns, "assistant", blocks)
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id") or "",
                "content": _plain_text(m.get("content"), f"messages[{i}].content"),
            }
            _append(turns, "user", [result])
        else:
            raise InvalidRequest(f"role {role!r} cannot be sent to an Anthropic model", param=f"messages[{i}].role")
    return "\n\n".join(system), turns


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    # Anthropic wants strictly alternating turns: consecutive messages of one role become one turn
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _plain_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise InvalidRequest("expected a string or an array of content parts", param=where)


def _content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []  # Anthropic rejects empty text blocks
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest("expected a string or an array of content parts", param=where)
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            url = part.get("image_url", {}).get("url", "") if isinstance(part.get("image_url"), dict) else ""
            blocks.append(_image_block(url, f"{where}[{j}].image_url.url"))
        else:
            raise InvalidRequest(
                f"content part type {kind!r} cannot be sent to an Anthropic model", param=f"{where}[{j}].type"
            )
    return blocks


def _image_block(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0]
        if ";base64" not in header or not media_type.startswith("image/") or not data:
            raise InvalidRequest("expected a data URL like data:image/png;base64,...", param=where)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest("expected an http(s) URL or a base64 data URL", param=where)


def _arguments(arguments: Any, where: str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequest("expected a JSON object string", param=where) from None
    if not isinstance(value, dict):
        raise InvalidRequest("expected a JSON object string", param=where)
    return value


def _tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    if tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
        raise InvalidRequest("only function tools can be sent to an Anthropic model", param=f"tools[{i}].type")
    fn = tool["function"]
    out: dict[str, Any] = {
        "name": fn.get("name", ""),
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        result: dict[str, Any] | None = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        result = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        raise InvalidRequest("expected auto, none, required or a named function", param="tool_choice")
    if result is not None and parallel is False:
        result["disable_parallel_tool_use"] = True
    return result


# answers


def to_chat_completion(
    message: dict[str, Any], model: str, usage: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """An OpenAI chat.completion for a whole Messages API answer (`usage` translates its usage; to_usage if None)."""
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        # thinking and redacted_thinking blocks have no place in an OpenAI answer
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text) if text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(message.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": (usage or to_usage)(message.get("usage") or {}),
    }


def to_usage(usage: dict[str, Any], prompt_tokens: int | None = None) -> dict[str, Any]:
    # cached input tokens are still prompt tokens to an OpenAI client
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (
        prompt_tokens
        if prompt_tokens is not None
        else ((usage.get("input_tokens") or 0) + (usage.get("cache_creation_input_tokens") or 0) + cached)
    )
    completion = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def native_chat_completion(message: dict[str, Any], model: str) -> dict[str, Any]:
    """The chat completion for an answer to a client's own Messages request, carrying what chat has no field for.

    The upstream's message rides along as `anthropic` (thinking and signatures, citations, server-tool blocks,
    stop_sequence), and the usage keeps Anthropic's cache fields, so /v1/messages answers with all of it.
    """
    completion = to_chat_completion(message, model, native_usage)
    completion["anthropic"] = message
    return completion


_NATIVE_USAGE = frozenset({"server_tool_use", "service_tier", "cache_creation"})


def native_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """to_usage, plus Anthropic's cache fields and what else its usage says (server tools, service tier)."""
    read = usage.get("cache_read_input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + written + read
    completion = usage.get("output_tokens") or 0
    out = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
           "prompt_tokens_details": {"cached_tokens": read}, "cache_creation_input_tokens": written,
           "cache_read_input_tokens": read}
    if usage.keys() & _NATIVE_USAGE:
        out.update({name: usage[name] for name in _NATIVE_USAGE if usage.get(name) is not None})
    return out


class StreamTranslator:
    """Turns Messages API stream events into OpenAI chat.completion.chunk dicts, one event at a time."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = ""
        self.created = int(time.time())
        self.prompt_tokens = 0
        self.usage: dict[str, Any] = {}
        self.finish_reason = "stop"
        self.tool_index: dict[int, int] = {}  # Anthropic content block index -> OpenAI tool_calls index
        self.done = False
        self.role_sent = True  # until message_start

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        chunks = self._translate(event)
        if chunks and not self.role_sent:
            self.role_sent = True
            chunks.insert(0, self._chunk({"role": "assistant", "content": ""}))
        return chunks

    def _translate(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id", "")
            self.model = message.get("model") or self.model
            self.usage = dict(message.get("usage") or {})
            # the role chunk waits for the first content: an error event right after message_start (overloaded is
            # common there) then arrives before any byte reached the client, and the router can still fail over
            self.role_sent = False
            return []
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tool_index.setdefault(event.get("index", 0), len(self.tool_index))
                head = {
                    "index": index,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [head]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self.tool_index.get(event.get("index", 0))
                if index is None or not delta.get("partial_json"):
                    return []
                return [
                    self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta["partial_json"]}}]})
                ]
            return []  # thinking, signature and citation deltas have no OpenAI counterpart
        if kind == "message_delta":
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                self.finish_reason = FINISH_REASONS.get(reason, "stop")
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            return []
        if kind == "message_stop":
            self.done = True
            chunks = [self._chunk({}, self.finish_reason)]
            if self.include_usage:
                chunks.append({**self._base(), "choices": [], "usage": self._usage()})
            return chunks
        return []  # ping, content_block_stop; errors are raised by the adapter

    def _usage(self) -> dict[str, Any]:
        return to_usage(self.usage)

    def _base(self) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk = {
            **self._base(),
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk


# legacy completions, served through the Messages API


def completion_as_chat(call: Call) -> Call:
    """A /v1/completions call recast as one user turn, so Anthropic models can answer it."""
    from dataclasses import replace

    prompt = call.body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise InvalidRequest("Anthropic models take one string prompt", param="prompt")
        prompt = prompt[0]
    body = {k: v for k, v in call.body.items() if k not in ("prompt", "echo", "suffix", "logprobs", "best_of")}
    body["messages"] = [{"role": "user", "content": str(prompt or "")}]
    return replace(call, kind="chat", body=body)


def chat_to_text_completion(completion: dict[str, Any]) -> dict[str, Any]:
    choice = completion["choices"][0]
    return {
        "id": completion["id"],
        "object": "text_completion",
        "created": completion["created"],
        "model": completion["model"],
        "choices": [
            {
                "text": choice["message"].get("content") or "",
                "index": 0,
                "logprobs": None,
                "finish_reason": _completion_finish(choice["finish_reason"]),
            }
        ],
        "usage": completion["usage"],
    }


def chunk_to_text_completion(chunk: dict[str, Any]) -> dict[str, Any] | None:
    out = {"id": chunk["id"], "object": "text_completion", "created": chunk["created"], "model": chunk["model"]}
    if not chunk["choices"]:
        return {**out, "choices": [], "usage": chunk.get("usage")}
    choice = chunk["choices"][0]
    text = choice["delta"].get("content") or ""
    if not text and choice["finish_reason"] is None:
        return None
    finish = choice["finish_reason"] and _completion_finish(choice["finish_reason"])
    return {**out, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}


def _completion_finish(reason: str) -> str:
    return "stop" if reason == "tool_calls" else reason  # a text completion knows only stop, length, content_filter


class NativeStreamTranslator(StreamTranslator):
    """For a client's own Messages request: the chat chunks, plus the upstream events chat has no field for.

    Each such event rides in a chunk as `delta["anthropic"]` (thinking, signature and citation deltas; blocks other
    than text and tool_use, with their deltas and stop), the final chunk carries the stop reason and sequence as
    `anthropic`, and the usage keeps Anthropic's cache fields: wire/anthropic/events.py sends them on as they came.
    """

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self.native_blocks: set[int] = set()
        self.stop: dict[str, Any] = {}

    def _translate(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        index = event.get("index", 0)
        if kind == "content_block_start" and (event.get("content_block") or {}).get("type") not in ("text", "tool_use"):
            self.native_blocks.add(index)
            return [self._chunk({"anthropic": event})]
        if kind == "content_block_delta" and (
            index in self.native_blocks or (event.get("delta") or {}).get("type") == "citations_delta"
        ):
            return [self._chunk({"anthropic": event})]
        if kind == "content_block_stop" and index in self.native_blocks:
            return [self._chunk({"anthropic": event})]
        if kind == "message_delta":
            delta = event.get("delta") or {}
            self.stop = {"stop_reason": delta.get("stop_reason"), "stop_sequence": delta.get("stop_sequence")}
        chunks = super()._translate(event)
        if kind == "message_stop" and chunks:
            chunks[0]["anthropic"] = self.stop
        return chunks

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        first = not self.role_sent
        chunks = super().feed(event)
        if first and chunks:  # message_start's usage (the input tokens), for the client's own message_start
            chunks[0]["anthropic"] = {"usage": dict(self.usage)}
        return chunks

    def _usage(self) -> dict[str, Any]:
        return native_usage(self.usage)
