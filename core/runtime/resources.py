"""Buckets, queues and tables as a function uses them.

An app declares a resource (``uploads = app.bucket("uploads")``) and calls it
from a handler (``uploads.put("a.txt", b"...")``). The handle is neutral: the
calls go to a *driver* that the provider supplies at run time. A provider names
its driver and the resources' physical names in the environment variable
``SLS_PY_RESOURCES`` (JSON)::

    {"driver": "sls_py_local.resources:LocalDriver",
     "options": {...},
     "buckets": {"uploads": "clonezero-dev-uploads"}, "queues": {...}, "tables": {...},
     "caches": {"sessions": "redis://..."}}

Caches (``app.cache``) live in :mod:`sls_py.runtime.cache`; a driver backs
them with a ``cache(name, url)`` method (see ``CacheDriver``).

Tests install a driver directly with :func:`use_driver` (see
:class:`MemoryDriver`).
"""

from __future__ import annotations

import importlib
import json
import os
import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any

    from .drivers import (
        BucketDriver,
        CacheDriver,
        ConfigDriver,
        DatabaseDriver,
        Driver,
        QueueDriver,
        TableDriver,
    )

_PROTOCOLS = (
    "BucketDriver",
    "CacheDriver",
    "QueueDriver",
    "TableDriver",
    "DatabaseDriver",
    "Driver",
    "ConfigDriver",
)


