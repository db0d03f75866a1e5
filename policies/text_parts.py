"""Where the text is in a call and in an answer, so guards scan only text and copy only what they rewrite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from llm_gateway.vocab.types import Call

Rewrite = Callable[[str], str]


def call_texts(call: Call) -> Iterator[str]:
    """Every text the client sent: message contents and text parts, prompts, embedding inputs."""
    body = call.body
    if call.kind == "chat":
        for message in body.get("messages") or ():
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                yield content
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                        yield part["text"]
    else:
        value = body.get("prompt" if call.kind == "completion" else "input")
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, str))


def rewrite_call(call: Call, rewrite: Rewrite) -> Call | None:
    """A copy of `call` with every text passed through `rewrite`, or None when nothing changed.

    Only the containers on the path to a changed text are copied; the client's body is never modified.
    """
    body = call.body
    if call.kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list):
            return None
        new_messages = _rewrite_list(messages, lambda m: _rewrite_message(m, rewrite))
        return None if new_messages is None else replace(call, body={**body, "messages": new_messages})
    field = "prompt" if call.kind == "completion" else "input"
    value = body.get(field)
    if isinstance(value, str):
        new = rewrite(value)
        return None if new == value else replace(call, body={**body, field: new})
    if isinstance(value, list):
        new_list = _rewrite_list(value, lambda v: rewrite(v) if isinstance(v, str) else v)
        return None if new_list is None else replace(call, body={**body, field: new_list})
    return None


def _rewrite_list(items: list[Any], one: Callable[[Any], Any]) -> list[Any] | None:
    out: list[Any] | None = None
    for i, item in enumerate(items):
        new = one(item)
        if new is not item and new != item:
            if out is None:
                out = list(items)
            out[i] = new
    return out


def _rewrite_message(message: Any, rewrite: Rewrite) -> Any:
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, str):
        new = rewrite(content)
        return message if new == content else {**message, "content": new}
    if isinstance(content, list):
        def part(p: Any) -> Any:
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str):
                new_text = rewrite(p["text"])
                return p if new_text == p["text"] else {**p, "text": new_text}
            return p

        new_parts = _rewrite_list(content, part)
        return message if new_parts is None else {**message, "content": new_parts}
    return message


def answer_text_field(kind: str, streamed: bool) -> tuple[str | None, str]:
    """(container, key) holding a choice's text: message.content, delta.content, or text for completions."""
    if kind == "completion":
        return None, "text"
    return ("delta" if streamed else "message"), "content"


def choice_text(choice: dict[str, Any], container: str | None, key: str) -> str | None:
    holder = choice.get(container) if container else choice
    value = holder.get(key) if isinstance(holder, dict) else None
    return value if isinstance(value, str) else None


def with_choice_text(choice: dict[str, Any], container: str | None, key: str, text: str) -> dict[str, Any]:
    """A copy of the choice with its text replaced (the original is kept)."""
    if container is None:
        return {**choice, key: text}
    return {**choice, container: {**(choice.get(container) or {}), key: text}}
