"""Neutral events: what a handler receives, whichever provider delivered it.

Every event can be turned into plain JSON data (``to_wire``) and back
(``event_from_wire``), which is how events cross process boundaries.
"""

from __future__ import annotations

import json

from . import jsonwire
from .records import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any

# The events are value classes (repr, equality) written without @dataclass:
# see sls_py.runtime.records for why.


def _b64(data: bytes) -> str:
    import base64  # only wire forms need it: not imported at cold start

    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | bytes) -> bytes:
    import base64

    return base64.b64decode(text)


class HttpRequest(Record):
    """An HTTP request as a request-style handler sees it.

    ``headers`` keys are lower case and, like ``query``, map to every value
    that was sent (repeated headers and query values are kept).
    """

    __match_args__ = ("method", "path", "route", "path_params", "query", "headers", "body", "source_ip")

    def __init__(
        self,
        method: str,
        path: str,
        route: str = "",
        path_params: dict[str, str] | None = None,
        query: dict[str, list[str]] | None = None,
        headers: dict[str, list[str]] | None = None,
        body: bytes = b"",
        source_ip: str = "",
    ) -> None:
        self.method = method
        self.path = path
        self.route = route
        self.path_params: dict[str, str] = {} if path_params is None else path_params
        self.query: dict[str, list[str]] = {} if query is None else query
        self.headers: dict[str, list[str]] = {} if headers is None else headers
        self.body = body
        self.source_ip = source_ip

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        values = self.headers.get(name.lower())
        return values[0] if values else default

    def query_param(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as strict JSON; a body that is not (NaN, ``1e999``, too
        deep ...) raises :class:`~sls_py.runtime.jsonwire.InvalidJson`, a 400 if
        the handler lets it through."""
        return jsonwire.loads(self.body)

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "http",
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "path_params": self.path_params,
            "query": self.query,
            "headers": self.headers,
            "body": _b64(self.body),
            "source_ip": self.source_ip,
        }


class Response(Record):
    """What a request-style handler returns.

    ``body`` may be bytes, text, or any JSON-able value (a dict, a list, a
    pydantic model), which is sent as ``application/json``.
    """

    __match_args__ = ("status", "body", "headers")

    def __init__(self, status: int = 200, body: Any = b"", headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body: Any = body
        self.headers: dict[str, str] = {} if headers is None else headers

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """A JSON response."""
        return cls(status=status, body=data, headers=dict(headers or {}))

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        """The body as bytes and the headers, with a content type filled in."""
        headers = {k.lower(): str(v) for k, v in self.headers.items()}
        body = self.body
        if isinstance(body, bytes | bytearray | memoryview):
            raw = bytes(body)
            headers.setdefault("content-type", "application/octet-stream")
        elif isinstance(body, str):
            raw = body.encode("utf-8")
            headers.setdefault("content-type", "text/plain; charset=utf-8")
        else:
            raw = dumps(body)
            headers.setdefault("content-type", "application/json")
        return raw, headers

    def to_wire(self) -> dict[str, Any]:
        raw, headers = self.encoded()
        return {"status": self.status, "headers": headers, "body": _b64(raw)}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Response:
        return cls(
            status=int(data["status"]),
            headers=dict(data.get("headers") or {}),
            body=_unb64(data.get("body") or ""),
        )


class UploadEvent(Record):
    """An object was created in a bucket. ``bucket`` is the app's name for it."""

    __match_args__ = ("bucket", "key", "size", "etag", "content_type", "time")

    def __init__(
        self,
        bucket: str,
        key: str,
        size: int,
        etag: str | None = None,
        content_type: str | None = None,
        time: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.size = size
        self.etag = etag
        self.content_type = content_type
        self.time = time

    def to_wire(self) -> dict[str, Any]:
        return {"type": "upload", **self._asdict()}


class ScheduleEvent(Record):
    """A schedule fired. ``time`` is the scheduled time, ISO 8601 in UTC."""

    __match_args__ = ("schedule", "expression", "time", "payload")

    def __init__(self, schedule: str, expression: str, time: str, payload: Any = None) -> None:
        self.schedule = schedule
        self.expression = expression
        self.time = time
        self.payload: Any = payload

    def to_wire(self) -> dict[str, Any]:
        return {"type": "schedule", **self._asdict()}


class QueueMessage(Record):
    """One message from a queue."""

    __match_args__ = ("id", "body", "queue", "attributes", "receive_count")

    def __init__(
        self,
        id: str,
        body: str,
        queue: str = "",
        attributes: dict[str, str] | None = None,
        receive_count: int = 1,
    ) -> None:
        self.id = id
        self.body = body
        self.queue = queue
        self.attributes: dict[str, str] = {} if attributes is None else attributes
        self.receive_count = receive_count

    def json(self) -> Any:
        """The body parsed as strict JSON (see :meth:`HttpRequest.json`)."""
        return jsonwire.loads(self.body, "Message body")


class QueueBatch(Record):
    """A batch of queue messages.

    A handler that takes a batch returns the ids of the messages it failed
    (or ``None`` when all succeeded); raising fails the whole batch. A handler
    annotated with :class:`QueueMessage` is called once per message instead,
    and a message whose call raises is failed alone.
    """

    __match_args__ = ("queue", "messages")

    def __init__(self, queue: str, messages: list[QueueMessage] | None = None) -> None:
        self.queue = queue
        self.messages: list[QueueMessage] = [] if messages is None else messages

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "queue",
            "queue": self.queue,
            "messages": [m._asdict() for m in self.messages],
        }


class Payload(Record):
    """A direct invocation: a JSON value from ``sls-py invoke`` or a test."""

    __match_args__ = ("payload",)

    def __init__(self, payload: Any = None) -> None:
        self.payload: Any = payload

    def to_wire(self) -> dict[str, Any]:
        return {"type": "payload", "payload": self.payload}


Event = HttpRequest | UploadEvent | ScheduleEvent | QueueBatch | Payload


def event_from_wire(data: dict[str, Any]) -> Event:
    """Rebuild an event from its ``to_wire`` form."""
    kind = data.get("type")
    if kind == "payload":
        return Payload(data.get("payload"))
    if kind == "http":
        return HttpRequest(
            method=data["method"],
            path=data["path"],
            route=data.get("route", ""),
            path_params=dict(data.get("path_params") or {}),
            query={k: list(v) for k, v in (data.get("query") or {}).items()},
            headers={k.lower(): list(v) for k, v in (data.get("headers") or {}).items()},
            body=_unb64(data.get("body") or ""),
            source_ip=data.get("source_ip", ""),
        )
    if kind == "upload":
        return UploadEvent(**{k: v for k, v in data.items() if k != "type"})
    if kind == "schedule":
        return ScheduleEvent(**{k: v for k, v in data.items() if k != "type"})
    if kind == "queue":
        return QueueBatch(
            queue=data["queue"],
            messages=[QueueMessage(**m) for m in data.get("messages") or []],
        )
    raise ValueError(f"unknown event type {kind!r}")


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, Record):
        return value._asdict()
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return _b64(value)
    iso = getattr(value, "isoformat", None)
    if callable(iso):
        return iso()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_jsonable(value: Any, what: str = "the value") -> Any:
    """``value`` as plain JSON data (pydantic models and dataclasses included)."""
    return json.loads(dumps(value, what))


# one encoder for every body the runtime writes: strict (no NaN or Infinity,
# which strict parsers reject), compact, and built once rather than per call
_encode = json.JSONEncoder(default=_default, separators=(",", ":"), allow_nan=False).encode


def dumps(value: Any, what: str = "the value") -> bytes:
    """Compact, strict JSON bytes for ``value``: NaN and infinities raise a
    :class:`ValueError` that says where they are (``what`` names the value)."""
    try:
        return _encode(value).encode("utf-8")
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        try:
            plain = json.loads(json.dumps(value, default=_default))
        except (TypeError, ValueError):
            plain = None
        raise jsonwire.not_json(exc, plain, what) from None
