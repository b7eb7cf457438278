"""The local provider's hook implementations.

Registered through the ``sls_py`` entry point like any third-party provider.
Heavy imports happen inside the hooks, so ``sls-py --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sls_py import hookimpl
from sls_py.config import Project
from sls_py.errors import ProviderError
from sls_py.provider import (
    ApiKey,
    ConfigEntry,
    Invocation,
    LogRecord,
    ProviderInfo,
    RunOptions,
    TriggerRequest,
)
from sls_py.spec import Spec
from sls_py.ui import UI

from . import __version__


@hookimpl
def sls_py_provider_info() -> ProviderInfo:
    return ProviderInfo(
        name="local",
        version=__version__,
        description="Runs the app on this machine: functions in their own processes.",
        capabilities=frozenset(
            {
                "invoke",
                "trigger.http",
                "http.api_key",
                "http.cors",
                "http.usage_limits",
                "trigger.schedule",
                "trigger.upload",
                "trigger.queue",
                "resource.bucket",
                "resource.queue",
                "resource.table",
                "function.timeout",
                "function.memory",
                "function.concurrency",
                "function.invoke",
                "resource.config",
            }
        ),
        # usage limits are enforced by the gateway (token bucket and quota per key)
        not_emulated={},
    )


@hookimpl
def sls_py_invoke(spec: Spec, project: Project, function: str, payload: Any, ui: UI) -> Invocation:
    from .oneshot import invoke_once

    return invoke_once(spec, project, function, {"type": "payload", "payload": payload})


@hookimpl
def sls_py_trigger(spec: Spec, project: Project, request: TriggerRequest, ui: UI) -> Any:
    """Fire an upload, a schedule or a queue message by hand.

    A running ``sls-py run`` of the stage delivers it (it is found through
    ``.sls-py/local/<stage>/run.json``); otherwise the matching functions run
    now, each in a fresh process, and their outcomes are returned.
    """
    from .trigger import fire

    return fire(spec, project, request, ui)


@hookimpl
def sls_py_run(spec: Spec, project: Project, options: RunOptions, ui: UI) -> int:
    """Serve the app: the HTTP gateway with a worker pool per function, and the
    schedules, buckets and queues."""
    from .launch import prepare

    # the templates (each a fresh interpreter importing the app) start first, so
    # their imports overlap the gateway's own imports and set-up
    prepared = prepare(spec, project, options)
    try:
        from .server import serve
    except BaseException:
        prepared.close()
        raise
    return serve(spec, project, options, ui, prepared, restart_in_place=True)


@hookimpl
def sls_py_api_keys(spec: Spec, project: Project) -> list[ApiKey]:
    """The stage's API keys; values are generated on first use and kept in
    ``.sls-py/local/<stage>/api-keys.json`` (mode 0600)."""
    from .keys import load_api_keys

    return load_api_keys(spec, project)


@hookimpl
def sls_py_url(spec: Spec, project: Project) -> str:
    """The URL of the stage's running local server."""
    from .server import read_server_url

    url = read_server_url(project, spec.stage)
    if url is None:
        raise ProviderError(
            f"no local server is running for stage {spec.stage!r}",
            hint="start one with `sls-py run` (it prints its URL too)",
        )
    return url


@hookimpl
def sls_py_logs(
    spec: Spec, project: Project, function: str, since_s: float | None, follow: bool
) -> Iterator[LogRecord]:
    """Log records of ``function`` written by `sls-py run`, oldest first."""
    from .logs import log_dir, read_logs

    return read_logs(log_dir(project.state_dir, spec.stage), function, since_s, follow)


@hookimpl
def sls_py_config_get(
    spec: Spec, project: Project, keys: list[str] | None, reveal: bool
) -> list[ConfigEntry]:
    """The stage's config from ``.sls-py/local/<stage>/config.json`` and ``secrets.json``."""
    from .config import get_entries

    return get_entries(spec, project, keys, reveal)


@hookimpl
def sls_py_config_set(
    spec: Spec, project: Project, key: str, value: str, secret: bool, ui: UI
) -> ConfigEntry:
    """Write one key (atomically); a running ``sls-py run`` serves it within the TTL."""
    from .config import set_entry

    return set_entry(spec, project, key, value, secret)


@hookimpl
def sls_py_config_unset(spec: Spec, project: Project, keys: list[str], ui: UI) -> list[str]:
    """Delete keys from the stage's config files."""
    from .config import unset_entries

    return unset_entries(spec, project, keys)
