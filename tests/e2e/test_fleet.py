"""Three `gateway serve` processes on one PostgreSQL and one Redis behave as one gateway: limits exact across them,
keys and revocations seen by all, budgets held across them, recordings shared, and Redis faults handled."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import asyncpg
import httpx

from tests.support.gateway_process import GatewayProcess, gateway_process, write_config
from tests.support.server import running
from tests.support.state_servers import PostgresServer, RedisServer
from tests.support.upstream import FakeUpstream

MASTER = "sk-master-fleet-0123456789"
HI = [{"role": "user", "content": "hi"}]


def state(database_url: str = "", redis_url: str = "", **extra: str) -> str:
    lines = ["[state]"]
    if database_url:
        lines.append(f'database_url = "{database_url}"')
    if redis_url:
        lines.append(f'redis_url = "{redis_url}"')
    lines += [f'{k} = "{v}"' for k, v in extra.items()]
    return "\n".join(lines) + "\n"


MOCK = """
[providers.mock]
type = "mock"
[models.mock]
provider = "mock"
"""


@contextmanager
def replicas(tmp_path: Path, body: str, count: int = 3, env: dict[str, str] | None = None
             ) -> Iterator[list[GatewayProcess]]:
    with ExitStack() as stack:
        started = []
        for i in range(count):
            directory = tmp_path / f"replica{i}"
            directory.mkdir()
            replica_env = {"GATEWAY_REPLICA_ID": f"replica-{i}", **(env or {})}
            started.append(stack.enter_context(gateway_process(directory, body, env=replica_env)))
        yield started


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llm_gateway", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, check=False)


async def chat_all(urls: list[str], count: int, key: str | None = None, **body: object) -> Counter[int]:
    """`count` parallel chat requests spread round-robin over the replicas; their statuses."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        async def one(i: int) -> int:
            payload = {"model": "mock", "messages": HI, **body}
            response = await client.post(urls[i % len(urls)] + "/v1/chat/completions", json=payload, headers=headers)
            if body.get("stream"):
                await response.aread()
            return response.status_code

        return Counter(await asyncio.gather(*(one(i) for i in range(count))))


def test_rpm_10_over_three_replicas_lets_exactly_10_of_200_through(tmp_path: Path, redis_url: str) -> None:
    body = state(redis_url=redis_url) + MOCK + "rpm = 10\n"
    with replicas(tmp_path, body) as gateways:
        statuses = asyncio.run(chat_all([g.url for g in gateways], 200))
    assert statuses == {200: 10, 429: 190}


def test_two_workers_on_one_machine_share_the_redis_limit(tmp_path: Path, redis_url: str) -> None:
    with gateway_process(tmp_path, state(redis_url=redis_url) + MOCK + "rpm = 7\n", "--workers", "2") as gw:
        statuses = asyncio.run(chat_all([gw.url], 60))
    assert statuses == {200: 7, 429: 53}


def _auth(cache_ttl: float = 60) -> str:
    # a long cache TTL: only the LISTEN/NOTIFY invalidation can make a revocation felt within a second
    return (f'[auth]\nmode = "keys"\nmaster_key = "{MASTER}"\ncache_ttl_seconds = {cache_ttl}\n'
            'spend_flush_seconds = 0.2\n')


def test_a_key_made_anywhere_works_everywhere_and_a_revocation_reaches_every_replica_within_a_second(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    body = state(database_url, redis_url) + _auth() + MOCK
    with replicas(tmp_path, body) as gateways:
        made = cli("keys", "create", "--name", "roaming", "--config", str(gateways[0].config))
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        for gw in gateways:
            ok = httpx.post(gw.url + "/v1/chat/completions", json={"model": "mock", "messages": HI},
                            headers={"authorization": f"Bearer {key}"})
            assert ok.status_code == 200, (gw.url, ok.text)
        revoked = cli("keys", "revoke", "roaming", "--config", str(gateways[1].config))
        assert revoked.returncode == 0 and "within a second" in revoked.stdout
        deadline = time.monotonic() + 1.0
        refused: set[str] = set()
        while time.monotonic() < deadline and len(refused) < 3:
            for gw in gateways:
                r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "mock", "messages": HI},
                               headers={"authorization": f"Bearer {key}"})
                if r.status_code == 401:
                    refused.add(gw.url)
        assert len(refused) == 3
        listed = cli("keys", "list", "--json", "--config", str(gateways[2].config))
        assert '"status": "revoked"' in listed.stdout


async def _spend(database_url: str) -> float:
    conn = await asyncpg.connect(database_url)
    try:
        return float(await conn.fetchval("SELECT COALESCE(SUM(spend_usd), 0) FROM gateway_key_usage"))
    finally:
        await conn.close()


