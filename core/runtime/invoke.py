"""Invoking another function from a handler: ``ctx.invoke``, ``ctx.invoke_async``,
``ctx.continue_with``.

Only the functions a function declares (``@app.function(..., invokes=["worker"])``)
can be invoked: the provider names them, with their physical names, under
``"functions"`` in ``SLS_PY_RESOURCES`` (see :mod:`sls_py.runtime.resources`),
and its resource driver supplies a handle for each through an optional method::

    driver.function(name, physical) -> handle
    handle.invoke(payload_json: str) -> {"result": ..., "error": ErrorInfo wire or None}
    handle.invoke_async(payload_json: str) -> str      # an id; delivered at least once

Payloads are JSON, limited as AWS Lambda limits them: 6 MB for a call that waits,
256 KB for an asynchronous one. Standard library only (it runs inside functions).
"""

from __future__ import annotations

from .errors import ErrorInfo

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any

#: Largest payload of an invocation that waits for its result (AWS: 6 MB).
SYNC_LIMIT = 6 * 1024 * 1024
#: Largest payload of an asynchronous invocation (AWS: 256 KB).
ASYNC_LIMIT = 256 * 1024


class InvokeError(Exception):
    """An invocation that cannot be made: an undeclared target, a payload over
    the limit, or a provider whose driver cannot invoke functions."""


class InvokeFailed(Exception):
    """The invoked function ran and failed; ``error`` is its :class:`ErrorInfo`."""

    def __init__(self, function: str, error: ErrorInfo) -> None:
        status = f" (status {error.status})" if error.status else ""
        super().__init__(f"function {function!r} failed: {error.type}{status}: {error.message}")
        self.function = function
        self.error = error


def _handle(source: str, target: str) -> Any:
    from .resources import _current

    driver, names = _current()
    physical = (names.get("functions") or {}).get(target)
    if physical is None:
        raise InvokeError(
            f"function {source!r} may not invoke {target!r}: it is not a declared target; "
            f"declare it with @app.function(name={source!r}, invokes=[{target!r}])"
        )
    make = getattr(driver, "function", None)
    if make is None:
        raise InvokeError(
            f"the provider's resource driver ({type(driver).__name__}) cannot invoke functions"
        )
    return make(target, physical)


def encode(target: str, payload: Any, limit: int, kind: str) -> str:
    """``payload`` as JSON text; :class:`InvokeError` when it is over ``limit`` bytes."""
    from .events import dumps

    data = dumps(payload)
    if len(data) > limit:
        raise InvokeError(
            f"the payload for {target!r} is {len(data)} bytes, over the {limit} bytes an "
            f"{kind} invocation may carry; put the data in a bucket and pass its key instead"
        )
    return data.decode("utf-8")


def invoke(source: str, target: str, payload: Any = None) -> Any:
    """Invoke ``target`` from ``source`` and wait: its result, or :class:`InvokeFailed`."""
    handle = _handle(source, target)
    outcome = handle.invoke(encode(target, payload, SYNC_LIMIT, "invocation that waits"))
    error = outcome.get("error")
    if error:
        raise InvokeFailed(target, ErrorInfo.from_wire(error))
    return outcome.get("result")


def invoke_async(source: str, target: str, payload: Any = None) -> str:
    """Queue an invocation of ``target`` (delivered at least once, retried, then
    dead-lettered); returns its id at once."""
    handle = _handle(source, target)
    return str(handle.invoke_async(encode(target, payload, ASYNC_LIMIT, "asynchronous")))
