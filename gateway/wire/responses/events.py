"""Chat completion chunks -> OpenAI Responses streaming events: one small stateful translator, no I/O.

The items it builds are the ones gateway/responses_format.py builds for a whole answer (same ids, same shapes),
so the response in response.completed equals the one a non-streamed request gets.
"""

from __future__ import annotations

from typing import Any

from llm_gateway.vocab.errors import GatewayError
from llm_gateway.wire.responses.format import (
    answer_status,
    base_id,
    build_response,
    function_item,
    message_item,
    text_part,
    to_usage,
)


class ResponseEvents:
    """Chat completion chunks in, Responses streaming events out, in the order OpenAI sends them.

    Text opens a message item and an output_text part; each tool call opens a function_call item (chat streams
    them one after another, by index). Items close when the next one opens or the stream ends; the last event is
    response.completed, response.incomplete (cut by max_output_tokens or a content filter) or response.failed.
    """

    def __init__(self, echo: dict[str, Any]) -> None:
        self.echo = echo
        self.sequence = 0
        self.base = ""
        self.created: Any = 0
        self.model: Any = ""
        self.started = False
        # every item opened so far, completed in place when it closes; at most one is open, and it is the last
        self.output: list[dict[str, Any]] = []
        self.message: dict[str, Any] | None = None  # the open message item
        self.part: dict[str, Any] | None = None  # its open content part
        self.pieces: list[str] = []  # the open part's text so far
        self.call: dict[str, Any] | None = None  # the open function_call item
        self.call_index: Any = None  # its chat tool_calls index
        self.calls = 0  # function_call items opened so far
        self.arguments: list[str] = []
        self.finish_reason: Any = None
        self.usage: Any = None
        self.service_tier: Any = None

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        events = [] if self.started else self._start(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("service_tier"), str):
            self.service_tier = chunk["service_tier"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text("output_text", delta["content"])
            if delta.get("refusal"):
                events += self._text("refusal", delta["refusal"])
            for tc in delta.get("tool_calls") or ():
                events += self._tool_call(tc)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def finish(self) -> list[dict[str, Any]]:
        """The events that close the stream once the chat stream has ended."""
        events = [] if self.started else self._start({})
        status, incomplete = answer_status(self.finish_reason)
        item_status = "completed" if status == "completed" else "incomplete"
        events += self._close_message(item_status) + self._close_call(item_status)
        if not self.output:  # an empty answer is still a message, so output_text reads ""
            events += self._text("output_text", "") + self._close_message(item_status)
        response = self._response(status, usage=to_usage(self.usage), incomplete=incomplete)
        events.append(self._event(f"response.{status}", response=response))
        return events

    def fail(self, exc: GatewayError) -> list[dict[str, Any]]:
        """An error after the stream began: an `error` event with the gateway's code, then response.failed."""
        events = [] if self.started else self._start({})
        events.append(self._event("error", code=exc.code, message=exc.message, param=exc.param))
        error = {"code": _failure_code(exc), "message": exc.message}
        events.append(self._event("response.failed", response=self._response("failed", error=error)))
        return events

    # opening and closing items

    def _start(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        self.started = True
        self.base = base_id(chunk.get("id"))
        self.created = chunk.get("created", 0)
        self.model = chunk.get("model", "")
        return [
            self._event("response.created", response=self._response("in_progress")),
            self._event("response.in_progress", response=self._response("in_progress")),
        ]

    def _text(self, kind: str, piece: str) -> list[dict[str, Any]]:
        events = self._close_call("completed")
        if self.message is None:
            self.message = message_item(self.base, [], "in_progress")
            self.output.append(self.message)
            events.append(self._item_event("response.output_item.added", self.message))
        if self.part is None or self.part["type"] != kind:
            events += self._close_part()
            self.part = text_part("") if kind == "output_text" else {"type": "refusal", "refusal": ""}
            events.append(self._part_event("response.content_part.added", dict(self.part)))
        if piece:
            self.pieces.append(piece)
            extra = {"logprobs": []} if kind == "output_text" else {}
            name = "response.output_text.delta" if kind == "output_text" else "response.refusal.delta"
            events.append(self._part_event(name, None, delta=piece, **extra))
        return events

    def _close_part(self) -> list[dict[str, Any]]:
        part, message = self.part, self.message
        if part is None or message is None:
            return []
        text = "".join(self.pieces)
        self.part, self.pieces = None, []
        if part["type"] == "output_text":
            part["text"] = text
            done = self._part_event("response.output_text.done", None, text=text, logprobs=[])
        else:
            part["refusal"] = text
            done = self._part_event("response.refusal.done", None, refusal=text)
        done_part = self._part_event("response.content_part.done", part)
        message["content"].append(part)
        return [done, done_part]

    def _close_message(self, status: str) -> list[dict[str, Any]]:
        if self.message is None:
            return []
        events = self._close_part()
        self.message["status"] = status
        events.append(self._item_event("response.output_item.done", self.message))
        self.message = None
        return events

    def _tool_call(self, tc: Any) -> list[dict[str, Any]]:
        if not isinstance(tc, dict):
            return []
        fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
        events: list[dict[str, Any]] = []
        if self.call is None or tc.get("index", self.call_index) != self.call_index:
            events += self._close_message("completed") + self._close_call("completed")
            self.call = function_item(self.base, self.calls, tc.get("id"), fn.get("name") or "", "", "in_progress")
            self.calls += 1
            self.call_index = tc.get("index", 0)
            self.output.append(self.call)
            events.append(self._item_event("response.output_item.added", self.call))
        elif fn.get("name") and not self.call["name"]:
            self.call["name"] = fn["name"]
        piece = fn.get("arguments")
        if isinstance(piece, str) and piece:
            self.arguments.append(piece)
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=self.call["id"],
                    output_index=self._open_index(),
                    delta=piece,
                )
            )
        return events

    def _close_call(self, status: str) -> list[dict[str, Any]]:
        call = self.call
        if call is None:
            return []
        call["arguments"], call["status"] = "".join(self.arguments), status
        self.call, self.arguments = None, []
        return [
            self._event(
                "response.function_call_arguments.done",
                item_id=call["id"],
                name=call["name"],  # required by OpenAI's spec and both official SDKs' newer types
                output_index=self._open_index(),
                arguments=call["arguments"],
            ),
            self._item_event("response.output_item.done", call),
        ]

    # events

    def _response(self, status: str, **kwargs: Any) -> dict[str, Any]:
        output = [dict(item) for item in self.output if item["status"] != "in_progress"]
        return build_response(
            self.base,
            self.created,
            self.model,
            self.echo,
            status=status,
            output=output if status != "in_progress" else [],
            service_tier=self.service_tier,
            **kwargs,
        )

    def _open_index(self) -> int:
        return len(self.output) - 1

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _item_event(self, kind: str, item: dict[str, Any]) -> dict[str, Any]:
        snapshot = {**item, "content": list(item["content"])} if "content" in item else dict(item)
        return self._event(kind, output_index=self._open_index(), item=snapshot)

    def _part_event(self, kind: str, part: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
        assert self.message is not None
        fields.setdefault("content_index", len(self.message["content"]))
        if part is not None:
            fields["part"] = part
        return self._event(kind, item_id=self.message["id"], output_index=self._open_index(), **fields)


def _failure_code(exc: GatewayError) -> str:
    """ResponseError.code is one of a fixed list; the gateway's own code goes out in the `error` event before it."""
    if exc.status == 429:
        return "rate_limit_exceeded"
    if exc.status == 400:
        return "invalid_prompt"
    return "server_error"
