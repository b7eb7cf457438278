"""Calling a handler with a neutral event: the one place that knows the styles.

A handler's first parameter's annotation says what it takes:

============================  =============================================
annotation                    what it receives
============================  =============================================
``HttpRequest``               the request (request style); returns Response
``UploadEvent``               an upload
``ScheduleEvent``             a schedule firing
``QueueBatch``                a batch of messages
``QueueMessage``              one message at a time (failures per message)
anything else, or none        the JSON payload, validated into the annotated
                              type with pydantic (payload style)
============================  =============================================

A second parameter, if present, receives the :class:`Context`.
Every provider calls :func:`execute`, so the semantics are the same everywhere.
"""

from __future__ import annotations

import importlib
import sys
import traceback

from . import jsonwire
from .context import Context
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
    dumps,
    to_jsonable,
)
from .records import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any

#: The key of a fan-out chunk's envelope (see :mod:`sls_py.runtime.invoke`).
FANOUT_KEY = "sls_py_fanout"

STYLES = {
    HttpRequest: "request",
    UploadEvent: "upload",
    ScheduleEvent: "schedule",
    QueueBatch: "queue",
    QueueMessage: "message",
}


class Outcome(Record):
    """The result of one invocation, as data.

    For an HTTP event, ``response`` is set unless the function failed with an
    unhandled error (then the gateway answers 502). For other events,
    ``result`` holds the JSON-able return value. ``error`` is set on failure.
    """

    __match_args__ = ("result", "response", "error")

    def __init__(
        self, result: Any = None, response: Response | None = None, error: ErrorInfo | None = None
    ) -> None:
        self.result = result
        self.response = response
        self.error = error

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_wire(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "response": self.response.to_wire() if self.response is not None else None,
            "error": self.error.to_wire() if self.error is not None else None,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            result=data.get("result"),
            response=Response.from_wire(data["response"]) if data.get("response") else None,
            error=ErrorInfo.from_wire(data["error"]) if data.get("error") else None,
        )


class Signature(Record):
    """What a handler takes, worked out once per handler."""

    __match_args__ = ("style", "annotation", "wants_context")

    def __init__(self, style: str, annotation: Any, wants_context: bool) -> None:
        self.style = style
        self.annotation = annotation
        self.wants_context = wants_context


_signatures: dict[Any, Signature] = {}
_adapters: dict[Any, Any] = {}


def signature_of(func: Any) -> Signature:
    """Classify ``func`` by its first parameter's annotation (cached)."""
    cached = _signatures.get(func)
    if cached is not None:
        return cached
    # imported here, once per handler, not at cold start
    import inspect
    import typing

    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: treat as unannotated
        hints = {}
    annotation = hints.get(params[0].name) if params else None
    style = STYLES.get(annotation, "payload") if isinstance(annotation, type) else "payload"
    sig = Signature(style=style, annotation=annotation, wants_context=len(params) >= 2)
    _signatures[func] = sig
    return sig


def _is_any(annotation: Any) -> bool:
    typing = sys.modules.get("typing")  # an annotation of typing.Any means typing is loaded
    return typing is not None and annotation is typing.Any


#: plain JSON types whose values pydantic returns as they are (``float`` also takes
#: an ``int``, as pydantic does): a handler taking one needs no pydantic at all
_PLAIN = frozenset({dict, list, str, int, bool})


def _validate(annotation: Any, payload: Any) -> Any:
    """``payload`` validated into ``annotation`` (pydantic is imported only if needed:
    not for ``dict``, ``list``, ``str``, ``int``, ``float`` or ``bool`` given a value
    of that type, which pydantic would return unchanged; ~100 ms of a worker's first
    call otherwise)."""
    if annotation is None or _is_any(annotation):
        return payload
    if annotation in _PLAIN and type(payload) is annotation:
        return payload
    if annotation is float and type(payload) in (int, float):
        return float(payload)
    adapter = _adapters.get(annotation)
    if adapter is None:
        from pydantic import TypeAdapter  # the app uses pydantic types: it is installed

        adapter = _adapters[annotation] = TypeAdapter(annotation)
    try:
        return adapter.validate_python(payload)
    except Exception as exc:
        from pydantic import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidInput("Invalid request body", errors) from None


def _call(func: Any, sig: Signature, arg: Any, ctx: Context) -> Any:
    return func(arg, ctx) if sig.wants_context else func(arg)


def _error_info(exc: BaseException) -> ErrorInfo:
    if isinstance(exc, HttpError):
        return ErrorInfo(type="HttpError", message=exc.message, status=exc.status, details=exc.details)
    if isinstance(exc, InvalidInput):
        return ErrorInfo(type="InvalidInput", message=exc.message, status=400, details=exc.errors)
    return ErrorInfo(
        type=type(exc).__name__,
        message=str(exc),
        traceback=traceback.format_exception(exc),
    )


_RESULT = "the function's result"


