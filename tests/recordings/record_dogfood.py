"""Re-record the committed dogfood fixtures: `python -m tests.recordings.record_dogfood`.

Runs tests/recordings/suite.py through a recording gateway in front of the fake upstream (tests/support/upstream.py),
replacing tests/recordings/fixtures/dogfood/ and the SDK-parsed results in fixtures/dogfood_expected.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import openai

from llm_gateway.composition.root import create_app
from tests.conftest import make_settings
from tests.recordings.suite import run_suite
from tests.support.server import running
from tests.support.upstream import FakeUpstream

FIXTURES = Path(__file__).parent / "fixtures"
RECORDINGS = FIXTURES / "dogfood"
EXPECTED = FIXTURES / "dogfood_expected.json"


def record(directory: Path) -> dict[str, Any]:
    fake = FakeUpstream()
    with running(fake.app) as upstream_url:
        settings = make_settings(
            upstream_url, recording={"mode": "record", "store": "directory", "path": str(directory)}
        )
        with running(create_app(settings)) as url:
            return run_suite(openai.OpenAI(base_url=f"{url}/v1", api_key="sk-dogfood", max_retries=0))


def main() -> None:
    shutil.rmtree(RECORDINGS, ignore_errors=True)
    results = record(RECORDINGS)
    EXPECTED.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"recorded {len(list(RECORDINGS.glob('*.json')))} recordings into {RECORDINGS}")


if __name__ == "__main__":
    main()
