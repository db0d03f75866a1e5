"""The usage page in headless Chromium shows what /ui/api/stats reports; `gateway stats` prints the same figures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llm_gateway.cli.main import main
from llm_gateway.composition.root import create_app
from llm_gateway.vocab.errors import AuthenticationFailed
from llm_gateway.vocab.types import BasePolicy, Call, KeyInfo, RequestContext
from tests.conftest import make_settings
from tests.support.chromium import chromium_binary, chromium_page
from tests.support.server import running

MASTER = "sk-master-test"


class TestKeys(BasePolicy):
    """Stands in for the auth policy: a key name from a header, the master key for admin requests."""

    name = "test_keys"

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        name = ctx.headers.get("x-test-key")
        if name:
            ctx.key = KeyInfo(id="k-" + name, name=name)
        return None

    async def admit(self, ctx: RequestContext) -> None:
        if ctx.admin and ctx.headers.get("authorization") != f"Bearer {MASTER}":
            raise AuthenticationFailed("the master key is required")


@pytest.fixture()
def busy_gateway() -> Iterator[str]:
    price = {"input_per_mtok": 1.5, "output_per_mtok": 2.0}
    settings = make_settings(
        models={
            "mock": {"provider": "mock", "model": "mock-1", "price": price},
            "mock-b": {"provider": "mock", "model": "mock-2"},
        },
        logging={"access_log": False},
    )
    app = create_app(settings)
    app.state.gateway.pipeline.policies.append(TestKeys())
    with running(app) as url:
        team_a = openai.OpenAI(base_url=url + "/v1", api_key="x", default_headers={"x-test-key": "team-a"})
        team_b = openai.OpenAI(base_url=url + "/v1", api_key="x", default_headers={"x-test-key": "team-b"})
        for i in range(4):
            team_a.chat.completions.create(model="mock", messages=[{"role": "user", "content": f"question {i}"}])
        team_b.chat.completions.create(model="mock-b", messages=[{"role": "user", "content": "other"}])
        list(
            team_b.chat.completions.create(
                model="mock",
                messages=[{"role": "user", "content": "s"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        with pytest.raises(openai.NotFoundError):
            team_a.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        yield url


def _stats(url: str) -> dict[str, Any]:
    response = httpx.get(url + "/ui/api/stats", headers={"authorization": f"Bearer {MASTER}"})
    assert response.status_code == 200
    return response.json()


def test_the_stats_api_is_behind_the_master_key_and_counts_the_traffic(busy_gateway: str) -> None:
    assert httpx.get(busy_gateway + "/ui/api/stats").status_code == 401
    stats = _stats(busy_gateway)
    assert stats["totals"]["requests"] == 7 and stats["totals"]["errors"] == 1
    assert stats["by_alias"]["mock"]["requests"] == 5 and stats["by_alias"]["mock-b"]["requests"] == 1
    assert stats["by_key"]["team-a"]["requests"] == 4 and stats["by_key"]["team-b"]["requests"] == 2
    assert stats["totals"]["spend_usd"] > 0
    assert {d["deployment"] for d in stats["deployments"]} == {"mock/mock-1", "mock/mock-2"}
    # the page shell and its assets are served by the gateway itself
    page = httpx.get(busy_gateway + "/ui")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http" not in page.text.replace('href="/ui', "").replace("http://www.w3.org", "")  # no CDN
    assert httpx.get(busy_gateway + "/ui/app.js").status_code == 200
    assert httpx.get(busy_gateway + "/ui/..%2Fapp.py").status_code == 404


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary (apt-get install -y chromium)")
def test_the_usage_page_renders_in_chromium_with_the_figures_the_api_reports(busy_gateway: str, tmp_path: Path) -> None:
    with chromium_page(chromium_binary() or "", tmp_path / "profile") as page:
        # the key the page would ask for, put where the page keeps it (same origin, same tab)
        page.send("Page.navigate", url=busy_gateway + "/ui/style.css")
        page.wait_for("document.readyState === 'complete'")
        page.evaluate(f"sessionStorage.setItem('llm-gateway-master-key', '{MASTER}')")
        page.errors.clear()  # only the page under test counts
        page.send("Page.navigate", url=busy_gateway + "/ui")
        page.wait_for("document.body && document.body.dataset.ready === '1'")
        shown = page.evaluate(
            """JSON.stringify({
                figures: Object.fromEntries([...document.querySelectorAll('[data-figure]')].map(
                    (e) => [e.dataset.figure, {value: e.dataset.value, text: e.textContent}])),
                tables: Object.fromEntries([...document.querySelectorAll('table')].map((t) => [t.id,
                    [...t.querySelectorAll('tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))])),
                lines: Object.fromEntries([...document.querySelectorAll('svg')].map(
                    (s) => [s.id, s.querySelectorAll('polyline').length])),
            })"""
        )
        # the priming visit to a CSS file made Chromium look for /favicon.ico (the page itself declares none)
        errors = [e for e in page.errors if "/favicon.ico" not in e]
    stats = _stats(busy_gateway)  # nothing was sent since the page read it
    shown = json.loads(shown)
    assert errors == []
    t = stats["totals"]
    figures = shown["figures"]
    assert figures["requests"]["text"] == str(t["requests"]) == "7"
    assert figures["errors"]["text"] == str(t["errors"])
    assert figures["total_tokens"]["text"] == str(t["total_tokens"])
    assert float(figures["spend_usd"]["value"]) == pytest.approx(t["spend_usd"])
    assert float(figures["p50_seconds"]["value"]) == pytest.approx(t["p50_seconds"])
    assert float(figures["p95_seconds"]["value"]) == pytest.approx(t["p95_seconds"])
    assert figures["p95_seconds"]["text"].endswith(("ms", " s"))
    assert figures["hit_rate"]["text"] == "–"  # recording is off: nothing looked up
    by_alias = {row[0]: row for row in shown["tables"]["table-alias"]}
    for alias, g in stats["by_alias"].items():
        row = by_alias[alias]
        assert [int(row[1]), int(row[2]), int(row[5]), int(row[6])] == [
            g["requests"],
            g["errors"],
            g["prompt_tokens"],
            g["completion_tokens"],
        ]
        assert float(row[7]) == pytest.approx(g["spend_usd"])
    by_key = {row[0]: int(row[1]) for row in shown["tables"]["table-key"]}
    assert (
        by_key == {k: g["requests"] for k, g in stats["by_key"].items()} == {"team-a": 4, "team-b": 2}
    )  # the unknown model was refused before any key was read
    deployments = {row[1]: row[2] for row in shown["tables"]["table-deployments"]}
    assert deployments == {"mock/mock-1": "healthy", "mock/mock-2": "healthy"}
    # every chart drew its lines: requests and errors, p50 and p95, one per alias, one per key
    assert shown["lines"] == {
        "chart-requests": 2,
        "chart-latency": 2,
        "chart-tokens-alias": 2,
        "chart-spend-alias": 2,
        "chart-tokens-key": 2,
        "chart-spend-key": 2,
    }


def test_gateway_stats_prints_the_same_figures(busy_gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--url", busy_gateway, "--key", MASTER]) == 0
    out = capsys.readouterr().out
    stats = _stats(busy_gateway)
    t = stats["totals"]
    assert f"requests {t['requests']}  errors {t['errors']}" in out
    assert f"tokens {t['total_tokens']}  spend ${t['spend_usd']:.6f}" in out
    alias_line = next(line for line in out.splitlines() if line.strip().startswith("mock-b"))
    assert alias_line.split()[1:3] == ["1", "0"]
    assert "team-a" in out and "mock/mock-1" in out and "healthy" in out

    assert main(["stats", "--url", busy_gateway, "--key", MASTER, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["requests"] == t["requests"]

    assert main(["stats", "--url", busy_gateway]) == 1  # no master key
    assert "401" in capsys.readouterr().err


def test_gateway_stats_says_when_the_gateway_is_not_there(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--url", "http://127.0.0.1:9"]) == 1
    assert "could not reach" in capsys.readouterr().err


def test_with_the_real_auth_policy_the_figures_need_the_master_key(tmp_path: Path) -> None:
    master = "sk-master-0123456789abcdef"
    settings = make_settings(
        auth={"mode": "keys", "master_key": master},
        server={"state_path": str(tmp_path / "state.db")},
        metrics={"require_master_key": True},
        logging={"access_log": False},
    )
    with running(create_app(settings)) as url:
        as_master = {"authorization": f"Bearer {master}"}
        body = {"model": "mock", "messages": [{"role": "user", "content": "x"}]}
        assert httpx.post(url + "/v1/chat/completions", json=body, headers=as_master).status_code == 200
        for path in ("/ui/api/stats", "/metrics"):
            assert httpx.get(url + path).status_code == 401
            assert httpx.get(url + path, headers={"authorization": "Bearer sk-wrong-key-000000"}).status_code == 401
            assert httpx.get(url + path, headers=as_master).status_code == 200
        assert httpx.get(url + "/ui").status_code == 200  # the shell holds no figures
        stats = httpx.get(url + "/ui/api/stats", headers=as_master).json()
        scrape = httpx.get(url + "/metrics", headers=as_master).text
    assert stats["totals"]["requests"] == 1
    assert master not in scrape and master not in json.dumps(stats)
