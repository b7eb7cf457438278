"""The context a handler receives as its second argument."""

from __future__ import annotations

import time

from .records import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    import logging
    from typing import Any


class Context(Record):
    """Facts about the current invocation.

    ``deadline_ms`` is a wall-clock deadline in epoch milliseconds, set by the
    provider from the function's timeout, so :meth:`remaining_ms` is real.
    ``logger`` defaults to the ``sls_py.function`` logger.
    """

    __match_args__ = (
        "request_id",
        "function_name",
        "stage",
        "deadline_ms",
        "memory_mb",
        "provider",
        "logger",
    )

    def __init__(
        self,
        request_id: str,
        function_name: str,
        stage: str,
        deadline_ms: int,
        memory_mb: int = 128,
        provider: str = "",
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self.request_id = request_id
        self.function_name = function_name
        self.stage = stage
        self.deadline_ms = deadline_ms
        self.memory_mb = memory_mb
        self.provider = provider
        if logger is None:
            import logging

            logger = logging.getLogger("sls_py.function")
        self.logger: logging.Logger | logging.LoggerAdapter[Any] = logger

    def remaining_ms(self) -> int:
        """Milliseconds left before the provider stops this invocation."""
        return max(0, int(self.deadline_ms - time.time() * 1000))

    # AWS's name for the same thing, so code written for Lambda keeps working.
    get_remaining_time_in_millis = remaining_ms

    def invoke(self, function: str, payload: Any = None) -> Any:
        """Invoke ``function`` (declared in ``invokes``) and wait: its result, or
        ``InvokeFailed`` with its error; ``InvokeError`` for an undeclared target."""
        return _invoke_module(self.function_name, function).invoke(
            self.function_name, function, payload
        )

    def invoke_async(self, function: str, payload: Any = None) -> str:
        """Invoke ``function`` without waiting (at least once, retried, then
        dead-lettered; at most 256 KB of JSON); returns an id."""
        return _invoke_module(self.function_name, function).invoke_async(
            self.function_name, function, payload
        )

    def continue_with(self, state: Any) -> dict[str, str]:
        """Go on in a fresh invocation of this function (which must declare itself in
        ``invokes``) with ``state`` as its payload; return what this returns."""
        me = self.function_name
        return {"continued": _invoke_module(me, me).invoke_async(me, me, state)}


def _invoke_module(source: str, target: str) -> Any:
    """:mod:`sls_py.runtime.invoke`, packed only for an app whose functions invoke others:
    where it is missing, nothing was declared, so the error is the undeclared target's."""
    from .errors import FeatureNotPacked, feature_module, undeclared_target

    try:
        return feature_module("invoke")
    except FeatureNotPacked:
        raise undeclared_target(source, target) from None


def make_logger(function_name: str, request_id: str) -> logging.LoggerAdapter[Any]:
    """A logger whose records carry the function name and request id."""
    import logging  # loaded by every provider's worker already; not needed to import this module

    base = logging.getLogger(f"sls_py.function.{function_name}")
    return logging.LoggerAdapter(base, {"function": function_name, "request_id": request_id})
