"""A recording answers only the request it shows: one whose key does not match its stored request is refused as
corrupt, by a real `gateway serve` in replay mode and by `gateway recordings import`, naming the file, while the
others are still served and imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.recordings.record_dogfood import RECORDINGS
from tests.support.gateway_process import gateway_process

TAMPERED = "65e1fcff592caab9bbc5346144f30274"  # echo: "What is the capital of France?"
SOUND = "3650a0d037d5a658438ef920f76ac534"  # echo: "Tell me a story about a lighthouse."


def _tampered_copy(directory: Path) -> tuple[Path, dict]:
    """The dogfood recordings, one of them edited as a reviewer would not notice: its prompt, not its key."""
    recordings = directory / "recs"
    shutil.copytree(RECORDINGS, recordings)
    file = recordings / f"{TAMPERED}.json"
    data = json.loads(file.read_text())
    original = json.loads(json.dumps(data["request"]["body"]))
    data["request"]["body"]["messages"][0]["content"] = "What is the capital of Germany?"
    file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return recordings, original


def _config(recordings: Path) -> str:
    return f"""
[providers.mock]
type = "mock"
[models.echo]
provider = "mock"
[models.tools]
provider = "mock"
[recording]
mode = "replay"
store = "directory"
path = "{recordings}"
"""


def test_replay_refuses_a_recording_whose_key_does_not_match_its_request(tmp_path: Path) -> None:
    recordings, original = _tampered_copy(tmp_path)
    sound = json.loads((recordings / f"{SOUND}.json").read_text())["request"]["body"]
    with gateway_process(tmp_path, _config(recordings)) as gateway:
        chat = gateway.url + "/v1/chat/completions"
        refused = httpx.post(chat, json={"model": "echo", **original}, timeout=10)
        assert refused.status_code == 500, refused.text
        error = refused.json()["error"]
        assert error["code"] == "recording_corrupt"
        assert f"{TAMPERED}.json" in error["message"] and "does not match the request" in error["message"]
        served = httpx.post(chat, json={"model": "echo", **sound}, timeout=10)
        assert served.status_code == 200 and served.headers["x-gateway-recording"] == SOUND


def test_import_refuses_it_and_imports_the_others(tmp_path: Path) -> None:
    recordings, _ = _tampered_copy(tmp_path)
    config = tmp_path / "gateway.toml"
    target = tmp_path / "imported"
    config.write_text(_config(target))
    result = subprocess.run(
        [sys.executable, "-m", "llm_gateway", "recordings", "import", "--config", str(config), "--from",
         str(recordings)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1, result.stderr
    assert f"refused {recordings / (TAMPERED + '.json')}: corrupt recording" in result.stderr
    imported = sorted(p.stem for p in target.glob("*.json"))
    assert TAMPERED not in imported and SOUND in imported
    assert len(imported) == len(list(RECORDINGS.glob("*.json"))) - 1
