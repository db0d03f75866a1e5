"""`python -m bench.cpu_cost`: each target's own CPU time per request, where neither req/s nor perf can say it.

On a shared VM req/s moves with the neighbours' load and `perf stat` may have no hardware counters; the CPU seconds
the target's processes spent (utime + stime from /proc, the whole process tree) divided by the requests they served
move much less. Targets start as `python -m bench` starts them; rounds interleave the targets (the others paused)
and the medians are reported, with the ratio to the first target (`bench.profile` gives one target's figure).

    python -m bench.cpu_cost --targets gateway-off,gateway-messages --seconds 5 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench import nginx
from bench.load import LoadGenerator
from bench.procs import cpu_split, tree_cpu_seconds
from bench.run import start_nginx_upstream, start_python_upstream
from bench.targets import TARGETS, Env, Running, post


def measure(running: Running, loadgen: LoadGenerator, connections: int, seconds: float) -> tuple[float, float]:
    """(CPU microseconds per request, req/s) over one load run."""
    before = sum(tree_cpu_seconds(running.service.proc.pid))
    result = loadgen.run(running.url, running.body, connections, seconds, running.headers)
    spent = sum(tree_cpu_seconds(running.service.proc.pid)) - before
    return spent / max(1, result.requests) * 1e6, result.rps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="gateway-off,gateway-messages,gateway-anthropic-chat,"
                                             "gateway-anthropic-messages")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    chosen = [t for t in TARGETS if t.key in args.targets.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        workdir = Path(tmp)
        load_cpus, target_cpus = cpu_split() or (None, None)
        loadgen = LoadGenerator(workdir, prefer_wrk=True, cpus=load_cpus)
        slow = start_python_upstream(workdir, load_cpus)
        use_nginx = nginx.nginx_binary() is not None
        upstream = start_nginx_upstream(workdir, load_cpus) if use_nginx else slow
        env = Env(workdir, upstream, slow, use_nginx, target_cpus)
        started = []
        try:
            for target in chosen:
                running = target.start(env)
                post(running.url, running.body, running.headers)
                loadgen.run(running.url, running.body, args.connections, 1.0, running.headers)  # warm-up
                running.service.pause()
                started.append((target, running))
            costs: dict[str, list[tuple[float, float]]] = {t.key: [] for t, _ in started}
            for _ in range(args.rounds):
                for target, running in started:
                    running.service.resume()
                    costs[target.key].append(measure(running, loadgen, args.connections, args.seconds))
                    running.service.pause()
        finally:
            for _, running in started:
                running.service.resume()
                running.service.stop()
            if upstream is not slow:
                upstream.stop()
            slow.stop()
    base = None
    print(f"c={args.connections}, {args.rounds} rounds of {args.seconds}s, medians ({loadgen.name})")
    for target, _ in started:
        us = statistics.median(c for c, _ in costs[target.key])
        rps = statistics.median(r for _, r in costs[target.key])
        base = base or us
        print(f"  {target.key:<28} {us:8.1f} us CPU/request  {us / base:5.2f}x  {rps:8.0f} req/s   {target.label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
