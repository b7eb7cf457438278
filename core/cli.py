"""The ``sls-py`` command line.

Every command takes ``--project`` (default: the current folder), ``--stage``
and ``--provider`` (defaults from ``[tool.sls-py]``, else ``dev`` and
``local``). Errors of the user's making print one line and a hint and exit
non-zero; a function error prints its type and message and exits 1.

This module imports no provider and no cloud SDK: ``sls-py --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .cli_options import JsonOpt, ProjectOpt, ProviderOpt, StageOpt
from .errors import ConfigError, SlsPyError
from .session import Session, open_session, use_plugins
from .session import plugins as _plugins

if TYPE_CHECKING:
    from .plugins import Plugins
    from .ui import UI

cli = typer.Typer(
    name="sls-py",
    help="Write Python serverless functions once; run them locally, deploy them to AWS "
    "or any cloud with a provider plugin.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
trigger_cli = typer.Typer(help="Fire a trigger by hand: an upload or a schedule.", no_args_is_help=True)
cli.add_typer(trigger_cli, name="trigger")


_state: dict[str, Any] = {}  # whether the plugins' commands are added


def _print_json(value: Any) -> None:
    from .runtime.events import to_jsonable

    typer.echo(json.dumps(to_jsonable(value), indent=2))


# --- commands -----------------------------------------------------------------


@cli.command()
def spec(
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    schema: Annotated[bool, typer.Option("--schema", help="Print the spec's JSON Schema.")] = False,
) -> None:
    """Print the app's resolved spec for a stage as JSON (or its JSON Schema)."""
    if schema:
        from .spec import spec_schema

        typer.echo(json.dumps(spec_schema(), indent=2))
        return
    from .config import load_project

    typer.echo(load_project(project).spec(stage).model_dump_json(indent=2))


@cli.command()
def providers(json_out: JsonOpt = False) -> None:
    """List installed providers with version, capabilities and commands."""
    plugins = _plugins()
    found = plugins.providers()
    rows: list[dict[str, Any]] = [
        {
            "name": p.name,
            "version": p.info.version,
            "description": p.info.description,
            "capabilities": sorted(p.info.capabilities),
            "not_emulated": sorted(p.info.not_emulated),
            "commands": p.commands(),
            "plugin": p.plugin_name,
        }
        for p in found.values()
    ]
    broken = [{"name": b.name, "error": b.error} for b in plugins.broken.values()]
    if json_out:
        _print_json({"providers": rows, "broken": broken})
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("provider", "version", "commands", "capabilities", title="sls-py providers")
        for r in rows:
            table.add_row(r["name"], r["version"], ", ".join(r["commands"]), ", ".join(r["capabilities"]))
        Console().print(table)
        for b in broken:
            typer.echo(f"broken plugin {b['name']}: {b['error']}", err=True)
    if broken:
        raise typer.Exit(1)


