"""``python -m sls_py_local.dbsetup``: create the stage's databases and apply their
migrations on a PostgreSQL server that is up, in a process of its own.

``sls-py run`` (:class:`~sls_py_local.dbservice.DatabaseService`) starts it once
the server accepts connections, so that the gateway never imports psycopg
(~60-170 ms of CPU) nor runs SQL while it and the function templates start; it
lowers its own priority first (``nice`` 10), so on a busy machine a template's
import wins the CPU. It exits when done: the lower priority ends with it, and
the server itself keeps its normal one.

Reads one JSON object on stdin::

    {"options": {"host": ..., "port": ..., "user": ..., "password_file": ...},
     "root": "/path/to/project",
     "databases": [{"name": "orders", "migrations": "migrations"}]}   # the folder, or null

and writes one JSON line per database (``{"database", "applied", "already",
"changed"}``) on stdout; on failure, one line saying why on stderr, exit code 1.
"""

from __future__ import annotations

import contextlib
import os

#: how much lower than the gateway's this process runs (it exits when done)
NICE = 10

with contextlib.suppress(OSError, AttributeError):  # before the imports below
    os.nice(NICE)

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def setup(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Create the missing databases and apply each one's pending migrations."""
    from types import SimpleNamespace

    import psycopg
    from sls_py.migrations import apply_migrations, migration_files

    from .database import LocalDatabase

    options = {k: v for k, v in job["options"].items() if k != "ready_file"}  # not ready: us
    password = Path(options["password_file"]).read_text().strip()
    names = [db["name"] for db in job["databases"]]
    with psycopg.connect(
        host=options["host"],
        port=options["port"],
        user=options["user"],
        password=password,
        dbname="postgres",
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        have = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
        for name in names:
            if name not in have:
                conn.execute(f'CREATE DATABASE "{name}"')  # names are checked identifiers
    out = []
    for db in job["databases"]:
        driver = LocalDatabase(db["name"], options)
        try:
            files = migration_files(Path(job["root"]), SimpleNamespace(**db))
            report = apply_migrations(driver, db["name"], files)
        finally:
            opened = getattr(driver._local, "conn", None)
            if opened is not None:
                opened.close()
        out.append(
            {
                "database": report.database,
                "applied": report.applied,
                "already": report.already,
                "changed": report.changed,
            }
        )
    return out


def main() -> int:
    """Entry point: JSON job on stdin, reports on stdout."""
    try:
        for report in setup(json.load(sys.stdin)):
            print(json.dumps(report), flush=True)
    except Exception as exc:  # one line for sls-py run's log, never a traceback
        message = getattr(exc, "message", None) or str(exc).strip().splitlines()[0]
        print(f"{type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
