"""sls-py: write Python serverless functions once, run them on any provider.

The names here are what an app imports. They come from the light-weight
declaration and runtime modules only, each imported on first use, so importing
``sls_py`` inside a function costs little at cold start.
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any

    from .app import (
        App,
        Cors,
        FunctionDef,
        HttpTrigger,
        QueueTrigger,
        ScheduleTrigger,
        UploadTrigger,
        UsageLimits,
        http,
        queue,
        schedule,
        upload,
    )
    from .runtime import (
        Bucket,
        Context,
        HttpError,
        HttpRequest,
        Queue,
        QueueBatch,
        QueueMessage,
        Response,
        ScheduleEvent,
        Table,
        UploadEvent,
    )
    from .runtime.cache import Cache
    from .runtime.config import Config, ConfigMissing
    from .runtime.database import Database, DatabaseError
    from .runtime.invoke import FanoutFailed, InvokeError, InvokeFailed


_FROM_APP = frozenset(
    {"App", "Cors", "FunctionDef", "HttpTrigger", "QueueTrigger", "ScheduleTrigger", "UploadTrigger"}
    | {"UsageLimits", "http", "queue", "schedule", "upload"}
)
_FROM_RUNTIME = frozenset(
    {"Bucket", "Context", "HttpError", "HttpRequest", "Queue", "QueueBatch", "QueueMessage"}
    | {"Response", "ScheduleEvent", "Table", "UploadEvent"}
)


def __getattr__(name: str) -> Any:
    # every name is imported on first use: sls-py's own processes (the gateway of a
    # warm `sls-py run`) import sls_py.errors & co. without the declaration modules
    if name in _FROM_APP:
        from . import app

        return getattr(app, name)
    if name in _FROM_RUNTIME:
        from . import runtime

        return getattr(runtime, name)
    # hookimpl is for plugins; importing pluggy only when asked keeps functions light
    if name == "hookimpl":
        from .hookspecs import hookimpl

        return hookimpl
    if name == "InvokeError":
        from .runtime.errors import InvokeError

        return InvokeError
    # loaded on first use, and packed (on AWS) only for an app that declares the feature
    if name in ("FanoutFailed", "InvokeFailed"):
        from .runtime.errors import feature_module

        return getattr(feature_module("invoke"), name)
    if name == "Cache":
        from .runtime.errors import feature_module

        return feature_module("cache").Cache
    if name in ("Config", "ConfigMissing"):
        from .runtime.errors import feature_module

        return getattr(feature_module("config"), name)
    if name in ("Database", "DatabaseError"):
        from .runtime.errors import feature_module

        return getattr(feature_module("database"), name)
    raise AttributeError(f"module 'sls_py' has no attribute {name!r}")

__all__ = [
    "App",
    "Bucket",
    "Cache",
    "Config",
    "ConfigMissing",
    "Context",
    "Cors",
    "Database",
    "DatabaseError",
    "FanoutFailed",
    "FunctionDef",
    "HttpError",
    "HttpRequest",
    "HttpTrigger",
    "InvokeError",
    "InvokeFailed",
    "Queue",
    "QueueBatch",
    "QueueMessage",
    "QueueTrigger",
    "Response",
    "ScheduleEvent",
    "ScheduleTrigger",
    "Table",
    "UploadEvent",
    "UploadTrigger",
    "UsageLimits",
    "__version__",
    "hookimpl",
    "http",
    "queue",
    "schedule",
    "upload",
]
