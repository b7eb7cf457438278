"""The local provider's hook implementations.

Registered through the ``sls_py`` entry point like any third-party provider.
Heavy imports happen inside the hooks, so ``sls-py --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

from sls_py import hookimpl
from sls_py.config import Project
from sls_py.provider import Invocation, ProviderInfo, TriggerRequest
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
            }
        ),
        not_emulated={"http.usage_limits": "usage limits (rate, burst, quota) are not enforced locally"},
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
