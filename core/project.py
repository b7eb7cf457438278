"""A project on disk (:class:`Project`) and ``${env:NAME}`` references.

Standard library only: a warm ``sls-py run`` serves from a cached spec with a
:class:`Project` whose configuration is read (by :mod:`sls_py.config`, with
pydantic) only if something asks for it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .app import App
    from .config import ProjectConfig
    from .spec import Spec

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class Project:
    """A project on disk: its root folder and its checked configuration.

    :param config: the checked ``[tool.sls-py]`` table; ``None`` reads it from
        ``root/pyproject.toml`` when first asked for.
    :param name: the project's name (default: the folder's).
    """

    def __init__(self, root: Path, config: ProjectConfig | None = None, name: str = "") -> None:
        self.root = root
        self._config = config
        self.name = name or root.name

    def __repr__(self) -> str:
        return f"Project(root={self.root!r}, name={self.name!r})"

    @property
    def config(self) -> ProjectConfig:
        """The checked ``[tool.sls-py]`` table of ``pyproject.toml``."""
        if self._config is None:
            from .config import load_project

            self._config = load_project(self.root).config
        return self._config

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    @property
    def state_dir(self) -> Path:
        """Where providers keep state (``.sls-py/``); never packaged."""
        return self.root / ".sls-py"

    @property
    def source_dir(self) -> Path:
        return (self.root / self.config.source).resolve()

    def load_app(self) -> App:
        """Import the app object named by ``app = "module:attr"``."""
        from .config import import_app

        return import_app(self)

    def spec(self, stage: str | None = None) -> Spec:
        """The spec for ``stage`` (default: the configured stage)."""
        from .config import build_spec

        return build_spec(self, self.load_app(), stage or self.config.stage)


def resolve_environment(env: dict[str, str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """Replace ``${env:NAME}`` references with values from the environment.

    Providers call this when they start or deploy a function, so secrets never
    appear in the printed spec. A missing variable is a :class:`ConfigError`.
    """
    source = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for key, value in env.items():

        def sub(m: re.Match[str], key: str = key) -> str:
            name = m.group(1)
            if name not in source:
                raise ConfigError(
                    f"environment variable {key} refers to ${{env:{name}}}, which is not set",
                    hint=f"export {name}=... before running this command",
                )
            return source[name]

        out[key] = _ENV_REF.sub(sub, value)
    return out