def __getattr__(name: str) -> object:
    # The driver protocols live in .drivers (they need ``typing``, which a
    # function does not otherwise import); still importable from here.
    if name in _PROTOCOLS:
        from . import drivers

        return getattr(drivers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ResourceError(Exception):
    """A resource call failed (missing driver, unknown resource, bad key)."""


_lock = threading.Lock()
_driver: Driver | None = None
#: the kinds of declared things whose logical names map to physical ones
_KINDS = ("buckets", "queues", "tables", "caches", "functions", "databases")
_names: dict[str, dict[str, str]] = {kind: {} for kind in _KINDS}


def use_driver(driver: Driver | None, names: dict[str, dict[str, str]] | None = None) -> None:
    """Install ``driver`` for this process (``None`` to go back to the environment)."""
    global _driver, _names
    with _lock:
        _driver = driver
        _names = {**{kind: {} for kind in _KINDS}, **(names or {})}


def _current() -> tuple[Driver, dict[str, dict[str, str]]]:
    global _driver, _names
    with _lock:
        if _driver is None:
            raw = os.environ.get("SLS_PY_RESOURCES")
            if not raw:
                raise ResourceError(
                    "no resource driver: run this function through a provider "
                    "(sls-py invoke/run) or install one in tests with "
                    "sls_py.runtime.resources.use_driver(MemoryDriver())"
                )
            config = json.loads(raw)
            module, _, attr = config["driver"].partition(":")
            factory = getattr(importlib.import_module(module), attr)
            _driver = factory(**(config.get("options") or {}))
            _names = {
                "buckets": config.get("buckets") or {},
                "queues": config.get("queues") or {},
                "tables": config.get("tables") or {},
                "caches": config.get("caches") or {},  # name -> server URL (runtime.cache)
                # the functions this one may invoke (see sls_py.runtime.invoke)
                "functions": config.get("functions") or {},
                "databases": config.get("databases") or {},
                # app.config handles: name -> the store's address; the stage's defaults
                "configs": config.get("configs") or {},
                "config_defaults": config.get("config_defaults") or {},
            }
            # a provider that learns the URLs only at deploy time (AWS) sets them apart
            extra = os.environ.get("SLS_PY_CACHES")
            if extra:
                _names["caches"] = {**_names["caches"], **json.loads(extra)}
        return _driver, _names


def _physical(kind: str, name: str) -> str:
    _, names = _current()
    return names[kind].get(name, name)


class Bucket:
    """A bucket of objects (files) addressed by key."""

    kind = "bucket"

    def __init__(self, name: str) -> None:
        self.name = name

    def _impl(self) -> BucketDriver:
        driver, _ = _current()
        return driver.bucket(self.name, _physical("buckets", self.name))

    def put(self, key: str, data: bytes | str, content_type: str | None = None) -> None:
        """Store ``data`` under ``key`` (text is stored as UTF-8)."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self._impl().put(key, raw, content_type)

    def get(self, key: str) -> bytes:
        """The object at ``key``; raises ``KeyError`` when there is none."""
        return self._impl().get(key)

    def list(self, prefix: str = "") -> list[str]:
        """Keys that start with ``prefix``, sorted."""
        return self._impl().list(prefix)

    def delete(self, key: str) -> None:
        """Delete ``key`` (no error when it does not exist)."""
        self._impl().delete(key)

    def __repr__(self) -> str:
        return f"Bucket({self.name!r})"


class Queue:
    """A message queue."""

    kind = "queue"

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, body: Any) -> str:
        """Send a message (text, or any JSON-able value); returns its id."""
        if not isinstance(body, str):
            from .events import dumps

            body = dumps(body).decode("utf-8")
        driver, _ = _current()
        return driver.queue(self.name, _physical("queues", self.name)).send(body)

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"


class Table:
    """A key-value table. Items are JSON objects holding the key attribute(s)."""

    kind = "table"

    def __init__(
        self,
        name: str,
        key: str = "id",
        sort_key: str | None = None,
        *,
        key_type: str = "string",
        sort_key_type: str = "string",
    ) -> None:
        self.name = name
        self.key = key
        self.sort_key = sort_key
        self.key_type = key_type
        self.sort_key_type = sort_key_type

    def _check(self, attr: str, kind: str, value: Any) -> None:
        ok = (
            isinstance(value, str)
            if kind == "string"
            else isinstance(value, int | float) and not isinstance(value, bool)
        )
        if not ok:
            raise ResourceError(
                f"table {self.name!r}: {attr!r} is a {kind} key, got {type(value).__name__} {value!r}"
            )

    def _impl(self) -> TableDriver:
        driver, _ = _current()
        return driver.table(self.name, _physical("tables", self.name), self.key, self.sort_key)

    def _key(self, key: Any, sort: Any = None) -> dict[str, Any]:
        self._check(self.key, self.key_type, key)
        out = {self.key: key}
        if self.sort_key is not None:
            if sort is None:
                raise ResourceError(f"table {self.name!r} needs a {self.sort_key!r} value too")
            self._check(self.sort_key, self.sort_key_type, sort)
            out[self.sort_key] = sort
        return out

    def get(self, key: Any, sort: Any = None) -> dict[str, Any] | None:
        """The item with this key, or ``None``."""
        return self._impl().get(self._key(key, sort))

    def put(self, item: dict[str, Any]) -> None:
        """Create or replace an item; it must hold the key attribute(s)."""
        for attr, kind in ((self.key, self.key_type), (self.sort_key, self.sort_key_type)):
            if attr is not None:
                if attr not in item:
                    raise ResourceError(f"item for table {self.name!r} has no {attr!r} attribute")
                self._check(attr, kind, item[attr])
        self._impl().put(dict(item))

    def delete(self, key: Any, sort: Any = None) -> None:
        """Delete the item with this key (no error when absent)."""
        self._impl().delete(self._key(key, sort))

    def query(self, key: Any) -> list[dict[str, Any]]:
        """All items whose key attribute equals ``key``, sorted by sort key."""
        self._check(self.key, self.key_type, key)
        return self._impl().query(key)

    def scan(self) -> list[dict[str, Any]]:
        """Every item (for small tables and reports)."""
        return self._impl().scan()

    def __repr__(self) -> str:
        return f"Table({self.name!r})"


# --- an in-memory driver, for unit tests ------------------------------------


class _MemoryBucket:
    def __init__(self, store: dict[str, bytes]) -> None:
        self.store = store

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self.store[key] = data

    def get(self, key: str) -> bytes:
        return self.store[key]

    def list(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.store if k.startswith(prefix))

    def delete(self, key: str) -> None:
        self.store.pop(key, None)


class _MemoryQueue:
    def __init__(self, messages: list[str]) -> None:
        self.messages = messages

    def send(self, body: str) -> str:
        self.messages.append(body)
        return str(len(self.messages))


class _MemoryTable:
    def __init__(self, rows: dict[tuple[Any, ...], dict[str, Any]], key: str, sort_key: str | None):
        self.rows, self.key, self.sort_key = rows, key, sort_key

    def _k(self, key: dict[str, Any]) -> tuple[Any, ...]:
        return (key[self.key], key.get(self.sort_key) if self.sort_key else None)

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        row = self.rows.get(self._k(key))
        return dict(row) if row is not None else None

    def put(self, item: dict[str, Any]) -> None:
        self.rows[self._k(item)] = json.loads(json.dumps(item))

    def delete(self, key: dict[str, Any]) -> None:
        self.rows.pop(self._k(key), None)

    def query(self, key_value: Any) -> list[dict[str, Any]]:
        found = [dict(r) for k, r in self.rows.items() if k[0] == key_value]
        return sorted(found, key=lambda r: str(r.get(self.sort_key or self.key)))

    def scan(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows.values()]


class MemoryDriver:
    """Resources held in this process's memory: for fast unit tests."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, bytes]] = {}
        self.queues: dict[str, list[str]] = {}
        self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self.caches: dict[str, dict[str, tuple[bytes, float | None]]] = {}
        self._cache_lock = threading.Lock()
        self.databases: dict[str, Any] = {}
        #: the stage's config values (one store, whatever the handle's name)
        self.config_values: dict[str, str] = {}

    def bucket(self, name: str, physical: str) -> BucketDriver:
        return _MemoryBucket(self.buckets.setdefault(name, {}))

    def queue(self, name: str, physical: str) -> QueueDriver:
        return _MemoryQueue(self.queues.setdefault(name, []))

    def table(self, name: str, physical: str, key: str, sort_key: str | None) -> TableDriver:
        return _MemoryTable(self.tables.setdefault(name, {}), key, sort_key)

    def cache(self, name: str, physical: str) -> CacheDriver:
        from .cache import MemoryCache

        return MemoryCache(self.caches.setdefault(name, {}), self._cache_lock)

    def database(self, name: str, physical: str) -> DatabaseDriver:
        """An in-memory SQLite database per name (SQLite, not PostgreSQL: see
        :class:`sls_py.runtime.database.SqliteDatabase`)."""
        from .database import SqliteDatabase

        if name not in self.databases:
            self.databases[name] = SqliteDatabase(name)
        return self.databases[name]
    def config(self, name: str, physical: str) -> ConfigDriver:
        from .config import MemoryConfig

        return MemoryConfig(self.config_values)
