"""``sls-py config set|get|list|unset``: the stage's config and secrets.

Values live in the chosen provider's store (locally a file per stage, on AWS
SSM Parameter Store) and functions read them at call time through
``app.config(...)``, so a change needs no deploy. A secret's value is printed
only with ``--reveal``; ``sls-py spec`` and the logs never hold it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .cli_options import JsonOpt, ProjectOpt, ProviderOpt, StageOpt
from .errors import ConfigError

if TYPE_CHECKING:
    from .provider import ConfigEntry
    from .session import Session

config_cli = typer.Typer(
    help="Per-stage config and secrets, read by functions at call time (no deploy needed).",
    no_args_is_help=True,
)

MASK = "********"

RevealOpt = Annotated[bool, typer.Option("--reveal", help="Print secrets' values too.")]


def _session(project: Path, stage: str | None, provider: str | None, quiet: bool = False) -> Session:
    from .session import open_session

    return open_session(project, stage, provider, quiet=quiet)


def _key(key: str) -> str:
    from .runtime.config import valid_key

    if not valid_key(key):
        raise ConfigError(
            f"config key {key!r} is not valid",
            hint="use letters, digits, '-', '_' and '.', starting with a letter or digit "
            "(at most 128 characters), e.g. magic-word",
        )
    return key


def _ttl(s: Session) -> str:
    ttls = [c.ttl_s for c in s.spec.configs]
    return f"{max(ttls):g} s" if ttls else "their handle's ttl_s"


def _entries(s: Session, keys: list[str] | None, reveal: bool) -> list[ConfigEntry]:
    found: list[ConfigEntry] = s.call("sls_py_config_get", keys=keys, reveal=reveal)
    return sorted(found, key=lambda e: e.key)


def _emit_json(value: Any) -> None:
    from .cli import _print_json

    _print_json(value)


@config_cli.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="The key, e.g. magic-word.")],
    value: Annotated[
        str, typer.Argument(help="The value ('-': read it from stdin, kept out of shell history).")
    ],
    secret: Annotated[
        bool, typer.Option("--secret", help="Store it as a secret (encrypted where the provider can).")
    ] = False,
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
) -> None:
    """Set a config value (or a secret with --secret) for the stage; running
    functions see it within their handle's ttl_s, without a deploy."""
    _key(key)
    if value == "-":
        value = sys.stdin.read().rstrip("\r\n")
    s = _session(project, stage, provider)
    entry = s.call("sls_py_config_set", key=key, value=value, secret=secret, ui=s.ui)
    kind = "secret" if entry.secret else "value"
    s.ui.info(
        f"Set {kind} {key} of {s.spec.app} stage {s.spec.stage} ({s.provider.name}); "
        f"functions see it within {_ttl(s)}."
    )
    if not s.spec.configs:
        s.ui.warn(f"app {s.spec.app!r} declares no app.config(...): no function reads it yet")


@config_cli.command("get")
def config_get(
    key: Annotated[str, typer.Argument(help="The key.")],
    reveal: RevealOpt = False,
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print one config value of the stage (a secret only with --reveal)."""
    _key(key)
    s = _session(project, stage, provider, quiet=True)
    found = [e for e in _entries(s, [key], reveal) if e.key == key]
    if not found:
        default = next((c.defaults[key] for c in s.spec.configs if key in c.defaults), None)
        if default is None:
            raise ConfigError(
                f"config key {key!r} is not set for stage {s.spec.stage!r}",
                hint=f"set it with `sls-py config set {key} VALUE --stage {s.spec.stage}`",
            )
        entry_json: dict[str, Any] = {"key": key, "value": default, "secret": False, "source": "default"}
        if json_out:
            _emit_json(entry_json)
        else:
            typer.echo(default)
        return
    entry = found[0]
    if entry.secret and not reveal:
        raise ConfigError(
            f"config key {key!r} of stage {s.spec.stage!r} is a secret",
            hint=f"add --reveal to print it: `sls-py config get {key} --reveal --stage {s.spec.stage}`",
        )
    if json_out:
        _emit_json({"key": key, "value": entry.value, "secret": entry.secret, "source": "store"})
    else:
        typer.echo(entry.value)


@config_cli.command("list")
def config_list(
    reveal: RevealOpt = False,
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the stage's config keys: values set, defaults from pyproject.toml,
    and keys the app reads that are not set (secrets masked unless --reveal)."""
    s = _session(project, stage, provider, quiet=True)
    rows: dict[str, dict[str, Any]] = {}
    for c in s.spec.configs:
        for key in c.keys:
            rows.setdefault(key, {"key": key, "value": None, "secret": False, "source": "not set"})
        for key, value in c.defaults.items():
            rows[key] = {"key": key, "value": value, "secret": False, "source": "default"}
    for e in _entries(s, None, reveal):
        rows[e.key] = {"key": e.key, "value": e.value, "secret": e.secret, "source": "store"}
    ordered = [rows[k] for k in sorted(rows)]
    if json_out:
        _emit_json(ordered)
        return
    if not ordered:
        s.ui.info(
            f"No config for {s.spec.app} stage {s.spec.stage}; "
            f"set some with `sls-py config set KEY VALUE --stage {s.spec.stage}`."
        )
    for row in ordered:
        if row["source"] == "not set":
            shown = "(not set)"
        elif row["secret"] and row["value"] is None:
            shown = MASK
        else:
            shown = row["value"]
        notes = [n for n, on in (("secret", row["secret"]), ("default", row["source"] == "default")) if on]
        suffix = f"\t({', '.join(notes)})" if notes else ""
        typer.echo(f"{row['key']}\t{shown}{suffix}")


@config_cli.command("unset")
def config_unset(
    keys: Annotated[list[str], typer.Argument(help="The key(s) to delete.")],
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    provider: ProviderOpt = None,
) -> None:
    """Delete config values of the stage (functions fall back to the defaults)."""
    for key in keys:
        _key(key)
    s = _session(project, stage, provider)
    present = {e.key for e in _entries(s, list(keys), False)}
    absent = [k for k in keys if k not in present]
    if absent:
        known = ", ".join(e.key for e in _entries(s, None, False)) or "none"
        raise ConfigError(
            f"config key {absent[0]!r} is not set for stage {s.spec.stage!r}",
            hint=f"keys set for stage {s.spec.stage}: {known}",
        )
    removed = s.call("sls_py_config_unset", keys=list(keys), ui=s.ui)
    s.ui.info(f"Unset {', '.join(removed)} of {s.spec.app} stage {s.spec.stage}.")


def purge_config(s: Session) -> list[str]:
    """Delete every key of the stage's config store (``sls-py remove --purge-config``)."""
    keys = [e.key for e in _entries(s, None, False)]
    if not keys:
        return []
    removed: list[str] = s.call("sls_py_config_unset", keys=keys, ui=s.ui)
    for key in removed:
        s.ui.step("delete", "config", key, f"stage {s.spec.stage} removed with --purge-config")
    return removed


def kept_config_note(s: Session) -> str | None:
    """A line saying how many config keys ``remove`` kept, if any (read-only)."""
    if not s.spec.configs or not s.provider.implements("sls_py_config_get"):
        return None
    keys = [e.key for e in _entries(s, None, False)]
    if not keys:
        return None
    return (
        f"kept {len(keys)} config key(s) of stage {s.spec.stage} ({', '.join(keys)}); "
        "`sls-py remove --purge-config` deletes them too"
    )
