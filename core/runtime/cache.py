"""Caches as a function uses them: ``app.cache("sessions")``.

A cache is a Redis-protocol key-value store. The handle's calls mean the
same on every provider::

    sessions = app.cache("sessions")

    sessions.set("user:42", "alice", ttl_s=3600)   # str or bytes; ttl_s: expires then
    sessions.get("user:42")                        # b"alice" (bytes), or None
    sessions.incr("hits")                          # 1, 2, ... (atomic, across invocations)
    sessions.expire("hits", 60); sessions.ttl("hits")   # seconds left; None: no expiry
    sessions.delete("user:42")                     # True if it existed
    sessions.client()                              # the raw client (valkey-py or redis-py)

Values are bytes: ``get`` returns what was stored, encoded as UTF-8 if it was
a ``str``. JSON is the caller's to encode, or :meth:`Cache.set_json` /
:meth:`Cache.get_json` do it (compact JSON, UTF-8): nothing is pickled, so any
Redis client in any language reads the same values.

The provider's driver (see :mod:`sls_py.runtime.resources`) gives each cache a
URL in ``SLS_PY_RESOURCES`` (``"caches": {"sessions": "redis://..."}``) and
:class:`RedisCache` talks to it with valkey-py or redis-py, whichever is
installed (imported on first use, not when the function's module loads).
"""

from __future__ import annotations

import json
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .drivers import CacheDriver


def _resources() -> Any:
    from . import resources

    return resources


