"""`gateway recordings …` on a copy of the committed dogfood recordings."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from llm_gateway.cli.main import main
from tests.recordings.record_dogfood import RECORDINGS

QUESTION = {
    "model": "echo",
    "temperature": 0,
    "user": "ci-run-42",
    "stream": True,
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copytree(RECORDINGS, tmp_path / "recs")
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[providers.mock]\ntype = "mock"\n[models.echo]\nprovider = "mock"\n[models.tools]\nprovider = "mock"\n'
        f'[recording]\nstore = "directory"\npath = "{tmp_path / "recs"}"\n'
    )
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_filters_by_alias_and_prints_json(config: Path, capsys) -> None:
    code, out, _ = cli(capsys, "recordings", "ls", "--config", str(config))
    assert code == 0 and len(out.splitlines()) == 6
    code, out, _ = cli(capsys, "recordings", "ls", "--config", str(config), "--alias", "tools", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["alias"] for r in rows} == {"tools"} and len(rows) == 2
    assert {r["shape"] for r in rows} == {"whole", "stream"}  # the tool call asked whole and streamed: one key


def test_key_prints_the_key_replay_uses_and_the_normalized_body(config: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(QUESTION).encode())))
    code, out, _ = cli(capsys, "recordings", "key", "--config", str(config))
    key, normalized = out.split("\n", 1)
    assert code == 0 and (RECORDINGS / f"{key}.json").exists()
    assert json.loads(normalized) == {
        "alias": "echo",
        "endpoint": "/v1/chat/completions",
        "body": {"messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0},
    }


def test_show_accepts_a_unique_prefix(config: Path, capsys) -> None:
    key = min(RECORDINGS.glob("*.json")).stem
    code, out, _ = cli(capsys, "recordings", "show", key[:6], "--config", str(config))
    assert code == 0 and json.loads(out)["key"] == key
    code, _, err = cli(capsys, "recordings", "show", "ffffffff", "--config", str(config))
    assert code == 1 and "no recording 'ffffffff'" in err


def test_export_to_sqlite_and_import_back_is_lossless(config: Path, tmp_path: Path, capsys) -> None:
    db = tmp_path / "out.db"
    assert cli(capsys, "recordings", "export", "--config", str(config), "--to", str(db), "--to-store", "sqlite")[0] == 0
    code, out, _ = cli(capsys, "recordings", "stats", "--config", str(config), "--store", "sqlite", "--path", str(db))
    stats = json.loads(out)
    assert code == 0 and stats["recordings"] == 6 and stats["by_alias"] == {"echo": 4, "tools": 2}
    back = tmp_path / "back"
    code, _, err = cli(
        capsys,
        "recordings",
        "import",
        "--config",
        str(config),
        "--path",
        str(back),
        "--from",
        str(db),
        "--from-store",
        "sqlite",
    )
    assert code == 0 and "imported 6" in err
    for original in RECORDINGS.glob("*.json"):
        assert (back / original.name).read_bytes() == original.read_bytes()


def test_rm_and_prune(config: Path, tmp_path: Path, capsys) -> None:
    echo = sorted(
        p.stem for p in (tmp_path / "recs").glob("*.json") if json.loads(p.read_text())["meta"]["alias"] == "echo"
    )
    assert cli(capsys, "recordings", "rm", echo[0], "--config", str(config))[0] == 0
    assert cli(capsys, "recordings", "rm", echo[0], "--config", str(config))[0] == 1
    assert cli(capsys, "recordings", "prune", "--config", str(config))[0] == 2  # no filter: refuse to delete everything
    code, out, _ = cli(capsys, "recordings", "prune", "--config", str(config), "--alias", "tools", "--dry-run")
    assert code == 0 and out.count("would delete") == 2 and len(list((tmp_path / "recs").glob("*.json"))) == 5
    cli(capsys, "recordings", "prune", "--config", str(config), "--older-than", "1s")
    assert list((tmp_path / "recs").glob("*.json")) == []


def test_a_corrupt_file_is_named_and_the_rest_listed(config: Path, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "recs" / ("0" * 32 + ".json")
    broken.write_text("{")
    code, out, err = cli(capsys, "recordings", "ls", "--config", str(config))
    assert code == 0 and len(out.splitlines()) == 6 and f"warning: {broken}: corrupt recording" in err
    assert cli(capsys, "recordings", "export", "--config", str(config), "--to", str(tmp_path / "x"))[0] == 1


def test_durations_are_checked(config: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["recordings", "prune", "--config", str(config), "--older-than", "soon"])
    assert "expected a duration such as 90s" in capsys.readouterr().err


def test_a_named_store_needs_no_config(tmp_path: Path, capsys, monkeypatch) -> None:
    store = tmp_path / "fixtures"
    shutil.copytree(RECORDINGS, store)
    monkeypatch.chdir(tmp_path)  # no gateway.toml here
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    code, out, err = cli(capsys, "recordings", "ls", "--store", "directory", "--path", str(store))
    assert code == 0, err
    assert len(out.strip().splitlines()) == len(list(RECORDINGS.glob("*.json")))
