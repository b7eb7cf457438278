"""The database commands of the ``sls-py`` CLI: ``migrate`` and ``db shell``.

Kept apart from :mod:`sls_py.cli` (which registers them) so the commands of
each data service stay in a module of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_options import JsonOpt, ProjectOpt, ProviderOpt, StageOpt
from .errors import SpecError

db_cli = typer.Typer(help="The app's SQL databases: open a shell.", no_args_is_help=True)


def _pick(spec: Any, name: str | None) -> str:
    """The database ``name`` names (or the only one), checked against the spec."""
    known = [d.name for d in spec.databases]
    if not known:
        raise SpecError(
            f"app {spec.app!r} declares no database",
            hint='declare one with db = app.database("orders")',
        )
    if name is None:
        if len(known) > 1:
            raise SpecError(
                f"app {spec.app!r} has {len(known)} databases: name one",
                hint=f"sls-py db shell {known[0]}  (known: {', '.join(known)})",
            )
        return known[0]
    if name not in known:
        raise SpecError(f"app {spec.app!r} has no database {name!r}", hint=f"known: {', '.join(known)}")
    return name


def register(cli: typer.Typer) -> None:
    """Add ``migrate`` and the ``db`` group to ``cli``."""

    from .cli import _print_json
    from .session import open_session as _session

    @cli.command()
    def migrate(
        project: ProjectOpt = Path("."),
        stage: StageOpt = None,
        provider: ProviderOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Apply the pending .sql migrations of every database (each file once, in name order)."""
        s = _session(project, stage, provider)
        if not s.spec.databases:
            s.ui.info(f"App {s.spec.app!r} declares no database: nothing to migrate.")
            return
        reports = s.call("sls_py_migrate", ui=s.ui)
        if json_out:
            _print_json(reports)
            return
        for r in reports:
            applied = ", ".join(r["applied"]) or "nothing new"
            s.ui.info(f"database {r['database']!r}: applied {applied} ({len(r['already'])} already applied)")
            if r["changed"]:
                s.ui.warn(
                    f"database {r['database']!r}: {', '.join(r['changed'])} changed after being "
                    "applied and were not run again; write a new migration instead"
                )

    @db_cli.command("shell")
    def shell(
        database: Annotated[str | None, typer.Argument(help="The database (default: the only one).")] = None,
        project: ProjectOpt = Path("."),
        stage: StageOpt = None,
        provider: ProviderOpt = None,
    ) -> None:
        """Open an interactive SQL shell (psql locally) on one of the app's databases."""
        s = _session(project, stage, provider)
        name = _pick(s.spec, database)
        raise typer.Exit(int(s.call("sls_py_db_shell", database=name, ui=s.ui) or 0))

    cli.add_typer(db_cli, name="db")
