"""A chat completion -> a Messages API `message`: content blocks, stop reason, usage with the cache fields, the id.

An answer from an Anthropic backend reached through a Messages request carries the upstream's own message beside
the chat choice (`completion["anthropic"]`, set by adapters/anthropic.py): it goes back verbatim (thinking and its
signatures, citations, server-tool blocks) as long as the chat choice still says the same thing. When an output
policy rewrote or cut the answer, the blocks are built from the choice the policies let through.
"""

from __future__ import annotations

from typing import Any

import orjson

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
           "tool_use": "tool_calls", "refusal": "content_filter"}


def message_id(chat_id: Any) -> str:
    """`msg_…`: an Anthropic id as it is, else derived from the chat id so a replayed answer keeps its id."""
    if isinstance(chat_id, str) and chat_id.startswith("msg_"):
        return chat_id
    if isinstance(chat_id, str) and chat_id:
        return "msg_" + chat_id.removeprefix("chatcmpl-").removeprefix("chatcmpl_")
    return "msg_gateway"


def stop_reason(finish_reason: Any, native: Any = None) -> str:
    """The Anthropic stop reason; the upstream's own when it agrees with the (possibly cut) finish reason."""
    if isinstance(native, str) and _FINISH.get(native, "stop") == finish_reason:
        return native
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


def to_usage(usage: Any) -> dict[str, Any]:
    """Anthropic usage: input tokens exclude cache reads and writes, which have fields of their own."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details") or {}
    read = usage.get("cache_read_input_tokens")
    if read is None:
        read = details.get("cached_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    prompt = usage.get("prompt_tokens") or 0
    out: dict[str, Any] = {
        "input_tokens": max(0, prompt - read - written),
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }
    for name in ("server_tool_use", "service_tier", "cache_creation"):
        if usage.get(name) is not None:
            out[name] = usage[name]
    return out


def to_message(completion: dict[str, Any]) -> dict[str, Any]:
    choices = completion.get("choices") or [{}]
    choice = choices[0]
    chat = choice.get("message") or {}
    native = completion.get("anthropic")
    if type(native) is not dict:
        native = None
    finish = choice.get("finish_reason")
    if native is not None and _agrees(native, chat, finish):
        return native  # the upstream's own message, every field kept, as the policies let it through
    content = _thinking(native) + blocks_of(chat)
    stop_sequence = None
    reason = stop_reason(finish, native.get("stop_reason") if native else None)
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or "",
        "content": content,
        "stop_reason": reason,
        "stop_sequence": stop_sequence if reason == "stop_sequence" else None,
        "usage": to_usage(completion.get("usage")),
    }


def blocks_of(chat: dict[str, Any]) -> list[dict[str, Any]]:
    """Text, then a tool_use per tool call, from a chat message."""
    blocks: list[dict[str, Any]] = []
    text = chat.get("content")
    if isinstance(text, str) and text:
        blocks.append({"type": "text", "text": text})
    refusal = chat.get("refusal")
    if isinstance(refusal, str) and refusal:
        blocks.append({"type": "text", "text": refusal})
    for call in chat.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append({"type": "tool_use", "id": call.get("id") or "", "name": function.get("name") or "",
                       "input": tool_input(function.get("arguments"))})
    return blocks


def tool_input(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}  # a model that wrote broken JSON: keep what it said, as Anthropic's input


def _agrees(native: dict[str, Any], chat: dict[str, Any], finish: Any) -> bool:
    """Whether the chat choice still says what the upstream's message says: same text, same tool calls, same end."""
    blocks = native.get("content")
    if type(blocks) is not list or _FINISH.get(native.get("stop_reason") or "", "stop") != finish:
        return False
    calls = chat.get("tool_calls")
    if not calls and len(blocks) == 1:  # the common answer: one text block
        block = blocks[0]
        return type(block) is dict and block.get("type") == "text" and block.get("text") == (chat.get("content") or "")
    texts: list[str] = []
    tools: list[Any] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            tools.append(block.get("id"))
    if (tools or calls) and tools != [c.get("id") for c in calls or ()]:
        return False
    text = texts[0] if len(texts) == 1 else "".join(texts)
    return text == (chat.get("content") or "")


def _thinking(native: dict[str, Any] | None) -> list[dict[str, Any]]:
    if native is None:
        return []
    return [b for b in native.get("content") or () if isinstance(b, dict)
            and b.get("type") in ("thinking", "redacted_thinking")]
