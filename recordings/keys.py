"""Recording keys: a hash of the normalized client request, so volatile details do not break a replay.

The key is the first 32 hex digits of SHA-256 over the canonical JSON (keys sorted, compact) of
`{"endpoint": ..., "alias": ..., "body": ...}` where `body` is the client's body with

- `model` removed (the alias stands for it), and `stream` / `stream_options` always removed, so a response recorded
  whole replays as a stream and a recorded stream replays whole;
- every top-level field named in `ignore_fields` removed;
- every scrubber (regex -> placeholder) applied, in order, to each string inside the message text:
  `messages` (chat), `prompt` (completions) and `input` (embeddings), at any depth (content parts, tool results).
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


@dataclass(frozen=True, slots=True)
class NormalizedRequest:
    endpoint: str
    alias: str
    body: dict[str, Any]
    canonical: bytes  # the bytes the key hashes
    key: str

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "alias": self.alias, "body": self.body}


class KeyMaker:
    """Normalizes requests with one configuration; compiled once, used for every request."""

    def __init__(self, ignore_fields: Iterable[str] = (), scrubbers: Iterable[tuple[str, str]] = ()) -> None:
        self.ignored = frozenset(ALWAYS_IGNORED) | frozenset(ignore_fields)
        self.scrubbers = [(re.compile(pattern), replacement) for pattern, replacement in scrubbers]

    def normalize(self, endpoint: str, alias: str, body: dict[str, Any]) -> NormalizedRequest:
        kept: dict[str, Any] = {}
        for name, value in body.items():
            if name in self.ignored:
                continue
            kept[name] = self._scrub(value) if name in TEXT_FIELDS and self.scrubbers else value
        canonical = orjson.dumps({"endpoint": endpoint, "alias": alias, "body": kept}, option=orjson.OPT_SORT_KEYS)
        return NormalizedRequest(endpoint, alias, kept, canonical, record_key(canonical))

    def mismatch(self, key: str, request: Any) -> str | None:
        """Why a stored recording's key does not answer the request it stores, under these key settings (None: it
        does). A hand-edited fixture could otherwise show one prompt in review while answering another."""
        if not isinstance(request, dict) or not isinstance(request.get("body"), dict):
            return "it stores no request to check its key against"
        endpoint, alias = request.get("endpoint"), request.get("alias")
        if not isinstance(endpoint, str) or not isinstance(alias, str):
            return "its request names no endpoint or alias"
        expected = self.normalize(endpoint, alias, request["body"]).key
        if expected != key:
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
