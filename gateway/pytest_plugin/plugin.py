"""pytest plugin (entry point `pytest11`): the gateway in-process for a test session, replaying recordings.

Tests get `gateway_base_url` (pass it as the openai SDK's base_url) or a ready `openai_client` /
`async_openai_client`, or `anthropic_client` / `async_anthropic_client` (the anthropic SDK on /v1/messages; any of
them replays what any other recorded).
Each test module gets its own recordings directory, `<module dir>/recordings/<module name>/` (one JSON file per
exchange, for git), and `--gateway-record-mode=replay|record|auto|off` chooses what happens on a miss, in the spirit
of pytest-recording's `--record-mode`: replay (the default) answers only from recordings and fails a miss with the
nearest recording and the differing fields; record calls the upstreams in the config and stores every exchange; auto
replays what exists and records the rest.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llm_gateway.config.settings import RECORD_MODES, Settings, load_settings

API_KEY = "sk-gateway-test"  # the gateway in tests has no auth; the SDK insists on some key


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llm-gateway", "llm-gateway recordings")
    group.addoption("--gateway-record-mode", choices=RECORD_MODES, default=None,
                    help="replay (default): answer only from recordings; record: call upstreams and store every "
                         "exchange; auto: replay hits, record misses; off: no recordings")
    group.addoption("--gateway-config", default=None, help="gateway.toml for the in-process gateway")
    parser.addini("gateway_record_mode", "default for --gateway-record-mode", default="replay")
    parser.addini("gateway_config", "default for --gateway-config (relative to the rootdir)", default="")
    parser.addini("gateway_recordings_dir", "directory beside each test module holding its recordings",
                  default="recordings")


class GatewayServer:
    """The gateway app under uvicorn in a background thread with its own event loop."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from llm_gateway.composition.root import create_app

        self.settings = settings
        self.app = create_app(settings)
        self.gateway = self.app.state.gateway
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="llm-gateway", daemon=True)
        self._recordings: Path | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._server.serve())
        finally:
            # streams still open when the session ends leave tasks behind: end them before closing the loop
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the in-process llm-gateway did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def use_recordings(self, directory: Path, mode: str) -> None:
        """Point the recorder at one module's directory; the previous recorder is closed on the server's loop."""
        from llm_gateway.composition.recorder import build_recorder

        if self._recordings == directory:
            return
        recording = replace(self.settings.recording, mode=mode, store="directory", path=str(directory))
        recorder = build_recorder(replace(self.settings, recording=recording))
        previous, self.gateway.pipeline.recorder = self.gateway.pipeline.recorder, recorder
        self._recordings = directory
        asyncio.run_coroutine_threadsafe(previous.aclose(), self._loop).result(timeout=15)


def _mode(config: pytest.Config) -> str:
    mode = config.getoption("--gateway-record-mode") or config.getini("gateway_record_mode")
    if mode not in RECORD_MODES:
        raise pytest.UsageError(f"gateway_record_mode: expected one of {', '.join(RECORD_MODES)}, got {mode!r}")
    return mode


def _config_path(config: pytest.Config) -> Path:
    given = config.getoption("--gateway-config") or config.getini("gateway_config")
    if given:
        path = Path(given)
        return path if path.is_absolute() else Path(config.rootpath) / path
    return Path(os.environ.get("GATEWAY_CONFIG") or Path(config.rootpath) / "gateway.toml")


@pytest.fixture(scope="session")
def llm_gateway(pytestconfig: pytest.Config) -> Iterator[GatewayServer]:
    """The in-process gateway, started on first use, stopped at the end of the session."""
    mode = _mode(pytestconfig)
    settings = load_settings(_config_path(pytestconfig), env={**os.environ, "GATEWAY_RECORD_MODE": mode})
    server = GatewayServer(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gateway_recordings_dir(request: pytest.FixtureRequest) -> Path:
    """This module's recordings: `<module dir>/<gateway_recordings_dir>/<module name>/`."""
    module = Path(str(request.path))
    return module.parent / request.config.getini("gateway_recordings_dir") / module.stem


@pytest.fixture
def gateway_base_url(llm_gateway: GatewayServer, gateway_recordings_dir: Path, pytestconfig: pytest.Config) -> str:
    """The base_url to hand the SDK (…/v1), recording into / replaying from this module's directory."""
    llm_gateway.use_recordings(gateway_recordings_dir, _mode(pytestconfig))
    return llm_gateway.base_url


def _sdk(name: str) -> Any:
    """The SDK a client fixture hands out, or a failure that says what to install (not a bare ImportError)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        pytest.fail(
            f"the {name}_client fixtures need the {name} package: pip install {name} (or pip install "
            "'llm-gateway[pytest]')",
            pytrace=False,
        )


@pytest.fixture
def openai_client(gateway_base_url: str) -> Any:
    openai = _sdk("openai")

    return openai.OpenAI(base_url=gateway_base_url, api_key=API_KEY, max_retries=0)


@pytest.fixture
def async_openai_client(gateway_base_url: str) -> Any:
    openai = _sdk("openai")

    return openai.AsyncOpenAI(base_url=gateway_base_url, api_key=API_KEY, max_retries=0)


@pytest.fixture
def anthropic_client(gateway_base_url: str) -> Any:
    """The anthropic SDK pointed at the gateway (its base_url has no /v1: the SDK adds /v1/messages)."""
    anthropic = _sdk("anthropic")

    return anthropic.Anthropic(base_url=gateway_base_url.removesuffix("/v1"), api_key=API_KEY, max_retries=0)


@pytest.fixture
def async_anthropic_client(gateway_base_url: str) -> Any:
    anthropic = _sdk("anthropic")

    return anthropic.AsyncAnthropic(base_url=gateway_base_url.removesuffix("/v1"), api_key=API_KEY, max_retries=0)
