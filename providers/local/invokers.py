"""How the local services call functions: the ``invoke`` contract and a simple invoker.

:class:`~sls_py_local.services.LocalServices` never runs a function itself: it
awaits ``invoke(function, event_wire) -> Outcome``. ``sls-py run`` passes its
warm worker pool; :func:`oneshot_invoker` starts a fresh process per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sls_py.project import Project
from sls_py.runtime import Outcome
from sls_py.runtime.errors import ErrorInfo
from sls_py.spec import Spec
from sls_py.ui import UI

#: ``invoke(function, event_wire) -> Outcome``, supplied by the caller.
Invoke = Callable[[str, dict[str, Any]], Awaitable[Outcome]]


def failure(exc: BaseException) -> Outcome:
    """An outcome for an ``invoke`` that raised instead of answering."""
    return Outcome(error=ErrorInfo(type=type(exc).__name__, message=str(exc) or repr(exc)))


def outcome_data(function: str, outcome: Outcome) -> dict[str, Any]:
    """An outcome as JSON-able data for ``sls-py trigger`` output."""
    return {
        "function": function,
        "ok": outcome.error is None,
        "result": outcome.result,
        "error": outcome.error.to_wire() if outcome.error is not None else None,
    }


def oneshot_invoker(spec: Spec, project: Project, ui: UI | None = None) -> Invoke:
    """An ``invoke`` that runs each invocation in a fresh process (no pool).

    Used by ``python -m sls_py_local.standalone`` and tests; ``sls-py run`` passes
    its worker pool instead. Function logs are forwarded to ``ui``.
    """
    from .oneshot import invoke_once

    async def invoke(function: str, event: dict[str, Any]) -> Outcome:
        inv = await asyncio.to_thread(invoke_once, spec, project, function, event)
        if ui is not None and inv.logs:
            for line in inv.logs.rstrip().splitlines():
                ui.info(f"[{function}] {line}")
        return Outcome(result=inv.result, error=inv.error)

    return invoke
