"""`python -m bench`: the gateway's overhead side by side with the limits and its peers, in one run.

Starts a fast upstream (nginx, else a bare uvicorn app), then each target alone, loads it with wrk (else a Python
generator) at 1, 8 and 64 connections, measures streams, sweeps an open-loop rate ladder for the throughput frontier,
holds 1,000 and 10,000 streams open, and writes results JSON, a Markdown report (the tables BENCHMARKS.md holds) and
a PNG chart to bench/results/. Targets that are not installed or whose feature is missing are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from bench.chart import write_chart
from bench.frontier import FRACTIONS
from bench.report import full_report, markdown
from bench.run import Options, run_benchmark
from bench.targets import TARGETS

RESULTS = Path(__file__).parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    keys = [t.key for t in TARGETS]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load duration per target and concurrency")
    parser.add_argument("--rounds", type=int, default=1,
                        help="load rounds over all targets (started together, loaded one at a time); medians reported")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load at 8 connections before measuring")
    parser.add_argument("--connections", default="1,8,64", help="comma-separated concurrencies")
    parser.add_argument("--targets", default=",".join(keys), help=f"comma-separated subset of: {', '.join(keys)}")
    parser.add_argument("--python-only", action="store_true",
                        help="use the Python upstream and load generator even when nginx and wrk are installed")
    parser.add_argument("--no-pin", action="store_true",
                        help="let the OS place every process (by default targets get their own CPUs)")
    parser.add_argument("--no-streams", action="store_true", help="skip the streaming measurements")
    parser.add_argument("--stream-runs", type=int, default=30, help="sequential 200-chunk streams per target")
    parser.add_argument("--open-streams", default="1000,10000",
                        help="comma-separated counts of concurrent open streams on policies off (0: skip)")
    parser.add_argument("--no-frontier", action="store_true", help="skip the open-loop throughput frontier sweep")
    parser.add_argument("--frontier-seconds", type=float, default=2.0, help="seconds per offered rate of the sweep")
    parser.add_argument("--frontier-fractions", default=",".join(f"{f:g}" for f in FRACTIONS),
                        help="offered rates of the sweep, as fractions of each target's closed-loop peak")
    parser.add_argument("--frontier-connections", type=int, default=64,
                        help="keep-alive connections the open-loop generator sends on")
    parser.add_argument("--leak", type=int, nargs="?", const=100_000, default=0, metavar="REQUESTS",
                        help="leak check: RSS over this many whole and as many streamed requests (default 100000) "
                             "on the policies target")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for results JSON, report and chart")
    args = parser.parse_args(argv)
    unknown = set(args.targets.split(",")) - set(keys)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    options = Options(
        seconds=args.seconds,
        connections=tuple(int(c) for c in args.connections.split(",")),
        targets=tuple(args.targets.split(",")),
        use_wrk=not args.python_only,
        use_nginx=not args.python_only,
        streams=not args.no_streams,
        stream_runs=args.stream_runs,
        open_streams=tuple(n for n in (int(c) for c in args.open_streams.split(",")) if n > 0),
        frontier=not args.no_frontier,
        frontier_seconds=args.frontier_seconds,
        frontier_connections=args.frontier_connections,
        frontier_fractions=tuple(sorted(float(f) for f in args.frontier_fractions.split(","))),
        leak_requests=args.leak,
        warmup_seconds=args.warmup,
        pin=not args.no_pin,
        rounds=args.rounds,
    )
    results = run_benchmark(options)
    results["command"] = "python -m bench " + shlex.join(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for name in (f"results-{stamp}.json", "latest.json"):
        (args.out / name).write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "latest.md").write_text(
        f"command: `{results['command']}`\n\n" + full_report(results, markdown) + "\n")
    problem = write_chart(results, args.out / "latest.png")
    print(full_report(results))
    print(f"\nresults: {args.out / 'latest.json'}, report: {args.out / 'latest.md'}"
          + (f", chart: {args.out / 'latest.png'}" if problem is None else f" ({problem})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
