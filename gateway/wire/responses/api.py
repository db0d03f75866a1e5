"""POST /v1/responses: the OpenAI Responses API served by the chat pipeline.

A Responses body becomes a chat Call (gateway/responses_format.py), so policies, recordings, routing and usage
accounting apply as they do to /v1/chat/completions; Gateway.serve runs it like any model endpoint, with this Wire
translating: the answer goes back as a `response` object, chunks as Responses events (gateway/responses_events.py)
framed `event: <type>\\ndata: {json}\\n\\n` (no `[DONE]` line: response.completed ends the stream).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from llm_gateway.vocab.errors import GatewayError
from llm_gateway.vocab.types import Kind
from llm_gateway.wire.openai_wire import OpenAIShapes
from llm_gateway.wire.responses.events import ResponseEvents
from llm_gateway.wire.responses.format import echo_fields, to_chat_body, to_response

RESPONSES_PATH = "/v1/responses"


class ResponsesWire(OpenAIShapes):
    kind: Kind = "chat"
    label = "responses"  # the `endpoint` label of this path's metrics and request log lines

    def request(self, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The chat body (unsupported Responses features are 400s naming the param), and the request's fields a
        response repeats (model, instructions, tools, temperature ...)."""
        return to_chat_body(body), echo_fields(body)

    def answer(self, result: dict[str, Any], echo: dict[str, Any]) -> dict[str, Any]:
        return to_response(result, echo)

    def framer(self, echo: dict[str, Any]) -> ResponsesFramer:
        return ResponsesFramer(ResponseEvents(echo))


class ResponsesFramer:
    """A chat chunk may open, extend and close several output items: its events go out in one write."""

    takes_frames = False  # it translates parsed chunks

    def __init__(self, events: ResponseEvents) -> None:
        self.events = events

    def feed(self, chunk: dict[str, Any]) -> bytes:
        return _frames(self.events.feed(chunk))

    def finish(self) -> bytes:
        return _frames(self.events.finish())

    def fail(self, exc: GatewayError) -> bytes:
        """An `error` event, then `response.failed`."""
        return _frames(self.events.fail(exc))


def _frames(events: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)
