"""Drive one target at one concurrency with wrk (one thread, a Lua script for the POST), or the Python generator."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.procs import pinned

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class LoadResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers and socket errors: a target with errors did not really serve the load


class LoadGenerator:
    def __init__(self, workdir: Path, *, prefer_wrk: bool = True, cpus: str | None = None) -> None:
        self.workdir = workdir
        self.cpus = cpus  # pinned beside the upstream, off the target's CPUs (procs.cpu_split)
        self.wrk = shutil.which("wrk") if prefer_wrk else None
        self.name = "wrk" if self.wrk else "python (bench/pyload.py)"

    def run(self, url: str, body: bytes, connections: int, seconds: float, headers: dict[str, str]) -> LoadResult:
        if self.wrk:
            return self._wrk(url, body, connections, seconds, headers)
        return self._python(url, body, connections, seconds, headers)

    def _wrk(self, url: str, body: bytes, connections: int, seconds: float, headers: dict[str, str]) -> LoadResult:
        script = self.workdir / "post.lua"
        lines = [
            'wrk.method = "POST"',
            f"wrk.body = {_lua_string(body)}",
            'wrk.headers["Content-Type"] = "application/json"',
        ]
        lines += [f"wrk.headers[{_lua_string(k.encode())}] = {_lua_string(v.encode())}" for k, v in headers.items()]
        script.write_text("\n".join(lines) + "\n")
        duration = max(1, round(seconds))
        argv = [
            self.wrk,
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ]
        out = subprocess.run(
            pinned(argv, self.cpus),
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
        return parse_wrk(out)

    def _python(self, url: str, body: bytes, connections: int, seconds: float, headers: dict[str, str]) -> LoadResult:
        body_file = self.workdir / "body.json"
        body_file.write_bytes(body)
        out = subprocess.run(
            pinned(
                [
                    sys.executable,
                    "-m",
                    "bench.pyload",
                    url,
                    str(connections),
                    str(seconds),
                    str(body_file),
                    *(f"{k}: {v}" for k, v in headers.items()),
                ],
                self.cpus,
            ),
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
        return LoadResult(**json.loads(out))

    def open_loop(self, url: str, body: bytes, rate: float, seconds: float, connections: int,
                  headers: dict[str, str]) -> dict:
        """One point of the frontier sweep: `rate` requests/s offered for `seconds` (bench/openloop.py)."""
        body_file = self.workdir / "openloop-body.json"
        body_file.write_bytes(body)
        argv = [sys.executable, "-m", "bench.openloop", url, f"{rate:.3f}", str(seconds), str(connections),
                str(body_file), *(f"{k}: {v}" for k, v in headers.items())]
        out = subprocess.run(pinned(argv, self.cpus), capture_output=True, text=True, timeout=3 * seconds + 60,
                             check=True).stdout
        return json.loads(out)


def parse_wrk(out: str) -> LoadResult:
    """Requests/s, the 50% and 99% latency lines of --latency, and every kind of error wrk counts."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    percentiles = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)}
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    return LoadResult(
        requests=requests, rps=rps, p50_ms=percentiles.get("50", 0.0), p99_ms=percentiles.get("99", 0.0), errors=errors
    )


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def _lua_string(raw: bytes) -> str:
    return '"' + "".join(f"\\{b:03d}" if b < 32 or b in (34, 92) or b > 126 else chr(b) for b in raw) + '"'
