"""What is measured: each target knows how to start (or why it is skipped), and how a client must call it."""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import gateway_configs, nginx
from bench.payloads import MODEL, REQUEST_BODY, STREAM_REQUEST_BODY
from bench.procs import Service, free_port

LITELLM_VENV = Path(os.environ.get("BENCH_LITELLM_VENV", "/tmp/litellm-venv"))
PORTKEY_DIR = Path(os.environ.get("BENCH_PORTKEY_DIR", "/tmp/portkey"))
_PORTKEY_SERVER = "node_modules/@portkey-ai/gateway/build/start-server.js"


class Skipped(Exception):
    """The target cannot run here (not installed, feature not in this checkout); the message says why."""


@dataclass
class Env:
    """What every target shares in one run: the work directory and the two upstreams."""

    workdir: Path
    upstream: Service  # nginx when installed, else the Python upstream
    slow_upstream: Service  # always the Python upstream (slow streams)
    use_nginx: bool
    target_cpus: str | None = None  # one-worker targets run here, away from the load generator (procs.cpu_split)

    def dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class StreamSpec:
    path: str
    body: bytes


@dataclass
class Running:
    """A started target: where to send load, with which headers, and whether the run owns (and stops) it."""

    service: Service
    headers: dict[str, str] = field(default_factory=dict)
    stream: StreamSpec | None = None
    slow_stream: StreamSpec | None = None  # for the open-streams measurement
    short_stream: StreamSpec | None = None  # for the leak check over streamed requests
    owned: bool = True
    path: str = "/v1/chat/completions"

    @property
    def url(self) -> str:
        return self.service.url + self.path


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    start: Callable[[Env], Running]


_PASS_STREAMS = {"stream": StreamSpec("/stream/v1/chat/completions", STREAM_REQUEST_BODY),
                 "short_stream": StreamSpec("/short/v1/chat/completions", STREAM_REQUEST_BODY)}


def _direct(env: Env) -> Running:
    return Running(env.upstream, owned=False, **_PASS_STREAMS)


def _nginx_proxy(env: Env) -> Running:
    if not env.use_nginx:
        raise Skipped("nginx is not installed (Debian: apt-get install nginx-light)")
    prefix = env.dir("nginx-proxy")
    port = free_port()
    config = nginx.write_config(prefix, nginx.proxy_config(prefix, port, env.upstream.port))
    service = Service("nginx-proxy", nginx.argv(prefix, config), port=port, log=prefix / "stdout.log",
                      cpus=env.target_cpus)
    service.wait_ready(15)
    return Running(service, **_PASS_STREAMS)


def _minimal(env: Env) -> Running:
    port = free_port()
    service = Service("minimal", [sys.executable, "-m", "bench.proxy", str(port), env.upstream.url], port=port,
                      log=env.dir("minimal") / "stdout.log", cpus=env.target_cpus)
    service.wait_ready(30)
    return Running(service, **_PASS_STREAMS)


def _gateway_body(model: str) -> bytes:
    return STREAM_REQUEST_BODY.replace(f'"model":"{MODEL}"'.encode(), f'"model":"{model}"'.encode(), 1)


def _serve(env: Env, name: str, extra_toml: str = "", *args: str, pin: bool = True) -> tuple[Service, Path]:
    directory = env.dir(name)
    port = free_port()
    config = gateway_configs.write(
        directory, gateway_configs.base_config(directory, port, env.upstream.url, env.slow_upstream.url) + extra_toml)
    problem = gateway_configs.check(config)
    if problem:
        raise Skipped(f"`gateway check` refuses this config (feature not in this checkout?): {problem}")
    return _start_gateway(name, config, port, *args, cpus=env.target_cpus if pin else None), config


def _start_gateway(name: str, config: Path, port: int, *args: str, cpus: str | None = None) -> Service:
    # started as a user starts it: `gateway serve --config ...`, in its own directory
    service = Service(name, gateway_configs.gateway_command("serve", "--config", str(config), *args), port=port,
                      log=config.parent / "stderr.log", cwd=config.parent, ready_path="/readyz", cpus=cpus)
    service.wait_ready(60)
    return service


def _gateway_running(service: Service, headers: dict[str, str] | None = None) -> Running:
    return Running(service, headers=headers or {},
                   stream=StreamSpec("/v1/chat/completions", _gateway_body("bench-stream")),
                   slow_stream=StreamSpec("/v1/chat/completions", _gateway_body("bench-slow")),
                   short_stream=StreamSpec("/v1/chat/completions", _gateway_body("bench-stream-short")))


def _gateway_off(env: Env) -> Running:
    service, _ = _serve(env, "gateway-off")
    return _gateway_running(service)


def _gateway_quiet(env: Env) -> Running:
    service, _ = _serve(env, "gateway-quiet", gateway_configs.QUIET)
    return _gateway_running(service)


def _gateway_policies(env: Env) -> Running:
    return _gateway_with_key(env, "gateway-policies", gateway_configs.POLICIES)


