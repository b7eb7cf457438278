"""The local driver's databases: PostgreSQL through psycopg 3.

A function's process connects on first use to the stage's server (see
:mod:`sls_py_local.postgres`; where it listens comes in ``SLS_PY_RESOURCES``)
once the server is ready (its ``ready`` file, written when the databases
exist and their migrations are applied: a function called while ``sls-py
run`` still starts PostgreSQL waits, up to :data:`READY_WAIT_S`), and keeps
the connection for its next invocations: one connection per
thread, in autocommit mode, with ``BEGIN``/``COMMIT``/``ROLLBACK`` sent for
``db.transaction()``. psycopg is imported then, not when the module is.

``:name`` parameters become psycopg's ``%(name)s``
(:func:`sls_py.runtime.sql.to_pyformat`); ``dict`` and ``list`` values are
sent as ``jsonb``. A connection the server dropped (a restart after a crash)
is opened again once, unless a transaction was in progress, which is lost
and reported as a :class:`~sls_py.runtime.DatabaseError`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sls_py.runtime.database import DatabaseError
from sls_py.runtime.sql import to_pyformat

#: how long a first connection waits for the server to be ready
READY_WAIT_S = 60.0


def failed_file(ready_file: str) -> str:
    """Where the set-up of a server that will not become ready says why."""
    return ready_file + ".failed"


def wait_ready(ready_file: str, name: str, timeout_s: float = READY_WAIT_S) -> None:
    """Return once ``ready_file`` exists; :class:`DatabaseError` after ``timeout_s``,
    or at once with the reason when the server's set-up failed."""
    import os
    import time

    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while not os.path.exists(ready_file):
        try:
            with open(failed_file(ready_file), encoding="utf-8") as f:
                reason = f.read().strip()
        except OSError:
            reason = ""
        if reason:
            raise DatabaseError(f"the local PostgreSQL server is not usable: {reason}", database=name)
        if time.monotonic() > deadline:
            raise DatabaseError(
                f"the local PostgreSQL server is not ready after {timeout_s:g} s "
                "(sls-py run says why in its output)",
                database=name,
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class LocalDatabase:
    """One database of the stage's PostgreSQL server."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.options = options
        self._local = threading.local()

    def _connect(self) -> Any:
        o = self.options
        if o.get("ready_file"):
            wait_ready(o["ready_file"], self.name)
        import psycopg

        try:
            password = Path(o["password_file"]).read_text().strip()
            return psycopg.connect(
                host=o["host"],
                port=o["port"],
                user=o["user"],
                password=password,
                dbname=self.name,
                autocommit=True,
                connect_timeout=10,
            )
        except (OSError, psycopg.Error) as exc:
            raise DatabaseError(
                f"cannot connect to the local PostgreSQL server at {o['host']}:{o['port']}: "
                f"{str(exc).strip()}",
                database=self.name,
            ) from None

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self._connect()
            self._local.in_tx = False
        return conn

    @staticmethod
    def _value(value: Any) -> Any:
        if isinstance(value, dict | list):
            from psycopg.types.json import Jsonb

            return Jsonb(value)
        return value

    def _run(self, sql: str, params: dict[str, Any] | None) -> tuple[list[dict[str, Any]] | None, int]:
        conn = self._conn()
        query = to_pyformat(sql) if params else sql
        args = None
        if params:
            args = params
            if any(isinstance(v, dict | list) for v in params.values()):
                args = {k: self._value(v) for k, v in params.items()}
        cur = conn.execute(query, args)
        description = cur.description
        if description is None:
            return None, max(cur.rowcount, 0)
        cols = [d.name for d in description]
        rows = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        return rows, len(rows)

    def execute(self, sql: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, int]:
        import psycopg

        for attempt in (1, 2):
            try:
                return self._run(sql, params)
            except psycopg.OperationalError as exc:
                lost = getattr(self._local, "conn", None)
                if lost is not None and not lost.closed and attempt == 1:
                    raise self._error(exc) from None
                self._local.conn = None  # the server went away: a new connection next time
                if getattr(self._local, "in_tx", False) or attempt == 2:
                    self._local.in_tx = False
                    raise self._error(exc) from None
            except psycopg.Error as exc:
                raise self._error(exc) from None
        raise AssertionError("unreachable")

    def _error(self, exc: Any) -> DatabaseError:
        diag = getattr(exc, "diag", None)
        message = (getattr(diag, "message_primary", None) or str(exc)).strip()
        return DatabaseError(message, code=getattr(exc, "sqlstate", None) or "", database=self.name)

    def begin(self) -> None:
        self.execute("BEGIN", {})
        self._local.in_tx = True

    def commit(self) -> None:
        self._local.in_tx = False
        self.execute("COMMIT", {})

    def rollback(self) -> None:
        self._local.in_tx = False
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            return  # the connection went with the transaction
        self.execute("ROLLBACK", {})