@cli.command()
def invoke(
    function: Annotated[str, typer.Argument(help="The function's name.")],
    payload: Annotated[str | None, typer.Argument(help="JSON payload.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the JSON payload from a file ('-': stdin).")
    ] = None,
    logs: Annotated[bool, typer.Option("--logs", help="Also print the invocation's logs.")] = False,
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Invoke a function once with a JSON payload and print its result.

    Runs it in a fresh process with the stage's environment and timeout; the next
    invoke of the same project and stage starts from the spec kept in .sls-py/cache.
    """
    from . import session
    from .entry import print_invocation, read_payload

    data = read_payload(payload, file)
    result = session.invoke(project, stage, provider, function, data, logs)
    print_invocation(function, result, logs=logs, json_out=json_out)


@cli.command()
def run(
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 keeps it private).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the HTTP gateway (0: any free port).")] = 3000,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload/--no-reload",
            help="Reload the functions on source changes (the whole server, in place, "
            "when routes, triggers or settings change).",
        ),
    ] = True,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="Logs as JSON lines.")] = False,
    clock: Annotated[
        str | None,
        typer.Option(help="Run schedules on a test clock: 'START[@SPEED]', e.g. 2026-01-01T00:00@3600."),
    ] = None,
) -> None:
    """Serve the app: HTTP gateway, workers, schedules, buckets, queues.

    The next start of the same command line is warm: it serves from the spec kept
    in .sls-py/cache (checked against the sources' sizes and times), without
    importing the app in the gateway. SLS_PY_SPEC_CACHE=0 turns that off.
    """
    from . import session
    from .provider import RunOptions

    options = RunOptions(
        host=host, port=port, reload=reload, json_logs=json_logs, clock=clock, spec_key=(stage, provider)
    )
    raise typer.Exit(session.run(project, stage, provider, options))


def _print_plan(plan: Any, ui: UI, empty: str) -> None:
    if not plan.steps:
        ui.info(empty)
    for step in plan.steps:
        ui.step(step.action, step.kind, step.name, step.reason)


def _steps_json(steps: list[Any]) -> list[dict[str, Any]]:
    return [s.to_data() for s in steps]


@cli.command()
def plan(
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show what `deploy` would create, update and delete, and why (changes nothing)."""
    s = open_session(project, stage, provider)
    result = s.call("sls_py_plan", ui=s.ui)
    if json_out:
        _print_json({"steps": _steps_json(result.steps)})
    else:
        _print_plan(result, s.ui, "No changes: the deployed stage matches the app.")


@cli.command()
def deploy(
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    package: Annotated[
        Path | None,
        typer.Option(
            "--package",
            help="Deploy the package `sls-py package` wrote to this folder (no rebuild; "
            "refused if built for another provider, app or stage, or changed since).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Deploy the app's stage to the provider (only what changed)."""
    s = open_session(project, stage, provider)
    if package is None:
        result = s.call("sls_py_deploy", ui=s.ui)
    else:
        from .packaging import deploy_package

        result = deploy_package(s.provider, s.spec, s.project, package, s.ui)
    if json_out:
        _print_json(
            {
                "applied": _steps_json(result.applied),
                "url": result.url,
                "api_keys": result.api_keys,
                "outputs": result.outputs,
            }
        )
        return
    s.ui.info(f"Deployed {s.spec.app} stage {s.spec.stage}: {len(result.applied)} change(s).")
    if result.url:
        s.ui.info(f"URL: {result.url}")
    if result.api_keys:
        s.ui.info(f"API keys: {', '.join(result.api_keys)} (values: sls-py api-keys)")


@cli.command()
def package(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The folder to write (a new or empty one, or an earlier package, which is replaced).",
        ),
    ],
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the stage's deploy artifacts to a folder, for a pipeline to ship or for
    `deploy --package` (for aws: the Lambda zip, plan.json and a CloudFormation
    template.yaml). The same app gives the same bytes on a rerun."""
    from .packaging import require_hook, write_package

    s = open_session(project, stage, provider)
    require_hook(s.provider, "sls_py_package", "package")
    manifest, result = write_package(s.provider, s.spec, s.project, output, s.ui)
    if json_out:
        _print_json({"output": str(output), "manifest": manifest})
        return
    for line in result.summary:
        s.ui.info(line)
    s.ui.info(f"Packaged {s.spec.app} stage {s.spec.stage} for {s.provider.name} into {output}.")


@cli.command()
def remove(
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
    purge_config: Annotated[
        bool,
        typer.Option("--purge-config", help="Also delete the stage's config and secrets (kept otherwise)."),
    ] = False,
) -> None:
    """Delete everything the stage deployed (and nothing of other stages)."""
    from .config_cli import kept_config_note
    from .config_cli import purge_config as purge

    s = open_session(project, stage, provider)
    result = s.call("sls_py_remove", ui=s.ui)
    purged = purge(s) if purge_config else []
    if json_out:
        out: dict[str, Any] = {"steps": _steps_json(result.steps)}
        if purge_config:
            out["config_deleted"] = purged
        _print_json(out)
    else:
        s.ui.info(f"Removed {s.spec.app} stage {s.spec.stage}: {len(result.steps)} resource(s).")
        note = None if purge_config else kept_config_note(s)
        if note:
            s.ui.info(note)


@cli.command()
def url(project: ProjectOpt = Path("."), stage: StageOpt = None, provider: ProviderOpt = None) -> None:
    """Print the base URL of the stage's HTTP gateway."""
    s = open_session(project, stage, provider, quiet=True)
    typer.echo(s.call("sls_py_url"))


def _parse_since(since: str | None) -> float | None:
    if since is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(since[:-1]) * units[since[-1]] if since[-1] in units else float(since)
    except (ValueError, IndexError):
        raise ConfigError(f"--since {since!r} is not a duration", hint="use e.g. 30s, 10m, 2h, 1d") from None


@cli.command()
def logs(
    function: Annotated[str, typer.Argument(help="The function's name.")],
    since: Annotated[str | None, typer.Option(help="Only the last N s/m/h/d, e.g. 10m.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print a function's logs."""
    import datetime as dt

    since_s = _parse_since(since)
    s = open_session(project, stage, provider, quiet=True)
    s.spec.function(function)
    try:
        for rec in s.call("sls_py_logs", function=function, since_s=since_s, follow=follow):
            if json_out:
                typer.echo(json.dumps(rec.__dict__))
            else:
                stamp = dt.datetime.fromtimestamp(rec.time, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
                typer.echo(f"{stamp} {rec.function} {rec.request_id} {rec.message}".rstrip())
    except KeyboardInterrupt:
        pass


@cli.command("api-keys")
def api_keys(
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the stage's API keys (name and value)."""
    s = open_session(project, stage, provider, quiet=True)
    keys = s.call("sls_py_api_keys")
    if json_out:
        _print_json([{"name": k.name, "value": k.value} for k in keys])
    else:
        for k in keys:
            typer.echo(f"{k.name}\t{k.value}")


def _fire(session: Session, request: Any, json_out: bool) -> None:
    result = session.call("sls_py_trigger", request=request, ui=session.ui)
    if json_out:
        _print_json(result)
    elif result is not None:
        typer.echo(json.dumps(result) if not isinstance(result, str) else result)


@trigger_cli.command("upload")
def trigger_upload(
    bucket: Annotated[str, typer.Argument(help="The app's name for the bucket.")],
    file: Annotated[Path, typer.Argument(help="The file to upload.", exists=True, dir_okay=False)],
    key: Annotated[str | None, typer.Option(help="Object key (default: the file's name).")] = None,
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Upload a file into a bucket, firing its upload triggers."""
    from .provider import TriggerRequest

    s = open_session(project, stage, provider)
    if bucket not in {b.name for b in s.spec.buckets}:
        known = ", ".join(b.name for b in s.spec.buckets) or "none"
        raise ConfigError(f"app {s.spec.app!r} has no bucket {bucket!r}", hint=f"known buckets: {known}")
    req = TriggerRequest(kind="upload", target=bucket, key=key or file.name, data=file.read_bytes())
    _fire(s, req, json_out)


@trigger_cli.command("schedule")
def trigger_schedule(
    function: Annotated[str, typer.Argument(help="The scheduled function's name.")],
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fire a function's schedule now."""
    from .provider import TriggerRequest
    from .spec import ScheduleTriggerSpec

    s = open_session(project, stage, provider)
    fn = s.spec.function(function)
    if not any(isinstance(t, ScheduleTriggerSpec) for t in fn.triggers):
        raise ConfigError(f"function {function!r} has no schedule trigger")
    _fire(s, TriggerRequest(kind="schedule", target=function), json_out)


@cli.command()
def send(
    queue: Annotated[str, typer.Argument(help="The app's name for the queue.")],
    message: Annotated[str, typer.Argument(help="The message body (text or JSON).")],
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send a message to one of the app's queues."""
    from .provider import TriggerRequest

    s = open_session(project, stage, provider)
    if queue not in {q.name for q in s.spec.queues}:
        known = ", ".join(q.name for q in s.spec.queues) or "none"
        raise ConfigError(f"app {s.spec.app!r} has no queue {queue!r}", hint=f"known queues: {known}")
    _fire(s, TriggerRequest(kind="queue", target=queue, data=message.encode("utf-8")), json_out)


@cli.command()
def new(
    name: Annotated[str, typer.Argument(help="Project name, e.g. clonezero.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", "-d", help="Where to create it (default: ./NAME).")
    ] = None,
) -> None:
    """Create a new project that runs and tests out of the box."""
    from .scaffold import create_project

    target = create_project(name, directory or Path(name))
    typer.echo(f"Created {target}")
    typer.echo(f"  cd {target} && sls-py invoke hello '{{\"name\": \"you\"}}'")
    typer.echo(f"  cd {target} && python -m pytest")


def _add_database_commands() -> None:
    from .dbcli import register

    register(cli)


_add_database_commands()

from .config_cli import config_cli  # noqa: E402  (it uses _print_json above)

cli.add_typer(config_cli, name="config")


def _add_plugin_commands() -> None:
    if _state.get("commands_added"):
        return
    _state["commands_added"] = True
    try:
        _plugins().pm.hook.sls_py_add_commands(cli=cli)
    except Exception as exc:  # a plugin's bug must not take the CLI down
        typer.echo(f"warning: a plugin failed to add its commands: {exc}", err=True)


def main(argv: list[str] | None = None, *, plugins: Plugins | None = None) -> int:
    """Entry point of the ``sls-py`` console script.

    :param plugins: use these plugins instead of the installed ones (for tests).
    """
    if plugins is not None:
        use_plugins(plugins)
        _state.clear()
    _add_plugin_commands()
    try:
        # with standalone_mode=False, click returns a typer.Exit's code instead of raising
        code = cli(args=argv, prog_name="sls-py", standalone_mode=False)
    except SlsPyError as exc:
        from .entry import report

        return report(exc)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # click's usage errors (typer vendors its own copy of click, so match by shape)
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
