"""Buckets, queues and tables kept in files, behind sls-py's resource driver protocol.

A function's ``Bucket``/``Queue``/``Table`` handles call the driver named in
``SLS_PY_RESOURCES`` (or installed with ``use_driver``); this is the driver of
the ``inprocess`` provider. Buckets are folders, tables JSON files, queues
JSON-lines files, all under ``root``. Objects put and messages sent are also
remembered as *pending* so the provider can fire the matching triggers once
the current invocation has finished. Config (``app.config``) is sls-py's
own file store, :class:`sls_py.configfile.FileConfigStore`, under ``root/config``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sls_py.configfile import FileConfigStore
from sls_py.runtime import ResourceError
from sls_py.runtime.resources import BucketDriver, QueueDriver, TableDriver

_lock = threading.RLock()


@dataclass(frozen=True)
class PendingUpload:
    """An object was put into a bucket: upload triggers should fire."""

    bucket: str
    key: str
    size: int
    etag: str
    content_type: str | None
    time: str


@dataclass(frozen=True)
class PendingMessage:
    """A message was sent: queue triggers should receive it."""

    queue: str
    id: str
    body: str
    receive_count: int = 1


def now_iso() -> str:
    """Now in UTC, as the contract's event times are: ``2026-01-01T12:00:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class FileBucket:
    """A bucket: one folder, one file per key."""

    def __init__(self, driver: FileDriver, name: str, folder: Path) -> None:
        self.driver, self.name, self.folder = driver, name, folder

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ResourceError(f"bucket {self.name!r}: invalid key {key!r}")
        return self.folder.joinpath(*parts)

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        with _lock:
            _write_atomic(self._path(key), data)
        self.driver.pending.append(
            PendingUpload(
                self.name, key, len(data), hashlib.md5(data).hexdigest(), content_type, now_iso()
            )
        )

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise KeyError(key) from None

    def list(self, prefix: str = "") -> list[str]:
        if not self.folder.exists():
            return []
        keys = (
            p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file()
        )
        return sorted(
            k for k in keys if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith(".")
        )

    def delete(self, key: str) -> None:
        with _lock:
            self._path(key).unlink(missing_ok=True)


class FileQueue:
    """A queue: every message appended to a JSON-lines file, and made pending."""

    def __init__(self, driver: FileDriver, name: str, path: Path) -> None:
        self.driver, self.name, self.path = driver, name, path

    def send(self, body: str) -> str:
        message = PendingMessage(self.name, uuid.uuid4().hex, body)
        with _lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"id": message.id, "body": body, "time": now_iso()}) + "\n")
        self.driver.pending.append(message)
        return message.id


def _sort_value(item: dict[str, Any], attr: str | None) -> tuple[int, Any]:
    value = item.get(attr) if attr else None
    return (0, value) if isinstance(value, int | float) else (1, str(value))


class FileTable:
    """A table: one JSON file mapping the encoded key to the item."""

    def __init__(self, path: Path, key: str, sort_key: str | None) -> None:
        self.path, self.key, self.sort_key = path, key, sort_key

    def _k(self, key: dict[str, Any]) -> str:
        return json.dumps([key[self.key], key.get(self.sort_key) if self.sort_key else None])

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data: dict[str, dict[str, Any]] = json.loads(self.path.read_bytes())
            return data
        except FileNotFoundError:
            return {}

    def _save(self, rows: dict[str, dict[str, Any]]) -> None:
        _write_atomic(self.path, json.dumps(rows).encode())

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        with _lock:
            return self._load().get(self._k(key))

    def put(self, item: dict[str, Any]) -> None:
        with _lock:
            rows = self._load()
            rows[self._k(item)] = json.loads(json.dumps(item))
            self._save(rows)

    def delete(self, key: dict[str, Any]) -> None:
        with _lock:
            rows = self._load()
            if rows.pop(self._k(key), None) is not None:
                self._save(rows)

    def query(self, key_value: Any) -> list[dict[str, Any]]:
        with _lock:
            found = [r for r in self._load().values() if r.get(self.key) == key_value]
        return sorted(found, key=lambda r: _sort_value(r, self.sort_key))

    def scan(self) -> list[dict[str, Any]]:
        with _lock:
            return list(self._load().values())


class FileDriver:
    """The ``inprocess`` provider's resource driver: files under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.pending: list[PendingUpload | PendingMessage] = []

    def bucket(self, name: str, physical: str) -> BucketDriver:
        return FileBucket(self, name, self.root / "buckets" / physical)

    def queue(self, name: str, physical: str) -> QueueDriver:
        return FileQueue(self, name, self.root / "queues" / f"{physical}.jsonl")

    def table(self, name: str, physical: str, key: str, sort_key: str | None) -> TableDriver:
        return FileTable(self.root / "tables" / f"{physical}.json", key, sort_key)

    def config(self, name: str, physical: str) -> FileConfigStore:
        """The stage's config: sls-py's file store (``config.json``, ``secrets.json`` 0600)."""
        return FileConfigStore(self.root / "config")

    def take_pending(self) -> list[PendingUpload | PendingMessage]:
        """The events since the last call, oldest first."""
        with _lock:
            taken, self.pending[:] = list(self.pending), []
        return taken
