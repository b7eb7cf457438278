"""Database migrations: ``.sql`` files applied once each, in name order.

An app names a folder with ``app.database("orders", migrations="migrations")``
(relative to the project, where ``pyproject.toml`` is). Every ``*.sql`` file
in it is a migration; files are applied in the order of their names
(``001_orders.sql``, ``002_index.sql``, ...), each in a transaction of its
own, and recorded in the table ``sls_py_migrations`` (name, checksum, time).
A file already recorded is never run again; one whose text changed after it
was applied is reported, not re-run (write a new migration instead).

Providers call :func:`apply_migrations` with a driver of theirs (anything
with ``execute``/``begin``/``commit``/``rollback``, see
:class:`~sls_py.runtime.drivers.DatabaseDriver`): ``sls-py migrate``, and
before ``sls-py run`` and ``sls-py deploy``. Statements are split on ``;``
outside quotes, comments and dollar quotes, and sent one at a time (the RDS
Data API runs one statement per call).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SlsPyError, SpecError
from .runtime.database import MIGRATIONS_TABLE, DatabaseError
from .runtime.sql import split_statements

if TYPE_CHECKING:
    from .app import DatabaseDef
    from .runtime.drivers import DatabaseDriver
    from .spec import DatabaseSpec

#: A database name: a PostgreSQL identifier that needs no quoting.
DATABASE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class MigrationError(SlsPyError):
    """A migration failed; nothing of that file was kept."""


@dataclass(frozen=True)
class Migration:
    """One ``.sql`` file: its name, text and SHA-256."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass
class MigrationReport:
    """What :func:`apply_migrations` did: files applied now, files already
    applied, and applied files whose text has changed since."""

    database: str
    applied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def database_spec(project_root: Path, app: str, stage: str, db: DatabaseDef) -> DatabaseSpec:
    """Check a declared database and resolve it for ``stage``."""
    from .spec import DatabaseSpec

    if not DATABASE_NAME_RE.match(db.name):
        raise SpecError(
            f"database name {db.name!r} is not valid",
            hint="use lower-case letters, digits and '_', starting with a letter (e.g. 'orders')",
        )
    if db.migrations is not None:
        folder = project_root / db.migrations
        if not folder.is_dir():
            raise SpecError(
                f"database {db.name!r}: its migrations folder {db.migrations!r} does not exist "
                f"in {project_root}",
                hint=f"create {folder} with .sql files, or drop migrations= from app.database()",
            )
    return DatabaseSpec(name=db.name, qualified_name=f"{app}-{stage}-{db.name}", migrations=db.migrations)


def migration_files(project_root: Path, db: DatabaseSpec) -> list[Migration]:
    """The database's migrations, in the order they are applied."""
    if db.migrations is None:
        return []
    folder = project_root / db.migrations
    if not folder.is_dir():
        raise MigrationError(
            f"database {db.name!r}: migrations folder {folder} does not exist",
            hint="create it, or drop migrations= from app.database()",
        )
    return [
        Migration(path.name, path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.sql"))
        if path.is_file()
    ]


def migrations_digest(migrations: list[Migration]) -> str:
    """One hash of every migration's name and text (changes when any does)."""
    h = hashlib.sha256()
    for m in migrations:
        h.update(f"{m.name}\0{m.checksum}\0".encode())
    return h.hexdigest()


def apply_migrations(driver: DatabaseDriver, name: str, migrations: list[Migration]) -> MigrationReport:
    """Apply the migrations not yet recorded in ``sls_py_migrations``, in order.

    :raises MigrationError: a statement failed (the file's transaction is rolled
        back, so none of it stays); the message holds the server's own.
    """
    report = MigrationReport(database=name)
    if not migrations:
        return report
    try:
        driver.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name VARCHAR(255) PRIMARY KEY, "
            "checksum VARCHAR(64) NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            {},
        )
        rows, _ = driver.execute(f"SELECT name, checksum FROM {MIGRATIONS_TABLE}", {})
    except DatabaseError as exc:
        raise MigrationError(f"database {name!r}: cannot read its migrations table: {exc.message}") from None
    done = {str(r["name"]): str(r["checksum"]) for r in rows or []}
    for m in migrations:
        if m.name in done:
            report.already.append(m.name)
            if done[m.name] != m.checksum:
                report.changed.append(m.name)
            continue
        statements = split_statements(m.sql)
        driver.begin()
        try:
            for number, statement in enumerate(statements, start=1):
                try:
                    driver.execute(statement, {})
                except DatabaseError as exc:
                    raise MigrationError(
                        f"database {name!r}: migration {m.name} failed at statement {number}: {exc.message}",
                        hint="fix the file and run `sls-py migrate` again: nothing of it was kept",
                    ) from None
            driver.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (name, checksum) VALUES (:name, :checksum)",
                {"name": m.name, "checksum": m.checksum},
            )
        except BaseException:
            with contextlib.suppress(DatabaseError):
                driver.rollback()
            raise
        driver.commit()
        report.applied.append(m.name)
    return report
