"""The frames that cross the pipes between the gateway and a worker.

A frame is one kind byte, a 4-byte big-endian length and that many bytes of
JSON. Kinds:

- ``Q`` gateway -> worker: ``{"id", "deadline_ms", "event"}`` where ``event``
  is an event's ``to_wire()`` form;
- ``R`` worker -> gateway: ``{"id", "outcome", "oom"}``, ``outcome`` being
  ``Outcome.to_wire()``;
- ``L`` worker -> gateway: ``{"id", "level", "message"}``, a log record of the
  invocation ``id``.

Two kinds carry an HTTP body as raw bytes instead of base64 inside JSON (the
hot path: no base64 either way, no body in the JSON): their payload is a
4-byte big-endian length, that many bytes of metadata in :mod:`marshal` form
(about twice as fast as JSON both ways; both ends are the same interpreter,
and the pipes join only the gateway and the workers it forked), then the raw
body, which the decoder hands over as the message's ``"raw"`` item:

- ``B`` gateway -> worker: like ``Q`` for an ``http`` event whose ``body``
  is left out of the JSON (it is the raw part);
- ``S`` worker -> gateway: the answer to a ``B`` frame,
  ``{"id", "oom", "result", "response": {"status", "head", "cors"} | None,
  "error", "logs"}`` with the response body as the raw part; ``head`` is the
  response's header lines, checked and rendered by the worker
  (:func:`response_head`), ``cors`` whether the function set any
  ``access-control-*`` header itself.

A ``B`` frame's ``event`` carries the request's header lines as they came,
``"raw_headers": [(name, value), ...]`` (bytes), instead of ``headers``: the
worker builds the event's header map, so the gateway does not.

``R`` and ``S`` frames may carry ``"logs"``: ``[file lines, terminal text]``,
the log records of a quick invocation formatted by the worker
(:func:`~sls_py_local.logformat.format_record`), sent with its result in one write.

Stdlib only: the worker side imports it after fork.
"""

from __future__ import annotations

import json
import marshal
import os
import re
import struct
from collections.abc import Callable
from typing import Any

HEADER = struct.Struct(">cI")
REQUEST = b"Q"
RESULT = b"R"
LOG = b"L"
RAW_REQUEST = b"B"
RAW_RESULT = b"S"
_RAW_KINDS = (RAW_REQUEST, RAW_RESULT)
_META = struct.Struct(">I")


_encoder = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False
)  # one instance: json.dumps with options builds one per call; strict, as every body is


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]|[^\x00-\xff]")
_good_names: set[str] = set()


def response_head(headers: dict[str, str]) -> tuple[str, bool]:
    """A response's header lines (``"name: value\\r\\n"`` each) and whether any
    is an ``access-control-*`` header. Raises :class:`ValueError` naming the
    headers whose name is not an HTTP token or whose value would break the
    message (CR, LF, NUL, or a character beyond Latin-1)."""
    bad = []
    cors = False
    for k, v in headers.items():
        if k not in _good_names:
            if not _TOKEN.match(k):
                bad.append(k)
                continue
            _good_names.add(k)
        if _BAD_VALUE.search(v):
            bad.append(k)
        elif k[:15] == "access-control-":
            cors = True
    if bad:
        raise ValueError(f"invalid response header(s) {bad}")
    return "".join([f"{k}: {v}\r\n" for k, v in headers.items()]), cors


def encode(kind: bytes, message: Any) -> bytes:
    """One frame holding ``message`` as compact JSON."""
    data = _encoder.encode(message).encode("utf-8")
    return HEADER.pack(kind, len(data)) + data


def encode_raw(kind: bytes, message: Any, raw: bytes) -> bytes:
    """One frame of a raw kind: ``message`` (JSON-able data) marshalled, then ``raw`` as is."""
    try:
        data = marshal.dumps(message)
    except ValueError:  # subclasses of str, int ...: plain JSON types first
        data = marshal.dumps(json.loads(_encoder.encode(message)))
    return b"".join(
        (HEADER.pack(kind, _META.size + len(data) + len(raw)), _META.pack(len(data)), data, raw)
    )


def decode(kind: bytes, payload: bytes | bytearray) -> Any:
    """The message of a frame's payload (a raw kind's body is its ``"raw"`` item)."""
    if kind in _RAW_KINDS:
        (size,) = _META.unpack_from(payload)
        end = _META.size + size
        message = marshal.loads(payload[_META.size : end])
        message["raw"] = bytes(payload[end:])
        return message
    return json.loads(payload)


class FrameDecoder:
    """Feeds bytes in, calls ``on_frame(kind, message)`` for each whole frame."""

    __slots__ = ("_buffer", "_on_frame")

    def __init__(self, on_frame: Callable[[bytes, Any], None]) -> None:
        self._buffer = bytearray()
        self._on_frame = on_frame

    def feed(self, data: bytes) -> None:
        """Add ``data``; dispatch every frame it completes."""
        buf = self._buffer
        if buf:
            buf += data
            if len(buf) < HEADER.size or len(buf) < HEADER.size + HEADER.unpack_from(buf)[1]:
                return  # the first frame is still incomplete: no copy yet
            data = bytes(buf)
            buf.clear()
        # frames are decoded straight from ``data`` (usually exactly one frame)
        size = HEADER.size
        total = len(data)
        offset = 0
        while total - offset >= size:
            kind, length = HEADER.unpack_from(data, offset)
            end = offset + size + length
            if total < end:
                break
            message = decode(kind, data[offset + size : end])
            offset = end
            self._on_frame(kind, message)
        if offset < total:
            buf += data[offset:]


def read_exact(fd: int, n: int) -> bytes | None:
    """Exactly ``n`` bytes from ``fd`` (blocking), or ``None`` at end of file."""
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> tuple[bytes, Any] | None:
    """The next frame from ``fd`` (blocking), or ``None`` when the pipe closed."""
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    kind, length = HEADER.unpack(head)
    data = read_exact(fd, length) if length else b""
    if data is None:
        return None
    return kind, decode(kind, data)


class FrameReader:
    """Blocking frame reads from ``fd`` with one ``read`` per frame when it fits."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def _fill(self, n: int) -> bool:
        while len(self.buffer) < n:
            chunk = os.read(self.fd, max(n - len(self.buffer), 1 << 16))
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read(self) -> tuple[bytes, Any] | None:
        """The next frame, or ``None`` when the pipe closed."""
        if not self._fill(HEADER.size):
            return None
        kind, length = HEADER.unpack_from(self.buffer)
        end = HEADER.size + length
        if not self._fill(end):
            return None
        data, self.buffer = self.buffer[HEADER.size : end], self.buffer[end:]
        return kind, decode(kind, data)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (blocking)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
