"""What the adapters that talk to a remote upstream share: one pooled client, the error mapping, and the one
skeleton of a call (`fetch_json` for a whole answer, `stream_sse` for a stream): send, status, a non-SSE answer,
the SSE loop, transport errors, close. An adapter keeps only its translation (a `StreamTranslation` per stream).

The skeleton is where an answer is held to its word: a stream is complete only when the upstream's protocol says so
(the translation's end marker), every read is bounded (http_read), and `timeout.total` covers a stream as it does a
whole answer. Addresses stay in the log: a client-facing message names the provider, never its host and port.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

from llm_gateway.adapters.aiohttp_client import AiohttpClient
from llm_gateway.adapters.http_read import past_total, read_body, read_error_body, sse_events, timed_reads
from llm_gateway.vocab.errors import (
    UpstreamError,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.vocab.types import Frames

log = logging.getLogger("gateway.upstream")
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024  # a large embeddings batch fits; a 10 GB body does not
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024  # one stream chunk; real ones are a few hundred bytes


@dataclass(frozen=True, slots=True)
class HttpUpstream:
    """A remote adapter's own settings: where it sends, with which key and headers, and how long it waits."""

    name: str
    base_url: str
    api_key: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    total_timeout: float = 600.0  # a whole answer or a whole stream, end to end
    max_connections: int = 1000
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES  # a whole answer, after inflating
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES  # one line / event of a stream
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
    headers = {"accept-encoding": "identity", **headers}  # nothing to inflate; what is, is inflated within bounds
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
    """Map a transport failure (no HTTP answer, or a broken one) to the gateway's errors.

    The client's message names the provider only; the exception (which carries host and port) goes to the log.
    """
    cause = exc.__cause__
    cause_name = type(cause).__name__ if cause is not None else ""
    log.warning("upstream %r: %s: %s", provider, type(exc).__name__, exc or cause)
    if cause_name in ("ServerDisconnectedError", "ClientOSError") or isinstance(
        exc, (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)
    ):
        return UpstreamError(f"upstream {provider!r} closed the connection", provider=provider, kind="connect")
    if cause_name == "ClientConnectorError" or isinstance(exc, httpx.ConnectError):
        return UpstreamUnavailable(f"upstream {provider!r} is unreachable", provider=provider, kind="connect")
    if isinstance(exc, httpx.TimeoutException):
        phase = "connecting" if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)) else "waiting for data"
        return UpstreamTimeout(f"upstream {provider!r} timed out {phase}", provider=provider, kind="timeout")
    return UpstreamError(f"upstream {provider!r} failed: {type(exc).__name__}", provider=provider, kind="connect")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
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
    provider: str, status: int, content: bytes, headers: Mapping[str, str], *, context_markers: tuple[str, ...] = ()
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


StatusErrors = Callable[[int, bytes, Mapping[str, str]], UpstreamError]  # an adapter's mapping of error answers


class StreamTranslation(Protocol):
    """One stream's translation from the upstream's events to OpenAI chunks; the adapter's only part of a stream."""

    end_marker: str  # what the upstream's protocol sends when the stream is whole, for the error when it did not
    complete: bool  # set by feed() once the upstream said the stream is whole

    def feed(self, event: str, data: bytes) -> Iterable[dict[str, Any]]:
        """The OpenAI chunks for one server-sent event (raise the shared errors on an error event)."""
        ...


class FrameRelay(Protocol):
    """One stream's upstream reads cut into whole events and relayed as they are (adapters/openai_frames.py)."""

    end_marker: str
    complete: bool
    failure: Exception | None  # what ended the stream after the Frames feed() last returned

    def feed(self, piece: bytes) -> Frames | None:
        """The whole events one read completes, or None."""
        ...

    def end(self) -> Frames | None:
        """What the body's end completes (an event whose last blank line never came)."""
        ...


