"""The README's test commands are what CI runs, and they build llama-cpp-python portably at the verified version: a
native build (AVX-512/AMX here) of 0.3.36 crashed with SIGSEGV in llama_decode on the first generation."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Install and run the tests**", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_the_readme_test_commands_line_for_line() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = readme_test_commands()
    assert ci[-len(commands) :] == commands


def test_llama_cpp_is_pinned_and_built_portably_from_a_clean_cache() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["local"] == ["llama-cpp-python==0.3.36"]
    [install] = [c for c in readme_test_commands() if "[test,local]" in c]
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir' in install
