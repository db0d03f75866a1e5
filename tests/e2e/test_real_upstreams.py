"""Real OpenAI-compatible servers nobody here wrote, as upstreams of a real `gateway serve`, driven by the openai SDK:
llama-cpp-python's own server (it accepts only UUIDs as x-request-id, and answers its validation errors with 500) and
LiteLLM's proxy with its mock responses. Chat, streams with usage, embeddings, errors, and a record -> stop the
upstreams -> replay round trip that must give back exactly what the client got while recording."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.support.gateway_process import gateway_process
from tests.support.real_upstreams import Process, litellm_proxy, llama_server, require_llama_server

CHAT = {"llama": "llama-chat", "litellm": "lite-chat"}
EMBED = {"llama": "llama-embed", "litellm": "lite-embed"}
MESSAGES = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    directory = tmp_path_factory.mktemp("llama")
    model = require_llama_server()
    with llama_server(directory, model) as chat, llama_server(directory, model, embedding=True) as embed:
        yield {"chat": chat, "embed": embed}


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with litellm_proxy(tmp_path_factory.mktemp("litellm")) as process:
        yield process


@pytest.fixture()
def upstreams(llama: dict[str, Process], request: pytest.FixtureRequest) -> dict[str, Process]:
    """The llama servers, and LiteLLM's proxy for the tests that drive it (the others run without it)."""
    wants_lite = "litellm" in request.node.name or request.node.name.startswith("test_record_then")
    return {**llama, "lite": request.getfixturevalue("lite")} if wants_lite else dict(llama)


def config(upstreams: dict[str, Process], recordings: Path, mode: str = "off") -> str:
    return f"""
[providers.llama]
type = "openai"
base_url = "{upstreams["chat"].url}/v1"

[providers.llama_embed]
type = "openai"
base_url = "{upstreams["embed"].url}/v1"

[providers.litellm]
type = "openai"
base_url = "{upstreams["lite"].url if "lite" in upstreams else "http://127.0.0.1:9"}/v1"
api_key = "sk-anything"

[providers.llama_verbatim]  # the request id sent as it is: what every request got before ids went out as UUIDs
type = "openai"
base_url = "{upstreams["chat"].url}/v1"
request_id_format = "verbatim"

[models.llama-chat]
provider = "llama"
model = "smollm2"

[models.llama-verbatim]
provider = "llama_verbatim"
model = "smollm2"

[models.llama-embed]
provider = "llama_embed"
model = "smollm2"

[models.lite-chat]
provider = "litellm"
model = "mock-gpt"

[models.lite-embed]
provider = "litellm"
model = "mock-embed"

[models.lite-missing]
provider = "litellm"
model = "no-such-model"

[recording]
mode = "{mode}"
store = "directory"
path = "{recordings}"
"""


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="anything", max_retries=0)


@pytest.mark.parametrize("upstream", ["llama", "litellm"])
def test_chat_streams_embeddings_and_errors_through_a_real_upstream(
    upstream: str, upstreams: dict[str, Process], tmp_path: Path
) -> None:
    with gateway_process(tmp_path, config(upstreams, tmp_path / "rec")) as gw:
        client = sdk(gw.url)
        raw = client.chat.completions.with_raw_response.create(
            model=CHAT[upstream], messages=MESSAGES, max_tokens=8, temperature=0
        )
        answer = raw.parse()
        assert raw.headers["x-gateway-deployment"].startswith("llama/" if upstream == "llama" else "litellm/")
        assert answer.choices[0].message.content and answer.usage.completion_tokens > 0

        chunks = list(
            client.chat.completions.create(
                model=CHAT[upstream], messages=MESSAGES, max_tokens=8, temperature=0, stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        usage = [c.usage for c in chunks if c.usage]
        if upstream == "litellm":  # it sends usage when asked
            assert usage and usage[-1].completion_tokens > 0
        else:  # llama-cpp-python's server sends none: the gateway relays what the upstream said, nothing invented
            assert usage == []

        floats = client.embeddings.create(model=EMBED[upstream], input=["a cat"], encoding_format="float")
        assert [d.index for d in floats.data] == [0] and floats.data[0].embedding
        packed = client.embeddings.create(model=EMBED[upstream], input="a cat")  # the SDK asks for base64
        # relayed as the upstream answered: llama-cpp-python's server ignores encoding_format and, for a model without
        # a pooling type (SmolLM2), sends one vector per token; LiteLLM's mock sends its configured floats
        assert packed.data[0].embedding == floats.data[0].embedding

        if upstream == "llama":
            with pytest.raises(openai.BadRequestError) as info:
                client.chat.completions.create(
                    model="llama-chat", messages=[{"role": "user", "content": "word " * 1500}], max_tokens=5
                )
            assert info.value.code == "context_length_exceeded" and "maximum context length" in info.value.message
        else:
            with pytest.raises(openai.BadRequestError) as info:
                client.chat.completions.create(model="lite-missing", messages=MESSAGES)
            assert "no-such-model" in info.value.message
        assert gw.proc.poll() is None


def test_responses_max_output_tokens_is_honoured_by_llama_cpp_pythons_server(
    upstreams: dict[str, Process], tmp_path: Path
) -> None:
    """It reads only max_tokens: Responses' limit must reach it as that too, or 28 tokens come back for 24."""
    with gateway_process(tmp_path, config(upstreams, tmp_path / "rec")) as gw:
        response = sdk(gw.url).responses.create(
            model="llama-chat", input="Write a long story about a dragon.", max_output_tokens=16, temperature=0
        )
    assert response.usage is not None and response.usage.output_tokens <= 16
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"


def test_an_upstream_error_says_who_failed(upstreams: dict[str, Process], tmp_path: Path) -> None:
    """llama-cpp-python's server refuses a non-UUID x-request-id with an empty 400: the answer and the log line say
    which deployment it was, and the error says what the upstream did."""
    with gateway_process(tmp_path, config(upstreams, tmp_path / "rec")) as gw:
        response = httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "llama-verbatim", "messages": MESSAGES, "max_tokens": 2},
            headers={"x-request-id": "job-42.a"},
        )
        gw.terminate()
        _, stderr = gw.wait(30)
    error = response.json()["error"]
    assert response.status_code == 400 and response.headers["x-gateway-deployment"] == "llama_verbatim/smollm2"
    assert error["code"] == "upstream_http_400" and "empty body" in error["message"]
    assert "'llama_verbatim'" in error["message"]
    [line] = [orjson.loads(x) for x in stderr.splitlines() if '"request_id":"job-42.a"' in x]
    assert (line["provider"], line["deployment"], line["status"]) == ("llama_verbatim", "llama_verbatim/smollm2", 400)


