"""SQL databases as a function uses them: ``app.database("orders")``.

The handle takes SQL with named ``:name`` parameters (the RDS Data API's
style), so the same text runs on every provider::

    orders = app.database("orders", migrations="migrations")

    @app.function()
    def add(payload: dict, ctx):
        with orders.transaction():
            orders.execute("INSERT INTO orders (id, total) VALUES (:id, :total)", payload)
        return orders.query("SELECT id, total FROM orders WHERE id = :id", {"id": payload["id"]})

Values a parameter may hold: ``None``, ``bool``, ``int``, ``float``, ``str``,
``bytes``, ``decimal.Decimal``, ``datetime``/``date``/``time``, ``uuid.UUID``,
and ``dict``/``list`` (sent as JSON). Rows come back as ``dict`` objects
keyed by column name.

A failed statement raises :class:`DatabaseError` with the server's own
message (and its SQLSTATE in ``code`` when the provider reports one); left
unhandled in an HTTP function it is a 502, like any other function error.

The calls go to a provider's driver (see :mod:`sls_py.runtime.resources`):
PostgreSQL on the local provider, Aurora through the Data API on AWS, and
SQLite in memory for :class:`~sls_py.runtime.resources.MemoryDriver` (unit
tests: SQLite accepts most simple SQL, but it is not PostgreSQL).

Standard library only at import: this module is imported inside functions.
"""

from __future__ import annotations

import threading

from .sql import param_names

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any

    from .drivers import DatabaseDriver

#: The table that records which migrations were applied.
MIGRATIONS_TABLE = "sls_py_migrations"


class DatabaseError(Exception):
    """A SQL statement failed: ``message`` is the database server's own text,
    ``code`` its SQLSTATE (e.g. ``"42P01"``: undefined table) when known."""

    def __init__(self, message: str, code: str = "", database: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.database = database

    def __str__(self) -> str:
        where = f"database {self.database!r}: " if self.database else ""
        code = f" (SQLSTATE {self.code})" if self.code else ""
        return f"{where}{self.message}{code}"


class Transaction:
    """``with db.transaction():`` commits when the block ends, rolls back when it
    raises. Nested blocks are savepoints: an inner failure undoes the inner block only."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.savepoint = ""

    def __enter__(self) -> Transaction:
        state = self.db._state()
        depth = getattr(state, "depth", 0)
        if depth == 0:
            self.db._impl().begin()
        else:
            self.savepoint = f"sls_py_sp{depth}"
            self.db.execute(f"SAVEPOINT {self.savepoint}")
        state.depth = depth + 1
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        state = self.db._state()
        state.depth -= 1
        if self.savepoint:
            if exc_type is None:
                self.db.execute(f"RELEASE SAVEPOINT {self.savepoint}")
            else:
                self.db.execute(f"ROLLBACK TO SAVEPOINT {self.savepoint}")
            return
        if exc_type is None:
            self.db._impl().commit()
        else:
            self.db._impl().rollback()


class Database:
    """A SQL database (PostgreSQL on the local and AWS providers)."""

    kind = "database"

    def __init__(self, name: str, migrations: str | None = None) -> None:
        self.name = name
        self.migrations = migrations
        self._local = threading.local()
        self._cached: tuple[object, DatabaseDriver] | None = None

    def _state(self) -> Any:
        return self._local

    def _impl(self) -> DatabaseDriver:
        from . import resources

        cached = self._cached
        if cached is not None and cached[0] is resources._driver:
            return cached[1]  # the same driver as last time: no lock, no lookups
        db = self._open()
        self._cached = (resources._driver, db)
        return db

    def _open(self) -> DatabaseDriver:
        from .resources import _current, _physical

        driver, _ = _current()
        opener = getattr(driver, "database", None)
        if opener is None:
            from .resources import ResourceError

            raise ResourceError(
                f"database {self.name!r}: this provider's resource driver "
                f"({type(driver).__name__}) has no databases"
            )
        return opener(self.name, _physical("databases", self.name))

    def _params(self, sql: str, params: dict[str, Any] | None) -> dict[str, Any]:
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            raise DatabaseError(
                f"parameters must be a dict of :name values, got {type(params).__name__}",
                database=self.name,
            )
        names = param_names(sql)
        if not names:
            return {}
        missing = [n for n in names if n not in params]
        if missing:
            raise DatabaseError(
                "no value for parameter " + ", ".join(":" + n for n in missing), database=self.name
            )
        return {n: params[n] for n in names}

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run one statement; returns the number of rows it changed (or returned)."""
        _rows, count = self._impl().execute(sql, self._params(sql, params))
        return count

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one statement and return its rows, each a dict keyed by column name."""
        rows, _count = self._impl().execute(sql, self._params(sql, params))
        return rows or []

    def transaction(self) -> Transaction:
        """A transaction for a ``with`` block (this thread's statements join it)."""
        return Transaction(self)

    def __repr__(self) -> str:
        return f"Database({self.name!r})"


# --- SQLite in memory, for unit tests ------------------------------------------


class SqliteDatabase:
    """A database in an in-memory SQLite connection (:class:`MemoryDriver`'s).

    SQLite takes ``:name`` parameters itself. It is not PostgreSQL: types are
    loose, and PostgreSQL-only SQL (``SERIAL``, ``::`` casts, ``RETURNING`` on
    old SQLite versions, JSON operators) fails here; test such SQL against
    ``sls-py run`` or the conformance suite's local provider.
    """

    def __init__(self, name: str) -> None:
        import sqlite3

        self.name = name
        self.conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.lock = threading.RLock()

    def _value(self, value: Any) -> Any:
        if isinstance(value, dict | list):
            import json

            return json.dumps(value)
        if value is None or isinstance(value, int | float | str | bytes):
            return value
        return str(value)  # Decimal, datetime, UUID: as text

    def execute(self, sql: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, int]:
        import sqlite3

        with self.lock:
            try:
                cur = self.conn.execute(sql, {k: self._value(v) for k, v in params.items()})
                if cur.description is None:
                    return None, max(cur.rowcount, 0)
                cols = [d[0] for d in cur.description]
                rows = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
                return rows, len(rows)
            except sqlite3.Error as exc:
                raise DatabaseError(str(exc), database=self.name) from None

    def begin(self) -> None:
        self.execute("BEGIN", {})

    def commit(self) -> None:
        self.execute("COMMIT", {})

    def rollback(self) -> None:
        self.execute("ROLLBACK", {})
