"""`gateway db`, `gateway keys` and `gateway recordings export|import` against a real PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llm_gateway.cli.main import main
from tests.recordings.record_dogfood import RECORDINGS
from tests.support.server import free_port


def write_config(tmp_path: Path, database_url: str, extra: str = "") -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[state]\ndatabase_url = "{database_url}"\n[providers.mock]\ntype = "mock"\n'
                    f'[models.mock]\nprovider = "mock"\n[models.echo]\nprovider = "mock"\n'
                    f'[auth]\nmode = "keys"\n{extra}')
    return str(path)


def test_db_migrate_then_status(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, database_url)
    assert main(["db", "status", "--config", config]) == 0
    assert "no gateway tables yet" in capsys.readouterr().out
    assert main(["db", "migrate", "--config", config]) == 0
    assert capsys.readouterr().out.splitlines() == ["keys: schema version 1", "recordings: schema version 1"]
    assert main(["db", "migrate", "--config", config]) == 0  # again: nothing changes
    assert main(["db", "status", "--config", config]) == 0
    assert "keys: schema version 1" in capsys.readouterr().out


def test_db_commands_say_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, f"postgresql://postgres@127.0.0.1:{free_port()}/gw")
    assert main(["db", "migrate", "--config", config]) == 1
    assert "PostgreSQL at postgresql://postgres@127.0.0.1" in capsys.readouterr().err
    (tmp_path / "plain.toml").write_text('[providers.mock]\ntype = "mock"\n[models.mock]\nprovider = "mock"\n')
    assert main(["db", "migrate", "--config", str(tmp_path / "plain.toml")]) == 2
    assert "no database configured" in capsys.readouterr().err


def test_keys_live_in_the_shared_database(tmp_path: Path, database_url: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, database_url)
    assert main(["keys", "create", "--name", "ci", "--budget-usd", "2", "--config", config]) == 0
    capsys.readouterr()
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert main(["keys", "list", "--json", "--config", write_config(other, database_url)]) == 0  # another machine
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(k["name"], k["status"], k["budget_usd"]) for k in listed] == [("ci", "active", 2.0)]
    assert main(["keys", "revoke", "ci", "--config", config]) == 0
    assert "within a second" in capsys.readouterr().out
    assert main(["keys", "usage", "--config", config]) == 0
    assert not (tmp_path / "state.db").exists() and not (tmp_path / ".gateway").exists()  # nothing local


def test_keys_say_when_the_database_is_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, f"postgresql://postgres@127.0.0.1:{free_port()}/gw")
    assert main(["keys", "list", "--config", config]) == 1
    assert "is unreachable" in capsys.readouterr().err


def test_recordings_move_between_a_directory_and_postgresql(tmp_path: Path, database_url: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(RECORDINGS, tmp_path / "recs")
    count = len(list((tmp_path / "recs").rglob("*.json")))
    config = write_config(tmp_path, database_url, '[recording]\nstore = "postgres"\n')
    assert main(["recordings", "import", "--from", str(tmp_path / "recs"), "--config", config]) == 0
    assert f"imported {count} recording(s)" in capsys.readouterr().err
    assert main(["recordings", "ls", "--json", "--config", config]) == 0
    assert len(capsys.readouterr().out.splitlines()) == count
    assert main(["recordings", "export", "--to", str(tmp_path / "back"), "--config", config]) == 0
    assert sorted(p.name for p in (tmp_path / "back").rglob("*.json")) == sorted(
        p.name for p in (tmp_path / "recs").rglob("*.json"))
    # and from PostgreSQL straight into a SQLite file
    assert main(["recordings", "export", "--to", str(tmp_path / "r.db"), "--to-store", "sqlite",
                 "--config", config]) == 0
    assert f"exported {count} recording(s)" in capsys.readouterr().err