async def fetch_json(
    client: Any,
    upstream: HttpUpstream,
    method: str,
    path: str,
    errors: StatusErrors,
    *,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """A whole JSON answer (and its bytes), within `total_timeout` and `max_answer_bytes`; errors mapped."""
    name = upstream.name
    try:
        async with asyncio.timeout(upstream.total_timeout):
            response = await _send(client, client.build_request(method, path, content=content, headers=headers), name)
            try:
                if response.status_code >= 400:
                    raise errors(response.status_code, await read_error_body(response, name), response.headers)
                try:
                    body = await read_body(response, name, upstream.max_answer_bytes)
                except httpx.HTTPError as exc:
                    raise _broken_body(exc, name, "before the whole answer") from None
            finally:
                await response.aclose()
    except TimeoutError:
        raise past_total(name, upstream.total_timeout) from None
    return parse_json(body, name), body


async def stream_sse(
    client: Any,
    upstream: HttpUpstream,
    path: str,
    errors: StatusErrors,
    translation: StreamTranslation,
    *,
    content: bytes,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """One stream, relayed as `translation` makes it: complete only on its end marker, bounded, within total."""
    marker = translation.end_marker
    async with _event_stream(client, upstream, path, errors, marker, content, headers) as (response, deadline):
        events = sse_events(
            response, upstream.name, max_event_bytes=upstream.max_event_bytes, deadline=deadline,
            read_timeout=upstream.read_timeout, total_timeout=upstream.total_timeout,
        )
        async with aclosing(events):
            async for event, data in events:
                for chunk in translation.feed(event, data):
                    yield chunk
                if translation.complete:
                    return
        raise _cut(upstream.name, marker)


async def relay_sse(
    client: Any,
    upstream: HttpUpstream,
    path: str,
    errors: StatusErrors,
    relay: FrameRelay,
    *,
    content: bytes,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[Frames]:
    """One stream as the upstream framed it: Frames per read, held to the same end marker, bounds and total as
    stream_sse."""
    marker = relay.end_marker
    async with _event_stream(client, upstream, path, errors, marker, content, headers) as (response, deadline):
        reads = timed_reads(
            response, upstream.name, deadline=deadline, read_timeout=upstream.read_timeout,
            total_timeout=upstream.total_timeout,
        )
        async with aclosing(reads):
            async for piece in reads:
                frames = relay.feed(piece)
                if frames is not None:
                    yield frames
                if relay.failure is not None:
                    raise relay.failure
                if relay.complete:
                    return
        frames = relay.end()
        if frames is not None:
            yield frames
        if relay.failure is not None:
            raise relay.failure
        if not relay.complete:
            raise _cut(upstream.name, marker)


@asynccontextmanager
async def _event_stream(
    client: Any,
    upstream: HttpUpstream,
    path: str,
    errors: StatusErrors,
    end_marker: str,
    content: bytes,
    headers: Mapping[str, str] | None,
) -> AsyncIterator[tuple[Any, float]]:
    """(the response, once it is known to be an event stream; the stream's deadline), what both stream skeletons
    share: an error status raises its error, a transport failure mid-stream is a cut answer, and the response is
    closed however the stream ends."""
    name = upstream.name
    deadline = asyncio.get_running_loop().time() + upstream.total_timeout
    response = await _send(client, client.build_request("POST", path, content=content, headers=headers), name)
    try:
        try:
            if response.status_code >= 400:
                raise errors(response.status_code, await read_error_body(response, name), response.headers)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                await _not_a_stream(response, upstream, errors, deadline)
        except httpx.HTTPError as exc:
            raise _broken_body(exc, name, "before the stream began") from None
        try:
            yield response, deadline
        except httpx.HTTPError as exc:
            raise _broken_body(exc, name, f"mid-stream, before {end_marker}") from None
    finally:
        await response.aclose()


def _cut(name: str, end_marker: str) -> UpstreamIncomplete:
    return UpstreamIncomplete(
        f"upstream {name!r} ended the stream before {end_marker}: the answer is cut", provider=name, kind="malformed"
    )


async def _send(client: Any, request: Any, name: str) -> Any:
    try:
        return await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise transport_error(exc, name) from None


async def _not_a_stream(response: Any, upstream: HttpUpstream, errors: StatusErrors, deadline: float) -> None:
    """A server that ignored "stream" answered whole: an error body becomes its error, anything else is malformed."""
    name = upstream.name
    try:
        async with asyncio.timeout_at(deadline):
            body = await read_body(response, name, upstream.max_answer_bytes)
    except TimeoutError:
        raise past_total(name, upstream.total_timeout) from None
    data = parse_json(body, name)
    if "error" in data or data.get("type") == "error":
        raise errors(502, body, response.headers)
    raise UpstreamMalformed(
        f"upstream {name!r} answered a stream request without an event stream", provider=name, kind="malformed"
    )


def _broken_body(exc: httpx.HTTPError, name: str, where: str) -> UpstreamError:
    """A transport failure after the answer began: a timeout waiting for data, or an answer cut short."""
    if isinstance(exc, httpx.TimeoutException):
        return transport_error(exc, name)
    log.warning("upstream %r broke off %s: %s: %s", name, where, type(exc).__name__, exc or exc.__cause__)
    code = "upstream_stream_incomplete" if "stream" in where else "upstream_answer_truncated"
    return UpstreamIncomplete(
        f"upstream {name!r} closed the connection {where}", provider=name, kind="connect", code=code
    )
