"""One benchmark run: start the upstreams, then each target in turn (alone, so none steals the other's CPU)."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import frontier, nginx
from bench.frontier import FRACTIONS
from bench.leak import leak_checks, leak_target
from bench.load import LoadGenerator
from bench.open_streams import open_streams
from bench.payloads import REQUEST_BODY
from bench.procs import PeakRss, Service, cpu_split, free_port, raise_open_files
from bench.streams import median_figures, stream_figures
from bench.targets import TARGETS, Env, Running, Skipped, Target, post

MB = 2**20


@dataclass
class Options:
    seconds: float = 5.0
    connections: tuple[int, ...] = (1, 8, 64)
    targets: tuple[str, ...] = tuple(t.key for t in TARGETS)
    use_wrk: bool = True
    use_nginx: bool = True
    streams: bool = True
    stream_runs: int = 30
    open_streams: tuple[int, ...] = (1000, 10000)  # concurrent slow streams held open on policies off; () skips
    leak_requests: int = 0  # 0: no leak check
    frontier: bool = True  # the open-loop rate sweep of every target (bench/frontier.py)
    frontier_seconds: float = 2.0  # per offered rate
    frontier_connections: int = 64
    frontier_fractions: tuple[float, ...] = FRACTIONS  # offered rates, as fractions of the closed-loop peak
    rounds: int = 1  # load rounds over all targets; each figure is the median over them
    warmup_seconds: float = 1.0
    pin: bool = True  # targets on their own CPUs, load generator and upstream on another (procs.cpu_split)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_benchmark(options: Options) -> dict[str, Any]:
    open_files = raise_open_files()  # before anything starts: every process inherits it (10,000 open streams)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        split = cpu_split() if options.pin else None
        load_cpus, target_cpus = split or (None, None)
        own_cpus = os.sched_getaffinity(0)
        if load_cpus:  # this process too (RSS sampling, stream clients): the targets' CPUs stay theirs alone
            os.sched_setaffinity(0, {int(c) for c in load_cpus.split(",")})
        loadgen = LoadGenerator(workdir, prefer_wrk=options.use_wrk, cpus=load_cpus)
        use_nginx = options.use_nginx and nginx.nginx_binary() is not None
        slow = start_python_upstream(workdir, load_cpus)
        upstream = start_nginx_upstream(workdir, load_cpus) if use_nginx else slow
        env = Env(workdir, upstream, slow, use_nginx, target_cpus)
        results: dict[str, Any] = {
            "machine": machine(),
            "loadgen": loadgen.name,
            "upstream": "nginx (return 200, 1 worker)" if use_nginx else "python (bench/upstream_app.py)",
            "cpus": {"load_and_upstream": load_cpus, "targets": target_cpus} if split else None,
            "seconds": options.seconds,
            "rounds": options.rounds,
            "connections": list(options.connections),
            "open_files_limit": open_files,
            "frontier_settings": {"seconds": options.frontier_seconds, "connections": options.frontier_connections,
                                  "fractions": list(options.frontier_fractions), "bounds_ms": list(frontier.BOUNDS_MS)},
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "targets": {},
            "leak": None,
        }
        started: list[tuple[Target, dict[str, Any], Running]] = []
        try:
            for target in TARGETS:
                if target.key in options.targets:
                    entry, running = _start(target, env, loadgen, options)
                    results["targets"][target.key] = entry
                    if running is not None:
                        started.append((target, entry, running))
            # rounds over every target in turn, so drift on the machine (other work, thermal) hits them all alike;
            # the targets not being measured are paused, so none of them takes CPU from the one that is
            for round_number in range(options.rounds):
                for target, entry, running in started:
                    if "error" not in entry:
                        _only(running, started)
                        _load_round(target, entry, running, loadgen, options, round_number)
            for target, entry, running in started:
                _summarize(entry)
                if "error" not in entry:
                    _only(running, started)
                    _extras(target, entry, running, loadgen, options, results)
        finally:
            for _, _, running in started:
                if running.owned:
                    running.service.stop()
            if upstream is not slow:
                upstream.stop()
            slow.stop()
            os.sched_setaffinity(0, own_cpus)
        return results


def start_python_upstream(workdir: Path, cpus: str | None = None) -> Service:
    port = free_port()
    service = Service(
        "python-upstream",
        [sys.executable, "-m", "bench.upstream_app", str(port)],
        port=port,
        log=workdir / "python-upstream.log",
        cpus=cpus,
    )
    service.wait_ready(30)
    return service


def start_nginx_upstream(workdir: Path, cpus: str | None = None) -> Service:
    prefix = workdir / "nginx-upstream"
    port = free_port()
    config = nginx.write_config(prefix, nginx.upstream_config(prefix, port))
    service = Service("nginx-upstream", nginx.argv(prefix, config), port=port, log=prefix / "stdout.log", cpus=cpus)
    service.wait_ready(15)
    return service


def _start(target: Target, env: Env, loadgen: LoadGenerator, options: Options) -> tuple[dict[str, Any], Running | None]:
    entry: dict[str, Any] = {"label": target.label, "skipped": None, "load": {}, "rounds": {}}
    log(f"== starting {target.label}")
    try:
        running = target.start(env)
    except Skipped as exc:
        entry["skipped"] = str(exc)
        log(f"   skipped: {exc}")
        return entry, None
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        entry["skipped"] = f"failed to start: {exc}"[:500]
        log(f"   {entry['skipped']}")
        return entry, None
    try:
        post(running.url, REQUEST_BODY, running.headers)  # answers 200 with a body, or the target is not measured
        loadgen.run(running.url, REQUEST_BODY, 8, options.warmup_seconds, running.headers)
        entry["idle_rss_mb"] = running.service.rss_bytes() / MB
        entry["native"] = running.service.native_modules()
    except Exception as exc:  # noqa: BLE001 - one broken target must not lose the others' figures
        _failed(entry, running, exc)
    return entry, running


def _only(active: Running, started: list[tuple[Target, dict[str, Any], Running]]) -> None:
    """Resume `active`, pause every other target this run started (the upstreams always run)."""
    for _, _, running in started:
        if running.owned and running is not active:
            running.service.pause()
    active.service.resume()


def _load_round(
    target: Target, entry: dict[str, Any], running: Running, loadgen: LoadGenerator, options: Options, round_number: int
) -> None:
    log(f"== {target.label}, round {round_number + 1}/{options.rounds}")
    try:
        if options.warmup_seconds:  # back from a pause: caches and pools warm again before anything is counted
            loadgen.run(running.url, REQUEST_BODY, 8, options.warmup_seconds, running.headers)
        for connections in options.connections:
            with PeakRss(running.service) as peak:
                result = loadgen.run(running.url, REQUEST_BODY, connections, options.seconds, running.headers)
            entry["rounds"].setdefault(str(connections), []).append({**asdict(result), "peak_rss_mb": peak.bytes / MB})
            log(
                f"   c={connections:<3} {result.rps:9.0f} req/s"
                f"  p50 {result.p50_ms:7.3f} ms  p99 {result.p99_ms:7.3f} ms"
                f"  rss {peak.bytes / MB:6.1f} MB  errors {result.errors}"
            )
        if options.streams and running.stream is not None:  # in every round too: drift hits streams alike
            figures = stream_figures(running.service.url, running.stream, running.headers, options.stream_runs)
            entry.setdefault("stream_rounds", []).append(figures)
            log(f"   stream: ttfb {figures['ttfb_ms']:.2f} ms, 200 chunks in {figures['stream_ms']:.2f} ms, "
                f"{figures['chunks_per_s']:.0f} chunks/s (1), {figures['chunks_per_s_8_streams']:.0f} (8)")
    except Exception as exc:  # noqa: BLE001
        _failed(entry, running, exc)


def _summarize(entry: dict[str, Any]) -> None:
    """Each figure's median over the rounds; errors summed, peak RSS the highest seen."""
    for connections, rows in entry["rounds"].items():
        entry["load"][connections] = {
            "requests": sum(r["requests"] for r in rows),
            "rps": statistics.median(r["rps"] for r in rows),
            "p50_ms": statistics.median(r["p50_ms"] for r in rows),
            "p99_ms": statistics.median(r["p99_ms"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
        }
    if entry.get("stream_rounds"):
        entry["stream"] = median_figures(entry["stream_rounds"])


def _extras(
    target: Target,
    entry: dict[str, Any],
    running: Running,
    loadgen: LoadGenerator,
    options: Options,
    results: dict[str, Any],
) -> None:
    """The frontier sweep, open streams and the leak check, after the rounds."""
    try:
        if options.frontier and entry["load"]:
            peak = max(r["rps"] for r in entry["load"].values())
            entry["frontier"] = _frontier(target, running, loadgen, options, peak)
        if options.streams and running.slow_stream is not None and target.key == "gateway-off":
            entry["open_streams"] = [_open_streams(running, count) for count in options.open_streams]
        if options.leak_requests and target.key == leak_target(options.targets):
            results["leak"] = leak_checks(target.key, running, loadgen, options.leak_requests, log,
                                          min(2.0, options.seconds))
    except Exception as exc:  # noqa: BLE001
        _failed(entry, running, exc)


def _frontier(target: Target, running: Running, loadgen: LoadGenerator, options: Options, peak: float
              ) -> dict[str, Any]:
    log(f"== {target.label}: frontier, open loop from {peak * options.frontier_fractions[0]:.0f} req/s up")
    if options.warmup_seconds:
        loadgen.run(running.url, REQUEST_BODY, 8, options.warmup_seconds, running.headers)

    def measure(rate: float) -> dict[str, Any]:
        point = loadgen.open_loop(running.url, REQUEST_BODY, rate, options.frontier_seconds,
                                  options.frontier_connections, running.headers)
        p99 = "never" if point["p99_ms"] is None else f"{point['p99_ms']:.2f} ms"
        log(f"   offered {rate:8.0f} req/s: served {point['achieved_rps']:8.0f}, p99 {p99}, "
            f"generator lag p50 {point['lag_p50_ms']:.2f} / p99 {point['lag_p99_ms']:.2f} ms, "
            f"cpu {point['generator_cpu']:.2f}, errors {point['errors']}")
        return point

    result = frontier.sweep(measure, peak, options.frontier_fractions)
    log("   frontier: " + ", ".join(f"p99 < {b:g} ms: {frontier.describe(result, b)}" for b in frontier.BOUNDS_MS))
    return result


def _open_streams(running: Running, count: int) -> dict[str, Any]:
    spec = running.slow_stream
    assert spec is not None
    found = open_streams(running.service.url + spec.path, spec.body, running.headers, running.service, count)
    log(f"   {found['opened']}/{found['attempted']} open streams in {found['open_seconds']:.1f}s: "
        f"rss {found['idle_rss_mb']:.1f} -> {found['rss_mb']:.1f} MB" + (f"; {found['limited_by']}"
                                                                        if found["limited_by"] else ""))
    return found


def _failed(entry: dict[str, Any], running: Running, exc: Exception) -> None:
    entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
    log(f"   error: {entry['error']}\n   log: {running.service.log_tail(800)}")


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    memory_kb = 0
    try:
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        pass
    versions = {}
    for tool, args in (("nginx", ["-v"]), ("wrk", ["-v"])):
        if shutil.which(tool) or (tool == "nginx" and nginx.nginx_binary()):
            done = subprocess.run(
                [shutil.which(tool) or nginx.nginx_binary(), *args], capture_output=True, text=True, check=False
            )
            versions[tool] = (done.stdout + done.stderr).strip().splitlines()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
    }
