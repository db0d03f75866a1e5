"""The hot path's raw ASGI I/O: body reading under the cap, whole JSON answers, and the app's direct dispatch."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from llm_gateway.composition.root import create_app
from llm_gateway.server.asgi_io import ClientGone, read_body, scope_headers, send_json
from llm_gateway.vocab.errors import PayloadTooLarge
from tests.conftest import make_settings


def receiver(*messages: dict[str, Any]):
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def test_a_body_in_one_message_is_returned_as_is() -> None:
    body = asyncio.run(read_body(receiver({"type": "http.request", "body": b"{}"}), "2", 10))
    assert body == b"{}"


def test_a_body_in_pieces_is_joined() -> None:
    receive = receiver(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": True},
        {"type": "http.request", "body": b"e"},
    )
    assert asyncio.run(read_body(receive, None, 10)) == b"abcde"


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    async def never() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    with pytest.raises(PayloadTooLarge, match="11 bytes"):
        asyncio.run(read_body(never, "11", 10))


@pytest.mark.parametrize("pieces", [[b"x" * 11], [b"x" * 6, b"x" * 5]])
def test_a_body_growing_past_the_cap_without_a_length_is_refused(pieces: list[bytes]) -> None:
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(receiver(*messages), None, 10))


@pytest.mark.parametrize("first", [True, False])
def test_a_client_gone_before_its_body_arrived_is_client_gone(first: bool) -> None:
    messages = [] if first else [{"type": "http.request", "body": b"{", "more_body": True}]
    with pytest.raises(ClientGone):
        asyncio.run(read_body(receiver(*messages, {"type": "http.disconnect"}), None, 10))


def test_send_json_frames_a_whole_answer() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(send_json(send, 201, b'{"a":1}', {"x-request-id": "r1"}))
    assert sent[0] == {
        "type": "http.response.start",
        "status": 201,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"7"), (b"x-request-id", b"r1")],
    }
    assert sent[1] == {"type": "http.response.body", "body": b'{"a":1}'}


def test_a_repeated_header_keeps_its_first_value() -> None:
    assert scope_headers({"headers": [(b"x-a", b"1"), (b"x-a", b"2"), (b"x-b", b"3")]}) == {"x-a": "1", "x-b": "3"}


async def _post(app: Any, path: str, body: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        return await client.post(path, json=body)


def test_an_unexpected_error_is_a_500_in_openais_shape_and_the_request_is_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(make_settings())
    gateway = app.state.gateway

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(gateway.pipeline, "send", broken)
    response = asyncio.run(
        _post(app, "/v1/chat/completions", {"model": "mock", "messages": [{"role": "user", "content": "hi"}]})
    )
    assert response.status_code == 500
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and "internal error" in error["message"]
    assert response.headers["x-request-id"].startswith("req_")
    assert gateway.observer.in_flight == 0  # finished once, like any other answer


def test_paths_outside_the_direct_dispatch_still_reach_the_model_endpoints() -> None:
    app = create_app(make_settings())
    body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}

    async def behind_a_prefix() -> httpx.Response:  # uvicorn --root-path /gw: Starlette's routing strips the prefix
        transport = httpx.ASGITransport(app=app, root_path="/gw")
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.post("/gw/v1/chat/completions", json=body)

    response = asyncio.run(behind_a_prefix())
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"
    wrong_method = asyncio.run(_get(app, "/v1/chat/completions"))
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"


async def _get(app: Any, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        return await client.get(path)


def test_the_direct_dispatch_answers_exactly_what_the_pipeline_returned() -> None:
    app = create_app(make_settings())
    body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
    response = asyncio.run(_post(app, "/v1/chat/completions", body))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert orjson.loads(response.content)["object"] == "chat.completion"
