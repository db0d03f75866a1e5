"""Chat chunks -> the Messages API event sequence, one chunk at a time.

message_start and a ping on the first chunk; a content block per run of text and per tool call
(content_block_start, text_delta / input_json_delta, content_block_stop); at the end message_delta with the stop
reason and the final usage, then message_stop. Chunks from an Anthropic backend reached natively also carry the
upstream events the chat shape has no room for (`delta["anthropic"]`: thinking, signature and citation deltas,
server-tool blocks); they go out as they came, renumbered into this stream's blocks. A failure ends the stream with
an `error` event and nothing after it: never a message_stop the answer did not reach.
"""

from __future__ import annotations

from typing import Any

from llm_gateway.wire.anthropic.answer import message_id, stop_reason, to_usage


class MessageEvents:
    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.open: int | None = None  # index of the open content block
        self.open_kind = ""  # text | tool | native
        self.next_index = 0
        self.tools: dict[int, int] = {}  # chat tool_calls index -> block index
        self.native_blocks: dict[int, int] = {}  # the upstream's block index -> block index
        self.finish: str | None = None
        self.native_stop: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        events = [] if self.started else self._start(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("anthropic"), dict):
            self.native_stop.update(chunk["anthropic"])
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # Messages answers have one choice
            delta = choice.get("delta") or {}
            native = delta.get("anthropic")
            if isinstance(native, dict):
                events += self._native(native)
            text = delta.get("content")
            if isinstance(text, str) and text:
                events += self._text(text)
            for call in delta.get("tool_calls") or ():
                events += self._tool(call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return events

    def finish_events(self) -> list[dict[str, Any]]:
        events = [] if self.started else self._start({})
        events += self._close()
        reason = stop_reason(self.finish or "stop", self.native_stop.get("stop_reason"))
        usage = to_usage(self.usage)
        sequence = self.native_stop.get("stop_sequence") if reason == "stop_sequence" else None
        events.append({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
                       "usage": usage})
        events.append({"type": "message_stop"})
        return events

    def _start(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        self.started = True
        message = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # an Anthropic backend's own start usage; else zeros, and the real counts come with message_delta
            "usage": _start_usage(chunk.get("anthropic")),
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def _open(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        self.open, self.open_kind = self.next_index, kind
        self.next_index += 1
        events.append({"type": "content_block_start", "index": self.open, "content_block": block})
        return events

    def _close(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        index, self.open = self.open, None
        return [{"type": "content_block_stop", "index": index}]

    def _text(self, text: str) -> list[dict[str, Any]]:
        events = [] if self.open_kind == "text" and self.open is not None else self._open("text", {"type": "text",
                                                                                                    "text": ""})
        events.append({"type": "content_block_delta", "index": self.open,
                       "delta": {"type": "text_delta", "text": text}})
        return events

    def _tool(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        slot = call.get("index", 0)
        function = call.get("function") or {}
        events: list[dict[str, Any]] = []
        if slot not in self.tools:
            block = {"type": "tool_use", "id": call.get("id") or "", "name": function.get("name") or "", "input": {}}
            events = self._open("tool", block)
            assert self.open is not None
            self.tools[slot] = self.open
        arguments = function.get("arguments")
        if arguments:
            events.append({"type": "content_block_delta", "index": self.tools[slot],
                           "delta": {"type": "input_json_delta", "partial_json": arguments}})
        return events

    def _native(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        upstream_index = event.get("index", 0)
        if kind == "content_block_start":
            events = self._open("native", event.get("content_block") or {})
            assert self.open is not None
            self.native_blocks[upstream_index] = self.open
            return events
        index = self.native_blocks.get(upstream_index)
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            events: list[dict[str, Any]] = []
            if index is None and delta.get("type") == "citations_delta":
                # a citation belongs to a text block: the one being written, or the one its text will open
                if self.open is None or self.open_kind != "text":
                    events = self._open("text", {"type": "text", "text": "", "citations": []})
                index = self.open
            if index is None:
                return []
            return [*events, {"type": "content_block_delta", "index": index, "delta": delta}]
        if kind == "content_block_stop" and index is not None and index == self.open:
            return self._close()
        return []


def _start_usage(native: Any) -> dict[str, Any]:
    usage = native.get("usage") if isinstance(native, dict) else None
    return dict(usage) if isinstance(usage, dict) else {"input_tokens": 0, "output_tokens": 0}
