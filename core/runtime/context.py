"""The context a handler receives as its second argument."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Context:
    """Facts about the current invocation.

    ``deadline_ms`` is a wall-clock deadline in epoch milliseconds, set by the
    provider from the function's timeout, so :meth:`remaining_ms` is real.
    """

    request_id: str
    function_name: str
    stage: str
    deadline_ms: int
    memory_mb: int = 128
    provider: str = ""
    logger: logging.Logger | logging.LoggerAdapter[Any] = field(
        default_factory=lambda: logging.getLogger("sls_py.function")
    )

    def remaining_ms(self) -> int:
        """Milliseconds left before the provider stops this invocation."""
        return max(0, int(self.deadline_ms - time.time() * 1000))

    # AWS's name for the same thing, so code written for Lambda keeps working.
    get_remaining_time_in_millis = remaining_ms


def make_logger(function_name: str, request_id: str) -> logging.LoggerAdapter[Any]:
    """A logger whose records carry the function name and request id."""
    base = logging.getLogger(f"sls_py.function.{function_name}")
    return logging.LoggerAdapter(base, {"function": function_name, "request_id": request_id})
