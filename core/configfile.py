"""A stage's config store in two JSON files, for providers that keep config on disk.

The local provider keeps it under ``.sls-py/local/<stage>/`` and the example
third-party provider under its own state folder; any provider may use it::

    config.json      plain values, {"key": "value"}          (mode 0644)
    secrets.json     secret values, same shape               (mode 0600)
    config.lock      taken while a writer reads-modifies-writes

Writes are atomic: the new content goes to a temporary file in the same
folder, is flushed to disk, gets its mode, and replaces the old file with one
``rename``, so a reader sees the old file or the new one, never a torn one.
Writers are serialised by an ``flock`` on ``config.lock``, so two
``sls-py config set`` at once both land. Readers take no lock and read both
small files whole (tens of microseconds; a handle keeps values for its TTL).

Only the standard library is imported: functions read through this module.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

PLAIN_FILE = "config.json"
SECRET_FILE = "secrets.json"
LOCK_FILE = "config.lock"
_TMP_PREFIX = ".config-tmp-"


class ConfigFileError(Exception):
    """A config file that cannot be read (not JSON, not an object of strings)."""


def _load(path: Path) -> dict[str, str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise ConfigFileError(f"{path} is not valid JSON ({exc.msg}); fix or delete it") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ConfigFileError(f"{path} must hold one JSON object of string values")
    return data


def atomic_write_json(path: Path, data: dict[str, str], mode: int) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically, with permission bits ``mode``."""
    import tempfile  # here: a function's first config read does not import it (5 ms)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True).encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FileConfigStore:
    """One stage's config: plain values and secrets in two files of ``folder``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.plain_path = self.folder / PLAIN_FILE
        self.secret_path = self.folder / SECRET_FILE

    def _read(self, path: Path) -> dict[str, str]:
        return _load(path)

    def plain(self) -> dict[str, str]:
        """The plain values."""
        return self._read(self.plain_path)

    def secrets(self) -> dict[str, str]:
        """The secret values."""
        return self._read(self.secret_path)

    def read(self) -> dict[str, str]:
        """Every value, secrets included (what a function sees)."""
        return {**self.plain(), **self.secrets()}

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / LOCK_FILE, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def set(self, key: str, value: str, secret: bool) -> bool:
        """Store ``key``; returns whether anything changed. A key lives in one file only."""
        with self._writing():
            plain, secrets = _load(self.plain_path), _load(self.secret_path)
            mine, other = (secrets, plain) if secret else (plain, secrets)
            if mine.get(key) == value and key not in other:
                return False
            mine[key] = value
            moved = other.pop(key, None) is not None
            if secret or moved:
                atomic_write_json(self.secret_path, secrets, 0o600)
            if not secret or moved:
                atomic_write_json(self.plain_path, plain, 0o644)
            return True

    def unset(self, keys: list[str]) -> list[str]:
        """Delete ``keys``; returns the ones that were set, sorted."""
        with self._writing():
            plain, secrets = _load(self.plain_path), _load(self.secret_path)
            gone_plain = [k for k in keys if plain.pop(k, None) is not None]
            gone_secret = [k for k in keys if secrets.pop(k, None) is not None]
            if gone_plain:
                atomic_write_json(self.plain_path, plain, 0o644)
            if gone_secret:
                atomic_write_json(self.secret_path, secrets, 0o600)
            return sorted({*gone_plain, *gone_secret})