def test_bodies_the_upstream_answers_500_do_not_take_its_only_deployment_out(
    upstreams: dict[str, Process], tmp_path: Path
) -> None:
    """llama-cpp-python's server answers its own validation errors with 500: each such request is one attempt and
    one failure, and the alias's only deployment stays in."""
    with gateway_process(tmp_path, config(upstreams, tmp_path / "rec")) as gw:
        client = sdk(gw.url)
        for _ in range(4):  # more than cooldown_failures (3)
            with pytest.raises(openai.InternalServerError) as info:
                client.chat.completions.create(model="llama-chat", messages=MESSAGES, extra_body={"top_k": "many"})
            assert info.value.status_code == 502 and "validation error" in info.value.message
            assert info.value.response.headers["x-gateway-deployment"] == "llama/smollm2"
        metrics = httpx.get(gw.url + "/metrics").text
        healthy = 'gateway_deployment_healthy{alias="llama-chat",deployment="llama/smollm2",provider="llama"} 1.0'
        assert healthy in metrics
        assert 'gateway_upstream_errors_total{kind="5xx",provider="llama"} 4.0' in metrics
        stats = httpx.get(gw.url + "/ui/api/stats").json()  # the usage page's two tables agree
        [row] = [d for d in stats["deployments"] if d["alias"] == "llama-chat"]
        assert row["errors"] == stats["by_alias"]["llama-chat"]["errors"] == 4 and row["status"] == "healthy"
        assert client.chat.completions.create(model="llama-chat", messages=MESSAGES, max_tokens=2).choices


def _exchanges(url: str) -> list[bytes]:
    """The raw bytes a client gets for a chat, a stream and an embedding from each upstream."""
    out: list[bytes] = []
    with httpx.Client(base_url=url + "/v1", timeout=60) as http:
        for upstream in ("llama", "litellm"):
            chat = {"model": CHAT[upstream], "messages": MESSAGES, "max_tokens": 8, "temperature": 0}
            out.append(http.post("/chat/completions", json=chat).raise_for_status().content)
            stream = {**chat, "stream": True, "stream_options": {"include_usage": True}}
            out.append(http.post("/chat/completions", json=stream).raise_for_status().content)
            embed = {"model": EMBED[upstream], "input": "a cat", "encoding_format": "base64"}
            out.append(http.post("/embeddings", json=embed).raise_for_status().content)
    return out


def test_record_then_stop_the_upstreams_then_replay_gives_the_same_bytes(
    upstreams: dict[str, Process], tmp_path: Path
) -> None:
    recordings = tmp_path / "rec"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with gateway_process(tmp_path / "a", config(upstreams, recordings, "record")) as gw:
        recorded = _exchanges(gw.url)
    for process in upstreams.values():
        process.stop()
    with gateway_process(tmp_path / "b", config(upstreams, recordings, "replay")) as gw:
        replayed = _exchanges(gw.url)
        client = sdk(gw.url)
        answer = client.chat.completions.create(model="lite-chat", messages=MESSAGES, max_tokens=8, temperature=0)
        assert answer.choices[0].message.content == "Hello from the LiteLLM mock"
    assert replayed == recorded
    assert orjson.loads(recorded[5])["data"][0]["embedding"] == [0.1, 0.2, 0.3]

