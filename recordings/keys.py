"""Recording keys: a hash of the normalized client request, so volatile details do not break a replay.

The key is the first 32 hex digits of SHA-256 over the canonical JSON (keys sorted, compact) of
`{"endpoint": ..., "alias": ..., "body": ...}` where `body` is the client's body with

- `model` removed (the alias stands for it), and `stream` / `stream_options` always removed, so a response recorded
  whole replays as a stream and a recorded stream replays whole;
- every top-level field named in `ignore_fields` removed;
- every scrubber (regex -> placeholder) applied, in order, to each string inside the message text:
  `messages` (chat), `prompt` (completions) and `input` (embeddings), at any depth (content parts, tool results);
- for chat, the canonical conversation (`canonical_chat`): the spellings that differ between /v1/chat/completions,
  /v1/responses and /v1/messages for one conversation folded into one, so any of them replays what another recorded.

A request that folding changes also has its `legacy_key` (the key before folding existed), which the recorder tries
on a miss: recordings made before keep answering, with no migration.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

ALWAYS_IGNORED = ("model", "stream", "stream_options")
TEXT_FIELDS = ("messages", "prompt", "input")
KEY_HEX_DIGITS = 32
CHAT_ENDPOINT = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class NormalizedRequest:
    endpoint: str
    alias: str
    body: dict[str, Any]
    canonical: bytes  # the bytes the key hashes
    key: str
    legacy_key: str | None = None  # the pre-canonical key, when it differs (recordings made before still answer)

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "alias": self.alias, "body": self.body}


class KeyMaker:
    """Normalizes requests with one configuration; compiled once, used for every request."""

    def __init__(self, ignore_fields: Iterable[str] = (), scrubbers: Iterable[tuple[str, str]] = ()) -> None:
        self.ignored = frozenset(ALWAYS_IGNORED) | frozenset(ignore_fields)
        self.scrubbers = [(re.compile(pattern), replacement) for pattern, replacement in scrubbers]

    def normalize(self, endpoint: str, alias: str, body: dict[str, Any]) -> NormalizedRequest:
        kept = {name: value for name, value in body.items() if name not in self.ignored}
        folded = canonical_chat(kept) if endpoint == CHAT_ENDPOINT else kept
        scrubbed = self._scrub_text(folded)
        canonical = orjson.dumps({"endpoint": endpoint, "alias": alias, "body": scrubbed}, option=orjson.OPT_SORT_KEYS)
        legacy = None
        if folded is not kept:
            before = {"endpoint": endpoint, "alias": alias, "body": self._scrub_text(kept)}
            legacy = record_key(orjson.dumps(before, option=orjson.OPT_SORT_KEYS))
        return NormalizedRequest(endpoint, alias, scrubbed, canonical, record_key(canonical), legacy)

    def _scrub_text(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.scrubbers:
            return body
        return {name: self._scrub(value) if name in TEXT_FIELDS else value for name, value in body.items()}

    def mismatch(self, key: str, request: Any) -> str | None:
        """Why a stored recording's key does not answer the request it stores, under these key settings (None: it
        does). A hand-edited fixture could otherwise show one prompt in review while answering another."""
        if not isinstance(request, dict) or not isinstance(request.get("body"), dict):
            return "it stores no request to check its key against"
        endpoint, alias = request.get("endpoint"), request.get("alias")
        if not isinstance(endpoint, str) or not isinstance(alias, str):
            return "its request names no endpoint or alias"
        normalized = self.normalize(endpoint, alias, request["body"])
        expected = normalized.key
        if key != expected and key != normalized.legacy_key:  # made before canonical_chat: its key then is its key
            return (f"its key {key} does not match the request it stores (which keys to {expected} under the "
                    "current [recording] key settings)")
        return None

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for pattern, replacement in self.scrubbers:
                value = pattern.sub(replacement, value)
            return value
        if isinstance(value, list):
            return [self._scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        return value


def record_key(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()[:KEY_HEX_DIGITS]


def canonical_chat(body: dict[str, Any]) -> dict[str, Any]:
    """One spelling of a chat conversation, whichever protocol it came through; `body` itself when already canonical.

    `max_completion_tokens` is `max_tokens`; a `stop` string is a one-item list; in messages, null fields (and empty
    `annotations`) are dropped, content made only of text parts is that text, an assistant turn of tool calls has no
    empty content, and a tool call is its id, type, name and arguments as compact JSON with sorted keys.
    """
    changed: dict[str, Any] = {}
    if "max_completion_tokens" in body and "max_tokens" not in body:
        changed["max_tokens"] = body["max_completion_tokens"]
    if isinstance(body.get("stop"), str):
        changed["stop"] = [body["stop"]]
    messages = body.get("messages")
    if isinstance(messages, list):
        folded = [_message(m) if isinstance(m, dict) else m for m in messages]
        if any(f is not m for f, m in zip(folded, messages, strict=True)):
            changed["messages"] = folded
    if not changed:
        return body
    out = {k: v for k, v in body.items() if not (k == "max_completion_tokens" and "max_tokens" in changed)}
    out.update(changed)
    return out


def _message(message: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] | None = None
    for name, value in message.items():
        folded = _field(name, value, message)
        if folded is not value:
            out = out if out is not None else dict(message)
            if folded is _DROP:
                del out[name]
            else:
                out[name] = folded
    return message if out is None else out


_DROP = object()


def _field(name: str, value: Any, message: dict[str, Any]) -> Any:
    if value is None or (name == "annotations" and value == []):
        return _DROP
    if name == "content":
        if value == "" and message.get("tool_calls"):
            return _DROP
        if isinstance(value, list) and value and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value
        ):
            return "".join(p["text"] for p in value)
        return value
    if name == "tool_calls" and isinstance(value, list):
        folded = [_tool_call(c) if isinstance(c, dict) else c for c in value]
        return value if folded == value else folded
    return value


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = orjson.dumps(orjson.loads(arguments), option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONDecodeError:
            pass
    return {"id": call.get("id"), "type": call.get("type") or "function",
            "function": {"name": function.get("name"), "arguments": arguments}}