def test_a_budget_holds_against_40_parallel_streams_across_replicas(
    tmp_path: Path, database_url: str, redis_url: str, upstream: FakeUpstream
) -> None:
    # the fake upstream answers 11 prompt + 7 completion tokens: $0.018 a request at $1000/Mtok
    models = (f'[providers.up]\ntype = "openai"\nbase_url = "{upstream.url}/v1"\napi_key = "sk-up"\n'  # type: ignore[attr-defined]
              '[models.mock]\nprovider = "up"\nmodel = "echo"\n'
              'price = { input_per_mtok = 1000.0, output_per_mtok = 1000.0 }\n')
    body = state(database_url, redis_url) + _auth() + models
    with replicas(tmp_path, body) as gateways:
        made = cli("keys", "create", "--name", "thrifty", "--budget-usd", "0.05", "--config", str(gateways[0].config))
        key = made.stdout.strip()
        statuses = asyncio.run(chat_all([g.url for g in gateways], 40, key, stream=True, max_tokens=10))
        deadline = time.monotonic() + 10
        spend = 0.0
        while time.monotonic() < deadline:  # the replicas flush every 0.2 s
            spend = asyncio.run(_spend(database_url))
            if spend >= 0.05:
                break
            time.sleep(0.1)
    estimate = 0.018 + 0.01  # one request's: its prompt (counted by tiktoken) + max_tokens = 10
    assert statuses[200] >= 3 and statuses[429] >= 30, statuses
    assert 0.05 <= spend <= 0.05 + estimate, (spend, statuses)


def test_a_recording_made_through_one_replica_replays_through_another_with_the_upstream_stopped(
    tmp_path: Path, database_url: str
) -> None:
    fake = FakeUpstream()
    with running(fake.app) as upstream_url:
        models = (f'[providers.up]\ntype = "openai"\nbase_url = "{upstream_url}/v1"\napi_key = "sk-up"\n'
                  '[models.mock]\nprovider = "up"\nmodel = "echo"\n'
                  '[router]\nretries = 0\n')
        recorder = state(database_url) + '[recording]\nmode = "record"\nstore = "postgres"\n' + models
        (tmp_path / "a").mkdir()
        with gateway_process(tmp_path / "a", recorder) as gw:
            recorded = httpx.post(gw.url + "/v1/chat/completions", json={"model": "mock", "messages": HI}).json()
    assert fake.requests  # it did go upstream
    replayer = state(database_url) + '[recording]\nmode = "replay"\nstore = "postgres"\n' + models
    (tmp_path / "b").mkdir()
    with gateway_process(tmp_path / "b", replayer) as gw:
        replayed = httpx.post(gw.url + "/v1/chat/completions", json={"model": "mock", "messages": HI})
        streamed = httpx.post(gw.url + "/v1/chat/completions",
                              json={"model": "mock", "messages": HI, "stream": True})
    assert replayed.status_code == 200 and replayed.json() == recorded
    assert streamed.status_code == 200 and "data: [DONE]" in streamed.text


