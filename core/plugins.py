"""Finding and calling provider plugins.

Providers are found through the ``sls_py`` entry-point group; ``local`` and
``aws`` come in through that same route, so a third-party provider has the
same powers as the built-in ones. :func:`load_plugins` builds a fresh
:class:`Plugins` (nothing happens at import time), and tests build one with
only the plugins they want::

    plugins = Plugins.empty()
    plugins.register("fake", FakeProvider())

Set ``SLS_PY_DISABLE_PLUGINS=name,...`` to block plugins by entry-point name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .errors import NotSupported, PluginError, SpecError
from .provider import ProviderInfo, spec_notes
from .spec import CAPABILITIES

if TYPE_CHECKING:
    from .config import Project
    from .spec import Spec

ENTRY_POINT_GROUP = "sls_py"
DISABLE_ENV = "SLS_PY_DISABLE_PLUGINS"

#: The command each operation hook serves, for "not implemented" messages.
OPERATIONS = {
    "sls_py_invoke": "invoke",
    "sls_py_run": "run",
    "sls_py_plan": "plan",
    "sls_py_deploy": "deploy",
    "sls_py_remove": "remove",
    "sls_py_url": "url",
    "sls_py_logs": "logs",
    "sls_py_api_keys": "api-keys",
    "sls_py_trigger": "trigger",
    "sls_py_package": "package",
    "sls_py_deploy_package": "deploy --package",
    "sls_py_migrate": "migrate",
    "sls_py_db_shell": "db shell",
    "sls_py_config_get": "config get/list",
    "sls_py_config_set": "config set",
    "sls_py_config_unset": "config unset",
}


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be loaded, and why."""

    name: str
    error: str


class Plugins:
    """The loaded plugins: a pluggy manager plus what failed to load."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.broken: dict[str, BrokenPlugin] = {}

    @classmethod
    def empty(cls) -> Plugins:
        """A manager with the hook specs and no plugins."""
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        return cls(pm)

    def register(self, name: str, plugin: object) -> None:
        """Register ``plugin`` under ``name``; a plugin with unknown hooks is refused."""
        try:
            self.pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"plugin {name!r}: {exc}") from None
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(plugin)
            raise PluginError(f"plugin {name!r} implements an unknown hook: {exc}") from None

    def load_entry_points(self, disabled: Iterable[str] = ()) -> None:
        """Load every plugin of the ``sls_py`` group; record the ones that fail."""
        blocked = {n.strip() for n in disabled if n.strip()}
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in blocked or self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
                self.register(ep.name, plugin)
                if self._implements(plugin, "sls_py_provider_info"):
                    self._info(ep.name)  # a provider whose info fails is broken too
            except Exception as exc:
                if self.pm.has_plugin(ep.name):
                    self.pm.unregister(name=ep.name)
                self.broken[ep.name] = BrokenPlugin(ep.name, f"{type(exc).__name__}: {exc}")

    def _implements(self, plugin: object, hook: str) -> bool:
        caller = getattr(self.pm.hook, hook)
        return any(impl.plugin is plugin for impl in caller.get_hookimpls())

    def _info(self, plugin_name: str) -> ProviderInfo:
        plugin = self.pm.get_plugin(plugin_name)
        caller = self.pm.subset_hook_caller(
            "sls_py_provider_info",
            remove_plugins=[p for p in self.pm.get_plugins() if p is not plugin],
        )
        info = caller()
        if not isinstance(info, ProviderInfo):
            raise PluginError(f"plugin {plugin_name!r}: sls_py_provider_info must return ProviderInfo")
        unknown = sorted(set(info.capabilities) - set(CAPABILITIES))
        if unknown:
            raise PluginError(f"plugin {plugin_name!r} declares unknown capabilities: {unknown}")
        return info

    def providers(self) -> dict[str, Provider]:
        """Installed providers by name (plugins that implement ``sls_py_provider_info``)."""
        found: dict[str, Provider] = {}
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None or not self._implements(plugin, "sls_py_provider_info"):
                continue
            info = self._info(name)
            found[info.name] = Provider(self, name, plugin, info)
        return found

    def provider(self, name: str) -> Provider:
        """The provider called ``name``; the error lists the installed ones."""
        found = self.providers()
        if name in found:
            return found[name]
        if name in self.broken:
            raise PluginError(
                f"provider {name!r} failed to load: {self.broken[name].error}",
                hint="reinstall the plugin, or see `sls-py providers`",
            )
        known = ", ".join(sorted(found)) or "none"
        raise PluginError(
            f"no provider named {name!r} is installed",
            hint=f"installed providers: {known}; see `sls-py providers`",
        )


class Provider:
    """One provider, with a typed way to call its hooks (only its own)."""

    def __init__(self, plugins: Plugins, plugin_name: str, plugin: object, info: ProviderInfo):
        self._plugins = plugins
        self.plugin_name = plugin_name
        self.plugin = plugin
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    def implements(self, hook: str) -> bool:
        """Whether this provider implements ``hook``."""
        return self._plugins._implements(self.plugin, hook)

    def commands(self) -> list[str]:
        """The CLI commands this provider supports."""
        return [cmd for hook, cmd in OPERATIONS.items() if self.implements(hook)]

    def call(self, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` on this provider only; :class:`NotSupported` if it lacks it."""
        if not self.implements(hook):
            command = OPERATIONS.get(hook, hook)
            supported = ", ".join(self.commands()) or "none"
            raise NotSupported(
                f"provider {self.name!r} does not implement `{command}`",
                hint=f"commands {self.name!r} supports: {supported}",
            )
        pm = self._plugins.pm
        others = [
            p
            for _, p in pm.list_name_plugin()
            if p is not self.plugin and p is not None and self._plugins._implements(p, "sls_py_provider_info")
        ]
        caller = pm.subset_hook_caller(hook, remove_plugins=others)
        return caller(**kwargs)

    def check(self, spec: Spec, project: Project) -> list[str]:
        """Refuse a spec that needs a capability this provider lacks; return
        the provider's warnings and its not-emulated notes for the spec."""
        notes = spec_notes(self.info, spec)
        if self.implements("sls_py_validate_spec"):
            warnings = self.call("sls_py_validate_spec", spec=spec, project=project)
            if warnings is not None and not isinstance(warnings, list):
                raise SpecError(f"provider {self.name!r}: sls_py_validate_spec must return a list")
            notes.extend(warnings or [])
        return notes


def load_plugins(*, entry_points_too: bool = True, disabled: Iterable[str] | None = None) -> Plugins:
    """A fresh :class:`Plugins` with every installed plugin not disabled."""
    plugins = Plugins.empty()
    if entry_points_too:
        if disabled is None:
            disabled = os.environ.get(DISABLE_ENV, "").split(",")
        plugins.load_entry_points(disabled)
    return plugins