def _gateway_with_key(env: Env, name: str, extra_toml: str) -> Running:
    directory = env.dir(name)
    port = free_port()
    config = gateway_configs.write(directory, gateway_configs.base_config(
        directory, port, env.upstream.url, env.slow_upstream.url) + extra_toml)
    problem = gateway_configs.check(config)
    if problem:
        raise Skipped(f"`gateway check` refuses auth/limits/guards (policies not in this checkout?): {problem}")
    key = gateway_configs.create_key(config)
    service = _start_gateway(name, config, port, cpus=env.target_cpus)
    return _gateway_running(service, {"Authorization": f"Bearer {key}"})


def _gateway_auth_local(env: Env) -> Running:
    return _gateway_with_key(env, "gateway-auth-local", gateway_configs.AUTH_LIMITS)


def _gateway_auth_shared(env: Env) -> Running:
    from bench import fleet_state

    try:
        database_url, redis_url = fleet_state.servers()
    except fleet_state.Missing as exc:
        raise Skipped(str(exc)) from None
    extra = gateway_configs.AUTH_LIMITS + gateway_configs.shared_state(database_url, redis_url)
    return _gateway_with_key(env, "gateway-auth-shared", extra)


def _gateway_replay(env: Env) -> Running:
    directory = env.dir("gateway-replay")
    port = free_port()
    config = gateway_configs.write(
        directory, gateway_configs.base_config(directory, port, env.upstream.url, env.slow_upstream.url))
    problem = gateway_configs.check(config)
    if problem:
        raise Skipped(f"`gateway check` refuses the recording config: {problem}")
    recorder = _start_gateway("gateway-record", config, port, "--record-mode", "record")
    try:
        for body in (REQUEST_BODY, _gateway_body("bench-stream"), _gateway_body("bench-stream-short")):
            post(recorder.url + "/v1/chat/completions", body)
    finally:
        recorder.stop()
    service = _start_gateway("gateway-replay", config, port, "--record-mode", "replay", cpus=env.target_cpus)
    return _gateway_running(service)


def _gateway_workers2(env: Env) -> Running:
    # two workers get every CPU (they share them with the load generator): what `--workers 2` buys on this machine
    service, _ = _serve(env, "gateway-workers2", "", "--workers", "2", pin=False)
    return _gateway_running(service)


def _portkey(env: Env) -> Running:
    server = PORTKEY_DIR / _PORTKEY_SERVER
    if not server.exists():
        raise Skipped(f"Portkey is not installed ({server} missing; see /work/shared/PEERS.md)")
    port = free_port()
    service = Service("portkey", ["node", str(server), f"--port={port}", "--headless"], port=port,
                      log=env.dir("portkey") / "stdout.log", env={"NODE_ENV": "production"}, cwd=PORTKEY_DIR,
                      cpus=env.target_cpus)
    service.wait_ready(60)
    headers = {"Authorization": "Bearer sk-bench-upstream", "x-portkey-provider": "openai",
               "x-portkey-custom-host": env.upstream.url + "/v1"}
    return Running(service, headers=headers)


def _litellm(env: Env) -> Running:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        raise Skipped(f"LiteLLM is not installed ({binary} missing; see /work/shared/PEERS.md)")
    directory = env.dir("litellm")
    config = directory / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        f'    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{env.upstream.url}/v1", api_key: sk-fake}}\n'
        "  - model_name: bench-stream\n"
        f'    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{env.upstream.url}/stream/v1", '
        "api_key: sk-fake}\n"
        "litellm_settings: {telemetry: false}\n"
    )
    port = free_port()
    service = Service("litellm", [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                                  "--num_workers", "1"],
                      port=port, log=directory / "stdout.log", cwd=directory, ready_path="/health/liveliness",
                      env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}, cpus=env.target_cpus)
    service.wait_ready(180)
    return Running(service, headers={"Authorization": "Bearer sk-fake"},
                   stream=StreamSpec("/v1/chat/completions", _gateway_body("bench-stream")))


TARGETS = [
    Target("direct", "upstream direct", _direct),
    Target("nginx-proxy", "nginx as proxy", _nginx_proxy),
    Target("minimal", "minimal Starlette+aiohttp proxy", _minimal),
    Target("gateway-off", "gateway, policies off", _gateway_off),
    Target("gateway-quiet", "gateway, policies+metrics+log off", _gateway_quiet),
    Target("gateway-policies", "gateway, auth+rate limit+PII", _gateway_policies),
    Target("gateway-auth-local", "gateway, auth+rate limit, in-process state", _gateway_auth_local),
    Target("gateway-auth-shared", "gateway, auth+rate limit on Redis+keys on PostgreSQL", _gateway_auth_shared),
    Target("gateway-replay", "gateway, replay hits", _gateway_replay),
    Target("gateway-workers2", "gateway --workers 2", _gateway_workers2),
    Target("portkey", "Portkey 1.15.2", _portkey),
    Target("litellm", "LiteLLM 1.95.0", _litellm),
]


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """One request, checked: a target that does not answer 200 is not worth loading."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()
