"""The local model's worker process and the small protocol the gateway speaks with it over pipes.

llama.cpp is native code: a crash inside it (a SIGSEGV in `llama_decode` on a CPU its build did not expect, say)
kills the process it runs in. So the model runs here, in a process of its own, and the gateway only loses a worker.

The protocol is one JSON object per line. The gateway writes `{"op": ..., "call": {...}}` (op: chat, complete,
embed, stream_chat, stream_complete), then possibly `{"op": "cancel"}`; the worker answers `{"chunk": {...}}` for
each chunk of a stream and ends every request with exactly one of `{"result": {...}}`, `{"done": true}` or
`{"error": {...}}`. End of its stdin tells the worker to exit. Run as `python -m llm_gateway.adapters.llamacpp_worker
'<settings as JSON>'`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

import orjson

from llm_gateway.adapters.llamacpp_engine import LlamaCppSettings, LlamaEngine
from llm_gateway.vocab.errors import (
    ContextLengthExceeded,
    GatewayError,
    InvalidRequest,
    ServiceUnavailable,
    UpstreamError,
    UpstreamMalformed,
)
from llm_gateway.vocab.types import Call

CANCEL_GRACE_SECONDS = 30.0  # a cancelled generation stops at its next token; a worker slower than this is killed
# the errors a worker may report, rebuilt by name on the gateway's side
_ERRORS: dict[str, type[GatewayError]] = {
    cls.__name__: cls
    for cls in (InvalidRequest, ContextLengthExceeded, ServiceUnavailable, UpstreamError, UpstreamMalformed)
}


class WorkerDied(Exception):
    """The worker process ended while a request was with it."""

    def __init__(self, pid: int, returncode: int | None) -> None:
        super().__init__(f"worker {pid} ended ({describe_exit(returncode)})")
        self.pid = pid
        self.returncode = returncode


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def error_fields(exc: GatewayError) -> dict[str, Any]:
    fields = {"class": type(exc).__name__, "message": exc.message, "param": exc.param, "code": exc.code}
    if isinstance(exc, UpstreamError):
        fields["provider"], fields["kind"] = exc.provider, exc.kind
    return fields


def error_from(fields: dict[str, Any]) -> GatewayError:
    cls = _ERRORS.get(str(fields.get("class")), UpstreamError)
    message, param, code = str(fields.get("message") or ""), fields.get("param"), fields.get("code")
    if issubclass(cls, UpstreamError):
        return cls(message, provider=fields.get("provider"), kind=fields.get("kind") or "error", param=param, code=code)
    return cls(message, param=param, code=code)


def call_fields(call: Call) -> dict[str, Any]:
    return {
        "kind": call.kind,
        "alias": call.alias,
        "body": call.body,
        "stream": call.stream,
        "model": call.model,
        "provider": call.provider,
        "request_id": call.request_id,
    }


# the gateway's side


class WorkerProcess:
    """One worker process; serves one request at a time (the adapter's pool sees to that).

    A reader thread hands each line to the request in progress on that request's own event loop, so the process is
    bound to no loop (a test session's fixtures may span several).
    """

    def __init__(self, settings: LlamaCppSettings) -> None:
        self.proc = subprocess.Popen(
            # -P: a user's project folder (the cwd) must not shadow our package in the worker
            [sys.executable, "-P", "-m", __name__, orjson.dumps(asdict(settings)).decode()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        self._deliver: Callable[[dict[str, Any] | None], None] | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name=f"llamacpp-worker-{self.pid}", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    async def request(self, op: str, call: Call) -> AsyncIterator[dict[str, Any]]:
        """The worker's messages for one request, through its terminal one; WorkerDied if the process ends first."""
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def deliver(message: dict[str, Any] | None) -> None:
            try:
                loop.call_soon_threadsafe(inbox.put_nowait, message)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

        with self._lock:
            self._deliver = deliver
        if not self._send({"op": op, "call": call_fields(call)}):
            raise WorkerDied(self.pid, await self._exit_code())
        finished = False
        try:
            while True:
                message = await inbox.get()
                if message is None:
                    raise WorkerDied(self.pid, await self._exit_code())
                finished = "chunk" not in message
                yield message
                if finished:
                    return
        finally:
            if not finished:  # the caller went away mid-request: stop generation, wait for the worker to let go
                await self._cancel(inbox)

    def close(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit (end of its stdin), then make sure it did."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()

    def _send(self, message: dict[str, Any]) -> bool:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(orjson.dumps(message) + b"\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):  # the process is gone (ValueError: its pipe was closed)
            return False

    async def _cancel(self, inbox: asyncio.Queue[dict[str, Any] | None]) -> None:
        if not self.alive or not self._send({"op": "cancel"}):
            return
        try:
            async with asyncio.timeout(CANCEL_GRACE_SECONDS):
                while (message := await inbox.get()) is not None and "chunk" in message:
                    pass
        except TimeoutError:
            self.kill()

    async def _exit_code(self) -> int | None:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 5)
        except TimeoutError:
            self.kill()
            return self.proc.poll()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            with self._lock:
                deliver = self._deliver
            if deliver is not None:
                deliver(message)
        with self._lock:
            deliver = self._deliver
        if deliver is not None:
            deliver(None)  # end of output: the process is gone


# the worker's side


def main(argv: list[str]) -> int:
    settings = LlamaCppSettings(**orjson.loads(argv[0]))
    # the protocol gets its own copy of stdout; fd 1 then points at stderr, so whatever llama.cpp prints can never
    # corrupt a protocol line
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # Ctrl-C or a SIGHUP meant for the gateway reach its whole process group: the worker ends with its stdin instead
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    engine = LlamaEngine(settings)
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        line = orjson.dumps(message) + b"\n"
        with lock:
            out.write(line)
            out.flush()

    job: threading.Thread | None = None
    cancel = threading.Event()
    for line in sys.stdin.buffer:
        message = orjson.loads(line)
        if message.get("op") == "cancel":
            cancel.set()
            continue
        if job is not None:
            job.join()  # one request at a time
        cancel = threading.Event()
        job = threading.Thread(target=_serve, args=(engine, message, cancel, send), daemon=True)
        job.start()
    cancel.set()
    if job is not None:
        job.join()
    engine.close()
    return 0


def _serve(engine: LlamaEngine, message: dict[str, Any], cancel: threading.Event, send: Callable[..., None]) -> None:
    try:
        call = Call(**message["call"])
        result = engine.run(message["op"], call, cancel, lambda chunk: send({"chunk": chunk}))
    except GatewayError as exc:
        send({"error": error_fields(exc)})
    except Exception as exc:  # noqa: BLE001 - reported to the gateway as the model's failure, never lost
        failure = UpstreamError(f"the local model {engine.name!r} failed: {exc}", provider=engine.name, kind="error")
        send({"error": error_fields(failure)})
    else:
        send({"result": result} if result is not None else {"done": True})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
