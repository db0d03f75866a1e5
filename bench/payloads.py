"""The bytes every target sees: one chat request body, the upstream's fixed answer, 200- and 20-chunk streams."""

from __future__ import annotations

import orjson

MODEL = "bench"  # the alias every target serves (LiteLLM: model_name, gateway: [models.bench])
UPSTREAM_MODEL = "gpt-4o-mini"
STREAM_CHUNKS = 200
SHORT_STREAM_CHUNKS = 20  # the leak check's streams: per-request state, 100k of them in ~2 minutes

REQUEST = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello to the benchmark, please, in a short sentence."},
    ],
    "max_tokens": 32,
}
REQUEST_BODY = orjson.dumps(REQUEST)
STREAM_REQUEST_BODY = orjson.dumps({**REQUEST, "stream": True})

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": UPSTREAM_MODEL,
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "Hello, benchmark! Nice to meet you.", "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {"prompt_tokens": 27, "completion_tokens": 9, "total_tokens": 36},
    "system_fingerprint": "fp_bench",
}
COMPLETION_BODY = orjson.dumps(COMPLETION)


def _chunk(index: int, delta: dict, finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": UPSTREAM_MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream_frames(count: int = STREAM_CHUNKS) -> list[bytes]:
    """`count` SSE frames (a role chunk, word chunks, a finish chunk) and the [DONE] line, as OpenAI sends them."""
    frames = [_chunk(0, {"role": "assistant", "content": ""})]
    frames += [_chunk(i, {"content": f" word{i}"}) for i in range(1, count - 1)]
    frames.append(_chunk(count - 1, {}, "stop"))
    frames.append(b"data: [DONE]\n\n")
    return frames


STREAM_BODY = b"".join(stream_frames())
SHORT_STREAM_BODY = b"".join(stream_frames(SHORT_STREAM_CHUNKS))
