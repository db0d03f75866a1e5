"""A real `gateway serve` against an upstream that misbehaves at the socket level (tests/support/raw_upstream.py):
a broken answer is never passed off as a whole one, reads are bounded, and `timeout.total` covers streams.

Each case asserts the status and the error code the client gets, that nothing was recorded, and that a normal
request is served right after. Every case runs twice: with the recorder on (record mode: streams are parsed into
chunks) and off (nothing reads the chunks: streams take the relay path, the upstream's own events as Frames).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.gateway_process import GatewayProcess, gateway_process
from tests.support.raw_upstream import RawUpstream

Served = tuple[GatewayProcess, RawUpstream, Path | None]
ALIASES = ("ok", "cut", "cut-close", "truncated", "huge-length", "endless-body", "endless-error", "gzip-bomb",
           "long-line")
SLOW_ALIASES = ("drip", "endless-stream")
CAP = 4 * 1024 * 1024


def _config(upstream: RawUpstream, recordings: Path, mode: str) -> str:
    models = "".join(
        f'[models."{alias}"]\nprovider = "raw"\nmodel = "{alias}"\n'
        "price = { input_per_mtok = 1000000, output_per_mtok = 1000000 }\n"
        for alias in ALIASES
    )
    models += "".join(f'[models."{alias}"]\nprovider = "rawslow"\nmodel = "{alias}"\n' for alias in SLOW_ALIASES)
    models += '[models."claude-cut"]\nprovider = "rawanthropic"\nmodel = "anthropic-cut"\n'

    return f"""
[router]
retries = 0
cooldown_failures = 1000

[recording]
mode = "{mode}"
store = "directory"
path = "{recordings}"

[providers.raw]
type = "openai"
base_url = "{upstream.base_url}"
max_answer_bytes = {CAP}
max_event_bytes = 65536
timeout = {{ connect = 2, read = 10, total = 60, first_token = 10 }}

[providers.rawanthropic]
type = "anthropic"
base_url = "http://127.0.0.1:{upstream.port}"
api_key = "sk-ant-raw"

[providers.rawslow]
type = "openai"
base_url = "{upstream.base_url}"
timeout = {{ connect = 2, read = 10, total = 2, first_token = 10 }}

