"""HTTP plumbing shared by the adapters that talk to a remote upstream: one pooled client, error mapping, SSE."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from llm_gateway.adapters.aiohttp_client import AiohttpClient
from llm_gateway.vocab.errors import (
    UpstreamError,
    UpstreamMalformed,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)


@dataclass(frozen=True, slots=True)
class HttpUpstream:
    """A remote adapter's own settings: where it sends, with which key and headers, and how long it waits."""

    name: str
    base_url: str
    api_key: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    total_timeout: float = 600.0  # a whole answer, end to end
    max_connections: int = 1000
    # request correlation: the header the request id goes out in ("" sends none), and in what form: "uuid" (what
    # every upstream accepts; llama-cpp-python's server refuses anything else) or "verbatim" (the id as it is)
    request_id_header: str = "x-request-id"
    request_id_format: str = "uuid"


_REQUEST_ID_NAMESPACE = uuid.UUID("6f1c2a4e-5b7d-4e8f-9a0b-1c2d3e4f5a6b")


def upstream_request_id(request_id: str) -> str:
    """The request id as a UUID: a UUID stays itself, the gateway's own `req_<32 hex>` is those digits, and any other
    id a client sent becomes the UUID derived from it (uuid5, so the same id always maps to the same UUID)."""
    digits = request_id.removeprefix("req_")
    try:
        return str(uuid.UUID(digits))
    except ValueError:
        return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, request_id))


def correlation_headers(upstream: HttpUpstream, request_id: str) -> dict[str, str]:
    """The header that carries the request id upstream, in the form this provider is configured to send."""
    if not request_id or not upstream.request_id_header:
        return {}
    value = request_id if upstream.request_id_format == "verbatim" else upstream_request_id(request_id)
    return {upstream.request_id_header: value}


def make_client(
    upstream: HttpUpstream,
    headers: dict[str, str],
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient | AiohttpClient:
    """One client per provider, created at startup; `transport` lets tests plug in respx.

    Without one, aiohttp's pool is used directly: httpx's own pool is several times slower under concurrency, and
    httpx.AsyncClient over aiohttp still cost ~300 us a request (BENCHMARKS.md).
    """
    base_url, connect, read = upstream.base_url, upstream.connect_timeout, upstream.read_timeout
    max_connections = upstream.max_connections
    if transport is None:
        return AiohttpClient(base_url, headers=headers, connect=connect, read=read, max_connections=max_connections)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=httpx.Timeout(connect=connect, read=read, write=read, pool=connect),
        limits=limits,
        transport=transport,
        trust_env=False,
        follow_redirects=False,
    )


def transport_error(exc: httpx.HTTPError, provider: str) -> UpstreamError:
    """Map a transport failure (no HTTP answer, or a broken one) to the gateway's errors."""
    cause = exc.__cause__
    cause_name = type(cause).__name__ if cause is not None else ""
    if cause_name in ("ServerDisconnectedError", "ClientOSError") or isinstance(
        exc, (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)
    ):
        return UpstreamError(
            f"upstream {provider!r} closed the connection: {exc or cause_name}", provider=provider, kind="connect"
        )
    if cause_name == "ClientConnectorError" or isinstance(exc, httpx.ConnectError):
        return UpstreamUnavailable(f"upstream {provider!r} is unreachable: {exc}", provider=provider, kind="connect")
    if isinstance(exc, httpx.TimeoutException):
        phase = "connecting" if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)) else "waiting for data"
        return UpstreamTimeout(f"upstream {provider!r} timed out {phase}", provider=provider, kind="timeout")
    return UpstreamError(
        f"upstream {provider!r} failed: {type(exc).__name__}: {exc}", provider=provider, kind="connect"
    )


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def status_error(
    provider: str, status: int, content: bytes, headers: httpx.Headers, *, context_markers: tuple[str, ...] = ()
) -> UpstreamError:
    """Map an upstream error status to the gateway's errors, keeping the upstream's message, type and code."""
    message, etype, code, param = _error_fields(content)
    said = f"upstream {provider!r} answered HTTP {status}"
    if not message:  # llama-cpp-python's server answers a refused request 400 with no body at all
        message = f"{said} with an empty body (it gave no reason)"
        code = code or (f"upstream_http_{status}" if status < 500 else None)
    if status == 429:
        return UpstreamRateLimited(
            message,
            provider=provider,
            upstream_status=429,
            kind="429",
            retry_after=retry_after_seconds(headers),
            code=code,
        )
    if status in (401, 403):
        # The client's key never goes upstream, so a provider refusing a key refuses the gateway's own: passing the 401
        # on would make the SDK raise AuthenticationError and blame the client's key. A 502 says the gateway's side
        # failed; retryable, so another deployment (another key) can serve while this one cools down.
        error = UpstreamStatusError(
            f"upstream {provider!r} rejected the gateway's credentials (HTTP {status}): {message}; "
            "check that provider's api key in the gateway config",
            provider=provider,
            upstream_status=status,
            status=502,
            type="api_error",
            code="upstream_authentication_failed",
            kind="4xx",
        )
        error.retryable = True
        return error
    lowered = message.lower()
    if code == "context_length_exceeded" or (status in (400, 413) and any(m in lowered for m in context_markers)):
        code = "context_length_exceeded"
    kind = "4xx" if status < 500 else "5xx"
    if status >= 500 and not message.startswith(said):
        message = f"{said}: {message}"
    error = UpstreamStatusError(
        message, provider=provider, upstream_status=status, type=etype, code=code, param=param, kind=kind
    )
    if status < 500 and code is None:
        error.code = None  # a 4xx the upstream gave no code for: null, as OpenAI's own often is; never "bad_gateway"
    return error


CONTEXT_MARKERS = ("context length", "context_length", "maximum context", "too many tokens", "prompt is too long")


def _error_fields(content: bytes) -> tuple[str, str | None, str | None, str | None]:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content[:500].decode("utf-8", "replace").strip(), None, None, None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        code = err.get("code")
        return (
            str(err.get("message") or ""),
            err.get("type") if isinstance(err.get("type"), str) else None,
            str(code) if code is not None else None,
            err.get("param") if isinstance(err.get("param"), str) else None,
        )
    if isinstance(err, str):
        return err, None, None, None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"], None, None, None
    return content[:500].decode("utf-8", "replace"), None, None, None


def parse_json(content: bytes, provider: str) -> dict[str, Any]:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise UpstreamMalformed(
            f"upstream {provider!r} sent malformed JSON: {exc}", provider=provider, kind="malformed"
        ) from None
    if not isinstance(data, dict):
        raise UpstreamMalformed(
            f"upstream {provider!r} sent JSON that is not an object", provider=provider, kind="malformed"
        )
    return data


async def iter_sse(response: httpx.Response) -> AsyncIterator[tuple[str, bytes]]:
    """Yield (event, data) for each server-sent event; data lines of one event are joined with newlines."""
    buffer = b""
    event = ""
    data: list[bytes] = []
    async for piece in response.aiter_bytes():
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    yield event, b"\n".join(data)
                event, data = "", []
                continue
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                event = line[6:].strip().decode("utf-8", "replace")
            # comments (": ping"), id: and retry: lines carry nothing a chat stream needs
    if buffer.strip():
        line = buffer.rstrip(b"\r")
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
    if data:
        yield event, b"\n".join(data)
