"""Errors a function raises or that the runtime reports.

These live in the runtime because they cross the process boundary: a handler
raises :class:`HttpError`, a provider turns it into a status code.

    Exception
     +-- HttpError          raised by handlers: "answer with this status"
     +-- InvalidInput       the payload did not validate (always a 400)
     +-- InvokeError        an invocation that cannot be made (sls_py.runtime.invoke)
     +-- FeatureNotPacked   (an ImportError) a feature's module is not in this package
"""

from __future__ import annotations

from .records import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any


class HttpError(Exception):
    """Raise in a handler to answer with ``status`` and ``{"message": message}``.

    Works the same for every trigger: over HTTP it becomes the response status;
    from ``sls-py invoke`` it is reported as an error with that status.
    """

    def __init__(self, status: int, message: str, *, details: Any = None) -> None:
        if not 400 <= int(status) <= 599:
            raise ValueError(f"HttpError status must be 4xx or 5xx, got {status}")
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.details = details


class InvalidInput(Exception):
    """The input could not be turned into the handler's annotated type."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class ErrorInfo(Record):
    """A function error as data: what crosses from a worker to a provider.

    ``status`` is set for errors that have an HTTP meaning (HttpError, invalid
    input, timeout); it is ``None`` for an unhandled exception.
    """

    __match_args__ = ("type", "message", "status", "traceback", "details")

    def __init__(
        self,
        type: str,
        message: str,
        status: int | None = None,
        traceback: list[str] | None = None,
        details: Any = None,
    ) -> None:
        self.type = type
        self.message = message
        self.status = status
        self.traceback: list[str] = [] if traceback is None else traceback
        self.details: Any = details

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "status": self.status,
            "traceback": self.traceback,
            "details": self.details,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ErrorInfo:
        return cls(
            type=data["type"],
            message=data["message"],
            status=data.get("status"),
            traceback=list(data.get("traceback") or []),
            details=data.get("details"),
        )


class InvokeError(Exception):
    """An invocation that cannot be made: undeclared target, payload over the limit,
    or a driver that cannot invoke."""


def undeclared_target(source: str, target: str) -> InvokeError:
    """The error for ``source`` invoking ``target`` without declaring it."""
    return InvokeError(
        f"function {source!r} may not invoke {target!r}: it is not a declared target; "
        f"declare it with @app.function(name={source!r}, invokes=[{target!r}])"
    )


class FeatureNotPacked(ImportError):
    """A feature's runtime module is not in this function's package: a provider packs
    it only for an app that declares the feature (e.g. ``invokes=[...]``)."""


#: How an app declares the feature each optional runtime module serves.
_DECLARE = {
    "cache": "declare the cache with app.cache(...) and deploy again",
    "config": "declare the app's config with app.config(...) and deploy again",
    "database": "declare the database with app.database(...) and deploy again",
    "invoke": "declare the target with @app.function(..., invokes=[...]) and deploy again",
}


def feature_module(name: str) -> Any:
    """Import ``sls_py.runtime.<name>``, or raise :class:`FeatureNotPacked` saying how
    to declare the feature that gets it packed."""
    import importlib

    module = f"{__package__}.{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        hint = _DECLARE.get(name, "declare the feature it serves")
        raise FeatureNotPacked(f"{module} is not in this function's package: {hint}") from None