{models}
"""


@pytest.fixture(scope="module", params=["record", "off"])
def served(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Served]:
    """The gateway and its upstream, and where it records (None with the recorder off)."""
    mode = request.param
    directory = tmp_path_factory.mktemp(f"integrity-{mode}")
    recordings = directory / "recordings"
    with RawUpstream() as upstream, gateway_process(directory, _config(upstream, recordings, mode)) as gateway:
        yield gateway, upstream, recordings if mode == "record" else None


def _chat(url: str, alias: str, *, stream: bool) -> httpx.Response:
    body = {"model": alias, "messages": [{"role": "user", "content": "hello there"}], "stream": stream}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60)


def _events(text: str) -> list[bytes]:
    return [line[6:].encode() for line in text.split("\n") if line.startswith("data: ")]


def _recorded(recordings: Path | None) -> list[str]:
    """The alias of every stored recording."""
    if recordings is None or not recordings.exists():
        return []
    return sorted(orjson.loads(p.read_bytes())["request"]["alias"] for p in recordings.rglob("*.json"))


def _metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _still_serves(gateway: GatewayProcess, recordings: Path | None) -> None:
    whole = _chat(gateway.url, "ok", stream=False)
    assert whole.status_code == 200 and whole.json()["choices"][0]["message"]["content"] == "fine"
    streamed = _chat(gateway.url, "ok", stream=True)
    assert streamed.status_code == 200 and _events(streamed.text)[-1] == b"[DONE]"
    if recordings is not None:
        assert "ok" in _recorded(recordings)  # the recorder is on: a whole answer is stored


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@pytest.mark.parametrize("alias", ["cut", "cut-close"])
def test_a_cut_stream_ends_with_an_error_event_and_is_neither_recorded_nor_free(
    served: Served, alias: str
) -> None:
    gateway, _, recordings = served
    errors_before = _metric(gateway.url, "gateway_requests_total", alias=alias, outcome="error")
    tokens_before = _metric(gateway.url, "gateway_completion_tokens_total", alias=alias)
    response = _chat(gateway.url, alias, stream=True)
    assert response.status_code == 200  # the stream had begun
    events = _events(response.text)
    assert b"[DONE]" not in events
    assert [orjson.loads(e)["choices"][0]["delta"]["content"] for e in events[:2]] == ["word ", "word "]
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "upstream_stream_incomplete", error
    assert "[DONE]" in error["message"] and "127.0.0.1" not in error["message"]
    assert alias not in _recorded(recordings)
    assert _metric(gateway.url, "gateway_requests_total", alias=alias, outcome="error") == errors_before + 1
    assert _metric(gateway.url, "gateway_completion_tokens_total", alias=alias) >= tokens_before + 2  # "word word"
    assert _metric(gateway.url, "gateway_spend_usd_total", alias=alias) > 0
    _still_serves(gateway, recordings)


def test_a_cut_anthropic_stream_is_not_passed_off_as_whole(served: Served) -> None:
    gateway, _, recordings = served
    response = _chat(gateway.url, "claude-cut", stream=True)
    assert response.status_code == 200
    events = _events(response.text)
    assert b"[DONE]" not in events
    text = "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == "word word "  # what the upstream sent before the reset, relayed as it came
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "upstream_stream_incomplete" and "message_stop" in error["message"]
    assert "claude-cut" not in _recorded(recordings)
    _still_serves(gateway, recordings)


def test_a_cut_responses_stream_ends_with_response_failed(served: Served) -> None:
    gateway, _, recordings = served
    body = {"model": "cut", "input": "hello", "stream": True}
    response = httpx.post(gateway.url + "/v1/responses", json=body, timeout=60)
    assert response.status_code == 200
    kinds = re.findall(r"^event: (\S+)", response.text, flags=re.MULTILINE)
    assert kinds[-1] == "response.failed" and "response.completed" not in kinds
    assert "upstream_stream_incomplete" in response.text
    assert "cut" not in _recorded(recordings)
    _still_serves(gateway, recordings)


@pytest.mark.parametrize(
    ("alias", "code"),
    [
        ("truncated", "upstream_answer_truncated"),
        ("huge-length", "upstream_answer_too_large"),
        ("endless-body", "upstream_answer_too_large"),
        ("gzip-bomb", "upstream_inflated_too_large"),
    ],
)
def test_whole_answers_are_read_with_bounds(
    served: Served, alias: str, code: str
) -> None:
    gateway, _, recordings = served
    response = _chat(gateway.url, alias, stream=False)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert "127.0.0.1" not in error["message"]
    assert alias not in _recorded(recordings)
    _still_serves(gateway, recordings)


def test_an_endless_error_body_keeps_its_status_and_reads_only_its_start(
    served: Served,
) -> None:
    gateway, _, recordings = served
    response = _chat(gateway.url, "endless-error", stream=False)
    assert response.status_code == 502 and response.json()["error"]["code"] == "bad_gateway"
    assert len(response.content) < 70_000
    assert "endless-error" not in _recorded(recordings)
    _still_serves(gateway, recordings)


def test_a_stream_line_past_the_event_cap_ends_the_stream(served: Served) -> None:
    gateway, _, recordings = served
    response = _chat(gateway.url, "long-line", stream=True)
    events = _events(response.text)
    assert b"[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_event_too_large"
    assert "long-line" not in _recorded(recordings)
    _still_serves(gateway, recordings)


@pytest.mark.parametrize("alias", SLOW_ALIASES)
def test_total_timeout_bounds_a_stream(served: Served, alias: str) -> None:
    gateway, _, recordings = served
    started = time.monotonic()
    response = _chat(gateway.url, alias, stream=True)
    took = time.monotonic() - started
    events = _events(response.text)
    assert b"[DONE]" not in events
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "upstream_total_timeout" and "total timeout of 2s" in error["message"]
    assert took < 30  # total is 2 s; without it the stream never ends (the client's own timeout is 60 s)
    assert alias not in _recorded(recordings)
    _still_serves(gateway, recordings)


def test_memory_stays_bounded_while_others_are_served(served: Served) -> None:
    """A 1 GiB gzip bomb, a 10 GB content-length and endless bodies, four times over: the peak RSS grows by about
    the cap per concurrent request (4 MiB here), not by the gigabytes the upstream offers."""
    import concurrent.futures

    gateway, _, recordings = served
    pid = gateway.proc.pid
    _still_serves(gateway, recordings)
    baseline = _rss_kib(pid, "VmHWM")
    bad = ["gzip-bomb", "endless-body", "huge-length", "endless-error"] * 2
    with concurrent.futures.ThreadPoolExecutor(len(bad) + 1) as pool:
        futures = [pool.submit(_chat, gateway.url, alias, stream=False) for alias in bad]
        served_meanwhile = [_chat(gateway.url, "ok", stream=False).status_code for _ in range(5)]
        statuses = [f.result().status_code for f in futures]
    assert statuses == [502] * len(bad)
    assert served_meanwhile == [200] * 5
    grown_mib = (_rss_kib(pid, "VmHWM") - baseline) / 1024
    # 8 requests at a 4 MiB cap, plus the allocator's slack: far below the ~2 GiB an unbounded read costs
    assert grown_mib < 8 * 4 * 3 + 64, grown_mib
