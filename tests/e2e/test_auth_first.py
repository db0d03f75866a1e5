"""With auth on, a request without a valid key is a 401 before anything else: its body is not validated and its model
is not looked up, so neither the aliases nor the schema can be probed without a key (a real `gateway serve`)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess, gateway_process

MASTER = "sk-master-0123456789abcdef"
CONFIG = f"""
[auth]
mode = "keys"
master_key = "{MASTER}"

[providers.mock]
type = "mock"

[models.mock]
provider = "mock"
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("auth-first"), CONFIG) as process:
        yield process


def _post(gateway: GatewayProcess, content: bytes, key: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(gateway.url + "/v1/chat/completions", content=content, headers=headers, timeout=10)


@pytest.mark.parametrize(
    "content",
    [
        b'{"model": "no-such-alias", "messages": [{"role": "user", "content": "hi"}]}',
        b'{"model": "mock", "messages": [{"role": "user", "content": "hi"}]}',
        b'{"model": "mock", "messages": "not a list"}',
        b"{not json",
        b"",
    ],
    ids=["unknown-alias", "configured-alias", "invalid-body", "malformed-json", "empty"],
)
@pytest.mark.parametrize("key", [None, "sk-gw-wrong"], ids=["no-key", "wrong-key"])
def test_no_valid_key_is_401_whatever_the_body(gateway: GatewayProcess, content: bytes, key: str | None) -> None:
    response = _post(gateway, content, key)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_with_a_valid_key_the_body_and_the_model_are_checked(gateway: GatewayProcess) -> None:
    unknown = _post(gateway, b'{"model": "no-such-alias", "messages": [{"role": "user", "content": "hi"}]}', MASTER)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert _post(gateway, b"{not json", MASTER).status_code == 400
    ok = _post(gateway, b'{"model": "mock", "messages": [{"role": "user", "content": "hi"}]}', MASTER)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
