"""`gateway stats` finds the gateway and its master key in the config, as the operator wrote them."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.cli.main import main
from llm_gateway.composition.root import create_app
from tests.conftest import make_settings
from tests.support.server import free_port, running

MASTER = "sk-master-key-for-stats-0001"


def test_stats_uses_the_configs_master_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    state = tmp_path / "state.db"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[server]\nport = {port}\nstate_path = "{state}"\n[auth]\nmode = "keys"\nmaster_key = "{MASTER}"\n'
        '[providers.m]\ntype = "mock"\n[models.m]\nprovider = "m"\n'
    )
    settings = make_settings(server={"state_path": str(state)}, auth={"mode": "keys", "master_key": MASTER})
    with running(create_app(settings), port=port) as url:
        assert main(["stats", "--config", str(config)]) == 0, capsys.readouterr().err
        assert main(["stats", "--url", url, "--config", str(config), "--json"]) == 0  # --url, the key still read
        capsys.readouterr()
        assert main(["stats", "--url", url, "--config", str(tmp_path / "none.toml")]) == 1  # no config: no key
    assert "answered 401" in capsys.readouterr().err