def _bytes(value: bytes | str | int | float, what: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode("ascii")
    raise _resources().ResourceError(
        f"cache {what}: values are bytes or str, got {type(value).__name__}; "
        "encode it first (set_json stores JSON)"
    )


def _ttl(ttl_s: float | None, name: str) -> float | None:
    if ttl_s is None:
        return None
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or ttl_s <= 0:
        raise _resources().ResourceError(
            f"cache {name!r}: ttl_s must be a positive number of seconds, got {ttl_s!r}"
        )
    return float(ttl_s)


class Cache:
    """A Redis-protocol cache: bytes values, expiry, atomic counters."""

    kind = "cache"

    def __init__(self, name: str) -> None:
        self.name = name
        self._bound: tuple[object, CacheDriver] | None = None

    def _impl(self) -> CacheDriver:
        res = _resources()
        driver, names = res._current()
        bound = self._bound
        if bound is not None and bound[0] is driver:  # the warm path: no lookups
            return bound[1]
        factory = getattr(driver, "cache", None)
        if factory is None:
            raise res.ResourceError(
                f"cache {self.name!r}: this provider's resource driver has no caches",
            )
        impl: CacheDriver = factory(self.name, names.get("caches", {}).get(self.name, ""))
        self._bound = (driver, impl)
        return impl

    def get(self, key: str) -> bytes | None:
        """The value at ``key`` (bytes), or ``None`` when absent or expired."""
        return self._impl().get(key)

    def set(self, key: str, value: bytes | str, ttl_s: float | None = None) -> None:
        """Store ``value`` (a ``str`` as UTF-8); with ``ttl_s`` it expires after that many seconds."""
        self._impl().set(key, _bytes(value, repr(self.name)), _ttl(ttl_s, self.name))

    def delete(self, key: str) -> bool:
        """Delete ``key``; ``True`` if it existed."""
        return self._impl().delete(key)

    def incr(self, key: str, by: int = 1) -> int:
        """Add ``by`` to the integer at ``key`` (0 if absent) atomically; the new value."""
        if isinstance(by, bool) or not isinstance(by, int):
            raise _resources().ResourceError(f"cache {self.name!r}: incr by an int, got {by!r}")
        return self._impl().incr(key, by)

    def expire(self, key: str, ttl_s: float) -> bool:
        """Make ``key`` expire in ``ttl_s`` seconds; ``False`` when there is no such key."""
        ttl = _ttl(ttl_s, self.name)
        assert ttl is not None
        return self._impl().expire(key, ttl)

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` when it has no expiry or does not exist."""
        return self._impl().ttl(key)

    def set_json(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        """Store ``value`` as compact UTF-8 JSON."""
        self.set(key, json.dumps(value, separators=(",", ":"), ensure_ascii=False), ttl_s)

    def get_json(self, key: str) -> Any:
        """The JSON value at ``key`` decoded, or ``None`` when absent."""
        raw = self.get(key)
        return None if raw is None else json.loads(raw)

    def client(self) -> Any:
        """The raw Redis-protocol client (``valkey.Valkey`` or ``redis.Redis``) for
        everything else (hashes, lists, pipelines, pub/sub)."""
        return self._impl().client()

    def __repr__(self) -> str:
        return f"Cache({self.name!r})"


# --- the driver for a real Redis-protocol server --------------------------------

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def client_module() -> Any:
    """valkey-py if installed, else redis-py (their APIs are the same)."""
    try:
        import valkey

        return valkey
    except ImportError:
        pass
    try:
        import redis

        return redis
    except ImportError:
        raise _resources().ResourceError(
            "a cache needs a Redis client library: pip install valkey (or redis)"
        ) from None


def preload_client() -> None:
    """Import the client library now (valkey-py: ~100 ms of imports with asyncio)
    instead of on the first cache call; none installed is that call's error."""
    import contextlib

    with contextlib.suppress(Exception):
        client_module()


def connect(url: str, *, wait_s: float = 10.0) -> Any:
    """A client for ``url`` (shared by the process's threads, one pool per URL).

    The server may still be starting when a function first calls (the local
    provider starts it beside the gateway): connection refusals are retried for
    up to ``wait_s`` seconds.
    """
    with _clients_lock:
        found = _clients.get(url)
        if found is not None:
            return found
        mod = client_module()
        client = mod.from_url(url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=0)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                client.ping()
                break
            except (mod.ConnectionError, mod.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        _clients[url] = client
        return client


class RedisCache:
    """A :class:`~sls_py.runtime.drivers.CacheDriver` over a Redis-protocol server at ``url``."""

    def __init__(self, url: str) -> None:
        if not url:
            raise _resources().ResourceError("cache has no server URL: declare it with app.cache()")
        self.url = url
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.url)
        return self._client

    def _call(self, method: str, *args: Any, idempotent: bool = True, **kwargs: Any) -> Any:
        """``client.method(*args)``; a server that is restarting (connection refused)
        is waited for up to ``RETRY_S``. A call that may have reached the server
        before the connection broke is retried only when ``idempotent``."""
        client = self.client()
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                return getattr(client, method)(*args, **kwargs)
            except client_module().ConnectionError as exc:
                never_sent = "connecting to" in str(exc)
                if not (idempotent or never_sent) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def get(self, key: str) -> bytes | None:
        value = self._call("get", key)
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        if ttl_s is None:
            self._call("set", key, value)
        else:
            self._call("set", key, value, px=max(1, int(ttl_s * 1000)))

    def delete(self, key: str) -> bool:
        return bool(self._call("delete", key))

    def incr(self, key: str, by: int) -> int:
        return int(self._call("incrby", key, by, idempotent=False))

    def expire(self, key: str, ttl_s: float) -> bool:
        return bool(self._call("pexpire", key, max(1, int(ttl_s * 1000))))

    def ttl(self, key: str) -> float | None:
        ms = int(self._call("pttl", key))
        return None if ms < 0 else ms / 1000


#: how long a cache call waits for a server that refuses connections (restarting)
RETRY_S = 5.0


# --- in memory, for unit tests ---------------------------------------------------


class MemoryCache:
    """A cache held in this process (``MemoryDriver``): same semantics, no server.
    ``client()`` is not available (there is no server to talk to)."""

    def __init__(self, store: dict[str, tuple[bytes, float | None]], lock: threading.Lock) -> None:
        self.store, self.lock = store, lock

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        item = self.store.get(key)
        if item is not None and item[1] is not None and item[1] <= time.monotonic():
            del self.store[key]
            return None
        return item

    def get(self, key: str) -> bytes | None:
        with self.lock:
            item = self._live(key)
            return None if item is None else item[0]

    def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        with self.lock:
            self.store[key] = (value, None if ttl_s is None else time.monotonic() + ttl_s)

    def delete(self, key: str) -> bool:
        with self.lock:
            return self._live(key) is not None and self.store.pop(key, None) is not None

    def incr(self, key: str, by: int) -> int:
        with self.lock:
            item = self._live(key)
            try:
                value = int(item[0]) + by if item is not None else by
            except ValueError:
                raise _resources().ResourceError(f"cache value at {key!r} is not an integer") from None
            self.store[key] = (str(value).encode(), item[1] if item is not None else None)
            return value

    def expire(self, key: str, ttl_s: float) -> bool:
        with self.lock:
            item = self._live(key)
            if item is None:
                return False
            self.store[key] = (item[0], time.monotonic() + ttl_s)
            return True

    def ttl(self, key: str) -> float | None:
        with self.lock:
            item = self._live(key)
            if item is None or item[1] is None:
                return None
            return max(0.0, item[1] - time.monotonic())

    def client(self) -> Any:
        raise _resources().ResourceError(
            "the in-memory test driver has no Redis server: client() needs a provider "
            "(sls-py run, or sls_py.testing with a real server)"
        )
