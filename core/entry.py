"""The ``sls-py`` console script: a warm start first, else the whole CLI.

``sls-py run`` and ``sls-py invoke`` with a fresh cached spec
(:mod:`sls_py.speccache`) go straight to the provider: no typer, no pydantic,
and the app is imported only by the function processes (for ``run``, the
function templates start before the gateway imports its own modules). With a
missing or stale copy (after an edit) they do what the CLI's commands do
(:func:`sls_py.session.run`, :func:`sls_py.session.invoke`: the spec built, its
copy kept for next time), still without typer. Every other command line, any
option this fast reader does not know, or ``--help`` goes to
:func:`sls_py.cli.main`.

Standard library only (and :mod:`sls_py.errors`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, FunctionFailed, SlsPyError

_COMMON = {"--project": "project", "-p": "project", "--stage": "stage", "-s": "stage"}
_COMMON |= {"--provider": "provider", "-P": "provider"}
_RUN_VALUES = {"--host": "host", "--port": "port", "--clock": "clock"}
_RUN_FLAGS = {"--reload": ("reload", True), "--no-reload": ("reload", False)}
_RUN_FLAGS |= {"--json-logs": ("json_logs", True)}


def _parse(
    args: list[str], values: dict[str, str], flags: dict[str, tuple[str, Any]]
) -> dict[str, Any] | None:
    """The options of ``args`` (after the command), or ``None`` for anything this
    reader does not handle (the CLI then parses it, and reports any mistake)."""
    known = _COMMON | values
    out: dict[str, Any] = {"project": "."}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in known and name.startswith("--") and eq:
            out[known[name]] = value
        elif arg in known and i + 1 < len(args):
            out[known[arg]] = args[i + 1]
            i += 1
        elif arg in flags:
            key, flag = flags[arg]
            out[key] = flag
        else:
            return None
        i += 1
    return out


def _cached(
    opts: dict[str, Any], command: str, function: str | None = None
) -> tuple[Any, Any, Any, Any] | None:
    """The cached spec of this command line's project, stage and provider, as
    ``(spec, project, ui, plugin module)``; ``None`` when there is no fresh copy.

    As soon as the copy is read (before its freshness is checked, and before
    anything else is imported), the provider's early start (the copy's
    ``early_start`` module, see :func:`sls_py.speccache.store`) gets the spec in
    its JSON form, even from a stale copy: the local provider starts the function
    processes there."""
    from . import speccache

    root = Path(opts["project"]).resolve()
    cached = speccache.read(root, opts.get("stage"), opts.get("provider"))
    if cached is None:
        return None
    import importlib

    early = None
    if cached.get("early_start"):
        # from a stale copy too: the CLI then builds the spec meanwhile, and the
        # provider adopts what the early start began if it still fits
        try:
            early = importlib.import_module(cached["early_start"])
            early.prestart(command, root, cached["spec"], function)
        except Exception:  # best effort: the processes start the usual way
            early = None
    if not speccache.is_fresh(root, cached):
        return None

    from .project import Project
    from .spec import Spec
    from .ui import UI

    try:
        plugin = importlib.import_module(cached["plugin_module"])
        spec = Spec.from_data(cached["spec"])
    except Exception:  # a broken plugin, or a copy this sls-py cannot read: the CLI says why
        if early is not None:
            early.discard()
        return None
    ui = UI()
    for note in cached["notes"]:
        ui.warn(note)
    return spec, Project(root, name=cached["project_name"]), ui, plugin


def _call(hook: Any, **kwargs: Any) -> Any:
    """Call a plugin's hook function with the arguments it takes (as pluggy would)."""
    code = hook.__code__
    accepted = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return hook(**{k: v for k, v in kwargs.items() if k in accepted})


def _warm_run(args: list[str]) -> int | None:
    opts = _parse(args, _RUN_VALUES, _RUN_FLAGS)
    if opts is None:
        return None
    try:
        port = int(opts.get("port", 3000))
    except ValueError:
        return None
    found = _cached(opts, "run")
    from .provider import RunOptions

    stage, provider = opts.get("stage"), opts.get("provider")
    options = RunOptions(
        host=opts.get("host", "127.0.0.1"),
        port=port,
        reload=opts.get("reload", True),
        json_logs=opts.get("json_logs", False),
        clock=opts.get("clock"),
        cached_spec=found is not None,
        spec_key=(stage, provider),
    )
    if found is None:  # the spec to build: the CLI's `run`, without the CLI
        from . import session

        return session.run(Path(opts["project"]), stage, provider, options)
    spec, project, ui, plugin = found
    return int(_call(plugin.sls_py_run, spec=spec, project=project, options=options, ui=ui) or 0)


