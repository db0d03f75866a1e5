"""`python -m bench.profile`: where one target's time goes under load (the hot-path work BENCHMARKS.md reports).

Starts the upstream and one target as `python -m bench` does, loads it with wrk (or the Python generator) and, over
the same seconds, counts the target's user-space instructions with `perf stat` (repeatable where req/s on a shared
machine is not: the per-request figures the commits quote), reads its CPU time from /proc, and samples its stacks
with py-spy (self time by file and by function; the raw collapsed stacks are kept for a flame graph). Either tool is
skipped, with a note, when it is not installed (Debian: linux-perf; PyPI: py-spy, in the `bench` extra) or, for perf,
when the machine has no hardware counters (many VMs: `perf stat -e instructions:u true` says "<not supported>").

`--stream` loads the 200-chunk stream instead and gives every figure per chunk as well as per stream: CPU us per chunk
from /proc (always there), instructions per chunk where perf counts them, and py-spy's self time turned into us per
chunk by function (share of samples x CPU per chunk), the before/after of the relay path.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import nginx
from bench.load import LoadGenerator
from bench.payloads import REQUEST_BODY, STREAM_CHUNKS
from bench.procs import cpu_split, tree_cpu_seconds
from bench.run import start_nginx_upstream, start_python_upstream
from bench.targets import TARGETS, Env, Running, Skipped, post

_FRAME_FILE = re.compile(r"\(([^:)]+)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="gateway-off", choices=[t.key for t in TARGETS if t.key != "direct"])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25, help="rows of the function table")
    parser.add_argument("--stream", action="store_true",
                        help="load the 200-chunk stream and report per chunk (the relay path)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="where the JSON and stacks go")
    args = parser.parse_args(argv)
    report = profile(args.target, args.connections, args.seconds, args.rate, args.stream)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"profile-{args.target}-{'stream-' if args.stream else ''}c{args.connections}"
    stacks = report.pop("stacks", "")
    if stacks:
        stem.with_suffix(".stacks").write_text(stacks)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    print(render(report, args.top))
    print(f"\nresults: {stem}.json" + (f", collapsed stacks: {stem}.stacks" if stacks else ""))
    return 0


def profile(target_key: str, connections: int, seconds: int, rate: int, stream: bool = False) -> dict[str, Any]:
    target = next(t for t in TARGETS if t.key == target_key)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        workdir = Path(tmp)
        load_cpus, target_cpus = cpu_split() or (None, None)
        loadgen = LoadGenerator(workdir, cpus=load_cpus)
        use_nginx = nginx.nginx_binary() is not None
        slow = start_python_upstream(workdir, load_cpus)
        upstream = start_nginx_upstream(workdir, load_cpus) if use_nginx else slow
        running: Running | None = None
        try:
            running = target.start(Env(workdir, upstream, slow, use_nginx, target_cpus))
            post(running.url, REQUEST_BODY, running.headers)
            load = Load(running.url, REQUEST_BODY, 1, "request")
            if stream:
                if running.stream is None:
                    raise SystemExit(f"{target.label}: no stream to load")
                load = Load(running.service.url + running.stream.path, running.stream.body, STREAM_CHUNKS, "chunk")
            loadgen.run(load.url, load.body, connections, 2, running.headers)  # warm-up, not measured
            return _measure(running, loadgen, workdir, target.label, connections, seconds, rate, load)
        except Skipped as exc:
            raise SystemExit(f"{target.label}: skipped: {exc}") from None
        finally:
            if running is not None and running.owned:
                running.service.stop()
            if upstream is not slow:
                upstream.stop()
            slow.stop()


@dataclass(frozen=True)
class Load:
    """What is sent, and what one answer counts as: a request, or STREAM_CHUNKS chunks."""

    url: str
    body: bytes
    units_per_request: int
    unit: str


def _measure(running: Running, loadgen: LoadGenerator, workdir: Path, label: str, connections: int, seconds: int,
             rate: int, load: Load) -> dict[str, Any]:
    pid = running.service.proc.pid
    perf_out, stacks_out = workdir / "perf.txt", workdir / "stacks.txt"
    watchers: list[subprocess.Popen[bytes]] = []
    notes: list[str] = []
    perf = shutil.which("perf")
    if perf:
        watchers.append(subprocess.Popen(
            [perf, "stat", "-x", ",", "-e", "instructions:u,cycles:u", "-p", str(pid), "-o", str(perf_out),
             "--", "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    else:
        notes.append("perf not installed (Debian: linux-perf): no instruction counts")
    spy = shutil.which("py-spy") or _beside_python("py-spy")
    if spy:
        watchers.append(subprocess.Popen(
            # --gil: only samples of the thread holding the GIL, so a thread parked on a lock (the request log's
            # writer) is not counted as time spent
            [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", str(rate), "-f", "raw", "-o", str(stacks_out),
             "--nonblocking", "--gil"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    else:
        notes.append("py-spy not installed (pip install -e '.[bench]'): no stack samples")
    cpu_before = tree_cpu_seconds(pid)
    result = loadgen.run(load.url, load.body, connections, seconds, running.headers)
    cpu_after = tree_cpu_seconds(pid)
    for watcher in watchers:
        watcher.wait(timeout=seconds + 60)
    requests = result.rps * seconds  # requests within the counters' window
    units = requests * load.units_per_request
    report: dict[str, Any] = {"target": label, "connections": connections, "seconds": seconds, "rps": result.rps,
                              "p50_ms": result.p50_ms, "errors": result.errors, "notes": notes, "unit": load.unit,
                              "units_per_request": load.units_per_request}
    if result.requests:
        user, system = (after - before for after, before in zip(cpu_after, cpu_before))
        report["cpu_us_per_request"] = 1e6 * (user + system) / result.requests
        report[f"cpu_us_per_{load.unit}"] = report["cpu_us_per_request"] / load.units_per_request
        report["cpu_user_share"] = user / (user + system) if user + system else None
    counts = _perf_counts(perf_out)
    for event, total in counts.items():
        report[f"{event}_per_request"] = round(total / requests) if requests else None
        if load.unit != "request":
            report[f"{event}_per_{load.unit}"] = round(total / units) if units else None
    if perf and not counts:
        notes.append("perf stat counted no instructions here (`perf stat -e instructions:u true`: <not supported>, "
                     f"no hardware counters in this VM): CPU us per {load.unit} from /proc and py-spy instead")
    if stacks_out.exists():
        stacks = stacks_out.read_text()
        report["stacks"] = stacks
        report.update(_by_self_time(stacks))
    return report


def _beside_python(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def _perf_counts(path: Path) -> dict[str, int]:
    """perf stat -x, lines: value,unit,event,... ("<not supported>" where the machine has no such counter)."""
    if not path.exists():
        return {}
    counts = {}
    for line in path.read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].isdigit():
            counts[fields[2].split(":")[0]] = int(fields[0])
    return counts


def _by_self_time(stacks: str) -> dict[str, Any]:
    """Share of samples whose innermost frame is in each file and each function."""
    files: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        innermost = stack.rsplit(";", 1)[-1]
        match = _FRAME_FILE.search(innermost)
        files[_short(match.group(1)) if match else innermost] += n
        functions[innermost] += n
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {"samples": total,
            "self_by_file": [(f, share(n)) for f, n in files.most_common(40)],
            "self_by_function": [(f, share(n)) for f, n in functions.most_common(80)]}


def _short(path: str) -> str:
    """site-packages/aiohttp/client.py -> aiohttp/client.py; our own files stay as they are."""
    return re.split(r"site-packages/|/lib/python3\.\d+/", path)[-1]


def render(report: dict[str, Any], top: int) -> str:
    unit = report.get("unit", "request")
    head = (f"{report['target']}: {report['rps']:.0f} {'streams' if unit == 'chunk' else 'req'}/s at "
            f"c={report['connections']}, p50 {report['p50_ms']:.3f} ms, {report['errors']} errors")
    lines = [head]
    per_unit = report.get(f"cpu_us_per_{unit}")
    if per_unit:
        extra = f" ({report['cpu_us_per_request']:.0f} us per stream)" if unit != "request" else ""
        user = report.get("cpu_user_share")
        lines.append(f"  CPU per {unit}: {per_unit:.1f} us{extra}"
                     + (f", {100 * user:.0f}% user space" if user is not None else "") + " (/proc)")
    for event in ("instructions", "cycles"):
        value = report.get(f"{event}_per_request")
        if value:
            lines.append(f"  user-space {event} per request: {value / 1000:.0f}k")
        value = report.get(f"{event}_per_{unit}") if unit != "request" else None
        if value:
            lines.append(f"  user-space {event} per {unit}: {value / 1000:.1f}k")
    lines += [f"  note: {note}" for note in report["notes"]]
    if report.get("samples"):
        lines.append(f"\nself time by file ({report['samples']} samples)")
        lines += [f"  {pct:5.1f}%  {name}" for name, pct in report["self_by_file"][:15]]
        scale = f" and us per {unit}" if per_unit else ""
        lines.append(f"\nself time by function (share of samples{scale})")
        for name, pct in report["self_by_function"][:top]:
            cost = f"  {pct / 100 * per_unit:6.2f} us" if per_unit else ""
            lines.append(f"  {pct:5.1f}%{cost}  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
