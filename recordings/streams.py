"""Converting between the two shapes of an answer: a stream's chunks and the whole response.

A recorded stream replays whole by aggregating its chunks, exactly as the openai SDK would; a whole response replays
as a stream by synthesizing the chunks OpenAI would have sent (role, content, tool calls, finish, optional usage).
"""

from __future__ import annotations

from typing import Any

CHAT = "/v1/chat/completions"


def aggregate(chunks: list[dict[str, Any]], endpoint: str) -> dict[str, Any]:
    """The whole response a stream of chunks adds up to."""
    if not chunks:
        raise ValueError("cannot aggregate an empty stream")
    first = chunks[0]
    usage = next((c["usage"] for c in reversed(chunks) if c.get("usage")), None)
    if endpoint == CHAT:
        whole: dict[str, Any] = {
            "id": first.get("id"),
            "object": "chat.completion",
            "created": first.get("created"),
            "model": first.get("model"),
            "choices": _chat_choices(chunks),
        }
    else:
        whole = {
            "id": first.get("id"),
            "object": "text_completion",
            "created": first.get("created"),
            "model": first.get("model"),
            "choices": _text_choices(chunks),
        }
    whole["usage"] = usage
    if first.get("system_fingerprint") is not None:
        whole["system_fingerprint"] = first["system_fingerprint"]
    return whole


def _chat_choices(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for c in chunk.get("choices") or ():
            index = c.get("index", 0)
            choice = choices.setdefault(
                index,
                {
                    "index": index,
                    "role": "assistant",
                    "content": [],
                    "refusal": [],
                    "tools": {},
                    "finish_reason": None,
                    "logprobs": None,
                },
            )
            delta = c.get("delta") or {}
            if delta.get("role"):
                choice["role"] = delta["role"]
            if delta.get("content"):
                choice["content"].append(delta["content"])
            if delta.get("refusal"):
                choice["refusal"].append(delta["refusal"])
            for tc in delta.get("tool_calls") or ():
                slot = choice["tools"].setdefault(
                    tc.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                if tc.get("id"):
                    slot["id"] = tc["id"]
                if tc.get("type"):
                    slot["type"] = tc["type"]
                function = tc.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            if c.get("finish_reason"):
                choice["finish_reason"] = c["finish_reason"]
            if c.get("logprobs"):
                merged = choice["logprobs"] or {"content": []}
                merged["content"].extend(c["logprobs"].get("content") or [])
                choice["logprobs"] = merged
    out = []
    for index in sorted(choices):
        ch = choices[index]
        message: dict[str, Any] = {
            "role": ch["role"],
            "content": "".join(ch["content"]) or None,
            "refusal": "".join(ch["refusal"]) or None,
        }
        if ch["tools"]:
            message["tool_calls"] = [ch["tools"][i] for i in sorted(ch["tools"])]
        elif message["content"] is None and message["refusal"] is None:
            message["content"] = ""
        out.append(
            {"index": index, "message": message, "logprobs": ch["logprobs"], "finish_reason": ch["finish_reason"]}
        )
    return out


def _text_choices(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for c in chunk.get("choices") or ():
            index = c.get("index", 0)
            choice = choices.setdefault(index, {"text": [], "index": index, "logprobs": None, "finish_reason": None})
            choice["text"].append(c.get("text") or "")
            if c.get("finish_reason"):
                choice["finish_reason"] = c["finish_reason"]
    return [{**choices[i], "text": "".join(choices[i]["text"])} for i in sorted(choices)]


def synthesize(whole: dict[str, Any], endpoint: str, include_usage: bool) -> list[dict[str, Any]]:
    """The chunks OpenAI would have streamed for `whole`."""
    if endpoint == CHAT:
        base = {
            "id": whole.get("id"),
            "object": "chat.completion.chunk",
            "created": whole.get("created"),
            "model": whole.get("model"),
        }
        if whole.get("system_fingerprint") is not None:
            base["system_fingerprint"] = whole["system_fingerprint"]
        chunks = [dict(base, choices=[choice]) for choice in _chat_deltas(whole)]
    else:
        base = {
            "id": whole.get("id"),
            "object": "text_completion",
            "created": whole.get("created"),
            "model": whole.get("model"),
        }
        chunks = []
        for choice in whole.get("choices") or ():
            index = choice.get("index", 0)
            chunks.append(
                dict(
                    base,
                    choices=[
                        {"text": choice.get("text") or "", "index": index, "logprobs": None, "finish_reason": None}
                    ],
                )
            )
            chunks.append(
                dict(
                    base,
                    choices=[
                        {"text": "", "index": index, "logprobs": None, "finish_reason": choice.get("finish_reason")}
                    ],
                )
            )
    if include_usage and whole.get("usage"):
        chunks.append(dict(base, choices=[], usage=whole["usage"]))
    return chunks


def _chat_deltas(whole: dict[str, Any]) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = []
    for choice in whole.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}

        def delta(d: dict[str, Any], finish: str | None = None, index: int = index) -> dict[str, Any]:
            return {"index": index, "delta": d, "logprobs": None, "finish_reason": finish}

        deltas.append(delta({"role": message.get("role") or "assistant", "content": ""}))
        if message.get("content"):
            deltas.append(delta({"content": message["content"]}))
        if message.get("refusal"):
            deltas.append(delta({"refusal": message["refusal"]}))
        for i, tc in enumerate(message.get("tool_calls") or ()):
            deltas.append(
                delta(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": tc.get("id"),
                                "type": tc.get("type", "function"),
                                "function": tc.get("function") or {},
                            }
                        ]
                    }
                )
            )
        deltas.append(delta({}, choice.get("finish_reason")))
    return deltas


def fit_usage(chunks: list[dict[str, Any]], include_usage: bool, usage: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Recorded chunks for a client whose `stream_options.include_usage` may differ from the recorded request's.

    The trailing usage chunk is dropped when the client did not ask for it. One is never added: a replayed stream is
    what the upstream sent, and an upstream that sends no usage chunk (llama-cpp-python's server) replays without.
    """
    has_usage_chunk = bool(chunks) and not chunks[-1].get("choices") and bool(chunks[-1].get("usage"))
    if not include_usage and has_usage_chunk:
        return chunks[:-1]
    return chunks
