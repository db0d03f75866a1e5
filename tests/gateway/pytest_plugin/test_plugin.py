"""The pytest plugin as a team uses it: record a suite once, replay it with the upstream gone, fail on a change.

Each step runs a real inner pytest session in a subprocess (the plugin is loaded through its pytest11 entry point).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import free_port
from tests.support.upstream import FakeUpstream

INNER_TEST = """
import os

PROMPT = os.environ.get("INNER_PROMPT", "What is the capital of France?")


def test_chat(openai_client):
    answer = openai_client.chat.completions.create(model="echo", messages=[{"role": "user", "content": PROMPT}])
    assert answer.choices[0].message.content == "echo: What is the capital of France?"
    assert answer.usage.total_tokens == 18


def test_stream(openai_client, gateway_base_url):
    assert gateway_base_url.endswith("/v1")
    chunks = list(openai_client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "stream please"}], stream=True))
    assert [c.choices[0].delta.content for c in chunks] == ["", "echo: str", "eam please", None]
"""

CONFIG = """
[providers.up]
type = "openai"
base_url = "{url}/v1"
api_key = "sk-upstream"

[models.echo]
provider = "up"
model = "echo"
"""


def run_inner(project: Path, upstream_url: str, *args: str, prompt: str | None = None) -> subprocess.CompletedProcess:
    (project / "gateway.toml").write_text(CONFIG.format(url=upstream_url))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(project)}
    if prompt:
        env["INNER_PROMPT"] = prompt
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\ngateway_config = gateway.toml\nasyncio_default_fixture_loop_scope = function\n"
    )
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    return tmp_path


def test_record_then_replay_without_upstream_then_fail_on_a_changed_prompt(
    project: Path, upstream: FakeUpstream
) -> None:
    recorded = run_inner(project, upstream.url, "--gateway-record-mode=record")  # type: ignore[attr-defined]
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    files = sorted((project / "recordings" / "test_inner").glob("*.json"))
    assert len(files) == 2

    nobody_listens = f"http://127.0.0.1:{free_port()}"
    replayed = run_inner(project, nobody_listens)  # replay is the default mode
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr

    changed = run_inner(project, nobody_listens, prompt="What is the capital of Italy?")
    assert changed.returncode == 1
    assert "404 - No recording for this request" in changed.stdout
    assert "'What is the capital of France?' -> 'What is the capital of Italy?'" in changed.stdout
    assert sorted((project / "recordings" / "test_inner").glob("*.json")) == files  # replay never writes


ANTHROPIC_TEST = """
import asyncio

ASK = [{"role": "user", "content": "What is the capital of France?"}]


def test_messages(anthropic_client):
    message = anthropic_client.messages.create(model="echo", max_tokens=32, messages=ASK)
    assert message.content[0].text == "echo: What is the capital of France?"
    assert message.usage.input_tokens == 11


def test_messages_stream(async_anthropic_client):
    async def run():
        async with async_anthropic_client.messages.stream(model="echo", max_tokens=32, messages=ASK) as stream:
            return await stream.get_final_message()

    assert asyncio.run(run()).content[0].text == "echo: What is the capital of France?"


def test_the_same_conversation_on_chat(openai_client):
    answer = openai_client.chat.completions.create(model="echo", max_tokens=32, messages=ASK)
    assert answer.choices[0].message.content == "echo: What is the capital of France?"
"""


def test_anthropic_client_records_and_any_protocol_replays(project: Path, upstream: FakeUpstream) -> None:
    (project / "test_inner.py").write_text(ANTHROPIC_TEST)
    recorded = run_inner(project, upstream.url, "--gateway-record-mode=record", "-k", "messages")  # type: ignore[attr-defined]
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert len(list((project / "recordings" / "test_inner").glob("*.json"))) == 1  # one conversation, one key
    replayed = run_inner(project, f"http://127.0.0.1:{free_port()}")  # chat replays what messages recorded
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "3 passed" in replayed.stdout


def test_auto_records_only_what_is_missing(project: Path, upstream: FakeUpstream) -> None:
    first = run_inner(project, upstream.url, "--gateway-record-mode=auto")  # type: ignore[attr-defined]
    assert first.returncode == 0, first.stdout + first.stderr
    before = len(upstream.requests)
    second = run_inner(project, upstream.url, "--gateway-record-mode=auto")  # type: ignore[attr-defined]
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(upstream.requests) == before


def test_a_bad_mode_is_a_usage_error(project: Path) -> None:
    result = run_inner(project, "http://127.0.0.1:9", "--gateway-record-mode=sometimes")
    assert result.returncode == 4 and "invalid choice: 'sometimes'" in result.stderr


USER_PACKAGE_TEST = """
import adapters.openai
import gateway.app
import policies.auth
import recordings.store


def test_the_users_own_packages_are_theirs(openai_client):
    assert adapters.openai.MINE == gateway.app.MINE == policies.auth.MINE == recordings.store.MINE == "user"
    answer = openai_client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
"""


@pytest.mark.parametrize("runner", [["-m", "pytest"], ["pytest"]], ids=["python -m pytest", "pytest"])
def test_a_user_project_with_its_own_gateway_adapters_policies_recordings_packages(
    project: Path, upstream: FakeUpstream, runner: list[str]
) -> None:
    """The plugin loads into every test session of the environment: it must never shadow a user's module names."""
    for package, module in (("adapters", "openai"), ("gateway", "app"), ("policies", "auth"), ("recordings", "store")):
        (project / package).mkdir()
        (project / package / "__init__.py").write_text("")
        (project / package / f"{module}.py").write_text('MINE = "user"\n')
    (project / "test_inner.py").write_text(USER_PACKAGE_TEST)
    (project / "gateway.toml").write_text(CONFIG.format(url=upstream.url))  # type: ignore[attr-defined]
    command = [sys.executable, *runner] if runner[0] == "-m" else [str(Path(sys.executable).parent / "pytest")]
    result = subprocess.run(
        [
            *command,
            "-q",
            "-p",
            "no:cacheprovider",
            "--gateway-record-mode=record",
            "-W",
            "error::pytest.PytestConfigWarning",
        ],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "HOME": str(project)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_the_client_fixtures_say_what_to_install_without_the_sdk(monkeypatch: pytest.MonkeyPatch, sdk: str) -> None:
    import sys

    from llm_gateway.pytest_plugin import plugin

    monkeypatch.setitem(sys.modules, sdk, None)  # importing the SDK now raises ImportError
    with pytest.raises(pytest.fail.Exception, match=rf"pip install {sdk} \(or pip install 'llm-gateway\[pytest\]'\)"):
        plugin._sdk(sdk)
