"""``sls-py cache shell`` and ``sls-py cache url``: a developer's way into a local cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from sls_py.errors import ConfigError, ProviderError
from sls_py.project import Project
from sls_py.spec import Spec

from .caches import CacheServer

cache_cli = typer.Typer(
    name="cache",
    help="The app's local caches (app.cache): open one in redis-cli, print its URL.",
    no_args_is_help=True,
)

ProjectOpt = Annotated[Path, typer.Option("--project", "-p", help="The project folder.")]
StageOpt = Annotated[str | None, typer.Option("--stage", "-s", help="Stage (default: the configured one).")]
NameArg = Annotated[str | None, typer.Argument(help="The cache's name (default: the app's only cache).")]

CLI_HINT = (
    "install one: apt-get install valkey-tools (or redis-tools); or connect any Redis "
    "client to the URL from `sls-py cache url NAME --show-password`"
)


def _server(project: Path, stage: str | None, name: str | None) -> tuple[Project, Spec, CacheServer]:
    from sls_py.config import load_project

    from .caches import cache_servers

    proj = load_project(project)
    spec = proj.spec(stage)
    names = [c.name for c in spec.caches]
    if not names:
        raise ConfigError(
            f"app {spec.app!r} declares no cache", hint='declare one with app.cache("sessions")'
        )
    if name is None:
        if len(names) > 1:
            raise ConfigError("the app declares several caches: name one", hint=f"caches: {', '.join(names)}")
        name = names[0]
    if name not in names:
        raise ConfigError(f"app {spec.app!r} has no cache {name!r}", hint=f"caches: {', '.join(names)}")
    servers = {s.name: s for s in cache_servers(spec, proj)}
    return proj, spec, servers[name]


@cache_cli.command("shell")
def shell(name: NameArg = None, project: ProjectOpt = Path("."), stage: StageOpt = None) -> None:
    """Open redis-cli (or valkey-cli) on a local cache; its server is started for
    the session if no `sls-py run` serves it."""
    from .caches import CLIENTS, serving_caches

    proj, spec, server = _server(project, stage, name)
    cli = next((found for c in CLIENTS if (found := shutil.which(c))), None)
    if cli is None:
        raise ProviderError("no redis-cli or valkey-cli on PATH", hint=CLI_HINT)
    env = dict(os.environ, REDISCLI_AUTH=server.password, VALKEYCLI_AUTH=server.password)
    with serving_caches(spec, proj):
        code = subprocess.call([cli, "-h", "127.0.0.1", "-p", str(server.port)], env=env)
    raise typer.Exit(code)


@cache_cli.command("url")
def url(
    name: NameArg = None,
    project: ProjectOpt = Path("."),
    stage: StageOpt = None,
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Include the password in the URL.")
    ] = False,
) -> None:
    """Print a local cache's redis:// URL (without its password unless asked)."""
    _proj, _spec, server = _server(project, stage, name)
    typer.echo(server.url if show_password else server.public_url)