_INVOKE_VALUES = {"--file": "file", "-f": "file"}
_INVOKE_FLAGS = {"--logs": ("logs", True), "--json": ("json_out", True)}


def _warm_invoke(args: list[str]) -> int | None:
    positional: list[str] = []
    while args and not args[0].startswith("-") and len(positional) < 2:
        positional.append(args.pop(0))
    opts = _parse(args, _INVOKE_VALUES, _INVOKE_FLAGS)
    if opts is None or not positional:
        return None
    function, payload = positional[0], (positional[1] if len(positional) > 1 else None)
    found = _cached(opts, "invoke", function)
    data = read_payload(payload, Path(opts["file"]) if "file" in opts else None)
    logs, json_out = opts.get("logs", False), opts.get("json_out", False)
    if found is None or not hasattr(found[3], "sls_py_invoke"):  # the CLI's `invoke`, without it
        from . import session

        project_dir, stage, provider = Path(opts["project"]), opts.get("stage"), opts.get("provider")
        result = session.invoke(project_dir, stage, provider, function, data, logs)
    else:
        spec, project, ui, plugin = found
        spec.function(function)  # an unknown name: the error lists the known ones
        hook = plugin.sls_py_invoke
        result = _call(hook, spec=spec, project=project, function=function, payload=data, logs=logs, ui=ui)
    print_invocation(function, result, logs=logs, json_out=json_out)
    return 0


def read_payload(payload: str | None, file: Path | None) -> Any:
    """The JSON payload given as an argument or in a file (``-``: stdin), strictly
    parsed (no NaN, Infinity, 1e999); ``None`` when neither is given."""
    from .runtime import jsonwire

    if payload is not None and file is not None:
        raise ConfigError("give the payload either as an argument or with --file, not both")
    if file is not None:
        try:
            text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read payload file {file}: {exc.strerror}") from None
        source = str(file)
    elif payload is not None:
        text, source = payload, "the payload argument"
    else:
        return None
    try:
        return jsonwire.loads(text, source)
    except jsonwire.InvalidJson as exc:
        raise ConfigError(exc.message, hint="""quote JSON for the shell, e.g. '{"x": 1}'""") from None


def print_invocation(function: str, result: Any, *, logs: bool, json_out: bool) -> None:
    """Print what ``sls-py invoke`` prints for an :class:`~sls_py.provider.Invocation`:
    its logs (with ``logs``, on stderr), then its result as JSON; a failed one
    raises :class:`FunctionFailed` (exit code 1)."""
    import json

    if logs and result.logs:
        print(result.logs.rstrip("\n"), file=sys.stderr)
    if json_out:
        from .runtime.events import to_jsonable

        summary = {
            "function": function,
            "request_id": result.request_id,
            "result": result.result,
            "error": result.error.to_wire() if result.error else None,
        }
        print(json.dumps(to_jsonable(summary), indent=2))
    if result.error is not None:
        raise FunctionFailed(function, result.error)
    if not json_out:
        print(json.dumps(result.result))


def report(exc: SlsPyError) -> int:
    """Print a user-facing error the way every command does; its exit code."""
    if isinstance(exc, FunctionFailed):
        print(f"{exc.function} failed: {exc.message}", file=sys.stderr)
    else:
        print(f"error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sls-py`` console script and ``python -m sls_py``.

    A warm ``sls-py invoke`` that printed its result ends the process here
    (:func:`sls_py.quickexit.exit_now`: threads joined, ``atexit`` handlers run,
    streams flushed, no teardown of every module)."""
    args = list(sys.argv[1:] if argv is None else argv)
    warm = {"run": _warm_run, "invoke": _warm_invoke}.get(args[0]) if args else None
    if warm is not None:
        try:
            code = warm(args[1:])
        except SlsPyError as exc:
            return report(exc)
        except KeyboardInterrupt:
            return 130
        if code is not None:
            if args[0] == "invoke":
                from .quickexit import exit_now

                exit_now(code)
            return code
    from .cli import main as cli_main

    return cli_main(args)
