"""The PostgreSQL and Redis that the shared-state target uses: throw-away servers on loopback, started once per run
(the same ones the tests start: tests/support/state_servers.py) and stopped when the bench exits."""

from __future__ import annotations

import atexit
from typing import Any

from tests.support.state_servers import PostgresServer, RedisServer, postgres_bindir, redis_binary

_running: dict[str, Any] = {}


class Missing(Exception):
    pass


def servers() -> tuple[str, str]:
    """(database_url, redis_url), starting the servers on first use."""
    if "urls" not in _running:
        redis, bindir = redis_binary(), postgres_bindir()
        if redis is None or bindir is None:
            raise Missing("redis-server and PostgreSQL are needed (Debian: apt-get install redis-server postgresql)")
        r = RedisServer(redis).start()
        atexit.register(r.close)
        p = PostgresServer(bindir).start()
        atexit.register(p.close)
        _running["urls"] = (p.new_database(), r.url)
    return _running["urls"]
