"""Start a server process, wait until it answers, measure its process tree's memory, stop it with its children."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Self

_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_split() -> tuple[str, str] | None:
    """(CPUs for the load generator and the upstream, CPUs for the target under test), or None when the machine has
    one CPU or no taskset. Pinned, a one-worker target has a core of its own and never shares it with wrk or nginx:
    on a 2-core VM the same target's req/s varied by a third from run to run unpinned, a few percent pinned."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None
    return str(cpus[0]), ",".join(str(c) for c in cpus[1:])


def raise_open_files(wanted: int = 65536) -> int:
    """Lift this process's RLIMIT_NOFILE towards `wanted` (the hard limit too, where allowed: root), so that it and
    every process it starts (they inherit it) can hold 10,000 streams. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):  # not root: the soft limit can still rise to the hard one
            pass
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """argv run on `cpus` (taskset execs it: same pid, same process group), or as it is."""
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A server started in its own process group, so stopping it reaches its workers too."""

    def __init__(self, name: str, argv: Sequence[str], *, port: int, log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, ready_path: str | None = None, cpus: str | None = None) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            pinned(argv, cpus), cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.ready_path = ready_path

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log: {self.log_tail()}")
            if self._answers():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not ready within {timeout:.0f}s; log: {self.log_tail()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            if self.ready_path is None:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as response:
                return 200 <= response.status < 300
        except OSError:
            return False

    def rss_bytes(self) -> int:
        return tree_rss(self.proc.pid)

    def native_modules(self) -> list[str]:
        """Which of uvloop and httptools the tree has loaded: proof the server runs on them, not the fallbacks."""
        found: set[str] = set()
        for pid in tree_pids(self.proc.pid):
            try:
                maps = Path(f"/proc/{pid}/maps").read_text()
            except OSError:
                continue
            found.update(name for name in ("uvloop", "httptools") if f"/{name}/" in maps)
        return sorted(found)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def pause(self) -> None:
        """SIGSTOP the tree: a server waiting its turn (its timers, a peer's background jobs) takes no CPU from the one
        being measured on the same core."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self.resume()  # a stopped process would hold SIGTERM pending
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log_file.close()


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: the fields after the last ')' are fixed
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, ()))
    return pids


def tree_rss(root: int) -> int:
    """Resident memory of a process tree, in bytes (pages shared between workers are counted in each)."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except OSError:
            continue
    return total


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process tree has used so far, from /proc/<pid>/stat (clock ticks, 10 ms)."""
    user = system = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user / _TICK, system / _TICK


class PeakRss:
    """Samples a service's tree RSS in a thread while a load runs: `with PeakRss(service) as peak: ...; peak.bytes`."""

    def __init__(self, service: Service, interval: float = 0.2) -> None:
        self.service = service
        self.interval = interval
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.bytes = max(self.bytes, self.service.rss_bytes())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, self.service.rss_bytes())
