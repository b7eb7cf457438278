"""What runs inside a function: events, context, errors, resources, dispatch.

This package imports only the standard library (pydantic only when a handler's
annotation needs validating), because it is shipped into every function
package and its import time is cold-start time.
"""

from __future__ import annotations

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
from .resources import Bucket, MemoryDriver, Queue, ResourceError, Table, use_driver

__all__ = [
    "Bucket",
    "Context",
    "Database",
    "DatabaseError",
    "ErrorInfo",
    "Event",
    "HttpError",
    "HttpRequest",
    "InvalidInput",
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
