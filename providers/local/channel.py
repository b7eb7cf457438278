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
  ``{"id", "oom", "result", "response": {"status", "headers"} | None, "error",
  "logs"}`` with the response body as the raw part.

``R`` and ``S`` frames may carry ``"logs"``: ``[[level, message], ...]``, the
log records of a quick invocation, sent with its result in one write.

Stdlib only: the worker side imports it after fork.
"""

from __future__ import annotations

import json
import marshal
import os
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
    separators=(",", ":")
)  # one instance: json.dumps with options builds one per call


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
        buf += data
        size = HEADER.size
        offset = 0
        while len(buf) - offset >= size:
            kind, length = HEADER.unpack_from(buf, offset)
            end = offset + size + length
            if len(buf) < end:
                break
            message = decode(kind, buf[offset + size : end])
            offset = end
            self._on_frame(kind, message)
        if offset:
            del buf[:offset]


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
