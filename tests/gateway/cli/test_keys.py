"""`gateway keys`: create prints the key once and stores only its hash; list, revoke and usage read the state DB."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from llm_gateway.cli.keys import expiry
from llm_gateway.cli.main import main
from llm_gateway.policies.key_store import KeyStore, UsageRow, hash_key


@pytest.fixture()
def config(tmp_path: Path) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[server]
state_path = "{tmp_path / 'state.db'}"

[providers.mock]
type = "mock"

[models.mock]
provider = "mock"

[models.other]
provider = "mock"

[auth]
mode = "keys"
cache_ttl_seconds = 7
""")
    return str(path)


def create(config: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["keys", "create", "--config", config, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_prints_the_key_once_and_stores_only_its_hash(config: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = create(config, capsys, "--name", "ci", "--models", "mock, other", "--rpm", "60", "--tpm", "1000",
                            "--budget-usd", "2.5", "--expires", "30d")
    assert code == 0
    plain = out.strip()
    assert plain.startswith("sk-gw-") and "only time the key is shown" in err
    with sqlite3.connect(tmp_path / "state.db") as db:
        row = db.execute("SELECT name, hash, models, rpm, tpm, budget_usd, expires_at FROM keys").fetchone()
        dump = "\n".join(db.iterdump())
    assert row[:6] == ("ci", hash_key(plain), '["mock","other"]', 60, 1000, 2.5)
    assert row[6] == pytest.approx(time.time() + 30 * 86400, abs=60)
    assert plain not in dump

    assert main(["keys", "list", "--config", config]) == 0
    listed = capsys.readouterr().out
    assert "ci" in listed and "active" in listed and "mock,other" in listed and plain not in listed


def test_create_as_json(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = create(config, capsys, "--name", "ci", "--json")
    data = json.loads(out)
    assert code == 0 and data["key"].startswith("sk-gw-") and data["status"] == "active" and data["models"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x", "--models", "nope,mock"], "unknown model alias(es) nope"),
        (["--name", "x", "--rpm", "0"], "expected a positive integer"),
        (["--name", "x", "--budget-usd", "-1"], "expected a positive amount"),
        (["--name", "x", "--expires", "soon"], "expected an age such as 12h"),
        (["--name", "x", "--expires", "2001-01-01"], "--expires is in the past"),
    ],
)
def test_bad_arguments_are_refused_precisely(config: str, capsys: pytest.CaptureFixture[str], args: list[str],
                                             message: str) -> None:
    try:
        code, _, err = create(config, capsys, *args)
    except SystemExit as exc:  # argparse refuses it
        code, err = int(exc.code or 0), capsys.readouterr().err
    assert code == 2 and message in err


def test_a_name_in_use_is_refused_until_revoked(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert create(config, capsys, "--name", "ci")[0] == 0
    code, _, err = create(config, capsys, "--name", "ci")
    assert code == 1 and "already named 'ci'" in err
    assert main(["keys", "revoke", "--config", config, "ci"]) == 0
    assert "refuse it within 7s" in capsys.readouterr().out
    assert main(["keys", "revoke", "--config", config, "ci"]) == 1
    assert "no active key" in capsys.readouterr().err
    assert create(config, capsys, "--name", "ci")[0] == 0
    main(["keys", "list", "--config", config, "--json"])
    statuses = [json.loads(line)["status"] for line in capsys.readouterr().out.splitlines()]
    assert statuses == ["revoked", "active"]


def test_usage_shows_spend_and_tokens_per_key_and_alias(config: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = create(config, capsys, "--name", "ci", "--json")
    key_id = json.loads(out)["id"]

    async def spend() -> None:
        store = KeyStore(str(tmp_path / "state.db"))
        await store.add_usage([UsageRow(key_id, "mock", 3, 30, 12, 0.25), UsageRow(key_id, "other", 1, 5, 5, 0.5)])
        await store.aclose()

    asyncio.run(spend())
    assert main(["keys", "usage", "--config", config, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["key"], r["alias"], r["requests"], r["prompt_tokens"], r["completion_tokens"], r["spend_usd"])
            for r in rows] == [("ci", "mock", 3, 30, 12, 0.25), ("ci", "other", 1, 5, 5, 0.5)]
    assert main(["keys", "usage", "--config", config]) == 0
    table = capsys.readouterr().out
    assert "(all)" in table and "0.750000" in table
    assert main(["keys", "usage", "--config", config, "--key", "someone-else"]) == 0
    assert capsys.readouterr().out.strip() == "no usage recorded"


def test_a_broken_config_is_reported_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[auth]\nmode = "maybe"\n')
    assert main(["keys", "list", "--config", str(bad)]) == 2
    assert "auth.mode: expected one of 'none', 'keys'" in capsys.readouterr().err


def test_expiry_reads_ages_and_dates() -> None:
    assert expiry("12h") == pytest.approx(time.time() + 12 * 3600, abs=5)
    assert expiry("2030-01-01") == 1893456000.0
    assert expiry("2030-01-01T01:00:00+01:00") == 1893456000.0
