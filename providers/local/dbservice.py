"""The databases of ``sls-py run``: the stage's PostgreSQL server next to the gateway.

:class:`DatabaseService` starts the server in a thread while the gateway
starts (an app that declares no database never creates one), waits until it
accepts connections (read from its ``postmaster.pid``: no client library in
the gateway), then creates the declared databases and applies their
migrations in a child process at a lower priority
(:mod:`sls_py_local.dbsetup`), logs the result and marks the server ready; a
crash is reported and the server restarted by the supervisor
(:mod:`sls_py_local.servers`). So the gateway never imports psycopg, and on a
busy machine the function templates' imports win the CPU over the set-up:
a route that does not use the database waits for none of it. A function
that reaches the database before it is ready waits in its first connection
(``LocalDatabase`` waits for the server's ``ready`` file).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sls_py.errors import ProviderError
from sls_py.project import Project
from sls_py.spec import Spec

from .postgres import PostgresServer, stage_server

if TYPE_CHECKING:
    from sls_py.migrations import MigrationReport


def migrate_all(spec: Spec, project: Project, options: dict[str, Any]) -> list[MigrationReport]:
    """Apply every declared database's pending migrations on the local server."""
    from sls_py.migrations import apply_migrations, migration_files

    from .database import LocalDatabase

    reports = []
    for db in spec.databases:
        driver = LocalDatabase(db.name, options)
        reports.append(apply_migrations(driver, db.name, migration_files(project.root, db)))
        conn = getattr(driver._local, "conn", None)
        if conn is not None:
            conn.close()
    return reports


@contextlib.contextmanager
def database_server(spec: Spec, project: Project, *, background: bool = False) -> Iterator[None]:
    """The stage's PostgreSQL server, migrations applied, for a one-off command or
    a standalone runner (the running ``sls-py run``'s, or one started for the
    block and stopped after it); nothing when the app declares no database.

    :param background: when the server is started here, do not wait for it: it
        starts and its migrations are applied in a thread while the block runs
        (``sls-py invoke``: a function that does not use the database does not wait
        for it; one that does waits in its first connection, and gets the set-up's
        error, if any, as its ``DatabaseError``).
    """
    if not spec.databases:
        yield
        return
    if background:
        server = stage_server(spec, project.state_dir)
        if server.own(wait=False):
            with _set_up_meanwhile(spec, project, server):
                yield
            return
    from .postgres import server_for_command

    with server_for_command(spec, project.state_dir) as conn:
        migrate_all(spec, project, conn.options())  # as before run and deploy
        Path(conn.ready_file).write_text("ready\n")  # functions may connect (see LocalDatabase)
        yield


@contextlib.contextmanager
def _set_up_meanwhile(spec: Spec, project: Project, server: PostgresServer) -> Iterator[None]:
    """Start ``server`` (owned here) and, in a thread, wait for it, create the
    databases and apply the migrations (in :mod:`sls_py_local.dbsetup`, at a
    lower priority: the function's process, importing the app meanwhile, wins
    the CPU), then mark it ready; stop it afterwards."""
    import subprocess
    import sys
    import threading

    job = setup_job(spec, project, server)
    child: list[subprocess.Popen[bytes]] = []
    over = threading.Event()

    def bring_up() -> None:
        try:
            assert server.supervisor is not None
            server.supervisor.wait_ready()
            proc = subprocess.Popen(
                [sys.executable, "-m", "sls_py_local.dbsetup"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            child.append(proc)
            out, err = proc.communicate(json.dumps(job).encode())
            _reports(proc.returncode, out, err)
            server.mark_ready()
        except Exception as exc:  # the block goes on; a function that needs the server says why
            hint = getattr(exc, "hint", None)
            if not over.is_set():  # not the set-up stopped below
                server.mark_failed(f"{exc}" + (f" ({hint})" if hint else ""))

    try:
        server.start()
        thread = threading.Thread(target=bring_up, name="sls-py-postgres-setup", daemon=True)
        thread.start()
        yield
    finally:
        over.set()
        for proc in child:  # the block is over: a set-up still running is not needed
            if proc.poll() is None:
                proc.kill()
        server.stop()  # a migration cut short rolls back (one transaction per file)


def setup_job(spec: Spec, project: Project, server: PostgresServer) -> dict[str, Any]:
    """What :mod:`sls_py_local.dbsetup` reads: where the server is, and each
    database's migrations folder."""
    return {
        "options": server.connection.options(),
        "root": str(project.root),
        "databases": [{"name": d.name, "migrations": d.migrations} for d in spec.databases],
    }


def _reports(returncode: int | None, out: bytes, err: bytes) -> list[MigrationReport]:
    """:mod:`sls_py_local.dbsetup`'s reports, or :class:`~sls_py.errors.ProviderError`
    with its one line."""
    if returncode != 0:
        why = err.decode(errors="replace").strip().splitlines()
        raise ProviderError(f"setting up the databases failed: {why[-1] if why else returncode}")
    from sls_py.migrations import MigrationReport

    return [MigrationReport(**json.loads(line)) for line in out.decode().splitlines() if line.strip()]


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


async def _setup(job: dict[str, Any]) -> list[MigrationReport]:
    """Run :mod:`sls_py_local.dbsetup` on ``job``; its reports, or
    :class:`~sls_py.errors.ProviderError` with its one line."""
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sls_py_local.dbsetup",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate(json.dumps(job).encode())
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    return _reports(proc.returncode, out, err)


class DatabaseService:
    """The stage's PostgreSQL server during ``sls-py run``.

    :param log: where lines go (called from the event loop's thread).
    """

    def __init__(self, spec: Spec, project: Project, log: Callable[[str], None]) -> None:
        self.spec, self.project, self.log = spec, project, log
        self.server: PostgresServer | None = None
        self.ready = asyncio.Event()
        self._go = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def urls(self) -> list[str]:
        """The ``postgresql://`` URL of each declared database (no password in it)."""
        server = self.server or stage_server(self.spec, self.project.state_dir)
        conn = server.connection
        return [conn.url(d.name) for d in self.spec.databases]

    def start(self, *, wait: bool = False) -> None:
        """Start the server in the background; returns at once. With ``wait``, the
        server itself starts only on :meth:`go` (until then, a function connecting
        waits as it would for a server starting)."""
        loop = asyncio.get_running_loop()

        def report(line: str) -> None:  # from the supervisor's thread
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self.log, line)

        self.server = stage_server(self.spec, self.project.state_dir, report=report)
        if not wait:
            self._go.set()
        self._task = loop.create_task(self._bring_up(self.server))

    def go(self) -> None:
        """Let a server started with ``wait`` start now (once; later calls do nothing)."""
        self._go.set()

    async def _bring_up(self, server: PostgresServer) -> None:
        await self._go.wait()
        try:
            # the child reads the migration files: the gateway imports no sls_py.migrations
            job = setup_job(self.spec, self.project, server)
            await asyncio.to_thread(server.start)
            assert server.supervisor is not None
            await asyncio.to_thread(server.supervisor.wait_ready)
            reports = await _setup(job)
        except Exception as exc:
            hint = getattr(exc, "hint", None)
            self.log(f"PostgreSQL: {exc}" + (f" ({hint})" if hint else ""))
            server.mark_failed(str(exc))  # functions waiting for it fail with this
            return
        for report in reports:
            self.log(describe(report))
        server.mark_ready()
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
