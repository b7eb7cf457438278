"""The hooks a provider plugin implements. Every hook is documented in
``docs/providers.md``; a test keeps the two in step.

A provider is a module (or object) registered under the ``sls_py`` entry-point
group, implementing some of these with ``@sls_py.hookimpl``. It must implement
:func:`sls_py_provider_info`; every other hook is optional, and a command whose
hook a provider lacks tells the user so.

Operation hooks (``sls_py_invoke`` ... ``sls_py_trigger``) are called only on
the provider the user chose (``--provider``), with keyword arguments. An
implementation may accept fewer arguments than the spec lists, which is how
hooks grow without breaking plugins: arguments are only ever added, never
renamed or removed.

Before any operation hook runs, the core checks that the provider declares
every capability the spec uses, then calls :func:`sls_py_validate_spec`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import typer

    from .config import Project
    from .packaging import DeployPackage, PackageResult
    from .provider import (
        ApiKey,
        ConfigEntry,
        DeployResult,
        Invocation,
        LogRecord,
        Plan,
        ProviderInfo,
        RunOptions,
        TriggerRequest,
    )
    from .spec import Spec
    from .ui import UI

PROJECT_NAME = "sls_py"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(firstresult=True)
def sls_py_provider_info() -> ProviderInfo:
    """Describe the provider: name, version, capabilities.

    :return: a :class:`~sls_py.provider.ProviderInfo`. Called when plugins are
        loaded; keep it cheap (no network, no heavy imports).
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_validate_spec(spec: Spec, project: Project) -> list[str]:
    """Check the spec against provider limits before any other hook runs.

    :param spec: the resolved spec.
    :param project: the project on disk.
    :return: warnings to print (may be empty). Raise
        :class:`~sls_py.errors.SpecError` for a spec the provider refuses.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_invoke(
    spec: Spec, project: Project, function: str, payload: Any, logs: bool, ui: UI
) -> Invocation:
    """Invoke ``function`` once with the JSON ``payload`` and wait for it.

    :param function: the function's name (the core has checked it exists).
    :param payload: the decoded JSON payload (any JSON value, or ``None``).
    :param logs: the user asked for the invocation's log output.
    :return: an :class:`~sls_py.provider.Invocation` holding the result or the
        function's error. A function error is not an exception of the hook.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_run(spec: Spec, project: Project, options: RunOptions, ui: UI) -> int:
    """Serve the app until stopped (Ctrl-C / SIGTERM), for ``sls-py run``.

    :param options: host, port, reload and other serving options.
    :return: the process exit code.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_plan(spec: Spec, project: Project, ui: UI) -> Plan:
    """Work out what ``deploy`` would change, making read-only calls only.

    :return: a :class:`~sls_py.provider.Plan`; empty when nothing changed.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_deploy(spec: Spec, project: Project, ui: UI) -> DeployResult:
    """Deploy the spec's stage: create, update and delete to match the spec.

    :return: a :class:`~sls_py.provider.DeployResult` with what was applied
        and the app's URL.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_remove(spec: Spec, project: Project, ui: UI) -> Plan:
    """Delete everything of the spec's stage, and nothing of other stages.

    :return: the steps that were carried out.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_url(spec: Spec, project: Project) -> str:
    """The base URL of the stage's HTTP gateway."""
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_logs(
    spec: Spec, project: Project, function: str, since_s: float | None, follow: bool
) -> Iterable[LogRecord]:
    """Log records of ``function``, oldest first.

    :param since_s: only records from the last ``since_s`` seconds (``None``: all).
    :param follow: keep yielding new records until interrupted.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_api_keys(spec: Spec, project: Project) -> list[ApiKey]:
    """The stage's API keys, names and values (created if the provider keeps them)."""
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_trigger(spec: Spec, project: Project, request: TriggerRequest, ui: UI) -> Any:
    """Fire a trigger by hand: upload a file, fire a schedule, send a message.

    :param request: what to fire; see :class:`~sls_py.provider.TriggerRequest`.
    :return: a JSON-able description of what happened (printed with ``--json``).
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_config_get(
    spec: Spec, project: Project, keys: list[str] | None, reveal: bool
) -> list[ConfigEntry]:
    """Read the stage's config store, for ``sls-py config get`` and ``config list``.

    The store holds the values functions read with ``app.config(...)`` at call
    time: one set of string values by key per app and stage.

    :param keys: the keys wanted (``None``: every key of the stage). Keys that
        are not set are left out of the answer; it is not an error.
    :param reveal: the user asked to see secrets' values (``--reveal``); when
        false, a secret's entry has ``value=None``.
    :return: :class:`~sls_py.provider.ConfigEntry` items sorted by key.

    .. versionadded:: 0.2
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_config_set(
    spec: Spec, project: Project, key: str, value: str, secret: bool, ui: UI
) -> ConfigEntry:
    """Set one key of the stage's config store (``sls-py config set``).

    Running functions see the new value within their handle's ``ttl_s``,
    without a deploy. Write so that a reader never sees a half-written store.

    :param key: the key (the core has checked its form).
    :param value: the value, a string. Never print or log it.
    :param secret: store it as a secret (encrypted at rest where the provider
        can, never shown without ``reveal``). Refuse to turn an existing secret
        into a plain value without ``secret`` (raise
        :class:`~sls_py.errors.ConfigError` with a hint).
    :return: the entry as stored, with ``value=None`` if it is a secret.

    .. versionadded:: 0.2
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_config_unset(spec: Spec, project: Project, keys: list[str], ui: UI) -> list[str]:
    """Delete keys from the stage's config store (``sls-py config unset``, and
    ``sls-py remove --purge-config`` for every key).

    :param keys: the keys to delete; a key that is not set is skipped.
    :return: the keys that were deleted, sorted.

    .. versionadded:: 0.2
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_migrate(spec: Spec, project: Project, ui: UI) -> list[dict[str, Any]]:
    """Apply the pending migrations of every database the spec declares.

    :return: one dict per database: ``{"database": name, "applied": [files],
        "already": [files], "changed": [files]}`` (see
        :func:`sls_py.migrations.apply_migrations`, which does the work given
        a driver of the provider's).
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_db_shell(spec: Spec, project: Project, database: str, ui: UI) -> int:
    """Open an interactive SQL shell (e.g. ``psql``) on one of the spec's databases.

    :param database: the database's name in the app (the core has checked it exists).
    :return: the shell's exit code.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_package(spec: Spec, project: Project, output: Path, ui: UI) -> PackageResult:
    """Write the stage's deploy artifacts into ``output``, for ``sls-py package``.

    Optional: a provider without it cannot package, and ``sls-py package`` says
    so before anything runs. Write deterministically (the same app gives the
    same bytes on a rerun: fixed timestamps and orders, no absolute paths) and
    make no change anywhere else; cloud calls are not needed and should not be
    made, so a package can be built where there are no credentials.

    :param output: a new, empty folder. The core moves it to the user's
        ``--output`` when the hook returns, and adds ``spec.json`` and
        ``manifest.json`` (hashes of every file), so do not write those two.
    :return: a :class:`~sls_py.packaging.PackageResult`: lines for the user,
        and notes the manifest records for :func:`sls_py_deploy_package`.

    .. versionadded:: 0.2
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def sls_py_deploy_package(
    spec: Spec, project: Project, package: DeployPackage, ui: UI
) -> DeployResult:
    """Deploy a package written earlier by :func:`sls_py_package`, without rebuilding.

    Optional, like :func:`sls_py_package`. Before calling it the core has checked
    that the package was built by this provider for this app and stage, and that
    every file still has the hash its manifest records.

    :param spec: the spec the package was built from (its ``spec.json``), not
        the project's current one, so the resources match the packaged code.
    :param package: the checked package; read its files with
        :meth:`~sls_py.packaging.DeployPackage.read_bytes` (which checks the
        hash again).
    :return: a :class:`~sls_py.provider.DeployResult`, as from :func:`sls_py_deploy`.

    .. versionadded:: 0.2
    """
    raise NotImplementedError


@hookspec
def sls_py_add_commands(cli: typer.Typer) -> None:
    """Add commands to the ``sls-py`` CLI (called on every plugin, at start-up).

    Keep the module that implements this light: ``sls-py --help`` loads it.
    """
