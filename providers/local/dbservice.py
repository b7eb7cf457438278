"""The databases of ``sls-py run``: the stage's PostgreSQL server next to the gateway.

:class:`DatabaseService` starts the server in a thread while the gateway
starts (an app that declares no database never creates one, so its first
200 waits for nothing of this), waits until it answers, creates the
declared databases, applies their migrations and logs the result; a crash
is reported and the server restarted by the supervisor
(:mod:`sls_py_local.servers`). Functions that reach the database before it is
ready wait in their connect (psycopg retries for its ``connect_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from sls_py.migrations import MigrationReport, apply_migrations, migration_files
from sls_py.project import Project
from sls_py.spec import Spec

from .postgres import PostgresServer, stage_server


def migrate_all(spec: Spec, project: Project, options: dict[str, Any]) -> list[MigrationReport]:
    """Apply every declared database's pending migrations on the local server."""
    from .database import LocalDatabase

    reports = []
    for db in spec.databases:
        driver = LocalDatabase(db.name, options)
        reports.append(apply_migrations(driver, db.name, migration_files(project.root, db)))
        conn = getattr(driver._local, "conn", None)
        if conn is not None:
            conn.close()
    return reports


def describe(report: MigrationReport) -> str:
    """One line about a migration run."""
    text = f"database {report.database!r}: "
    if report.applied:
        text += f"applied {', '.join(report.applied)}"
    elif report.already:
        text += f"migrations up to date ({len(report.already)} applied)"
    else:
        text += "no migrations"
    if report.changed:
        text += f"; changed after they were applied (not run again): {', '.join(report.changed)}"
    return text


class DatabaseService:
    """The stage's PostgreSQL server during ``sls-py run``.

    :param log: where lines go (called from the event loop's thread).
    """

    def __init__(self, spec: Spec, project: Project, log: Callable[[str], None]) -> None:
        self.spec, self.project, self.log = spec, project, log
        self.server: PostgresServer | None = None
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def urls(self) -> list[str]:
        """The ``postgresql://`` URL of each declared database (no password in it)."""
        server = self.server or stage_server(self.spec, self.project.state_dir)
        conn = server.connection
        return [conn.url(d.name) for d in self.spec.databases]

    def start(self) -> None:
        """Start the server in the background; returns at once."""
        loop = asyncio.get_running_loop()

        def report(line: str) -> None:  # from the supervisor's thread
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self.log, line)

        self.server = stage_server(self.spec, self.project.state_dir, report=report)
        self._task = loop.create_task(self._bring_up(self.server))

    async def _bring_up(self, server: PostgresServer) -> None:
        try:
            await asyncio.to_thread(server.start)
            await asyncio.to_thread(server.wait_ready, [d.name for d in self.spec.databases])
            reports = await asyncio.to_thread(
                migrate_all, self.spec, self.project, server.connection.options()
            )
        except Exception as exc:
            hint = getattr(exc, "hint", None)
            self.log(f"PostgreSQL: {exc}" + (f" ({hint})" if hint else ""))
            return
        for report in reports:
            self.log(describe(report))
        self.log(f"PostgreSQL ready on {server.connection.host}:{server.connection.port}")
        self.ready.set()

    async def stop(self) -> None:
        """Stop the server (fast shutdown: committed data is kept)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