def _as_response(value: Any) -> Response:
    if isinstance(value, Response):
        body = value.body
        if body is None or isinstance(body, bytes | bytearray | memoryview | str):
            return value
        # a JSON body is encoded here, so that one JSON cannot carry (NaN, an
        # object it does not know) is a function error like any other
        headers = dict(value.headers)
        if not any(k.lower() == "content-type" for k in headers):
            headers["content-type"] = "application/json"
        return Response(status=value.status, body=dumps(body, _RESULT), headers=headers)
    if value is None:
        return Response(status=204)
    # serialized once, to the bytes ``Response.json(to_jsonable(value))`` would encode
    return Response(body=dumps(value, _RESULT), headers={"content-type": "application/json"})


def _error_response(info: ErrorInfo) -> Response:
    body: dict[str, Any] = {"message": info.message}
    if info.details is not None:
        body["errors" if info.type == "InvalidInput" else "details"] = info.details
    return Response.json(body, status=info.status or 502)


def _http_payload(request: HttpRequest) -> Any:
    """The payload a payload-style function gets from an HTTP request."""
    if request.body.strip():
        return jsonwire.loads(request.body)
    merged: dict[str, Any] = {k: v[0] for k, v in request.query.items() if v}
    merged.update(request.path_params)
    return merged


def _run_messages(func: Any, sig: Signature, batch: QueueBatch, ctx: Context) -> dict[str, Any]:
    failed: list[str] = []
    for message in batch.messages:
        try:
            _call(func, sig, message, ctx)
        except Exception:
            ctx.logger.exception("message %s failed", message.id)
            failed.append(message.id)
    return {"failed": failed}


def execute(func: Any, event: Event, ctx: Context) -> Outcome:
    """Run ``func`` for ``event`` and describe what happened. Never raises
    for errors of the handler's making."""
    sig = signature_of(func)
    try:
        if isinstance(event, HttpRequest):
            if sig.style == "request":
                return Outcome(response=_as_response(_call(func, sig, event, ctx)))
            if sig.style == "payload":
                arg = _validate(sig.annotation, _http_payload(event))
                return Outcome(response=_as_response(_call(func, sig, arg, ctx)))
            raise InvalidInput(f"function {ctx.function_name!r} does not take HTTP requests")
        if isinstance(event, QueueBatch) and sig.style == "message":
            return Outcome(result=_run_messages(func, sig, event, ctx))
        if isinstance(event, QueueBatch) and sig.style == "queue":
            failed = _call(func, sig, event, ctx)
            return Outcome(result={"failed": [str(f) for f in (failed or [])]})
        if isinstance(event, Payload):
            if sig.style != "payload":
                raise InvalidInput(
                    f"function {ctx.function_name!r} takes {sig.style} events, not a payload"
                )
            jsonwire.check_finite(event.payload, "Payload")  # parsed by someone else
            if isinstance(event.payload, dict) and FANOUT_KEY in event.payload:
                return _fanout_chunk(func, sig, event.payload, ctx)
            arg = _validate(sig.annotation, event.payload)
            return Outcome(result=to_jsonable(_call(func, sig, arg, ctx), _RESULT))
        expected = {UploadEvent: "upload", ScheduleEvent: "schedule", QueueBatch: "queue"}
        if sig.style in (expected[type(event)], "payload"):
            arg = event if sig.style != "payload" else _validate(sig.annotation, event.to_wire())
            return Outcome(result=to_jsonable(_call(func, sig, arg, ctx), _RESULT))
        raise InvalidInput(
            f"function {ctx.function_name!r} takes {sig.style} events, not {expected[type(event)]}"
        )
    except Exception as exc:
        info = _error_info(exc)
        if info.details is not None:
            try:  # details cross process boundaries and become a body: plain, strict JSON
                info.details = to_jsonable(info.details, "the error's details")
            except (TypeError, ValueError) as bad:
                ctx.logger.error("%s: left out of the answer", bad)
                info.details = None
        if info.status is None:
            ctx.logger.error("%s: %s", info.type, info.message, exc_info=exc)
        if isinstance(event, HttpRequest) and info.status is not None:
            return Outcome(response=_error_response(info), error=info)
        return Outcome(error=info)


def _fanout_chunk(func: Any, sig: Signature, envelope: dict[str, Any], ctx: Context) -> Outcome:
    """Run a fan-out worker on its chunk and record the result (or error) for ``map``."""
    from .invoke import record_chunk

    try:
        result = to_jsonable(_call(func, sig, _validate(sig.annotation, envelope.get("items")), ctx), _RESULT)
    except Exception as exc:
        info = _error_info(exc)
        record_chunk(envelope, error={"type": info.type, "message": info.message, "status": info.status})
        raise
    record_chunk(envelope, result=result)
    return Outcome(result=result)


def load_app(ref: str) -> Any:
    """Import ``module:attribute`` and return the app object it names."""
    module_name, _, attr = ref.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    return obj


def find_function(app: Any, name: str) -> Any:
    """The handler of function ``name`` in ``app``."""
    try:
        return app.functions[name].handler
    except KeyError:
        known = ", ".join(sorted(app.functions)) or "none"
        raise LookupError(f"app {app.name!r} has no function {name!r} (known: {known})") from None


def ensure_path(path: str) -> None:
    """Put ``path`` first on ``sys.path`` (once)."""
    if path not in sys.path:
        sys.path.insert(0, path)
