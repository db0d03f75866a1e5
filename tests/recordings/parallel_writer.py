"""One of several processes recording into the same store at once (run by test_stores.py).

Usage: python -m tests.recordings.parallel_writer <store kind> <path> <worker number> <recordings>
Each worker records its own prompts plus one prompt every worker shares, through a real StoreRecorder.
"""

from __future__ import annotations

import asyncio
import sys

from llm_gateway.recordings.keys import KeyMaker
from llm_gateway.recordings.recorder import StoreRecorder
from llm_gateway.recordings.store import open_store
from llm_gateway.vocab.types import Call, RequestContext


async def answer(call: Call, ctx: RequestContext) -> dict:
    ctx.deployment = "up/model"
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok " * 200}, "finish_reason": "stop"}],
    }


async def main(kind: str, path: str, worker: int, count: int) -> None:
    recorder = StoreRecorder("record", open_store(kind, path), KeyMaker())
    prompts = [f"worker {worker} prompt {i}" for i in range(count)] + ["shared prompt"]
    for prompt in prompts:
        call = Call(kind="chat", alias="m", body={"model": "m", "messages": [{"role": "user", "content": prompt}]})
        await recorder.send(call, RequestContext(request_id="r"), answer)
    await recorder.aclose()
    if recorder.counters.store_errors:
        sys.exit(f"worker {worker}: {recorder.counters.store_errors} store errors")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
