"""Fixtures shared by the policy tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llm_gateway.policies.key_store import KeyStore


@pytest.fixture()
async def store(tmp_path: Path) -> AsyncIterator[KeyStore]:
    """A key store in a directory of its own (tmp_path / "state"), closed after the test."""
    s = KeyStore(str(tmp_path / "state" / "state.db"))
    yield s
    await s.aclose()
