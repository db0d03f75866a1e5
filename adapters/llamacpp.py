"""A GGUF model through llama-cpp-python, run in worker processes so that a native crash never takes the gateway down.

Each of `concurrency` worker processes (adapters/llamacpp_worker.py) holds its own copy of the model, loaded on its
first request, and serves one request at a time; further requests wait for a free worker. A client gone mid-stream
stops generation at the next token. A worker that dies mid-request (a SIGSEGV inside llama.cpp, the OOM killer)
answers that request 503 `local_model_crashed` (an error event for a stream in flight), is logged, and is replaced
by a fresh process at once; other aliases never notice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

from llm_gateway.adapters.llamacpp_engine import (
    INSTALL_HINT,
    SMOLLM2_FILE,
    LlamaCppSettings,
    default_model_path,
    unavailable,
)
from llm_gateway.adapters.llamacpp_worker import WorkerDied, WorkerProcess, describe_exit, error_from
from llm_gateway.vocab.errors import ServiceUnavailable
from llm_gateway.vocab.types import Call

__all__ = ["INSTALL_HINT", "LlamaCppAdapter", "LlamaCppSettings", "default_model_path"]

log = logging.getLogger("gateway.local_model")


class LlamaCppAdapter:
    def __init__(self, settings: LlamaCppSettings) -> None:
        self.name = settings.name
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._idle: list[WorkerProcess] = []
        self._workers: set[WorkerProcess] = set()  # every live worker, busy or idle, for aclose
        self.restarts = 0

    # the Adapter protocol

    async def chat(self, call: Call) -> dict[str, Any]:
        return await self._whole("chat", call)

    async def stream_chat(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        async with aclosing(self._stream("stream_chat", call)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def complete(self, call: Call) -> dict[str, Any]:
        return await self._whole("complete", call)

    async def stream_complete(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        async with aclosing(self._stream("stream_complete", call)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def embed(self, call: Call) -> dict[str, Any]:
        return await self._whole("embed", call)

    async def list_models(self) -> list[dict[str, Any]]:
        path = self.settings.model_path or default_model_path() or SMOLLM2_FILE
        return [{"id": Path(path).stem, "object": "model", "created": 0, "owned_by": "llamacpp"}]

    async def aclose(self) -> None:
        workers, self._workers = list(self._workers), set()
        self._idle.clear()
        await asyncio.gather(*(asyncio.to_thread(w.close) for w in workers))

    def unavailable_reason(self) -> str | None:
        """Why this provider cannot serve at all (the extra or the model file missing), for the health report."""
        problem = unavailable(self.settings)
        return problem.message if problem is not None else None

    def worker_pids(self) -> list[int]:
        return sorted(w.pid for w in self._workers if w.alive)

    # one request on one worker

    async def _whole(self, op: str, call: Call) -> dict[str, Any]:
        async with self._worker() as worker, aclosing(self._exchange(worker, op, call)) as messages:
            async for result in messages:
                return result
        raise ServiceUnavailable(f"the local model {self.name!r} ended a request without an answer")

    async def _stream(self, op: str, call: Call) -> AsyncIterator[dict[str, Any]]:
        async with self._worker() as worker, aclosing(self._exchange(worker, op, call)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _exchange(self, worker: WorkerProcess, op: str, call: Call) -> AsyncIterator[dict[str, Any]]:
        """A stream's chunks or a whole answer, as the worker sends them; its errors raised as the gateway's."""
        try:
            async with aclosing(worker.request(op, call)) as messages:
                async for message in messages:
                    if "chunk" in message:
                        yield message["chunk"]
                    elif "result" in message:
                        yield message["result"]
                    elif "error" in message:
                        raise error_from(message["error"])
        except WorkerDied as died:
            raise self._crashed(died, op, call) from None

    @asynccontextmanager
    async def _worker(self) -> AsyncIterator[WorkerProcess]:
        problem = unavailable(self.settings)  # the extra or the model file missing: say so without spawning
        if problem is not None:
            raise problem
        async with self._slots:  # requests beyond `concurrency` wait here, in order
            worker = self._idle.pop() if self._idle else self._spawn()
            try:
                yield worker
            finally:
                if worker.alive:
                    self._idle.append(worker)
                else:
                    self._workers.discard(worker)

    def _spawn(self) -> WorkerProcess:
        worker = WorkerProcess(self.settings)
        self._workers.add(worker)
        return worker

    def _crashed(self, died: WorkerDied, op: str, call: Call) -> ServiceUnavailable:
        """Log the crash, put a fresh worker in the dead one's place, and say what happened to the request."""
        how = describe_exit(died.returncode)
        replacement = self._spawn()
        self._idle.append(replacement)
        self.restarts += 1
        log.error(
            "local model %r: worker process %d died (%s) during a %s request (request %s); restarted as pid %d",
            self.name, died.pid, how, op, call.request_id or "-", replacement.pid,
            extra={"request_id": call.request_id, "provider": self.name},
        )
        return ServiceUnavailable(
            f"the local model {self.name!r} crashed while serving this request ({how}); "
            "its worker process was restarted, so a retry can be served",
            code="local_model_crashed",
        )
