"""A command's project, spec and provider, resolved once: what every CLI command
that works on an app starts from (:mod:`sls_py.cli`), and what ``sls-py run`` and
``sls-py invoke`` use directly, without the CLI, when their spec must be built
(:mod:`sls_py.entry`: no typer to import, ~45 ms).

Imports neither typer nor pydantic at import time (building the spec does).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Project
    from .plugins import Plugins, Provider
    from .provider import Invocation, RunOptions
    from .spec import Spec
    from .ui import UI

_state: dict[str, Any] = {}


def plugins() -> Plugins:
    """The installed plugins, loaded once per process (or those :func:`use_plugins` set)."""
    from .plugins import load_plugins

    if "plugins" not in _state:
        _state["plugins"] = load_plugins()
    found: Plugins = _state["plugins"]
    return found


def use_plugins(given: Plugins) -> None:
    """Use ``given`` instead of the installed plugins from now on (for tests)."""
    _state.clear()
    _state["plugins"] = given


def make_ui(quiet: bool = False) -> UI:
    """The terminal output of a command (``quiet``: warnings and errors only)."""
    from .ui import UI

    return UI(quiet=quiet)


class Session:
    """A command's resolved project, spec and provider, and the provider's notes
    on the spec (printed as warnings)."""

    def __init__(
        self, project: Project, spec: Spec, provider: Provider, ui: UI, notes: list[str] | None = None
    ) -> None:
        self.project, self.spec, self.provider, self.ui = project, spec, provider, ui
        self.notes = notes or []

    def keep_spec(self, stage: str | None, provider: str | None) -> None:
        """Keep the spec for a warm start of the same command line (see
        sls_py.speccache), when the provider supports one."""
        if not self.provider.info.warm_start:
            return
        from . import speccache

        speccache.store(
            self.project.root,
            stage,
            provider,
            spec=self.spec,
            provider_name=self.provider.name,
            plugin=self.provider.plugin,
            notes=self.notes,
            project_name=self.project.name,
        )

    def call(self, hook: str, **kwargs: Any) -> Any:
        """Call the provider's ``hook`` with this spec and project."""
        return self.provider.call(hook, spec=self.spec, project=self.project, **kwargs)


def open_session(project: Path, stage: str | None, provider: str | None, *, quiet: bool = False) -> Session:
    """Load the project at ``project``, build its spec for ``stage`` and find the
    provider (``provider``, else the project's); the provider's notes on the spec
    are printed as warnings. Raises :class:`~sls_py.errors.SlsPyError` for the
    user's mistakes (a bad config, an unknown provider...)."""
    from .config import load_project

    proj = load_project(project)
    spec = proj.spec(stage)
    prov = plugins().provider(provider or proj.config.provider)
    ui = make_ui(quiet)
    notes = list(prov.check(spec, proj))
    for note in notes:
        ui.warn(note)
    return Session(proj, spec, prov, ui, notes)


def run(project: Path, stage: str | None, provider: str | None, options: RunOptions) -> int:
    """``sls-py run``: build the spec, keep it for the next (warm) start, serve;
    the exit code."""
    s = open_session(project, stage, provider)
    s.keep_spec(stage, provider)  # the next `sls-py run` starts from it (sls_py.entry)
    return int(s.call("sls_py_run", options=options, ui=s.ui) or 0)


def invoke(
    project: Path, stage: str | None, provider: str | None, function: str, payload: Any, logs: bool
) -> Invocation:
    """``sls-py invoke``: build the spec, check ``function`` is in it (the error
    lists the known ones), keep the spec for the next (warm) invoke, invoke."""
    s = open_session(project, stage, provider)
    s.spec.function(function)
    s.keep_spec(stage, provider)  # the next `sls-py invoke` starts from it (sls_py.entry)
    result: Invocation = s.call("sls_py_invoke", function=function, payload=payload, logs=logs, ui=s.ui)
    return result
