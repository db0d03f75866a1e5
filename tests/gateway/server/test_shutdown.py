"""Graceful shutdown: SIGTERM to a real `gateway serve` while streams are open loses nothing and cuts nothing."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import orjson

from llm_gateway.composition.root import create_app
from tests.conftest import make_settings
from tests.support.gateway_process import gateway_process
from tests.support.server import running

STREAMS = 50
# uvicorn re-raises the signal it handled once it has shut down, so a clean stop ends by SIGTERM's default action
_CLEAN_EXIT = (0, -signal.SIGTERM)


def _config(directory: Path, grace: float, delay_ms: int) -> str:
    return f"""shutdown_grace_seconds = {grace}

[providers.mock]
type = "mock"
stream_delay_ms = {delay_ms}

[models.mock]
provider = "mock"
model = "mock-1"

[recording]
mode = "record"
path = "{directory}/recordings.db"

[logging]
level = "warning"
"""


async def _read_stream(
    client: httpx.AsyncClient, url: str, text: str, started: asyncio.Queue[int], i: int
) -> list[bytes]:
    """The SSE data payloads of one stream, in order; signals `started` once the first one arrived."""
    body = {"model": "mock", "stream": True, "messages": [{"role": "user", "content": text}]}
    payloads: list[bytes] = []
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                payloads.append(line[6:].encode())
                if len(payloads) == 1:
                    started.put_nowait(i)
    return payloads


def _content(payloads: list[bytes]) -> str:
    return "".join((orjson.loads(p)["choices"][0]["delta"].get("content") or "") for p in payloads if p != b"[DONE]")


def test_sigterm_during_50_streams_lets_each_finish_and_flushes_every_recording(tmp_path: Path) -> None:
    # each stream takes about a second (8 chunks, 150 ms apart); the grace period is far longer
    with gateway_process(tmp_path, _config(tmp_path, grace=15, delay_ms=150)) as gw:

        async def drive() -> list[list[bytes]]:
            started: asyncio.Queue[int] = asyncio.Queue()
            limits = httpx.Limits(max_connections=STREAMS)
            async with httpx.AsyncClient(timeout=30, limits=limits) as client:
                tasks = [
                    asyncio.create_task(_read_stream(client, gw.url, f"stream {i} " + "word " * 16, started, i))
                    for i in range(STREAMS)
                ]
                for _ in range(STREAMS):  # every stream is open and under way ...
                    await asyncio.wait_for(started.get(), 30)
                gw.terminate()  # ... when the signal arrives
                return await asyncio.gather(*tasks)

        results = asyncio.run(drive())
        code, stderr = gw.wait(timeout=30)

    assert code in _CLEAN_EXIT, stderr
    assert "Traceback" not in stderr
    for i, payloads in enumerate(results):
        assert payloads[-1] == b"[DONE]", f"stream {i} did not end cleanly: {payloads[-2:]}"
        assert _content(payloads) == f"Mock reply to: stream {i} " + " ".join(["word"] * 16)
    listed = subprocess.run(
        [sys.executable, "-m", "llm_gateway", "recordings", "ls", "--json", "--config", str(gw.config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.strip().splitlines()) == STREAMS  # nothing recorded was lost


def test_a_stream_still_open_at_the_deadline_ends_with_an_error_event(tmp_path: Path) -> None:
    # about 30 chunks 400 ms apart: far longer than the one-second grace period
    with gateway_process(tmp_path, _config(tmp_path, grace=1, delay_ms=400)) as gw:

        async def drive() -> list[BaseException | None]:
            client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
            opened = asyncio.Event()

            async def one(i: int) -> BaseException | None:
                stream = await client.chat.completions.create(
                    model="mock", stream=True, messages=[{"role": "user", "content": f"long {i} " + "w " * 120}]
                )
                try:
                    async for _ in stream:
                        opened.set()
                except openai.APIError as exc:
                    return exc
                return None

            tasks = [asyncio.create_task(one(i)) for i in range(5)]
            await asyncio.wait_for(opened.wait(), 30)
            await asyncio.sleep(0.2)
            gw.terminate()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()
            return results

        results = asyncio.run(drive())
        code, stderr = gw.wait(timeout=30)

    assert code in _CLEAN_EXIT, stderr
    for result in results:
        # an error event the SDK understands, not a cut connection (which would be an APIConnectionError)
        assert isinstance(result, openai.APIError) and not isinstance(result, openai.APIConnectionError), result
        assert "shutting down" in result.message


def test_readyz_turns_503_as_soon_as_the_drain_begins() -> None:
    app = create_app(make_settings())
    with running(app) as url:
        assert httpx.get(url + "/readyz").status_code == 200
        app.state.gateway.drain.begin()
        response = httpx.get(url + "/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "shutting down"}
        assert httpx.get(url + "/healthz").status_code == 200  # alive, just not taking new work
