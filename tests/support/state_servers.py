"""Throw-away Redis and PostgreSQL servers on free loopback ports with temporary data directories, for tests.

Each server is a real Debian binary (`redis-server`, PostgreSQL's `initdb`/`postgres`), started once per test session
(or per test, where a test stops and restarts it) and stopped at the end. PostgreSQL refuses to run as root, so when
the tests run as root it runs as the `postgres` user (runuser). Where a binary is missing the tests that need it skip
with the reason, except under CI (CI set), where a missing server is a failure: CI installs them (.ci/run).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.server import free_port

_PG_DIRS = ("/usr/lib/postgresql",)


def require(binary_name: str, found: str | None) -> str:
    """The binary's path; skips the test (fails it under CI) when it is missing."""
    if found:
        return found
    message = f"{binary_name} is not installed (apt-get install redis-server postgresql; .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message + " and CI is set: the fleet tests must run here")
    pytest.skip(message)


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def postgres_bindir() -> str | None:
    """The directory holding initdb and postgres: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return str(Path(os.path.realpath(initdb)).parent)
    for base in _PG_DIRS:
        versions = sorted(Path(base).glob("*/bin/postgres"), reverse=True) if Path(base).is_dir() else []
        if versions:
            return str(versions[0].parent)
    return None


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g}s")


class RedisServer:
    """redis-server on 127.0.0.1:<port>, no persistence; stop() and start() again keep the port (a restart)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="gateway-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir, "--save", "",
             "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.proc, "redis-server")
        return self

    def stop(self) -> None:
        """Kill it (SIGKILL: as a crash, not a shutdown) and wait until it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresServer:
    """A PostgreSQL cluster in a temp dir on 127.0.0.1:<port>, trust auth on loopback, fsync off (throw-away).

    Commits stay synchronous: with fsync off a commit is still written to the OS before it is acknowledged, so it
    survives the crash-stop the tests use (synchronous_commit=off lost a key created just before the stop)."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="gateway-pg-")
        self.data = os.path.join(self.root, "data")
        self.proc: subprocess.Popen[bytes] | None = None
        self._databases = 0
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            os.chmod(self.root, 0o777)
            shutil.chown(self.root, "postgres")
        self._run([f"{bindir}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync", "--locale=C"], check=True)

    def _command(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else argv

    def _run(self, argv: list[str], check: bool) -> None:
        subprocess.run(self._command(argv), check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        self.proc = subprocess.Popen(
            self._command([f"{self.bindir}/postgres", "-D", self.data, "-p", str(self.port), "-k", self.root,
                           "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                           "-c", "full_page_writes=off", "-c", "max_connections=300"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.proc, "postgres")
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        """The port opens before the server takes queries ("the database system is starting up")."""
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d",
                                   "postgres", "-Atc", "SELECT 1"], check=False, capture_output=True, text=True)
            if done.returncode == 0 or shutil.which("psql") is None:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not accept queries: {done.stderr}")
            time.sleep(0.1)

    def new_database(self) -> str:
        """A fresh empty database's URL, so every test starts from no tables."""
        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                        "-qc", f"CREATE DATABASE {name} STRATEGY FILE_COPY"], check=True, capture_output=True)
        return self.url(name)

    def stop(self) -> None:
        """Stop it as a crash would (immediate mode: no checkpoint, clients cut) and wait until it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self._run([f"{self.bindir}/pg_ctl", "-D", self.data, "stop", "-m", "immediate", "-w"], check=False)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