def test_redis_killed_mid_run_gives_503_when_closed_and_recovers_when_it_returns(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    with gateway_process(tmp_path, state(redis_url=own_redis.url) + MOCK + "rpm = 1000\n") as gw:
        def status() -> httpx.Response:
            return httpx.post(gw.url + "/v1/chat/completions", json={"model": "mock", "messages": HI}, timeout=10)

        assert status().status_code == 200
        own_redis.stop()
        down = status()
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "rate_limit_store_unavailable"
        own_redis.start()
        assert status().status_code == 200  # no restart: the next request reconnects


def test_redis_down_in_open_mode_admits_and_counts(tmp_path: Path, own_redis: RedisServer) -> None:
    body = state(redis_url=own_redis.url, on_redis_error="open") + MOCK + "rpm = 1\n"
    with gateway_process(tmp_path, body) as gw:
        own_redis.stop()
        statuses = [httpx.post(gw.url + "/v1/chat/completions", json={"model": "mock", "messages": HI}).status_code
                    for _ in range(3)]
        metrics = httpx.get(gw.url + "/metrics").text
    assert statuses == [200, 200, 200]  # rpm = 1, unchecked
    assert 'event="admitted_unchecked"' in metrics


def _serve(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    config, _ = write_config(tmp_path, body)
    return cli("serve", "--config", str(config))


def test_serve_refuses_to_start_when_postgresql_is_down(tmp_path: Path) -> None:
    from tests.support.server import free_port

    done = _serve(tmp_path, state(f"postgresql://postgres@127.0.0.1:{free_port()}/gw") + _auth() + MOCK)
    assert done.returncode != 0
    assert "cannot start: PostgreSQL at postgresql://postgres@127.0.0.1" in done.stderr


def test_serve_refuses_to_start_when_redis_is_down_and_closed(tmp_path: Path, own_redis: RedisServer) -> None:
    own_redis.stop()
    done = _serve(tmp_path, state(redis_url=own_redis.url) + MOCK + "rpm = 5\n")
    assert done.returncode != 0 and "cannot start: Redis at redis://127.0.0.1" in done.stderr


def test_serve_starts_without_redis_when_open_and_says_so(tmp_path: Path, own_redis: RedisServer) -> None:
    own_redis.stop()
    with gateway_process(tmp_path, state(redis_url=own_redis.url, on_redis_error="open") + MOCK) as gw:
        assert httpx.post(gw.url + "/v1/chat/completions", json={"model": "mock", "messages": HI}).status_code == 200
        gw.terminate()
        _, err = gw.wait(timeout=30)
    assert "serving anyway with rate limits and budget reservations unchecked" in err


def test_check_reports_each_server(tmp_path: Path, database_url: str, redis_url: str) -> None:
    config, _ = write_config(tmp_path, state(database_url, redis_url) + MOCK)
    done = cli("check", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "PostgreSQL at postgresql://postgres@127.0.0.1" in done.stderr and "ok, server" in done.stderr
    assert "Redis at redis://127.0.0.1" in done.stderr
    own = RedisServer.__name__  # a server that is not there is reported, and check fails
    from tests.support.server import free_port

    config, _ = write_config(tmp_path, state(redis_url=f"redis://127.0.0.1:{free_port()}/0") + MOCK)
    down = cli("check", "--config", str(config))
    assert down.returncode == 1 and "Redis at redis://127.0.0.1" in down.stderr and "UNREACHABLE" in down.stderr, own


def test_ui_stats_and_metrics_show_the_whole_fleet_and_name_each_replica(tmp_path: Path, redis_url: str) -> None:
    body = state(redis_url=redis_url) + MOCK
    with replicas(tmp_path, body) as gateways:
        for i, gw in enumerate(gateways):
            for _ in range(i + 1):  # 1, 2 and 3 requests
                assert httpx.post(gw.url + "/v1/chat/completions",
                                  json={"model": "mock", "messages": HI}).status_code == 200
        deadline = time.monotonic() + 10
        while True:  # each replica publishes within PUBLISH_SECONDS of its first request
            stats = httpx.get(gateways[0].url + "/ui/api/stats").json()
            if stats["totals"]["requests"] == 6 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        printed = cli("stats", "--url", gateways[2].url)
        metrics = httpx.get(gateways[1].url + "/metrics").text
    assert stats["totals"]["requests"] == 6
    assert [(r["replica"], r["requests"]) for r in stats["replicas"]] == [("replica-0", 1), ("replica-1", 2),
                                                                         ("replica-2", 3)]
    assert "replica replica-2" in printed.stdout and "3 workers across the fleet" in printed.stdout
    assert 'gateway_replica_info{replica="replica-1"} 1.0' in metrics


def test_postgresql_down_while_serving_cached_keys_go_on_spend_waits_and_all_recovers(
    tmp_path: Path, own_postgres: PostgresServer
) -> None:
    database_url = own_postgres.url()
    body = state(database_url) + _auth(cache_ttl=3600) + MOCK
    with gateway_process(tmp_path, body) as gw:
        key = cli("keys", "create", "--name", "steady", "--config", str(gw.config)).stdout.strip()

        def post(k: str) -> httpx.Response:
            return httpx.post(gw.url + "/v1/chat/completions", json={"model": "mock", "messages": HI},
                              headers={"authorization": f"Bearer {k}"}, timeout=30)

        assert post(key).status_code == 200  # looked up once, cached
        own_postgres.stop()
        outage = [post(key) for _ in range(5)]
        assert [r.status_code for r in outage] == [200] * 5, outage[0].text  # no database on a cached key path
        unknown = post("sk-gw-never-made")
        assert unknown.status_code == 503 and unknown.json()["error"]["code"] == "key_store_unavailable"
        own_postgres.start()
        deadline = time.monotonic() + 15
        requests = 0
        while time.monotonic() < deadline:  # the spend batch kept through the outage reaches the database
            requests = asyncio.run(_requests(database_url))
            if requests == 6:
                break
            time.sleep(0.2)
        assert requests == 6
        revoked = cli("keys", "revoke", "steady", "--config", str(gw.config))
        assert revoked.returncode == 0
        deadline = time.monotonic() + 10  # the revocation listener reconnected by itself
        while post(key).status_code != 401 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert post(key).status_code == 401


async def _requests(database_url: str) -> int:
    try:
        conn = await asyncpg.connect(database_url)
    except (OSError, asyncpg.PostgresError):
        return -1
    try:
        return int(await conn.fetchval("SELECT COALESCE(SUM(requests), 0) FROM gateway_key_usage"))
    finally:
        await conn.close()


def test_a_replica_killed_right_after_answering_has_kept_its_recording(tmp_path: Path, database_url: str,
                                                                        upstream: FakeUpstream) -> None:
    models = (f'[providers.up]\ntype = "openai"\nbase_url = "{upstream.url}/v1"\napi_key = "sk-up"\n'  # type: ignore[attr-defined]
              '[models.mock]\nprovider = "up"\nmodel = "echo"\n')
    body = state(database_url) + '[recording]\nmode = "record"\nstore = "postgres"\n' + models
    with gateway_process(tmp_path, body) as gw:
        answered = httpx.post(gw.url + "/v1/chat/completions",
                              json={"model": "mock", "messages": [{"role": "user", "content": "keep me"}]})
        assert answered.status_code == 200
        os.killpg(gw.proc.pid, 9)
        gw.proc.wait(timeout=10)
    listed = cli("recordings", "ls", "--json", "--config", str(gw.config))
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1
