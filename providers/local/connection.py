"""The gateway's HTTP/1.1 connections: httptools' parser on asyncio protocols.

httptools (llhttp) does all the parsing; this module keeps per-connection
state, enforces size limits while parsing, answers pipelined requests in order
and writes each response in one ``write`` with TCP_NODELAY set (no Nagle
stalls). What a request means is the :class:`~sls_py_local.gateway.Gateway`'s
business: it gets a :class:`Request` and answers with :meth:`HttpConnection.respond`.

What a client gets wrong is answered from the head, before any body is read,
and then the connection closes (the rest of what it sends is read and dropped
for a moment, so that it sees the answer rather than a reset):

- a ``Content-Length`` over the 6 MB payload limit: 413 at once (a chunked body
  gets it as soon as it passes the limit);
- an HTTP/1.1 request without ``Host``: 400;
- a URL over 8 KB (414) or headers over 10 KB (431).

Slow clients do not hold a connection forever (:class:`Timeouts`, from
``[tool.sls-py.providers.local]``): a request whose head and body have not all
arrived ``read_timeout_s`` after its first byte is answered 408 and the
connection closed (a slowloris); a connection with no request in progress
(just opened, or kept alive after an answer) is closed after
``keepalive_timeout_s`` without a new request. The time a function takes is
not the client's: no timeout runs while a request is being answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import time
from collections import deque
from email.utils import formatdate
from typing import TYPE_CHECKING

import httptools

if TYPE_CHECKING:
    from .gateway import Gateway

MAX_BODY = 6 * 1024 * 1024  # API Gateway -> Lambda payload limit
MAX_URL = 8 * 1024
MAX_HEADERS = 10 * 1024  # API Gateway's limit on the total size of request headers
_RAW_HEAD_LIMIT = MAX_URL + MAX_HEADERS + 4096  # bytes before the end of headers
_PIPELINE_LIMIT = 32
_LINGER_S = 2.0  # how long a refused request's further bytes are read and dropped

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in http.HTTPStatus}
# request headers the connection notes for the gateway (lower-case name -> attribute)
_NOTED = {
    b"x-api-key": "api_key",
    b"origin": "origin",
    b"content-length": "content_length",
    b"expect": "expect",
    b"host": "host",
}
_NOTED_SIZES = frozenset(len(n) for n in _NOTED)


class Request:
    """One parsed request, as the gateway receives it: ``headers`` as they came,
    and the first ``X-API-Key`` and ``Origin`` values (any case), which the
    gateway itself needs."""

    __slots__ = ("api_key", "body", "headers", "keep_alive", "method", "origin", "reject", "url")

    def __init__(
        self,
        method: str,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep_alive: bool,
        reject: tuple[int, str] | None = None,
        api_key: bytes | None = None,
        origin: bytes | None = None,
    ) -> None:
        self.method, self.url, self.headers, self.body = method, url, headers, body
        self.keep_alive, self.reject = keep_alive, reject
        self.api_key, self.origin = api_key, origin


_date_cache = [0, ""]


def _date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, formatdate(now, usegmt=True)
    return str(_date_cache[1])


class Timeouts:
    """How long a connection waits for its client, in seconds (0: for ever)."""

    __slots__ = ("keepalive_s", "period", "read_s")

    def __init__(self, read_s: float = 10.0, keepalive_s: float = 30.0) -> None:
        self.read_s, self.keepalive_s = read_s, keepalive_s
        # the connection's one timer wakes at least this often while either runs
        self.period = min((t for t in (read_s, keepalive_s) if t > 0), default=0.0)


class HttpConnection(asyncio.Protocol):
    """One client connection."""

    def __init__(self, gateway: Gateway, timeouts: Timeouts | None = None) -> None:
        self.gateway = gateway
        self.timeouts = timeouts or Timeouts()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.reading_since = 0.0  # loop time of the first byte of a request being read
        self.idle_since = 0.0  # loop time since which no request is in progress
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ""
        self.queue: deque[Request] = deque()
        self.current: Request | None = None
        self.busy = False
        self.dispatching = False
        self.paused = False
        self.broken = False
        self.raw_head = 0
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.header_bytes = 0
        self.in_head = True
        self.reject: tuple[int, str] | None = None
        self.api_key: bytes | None = None
        self.origin: bytes | None = None
        self.content_length: bytes | None = None
        self.expect: bytes | None = None
        self.host: bytes | None = None

    # --- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) and peer else ""
        if self.timeouts.period:
            self.loop = asyncio.get_running_loop()
            self.idle_since = self.loop.time()
            self.timer = self.loop.call_later(self.timeouts.period, self._tick)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.queue.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        if self.broken:
            return  # refused or failed: what follows is dropped
        if self.in_head:
            self.raw_head += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # the request itself is answered as plain HTTP; the upgrade is ignored
            self.broken = True
            if not self.busy and not self.queue and self.transport is not None:
                self.transport.close()
            return
        except httptools.HttpParserError as exc:
            if not self.broken:
                self._fail(400, f"Malformed HTTP request: {exc}")
                return
        if self.broken:  # refused from its head (see _refuse): answer it now
            if not self.busy:
                self._next()
            return
        if self.in_head and self.raw_head > _RAW_HEAD_LIMIT:
            self._fail(431, f"Request headers are larger than {MAX_HEADERS} bytes")

    # --- httptools callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        if self.loop is not None and not self.broken:
            self.reading_since = self.loop.time()
            self.idle_since = 0.0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)
        self.header_bytes += size + len(value) + 4
        if self.header_bytes <= MAX_HEADERS:
            self.headers.append((name, value))
            if size in _NOTED_SIZES:  # the few headers the gateway reads itself
                attr = _NOTED.get(name.lower())
                if attr is not None and getattr(self, attr) is None:
                    setattr(self, attr, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.raw_head = 0
        if self.broken:  # bytes after a refused request's head: parsed, never answered
            return
        if len(self.url) > MAX_URL:
            self._refuse(414, f"The request URL is longer than {MAX_URL} bytes")
        elif self.header_bytes > MAX_HEADERS:
            self._refuse(431, f"Request headers are larger than {MAX_HEADERS} bytes")
        else:
            length = self.content_length
            if length is not None and length.strip().isdigit() and int(length) > MAX_BODY:
                self._refuse(413, "Request Too Long")  # at once: the body is not waited for
            elif self.host is None and self.parser.get_http_version() == "1.1":
                self._refuse(400, "An HTTP/1.1 request must have a Host header")
            elif (
                self.expect is not None
                and self.expect.lower() == b"100-continue"
                and not self.busy
                and not self.queue
            ):
                assert self.transport is not None
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.reject is not None or self.broken:
            return
        self.body_size += len(body)
        if self.body_size > MAX_BODY:  # a chunked body past the limit
            self.body = []
            self._refuse(413, "Request Too Long")
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        self.reading_since = 0.0
        if self.broken:
            return
        request = Request(
            self.parser.get_method().decode("ascii", "replace"),
            self.url,
            self.headers,
            b"".join(self.body),
            self.parser.should_keep_alive(),
            self.reject,
            self.api_key,
            self.origin,
        )
        self._reset()
        self.queue.append(request)
        if len(self.queue) > _PIPELINE_LIMIT and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if not self.busy:
            self._next()

    # --- answering -------------------------------------------------------------

    def _fail(self, status: int, message: str) -> None:
        """A request that cannot be parsed: answer after earlier ones, then close."""
        self.broken = True
        self.reading_since = 0.0
        self.queue.append(Request("GET", b"/", [], b"", False, (status, message)))
        if not self.busy:
            self._next()

    def _refuse(self, status: int, message: str) -> None:
        """Answer the request being read from its head, after earlier ones, then
        close: nothing more is parsed (called from a parser callback: the answer
        goes out when ``data_received`` regains control)."""
        self.broken = True
        self.reading_since = 0.0
        method = self.parser.get_method().decode("ascii", "replace")
        request = Request(method, self.url, self.headers, b"", False, (status, message))
        request.api_key, request.origin = self.api_key, self.origin
        self.queue.append(request)

    def _tick(self) -> None:
        """The connection's timer: enforce :class:`Timeouts`, then wake again."""
        self.timer = None
        transport, loop = self.transport, self.loop
        if transport is None or loop is None:
            return
        now = loop.time()
        timeouts = self.timeouts
        due = now + timeouts.period
        if self.reading_since and timeouts.read_s and not self.paused:
            if now - self.reading_since >= timeouts.read_s:
                self._fail(408, f"The request did not arrive within {timeouts.read_s:g} s")
                return
            due = min(due, self.reading_since + timeouts.read_s)
        elif self.idle_since and timeouts.keepalive_s and not self.busy and not self.queue:
            if now - self.idle_since >= timeouts.keepalive_s:
                self.transport = None
                transport.close()
                return
            due = min(due, self.idle_since + timeouts.keepalive_s)
        self.timer = loop.call_at(max(due, now + 0.01), self._tick)

    def _next(self) -> None:
        self.dispatching = True
        try:
            while self.queue and not self.busy and self.transport is not None:
                self.current = self.queue.popleft()
                self.busy = True
                self.gateway.handle(self, self.current)
        finally:
            self.dispatching = False
        if self.paused and len(self.queue) < _PIPELINE_LIMIT // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
            if self.reading_since and self.loop is not None:  # paused by us: not the client's time
                self.reading_since = self.loop.time()
        if not self.busy and not self.queue and not self.reading_since and self.loop is not None:
            self.idle_since = self.loop.time()

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Send the response to the current request, in one write."""
        self.send(status, "".join([f"{k}: {v}\r\n" for k, v in headers]), body)

    def send(self, status: int, head: str, body: bytes) -> None:
        """:meth:`respond` with the header lines already rendered (``"name: value\\r\\n"``
        each, Latin-1): the connection adds the status line, ``content-length``,
        ``date`` and, when it closes, ``connection: close``."""
        request = self.current
        self.busy = False
        transport = self.transport
        if transport is None or request is None:
            return
        keep = request.keep_alive and not self.broken
        if status >= 200 and status not in (204, 304):
            length = f"content-length: {len(body)}\r\n"
        else:
            length, body = "", b""
        line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n"
        close = "" if keep else "connection: close\r\n"
        data = f"{line}{head}{length}date: {_date()}\r\n{close}\r\n".encode("latin-1")
        transport.write(data + body if request.method != "HEAD" else data)
        if not keep:
            self.queue.clear()
            self.transport = None
            if self.broken and transport.can_write_eof():
                # the client may still be sending: read and drop that for a moment
                # (closing with unread data would reset the connection, and the
                # client could lose this answer), then close
                transport.write_eof()
                asyncio.get_running_loop().call_later(_LINGER_S, transport.close)
            else:
                transport.close()
            return
        if not self.dispatching:
            self._next()
