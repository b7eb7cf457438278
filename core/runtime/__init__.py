"""What runs inside a function: events, context, errors, resources, dispatch.

This package imports only the standard library (pydantic only when a handler's
annotation needs validating), because it is shipped into every function
package and its import time is cold-start time.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from .cache import Cache
    from .context import Context
    from .database import Database, DatabaseError
    from .dispatch import Outcome, execute, find_function, load_app, signature_of
    from .errors import ErrorInfo, HttpError, InvalidInput
    from .events import (
        Event,
        HttpRequest,
        Payload,
        QueueBatch,
        QueueMessage,
        Response,
        ScheduleEvent,
        UploadEvent,
        event_from_wire,
    )
    from .invoke import Fanout, FanoutFailed, InvokeError, InvokeFailed
    from .resources import Bucket, MemoryDriver, Queue, ResourceError, Table, use_driver

_INVOKE = ("Fanout", "FanoutFailed", "InvokeError", "InvokeFailed")


#: each name's module: imported on first use, so importing one submodule (the
#: gateway reads ``sls_py.runtime.jsonwire`` before it starts the functions'
#: templates) does not import the others
_NAMES = {
    "Context": "context",
    **dict.fromkeys(("Outcome", "execute", "find_function", "load_app", "signature_of"), "dispatch"),
    **dict.fromkeys(("ErrorInfo", "HttpError", "InvalidInput"), "errors"),
    **dict.fromkeys(
        [
            "Event",
            "HttpRequest",
            "Payload",
            "QueueBatch",
            "QueueMessage",
            "Response",
            "ScheduleEvent",
            "UploadEvent",
            "event_from_wire",
        ],
        "events",
    ),
    **dict.fromkeys(("Bucket", "MemoryDriver", "Queue", "ResourceError", "Table", "use_driver"), "resources"),
}


def __getattr__(name: str) -> object:
    module = _NAMES.get(name)
    if module is not None:
        from importlib import import_module

        value = getattr(import_module(f".{module}", __name__), name)
        globals()[name] = value  # found directly next time
        return value
    # invoking and fan-out load on first use: a function that does neither never pays
    if name == "InvokeError":
        from .errors import InvokeError

        return InvokeError
    if name in _INVOKE:
        from .errors import feature_module

        return getattr(feature_module("invoke"), name)
    if name == "Cache":  # packed only for an app that declares one
        from .errors import feature_module

        return feature_module("cache").Cache
    if name in ("Database", "DatabaseError"):  # packed only for an app that declares one
        from .errors import feature_module

        return getattr(feature_module("database"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Bucket",
    "Cache",
    "Context",
    "Database",
    "DatabaseError",
    "ErrorInfo",
    "Event",
    "Fanout",
    "FanoutFailed",
    "HttpError",
    "HttpRequest",
    "InvalidInput",
    "InvokeError",
    "InvokeFailed",
    "MemoryDriver",
    "Outcome",
    "Payload",
    "Queue",
    "QueueBatch",
    "QueueMessage",
    "ResourceError",
    "Response",
    "ScheduleEvent",
    "Table",
    "UploadEvent",
    "event_from_wire",
    "execute",
    "find_function",
    "load_app",
    "signature_of",
    "use_driver",
]
