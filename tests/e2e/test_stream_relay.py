"""The relay path, end to end (`gateway serve` and a real upstream under uvicorn): with nothing reading a stream's
chunks, the client gets the upstream's own events byte for byte (each still its own SSE event, in order), the
gateway's own end marker, and the usage accounted; with an output guard on, the chunks are parsed and re-framed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.support.gateway_process import GatewayProcess, gateway_process
from tests.support.server import running

WORDS = ["Hello", " from", " the", " relay", "."]
USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}


def _event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"  # json.dumps' spacing: orjson would write it otherwise


def upstream_events(include_usage: bool) -> list[bytes]:
    base = {"id": "chatcmpl-relay", "object": "chat.completion.chunk", "created": 1, "model": "up-model"}
    extra = {"usage": None} if include_usage else {}
    events = [_event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                           "finish_reason": None}], **extra})]
    events += [_event({**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}], **extra})
               for w in WORDS]
    events.append(_event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extra}))
    if include_usage:
        events.append(_event({**base, "choices": [], "usage": USAGE}))
    return events


async def _chat(request: Request) -> StreamingResponse:
    body = orjson.loads(await request.body())
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    data = b": keep-alive\n\n" + b"".join(upstream_events(include_usage)) + b"data: [DONE]\n\n"

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 97):  # reads that cut events (and lines) anywhere
            yield data[start : start + 97]
            await asyncio.sleep(0.001)

    return StreamingResponse(pieces(), media_type="text/event-stream")


UPSTREAM = Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])


MASTER_KEY = "sk-relay-master-key-0001"
EXTRA = {
    "relay": "",
    "guarded": '[guards]\norder = ["pii"]\n[guards.pii]\naction = "redact"\noutput = true\n',
    # auth on: the gateway asks for usage on every stream, and drops the usage event for a client that did not
    "keys": f'[auth]\nmode = "keys"\nmaster_key = "{MASTER_KEY}"\n',
}


def _config(upstream_url: str, variant: str) -> str:
    return f"""
[providers.up]
type = "openai"
base_url = "{upstream_url}/v1"
api_key = "sk-up"

[models.relay]
provider = "up"
model = "up-model"
{EXTRA[variant]}"""


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with running(UPSTREAM) as url:
        yield url


@pytest.fixture(scope="module", params=list(EXTRA))
def gateway(
    upstream_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[GatewayProcess, str]]:
    directory: Path = tmp_path_factory.mktemp(f"relay-{request.param}")
    with gateway_process(directory, _config(upstream_url, request.param)) as process:
        yield process, request.param


AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def _stream(url: str, **extra: object) -> httpx.Response:
    body = {"model": "relay", "messages": [{"role": "user", "content": "hi"}], "stream": True, **extra}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=AUTH, timeout=30)


def _metric(url: str, name: str) -> float:
    lines = httpx.get(url + "/metrics", headers=AUTH, timeout=10).text.splitlines()
    mine = [line for line in lines if line.startswith(name + "{") and 'alias="relay"' in line]
    return sum(float(line.rsplit(" ", 1)[1]) for line in mine)


@pytest.mark.parametrize("include_usage", [False, True])
def test_the_client_gets_the_upstreams_own_events_when_nothing_reads_them(
    gateway: tuple[GatewayProcess, str], include_usage: bool
) -> None:
    process, variant = gateway
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    before = _metric(process.url, "gateway_completion_tokens_total")
    response = _stream(process.url, **extra)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = upstream_events(include_usage)
    if variant == "keys" and not include_usage:  # asked for by the gateway: every chunk says so, the last is dropped
        events = upstream_events(True)[:-1]
    relayed = b": keep-alive\n\n" + b"".join(events) + b"data: [DONE]\n\n"
    if variant == "keys":  # the usage was counted either way (with no auth, only when the upstream was asked for it)
        assert _metric(process.url, "gateway_completion_tokens_total") == before + USAGE["completion_tokens"]
    if variant == "guarded":  # parsed by the guard (which may hold text back), framed again in the gateway's own JSON
        assert response.content != relayed and response.content.endswith(b"\n\ndata: [DONE]\n\n")
        assert b": keep-alive" not in response.content and b'", "' not in response.content
    else:  # relayed as the upstream framed them (its comment too), then the gateway's end marker
        assert response.content == relayed


def test_the_sdk_reads_the_relayed_stream_and_its_usage(gateway: tuple[GatewayProcess, str]) -> None:
    process, _ = gateway
    client = openai.OpenAI(base_url=process.url + "/v1", api_key=MASTER_KEY, max_retries=0)
    before = _metric(process.url, "gateway_completion_tokens_total")
    chunks = list(client.chat.completions.create(
        model="relay", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(WORDS)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == USAGE["total_tokens"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert _metric(process.url, "gateway_completion_tokens_total") == before + USAGE["completion_tokens"]
