"""What the local model reads and what the client gets back: chat prompts, forced tool calls, OpenAI-shaped answers.

Pure functions over plain data (no llama_cpp import), so they are tested without a model.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from llm_gateway.vocab.errors import InvalidRequest, UpstreamMalformed
from llm_gateway.vocab.types import Call


def template_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    """Messages as a chat template expects them: string content only (templates concatenate it).

    An assistant turn that called tools reads as the JSON call it made, and a tool result keeps the `tool` role,
    so a round trip renders as a transcript the model can follow.
    """
    out: list[dict[str, str]] = []
    for m in body.get("messages") or []:
        role = m.get("role") or "user"
        text = _text(m.get("content"))
        if role == "developer":
            role = "system"
        if role == "assistant" and m.get("tool_calls"):
            calls = [
                {"name": tc["function"]["name"], "arguments": _loads(tc["function"].get("arguments"))}
                for tc in m["tool_calls"]
                if isinstance(tc.get("function"), dict)
            ]
            text = (text + "\n" if text else "") + orjson.dumps(calls[0] if len(calls) == 1 else calls).decode()
        out.append({"role": role, "content": text})
    return out


def transcript(messages: list[dict[str, str]]) -> str:
    """A plain role transcript, for base models whose GGUF carries no chat template."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def forced_tool_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a forced tool call must match, or None when the model may answer in text.

    A small local model cannot be trusted to decide on a tool by itself, so a call is made (grammar-constrained)
    only when tool_choice is "required" or names a function; under "auto" the model answers in text.
    """
    tools = [t["function"] for t in body.get("tools") or [] if isinstance(t.get("function"), dict)]
    choice = body.get("tool_choice")
    if not tools or choice in (None, "auto", "none"):
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        tools = [t for t in tools if t.get("name") == name]
        if not tools:
            raise InvalidRequest(f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": t["name"]}, "arguments": t.get("parameters") or {"type": "object"}},
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def tool_instruction(body: dict[str, Any]) -> dict[str, str]:
    names = ", ".join(t["function"]["name"] for t in body.get("tools") or [] if isinstance(t.get("function"), dict))
    specs = orjson.dumps(
        [t["function"] for t in body.get("tools") or [] if isinstance(t.get("function"), dict)]
    ).decode()
    return {
        "role": "system",
        "content": f"Call one of these tools ({names}) by answering with JSON "
        f'{{"name": ..., "arguments": {{...}}}}. Tools: {specs}',
    }


def tool_call_from(text: str, provider: str) -> dict[str, Any]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        # cut short by max_tokens, most likely
        raise UpstreamMalformed(
            f"the local model {provider!r} produced no complete tool call (raise max_tokens): {text[:200]!r}",
            provider=provider,
            kind="malformed",
        )
    return {
        "id": "call_" + uuid.uuid4().hex[:24],
        "type": "function",
        "function": {"name": data["name"], "arguments": orjson.dumps(data.get("arguments") or {}).decode()},
    }


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_completion(
    call: Call, text: str, finish: str, tool_call: dict[str, Any] | None, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if tool_call else text, "refusal": None}
    if tool_call:
        message["tool_calls"] = [tool_call]
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model or call.alias,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if tool_call else finish}
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def whole_as_chunks(whole: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A whole answer (a forced tool call) as the chunks a stream of it would have carried."""
    base = {"id": whole["id"], "object": "chat.completion.chunk", "created": whole["created"], "model": whole["model"]}
    choice = whole["choices"][0]
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    for i, tc in enumerate(choice["message"].get("tool_calls") or []):
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": i,
                        "id": tc["id"],
                        "type": "function",
                        "function": {"name": tc["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        deltas.append({"tool_calls": [{"index": i, "function": {"arguments": tc["function"]["arguments"]}}]})
    if choice["message"].get("content"):
        deltas.append({"content": choice["message"]["content"]})
    chunks = [chunk(base, d, None, include_usage) for d in deltas]
    chunks.append(chunk(base, {}, choice["finish_reason"], include_usage))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": whole["usage"]})
    return chunks


def chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None, include_usage: bool) -> dict[str, Any]:
    out = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if include_usage:
        out["usage"] = None
    return out


def sampling(body: dict[str, Any], default_max_tokens: int) -> dict[str, Any]:
    """create_completion keyword arguments from the OpenAI sampling fields the client set."""
    stop = body.get("stop")
    kwargs: dict[str, Any] = {
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens,
        "stop": [stop] if isinstance(stop, str) else list(stop or []),
    }
    for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        if body.get(name) is not None:
            kwargs[name] = body[name]
    return kwargs


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict) and p.get("type") == "text":
                parts.append(p.get("text", ""))
            elif isinstance(p, dict):
                raise InvalidRequest(f"the local model reads text only, not {p.get('type')!r} parts", param="messages")
        return "".join(parts)
    return str(content)


def _loads(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments or {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
