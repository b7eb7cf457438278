"""The options every ``sls-py`` command shares (``--project``, ``--stage``,
``--provider``, ``--json``), for :mod:`sls_py.cli` and its command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", help="The project folder (holding pyproject.toml).")
]
StageOpt = Annotated[
    str | None, typer.Option("--stage", "-s", help="Stage (default: [tool.sls-py] stage, else dev).")
]
ProviderOpt = Annotated[
    str | None,
    typer.Option("--provider", "-P", help="Provider (default: [tool.sls-py] provider, else local)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
