"""The local provider's resources: buckets as folders, tables and queues in SQLite.

Functions running locally reach this driver through ``SLS_PY_RESOURCES``
(see :func:`sls_py_local.oneshot.local_resources`); the local services and the
``sls-py trigger`` hook use it directly. Everything lives under one folder,
``.sls-py/local/<stage>/`` (the *root*)::

    buckets/<bucket>/<key>      one file per object; the key is its relative path
    tmp/                        temporary files of atomic writes (never watched)
    tables/<table>.sqlite3      one SQLite file per table (WAL, busy timeout)
    queues.sqlite3              every queue of the stage, dead-letter queues too

Only the standard library is imported: this module is loaded inside functions.
Several processes (workers, the services, the CLI) use the same files at once:
object writes are atomic (temporary file, then rename) and SQLite runs in WAL
mode with a busy timeout.

Content types are not kept: S3 would remember the ``content_type`` given to
``put``; here :class:`~sls_py.runtime.UploadEvent` carries one guessed from the
key's extension instead.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sls_py.runtime.errors import HttpError
from sls_py.runtime.resources import (
    BucketDriver,
    CacheDriver,
    QueueDriver,
    ResourceError,
    TableDriver,
)

# sqlite3 and the queue store (with dataclasses), tempfile: imported where a table,
# a queue or a bucket write needs them; a function's first config read or cache
# call loads this module without them (some 5-10 ms)
if TYPE_CHECKING:
    import sqlite3

    from .queues import QueueStore

TMP_PREFIX = ".sls-py-tmp-"
MAX_KEY_BYTES = 1024


class InvalidKey(ResourceError, HttpError, ValueError):
    """An object key that cannot be stored as a file inside its bucket folder.

    It is also an :class:`~sls_py.runtime.HttpError` with status 400: a key
    taken from a request and refused here answers the caller with a clear 400,
    not a 502.
    """

    def __init__(self, message: str) -> None:
        HttpError.__init__(self, 400, message)


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe object key; raise :class:`InvalidKey` saying why not.

    Keys are relative paths with ``/`` separators. Refused: empty keys, keys
    over 1024 bytes, a leading ``/``, backslashes, NUL and other control
    characters, empty segments (``a//b``, a trailing ``/``), and ``.`` or
    ``..`` segments, which could reach outside the bucket's folder.
    """
    hint = "use a relative key such as 'photos/cat.jpg' (segments separated by '/')"
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"object key must be a non-empty string, got {key!r}; {hint}")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes; {hint}")
    if key.startswith("/"):
        raise InvalidKey(f"object key {key!r} starts with '/' (absolute path); {hint}")
    if "\\" in key:
        raise InvalidKey(f"object key {key!r} contains a backslash; {hint}")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidKey(f"object key {key!r} contains NUL or another control character; {hint}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            shown = segment or "an empty segment"
            raise InvalidKey(f"object key {key!r} contains {shown!r} as a path segment; {hint}")
        if segment.startswith(TMP_PREFIX):
            raise InvalidKey(f"object key {key!r}: names starting with {TMP_PREFIX!r} are reserved")
    return key


def atomic_write(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalBucket:
    """One bucket: a folder whose files are the objects."""

    def __init__(self, folder: Path, tmp_dir: Path) -> None:
        self.folder = folder
        self.tmp_dir = tmp_dir

    def path(self, key: str) -> Path:
        """The file holding ``key`` (checked: always inside the bucket's folder)."""
        path = self.folder / check_key(key)
        if not path.resolve().is_relative_to(self.folder.resolve()):
            raise InvalidKey(f"object key {key!r} leads outside its bucket (through a symlink)")
        return path

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self.path(key)
        if path.is_dir():
            raise ResourceError(f"cannot store {key!r}: keys below it exist ({key}/...)")
        atomic_write(path, data, self.tmp_dir)

    def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def list(self, prefix: str = "") -> list[str]:
        if not self.folder.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(self.folder):
            rel = os.path.relpath(dirpath, self.folder)
            for name in files:
                if name.startswith(TMP_PREFIX):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        # S3 has no folders: drop the ones this delete left empty
        parent = path.parent
        root = self.folder.resolve()
        while parent.resolve() != root and parent.resolve().is_relative_to(root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


# --- tables -------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL, sk TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
"""


def _key_text(table: str, attr: str, value: Any) -> str:
    """A key value as stored: canonical JSON, so 1 and "1" stay different keys."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ResourceError(
            f"table {table!r}: key attribute {attr!r} must be a string or a number, "
            f"got {type(value).__name__} {value!r}"
        )
    return json.dumps(value)


def _sort_order(value: Any) -> tuple[int, Any]:
    """Numbers before strings; numbers by value, strings by text (as DynamoDB sorts)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


class LocalTable:
    """A key-value table in its own SQLite file; items are stored as JSON."""

    def __init__(self, name: str, path: Path, key: str, sort_key: str | None) -> None:
        self.name, self.path, self.key, self.sort_key = name, path, key, sort_key
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            from .queues import connect

            conn = connect(self.path)
            conn.executescript(_SCHEMA)
            self._check_schema(conn)
            self._local.conn = conn
        return conn

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        wanted = json.dumps({"key": self.key, "sort_key": self.sort_key})
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('keys', ?)", (wanted,))
        (stored,) = conn.execute("SELECT value FROM meta WHERE name = 'keys'").fetchone()
        if stored != wanted:
            raise ResourceError(
                f"table {self.name!r} in {self.path} was created with keys {stored}, "
                f"but the app now declares {wanted}; delete that file to start the table afresh"
            )

    def _pk_sk(self, key: dict[str, Any]) -> tuple[str, str]:
        if self.key not in key:
            raise ResourceError(f"table {self.name!r}: no {self.key!r} in {key!r}")
        pk = _key_text(self.name, self.key, key[self.key])
        if self.sort_key is None:
            return pk, ""
        if self.sort_key not in key:
            raise ResourceError(f"table {self.name!r}: no {self.sort_key!r} in {key!r}")
        return pk, _key_text(self.name, self.sort_key, key[self.sort_key])

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        row = (
            self._conn()
            .execute("SELECT item FROM items WHERE pk = ? AND sk = ?", self._pk_sk(key))
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    def put(self, item: dict[str, Any]) -> None:
        try:
            text = json.dumps(item, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ResourceError(f"table {self.name!r}: item is not JSON data: {exc}") from None
        pk, sk = self._pk_sk(item)
        self._conn().execute("INSERT OR REPLACE INTO items VALUES (?, ?, ?)", (pk, sk, text))

    def delete(self, key: dict[str, Any]) -> None:
        self._conn().execute("DELETE FROM items WHERE pk = ? AND sk = ?", self._pk_sk(key))

    def query(self, key_value: Any) -> list[dict[str, Any]]:
        pk = _key_text(self.name, self.key, key_value)
        rows = self._conn().execute("SELECT sk, item FROM items WHERE pk = ?", (pk,)).fetchall()
        if self.sort_key is not None:
            rows.sort(key=lambda r: _sort_order(json.loads(r[0])))
        return [json.loads(item) for _sk, item in rows]

    def scan(self) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT item FROM items ORDER BY pk, sk").fetchall()
        return [json.loads(r[0]) for r in rows]


class LocalQueue:
    """The sending side of a queue, as a function sees it."""

    def __init__(self, name: str, store: QueueStore) -> None:
        self.name, self.store = name, store

    def send(self, body: str) -> str:
        return self.store.send(self.name, body)


class LocalDriver:
    """The local provider's resource driver (``sls_py_local.resources:LocalDriver``).

    :param root: the stage's state folder, ``.sls-py/local/<stage>``.

    Resources are addressed by the app's own (logical) names: bucket
    ``uploads`` is the folder ``<root>/buckets/uploads/``.
    """

    def __init__(self, root: str | os.PathLike[str], postgres: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.postgres = postgres  # where the stage's PostgreSQL listens (see .postgres)
        self._databases: dict[str, Any] = {}
        self.buckets_dir = self.root / "buckets"
        self.tmp_dir = self.root / "tmp"
        self.tables_dir = self.root / "tables"
        self._tables: dict[tuple[str, str, str | None], LocalTable] = {}
        self._queues: QueueStore | None = None
        self._lock = threading.Lock()
        self._config: Any = None

    def bucket(self, name: str, physical: str = "") -> BucketDriver:
        return LocalBucket(self.buckets_dir / _check_name("bucket", name), self.tmp_dir)

    def queue(self, name: str, physical: str = "") -> QueueDriver:
        return LocalQueue(_check_name("queue", name), self.queue_store())

    def table(
        self, name: str, physical: str = "", key: str = "id", sort_key: str | None = None
    ) -> TableDriver:
        with self._lock:
            ident = (_check_name("table", name), key, sort_key)
            table = self._tables.get(ident)
            if table is None:
                table = LocalTable(name, self.tables_dir / f"{name}.sqlite3", key, sort_key)
                self._tables[ident] = table
            return table

    def cache(self, name: str, physical: str) -> CacheDriver:
        """The cache whose server is at URL ``physical`` (see :mod:`sls_py_local.caches`)."""
        from sls_py.runtime.cache import RedisCache

        return RedisCache(physical)
    def function(self, name: str, physical: str = "") -> Any:
        """A function the calling function may invoke (see :mod:`.invoking`)."""
        from .invoking import LocalFunction

        return LocalFunction(_check_name("function", name), self.queue_store())

    def database(self, name: str, physical: str = "") -> Any:
        """A database of the stage's PostgreSQL server (see :mod:`.database`)."""
        with self._lock:
            db = self._databases.get(name)
            if db is None:
                if self.postgres is None:
                    raise ResourceError(
                        f"database {name!r}: no PostgreSQL server is known to this process "
                        "(is the database declared with app.database()?)"
                    )
                from .database import LocalDatabase

                db = self._databases[name] = LocalDatabase(name, self.postgres)
            return db
    def config(self, name: str, physical: str = "") -> Any:
        """The stage's config files (see :mod:`sls_py_local.config`); one store per stage."""
        with self._lock:
            if self._config is None:
                from sls_py.configfile import FileConfigStore

                self._config = FileConfigStore(self.root)
            return self._config

    def queue_store(self) -> QueueStore:
        """The stage's queue store (one SQLite file for every queue)."""
        with self._lock:
            if self._queues is None:
                from .queues import QueueStore

                self._queues = QueueStore(self.root / "queues.sqlite3")
            return self._queues


def _check_name(kind: str, name: str) -> str:
    """A resource name is used as a file name: letters, digits, '-', '_' and '.' only."""
    if not name or name.startswith(".") or not all(c.isalnum() or c in "-_." for c in name):
        raise ResourceError(f"{kind} name {name!r} is not valid: use letters, digits, '-' and '_'")
    return name
