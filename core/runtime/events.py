"""Neutral events: what a handler receives, whichever provider delivered it.

Every event can be turned into plain JSON data (``to_wire``) and back
(``event_from_wire``), which is how events cross process boundaries.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class HttpRequest:
    """An HTTP request as a request-style handler sees it.

    ``headers`` keys are lower case and, like ``query``, map to every value
    that was sent (repeated headers and query values are kept).
    """

    method: str
    path: str
    route: str = ""
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""
    source_ip: str = ""

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
        """The body parsed as JSON."""
        return json.loads(self.body)

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


@dataclass
class Response:
    """What a request-style handler returns.

    ``body`` may be bytes, text, or any JSON-able value (a dict, a list, a
    pydantic model), which is sent as ``application/json``.
    """

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)

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
            body=base64.b64decode(data.get("body") or ""),
        )


@dataclass
class UploadEvent:
    """An object was created in a bucket. ``bucket`` is the app's name for it."""

    bucket: str
    key: str
    size: int
    etag: str | None = None
    content_type: str | None = None
    time: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"type": "upload", **self.__dict__}


@dataclass
class ScheduleEvent:
    """A schedule fired. ``time`` is the scheduled time, ISO 8601 in UTC."""

    schedule: str
    expression: str
    time: str
    payload: Any = None

    def to_wire(self) -> dict[str, Any]:
        return {"type": "schedule", **self.__dict__}


@dataclass
class QueueMessage:
    """One message from a queue."""

    id: str
    body: str
    queue: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    receive_count: int = 1

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class QueueBatch:
    """A batch of queue messages.

    A handler that takes a batch returns the ids of the messages it failed
    (or ``None`` when all succeeded); raising fails the whole batch. A handler
    annotated with :class:`QueueMessage` is called once per message instead,
    and a message whose call raises is failed alone.
    """

    queue: str
    messages: list[QueueMessage] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "queue",
            "queue": self.queue,
            "messages": [m.__dict__ for m in self.messages],
        }


@dataclass
class Payload:
    """A direct invocation: a JSON value from ``sls-py invoke`` or a test."""

    payload: Any = None

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
            body=base64.b64decode(data.get("body") or ""),
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


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (pydantic models and dataclasses included)."""
    return json.loads(dumps(value))


def dumps(value: Any) -> bytes:
    """Compact JSON bytes for ``value``."""
    return json.dumps(value, default=_default, separators=(",", ":")).encode("utf-8")
