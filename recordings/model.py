"""One recorded exchange and its stable JSON form (the same bytes in every store).

A recording holds the normalized request it answers, its answer, and metadata. The answer is an upstream `error`, or
a whole `response` and/or a stream's `chunks` (each with the delay before it): `stream` is not part of the key, so a
request recorded both ways keeps both shapes, and each is replayed as it was received. It never holds client headers
or keys: a Call carries none, and nothing else is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

FORMAT_VERSION = 1
# pretty, never re-sorted: a replayed answer keeps the upstream's own key order, byte for byte as the client got it
_PRETTY = orjson.OPT_INDENT_2


class CorruptRecording(Exception):
    """A stored recording that cannot be read; `where` names the file (or database and key)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: corrupt recording: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Chunk:
    delay: float  # seconds since the previous chunk (the first: since the request was sent)
    data: dict[str, Any]


@dataclass(slots=True)
class Meta:
    alias: str
    provider: str = ""
    model: str = ""  # the upstream's own model name
    deployment: str = ""
    created: float = 0.0  # unix seconds
    gateway_version: str = ""
    latency_seconds: float = 0.0
    usage: dict[str, Any] | None = None
    stream: bool = False  # True when the upstream answered with a stream
    last_used: float | None = None  # kept by stores that track use (SQLite); never part of the file


@dataclass(slots=True)
class Recording:
    key: str
    request: dict[str, Any]  # {"endpoint", "alias", "body"}: the normalized request
    meta: Meta
    response: dict[str, Any] | None = None
    chunks: list[Chunk] | None = None
    error: dict[str, Any] | None = None  # {"status", "body", "headers"}
    _response_bytes: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def endpoint(self) -> str:
        return str(self.request.get("endpoint", ""))

    def response_copy(self) -> dict[str, Any]:
        """A private copy for one reply (policies may rewrite it); orjson round-trips faster than deepcopy."""
        assert self.response is not None
        if self._response_bytes is None:
            self._response_bytes = orjson.dumps(self.response)
        return orjson.loads(self._response_bytes)

    def keeping_other_shape(self, older: Recording | None) -> Recording:
        """This new recording plus the shape of answer (whole or stream) that `older`, of the same key, has and this
        one lacks."""
        if older is None or self.error is not None or older.error is not None:
            return self
        if self.response is None and older.response is not None:
            self.response = older.response
        if self.chunks is None and older.chunks is not None:
            self.chunks = older.chunks
        self.meta.usage = self.meta.usage or older.meta.usage
        return self

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "key": self.key,
            "request": self.request,
            "meta": {
                "alias": self.meta.alias,
                "provider": self.meta.provider,
                "model": self.meta.model,
                "deployment": self.meta.deployment,
                "created": round(self.meta.created, 3),
                "gateway_version": self.meta.gateway_version,
                "latency_seconds": round(self.meta.latency_seconds, 6),
                "usage": self.meta.usage,
                "stream": self.meta.stream,
            },
        }
        if self.response is not None:
            data["response"] = self.response
        if self.chunks is not None:
            data["chunks"] = [{"delay": round(c.delay, 6), "data": c.data} for c in self.chunks]
        if self.error is not None:
            data["error"] = self.error
        return data

    def to_json(self) -> bytes:
        """Pretty JSON with a trailing newline, keys in the order they came (the upstream's): stable diffs in git."""
        return orjson.dumps(self.to_dict(), option=_PRETTY) + b"\n"

    @classmethod
    def from_json(cls, raw: bytes | str, where: str) -> Recording:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise CorruptRecording(where, f"invalid JSON ({exc})") from None
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Recording:
        if not isinstance(data, dict):
            raise CorruptRecording(where, "expected a JSON object")
        if data.get("format") != FORMAT_VERSION:
            raise CorruptRecording(where, f"unknown format {data.get('format')!r} (expected {FORMAT_VERSION})")
        try:
            key, request, meta = data["key"], data["request"], data["meta"]
            if not isinstance(key, str) or not isinstance(request, dict) or not isinstance(meta, dict):
                raise TypeError("key, request and meta must be a string, an object and an object")
            chunks = data.get("chunks")
            answers = [name for name in ("response", "chunks", "error") if data.get(name) is not None]
            if not answers or ("error" in answers and len(answers) > 1):
                raise ValueError(f"expected an error, or a response and/or chunks; found {answers or 'none'}")
            return cls(
                key=key,
                request=request,
                meta=Meta(
                    alias=str(meta.get("alias", "")),
                    provider=str(meta.get("provider", "")),
                    model=str(meta.get("model", "")),
                    deployment=str(meta.get("deployment", "")),
                    created=float(meta.get("created", 0.0)),
                    gateway_version=str(meta.get("gateway_version", "")),
                    latency_seconds=float(meta.get("latency_seconds", 0.0)),
                    usage=meta.get("usage"),
                    stream=bool(meta.get("stream", False)),
                ),
                response=_object_or_none(data.get("response"), "response"),
                chunks=None
                if chunks is None
                else [Chunk(float(c["delay"]), _object(c["data"], "chunk")) for c in chunks],
                error=_object_or_none(data.get("error"), "error"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptRecording(where, f"{type(exc).__name__}: {exc}") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a JSON object")
    return value


def _object_or_none(value: Any, what: str) -> dict[str, Any] | None:
    return None if value is None else _object(value, what)
