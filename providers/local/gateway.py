"""What the local gateway answers, the way API Gateway (REST) would.

========================================  =====================================
situation                                 answer
========================================  =====================================
no route for method and path              403 ``{"message": "Missing Authentication Token"}``
OPTIONS on a path with a CORS route       204 preflight from the route's CORS config
(unless an OPTIONS route matches)         (it beats an ANY route)
``api_key`` route without a valid key     403 ``{"message": "Forbidden"}``
key over its usage plan                   429 ``Too Many Requests`` / ``Limit Exceeded``
body over 6 MB                            413 ``{"message": "Request Too Long"}``, at once
                                          for a ``Content-Length`` over it
HTTP/1.1 without ``Host``                 400, from the head (see :mod:`.connection`)
request not all there after 10 s          408, and the connection closes (``read_timeout_s``)
function at concurrency limit, queue full 429 ``{"message": "Too Many Requests"}``
handler raised (unhandled)                502 ``{"message": "Internal server error"}``
worker crashed or ran out of memory       502 ``{"message": "Internal server error"}``
a response HTTP cannot carry (a header    502 ``{"message": "Internal server error"}``,
with CR/LF, a status outside 100-599)     the reason in the function's log
timeout                                   504 ``{"message": "Endpoint request timed out"}``
invalid JSON / validation error           400 with details (from the runtime; NaN,
                                          ``1e999``, 5,000 digits, too deep included)
malformed HTTP, bad UTF-8 in the URL      400 with what is wrong
========================================  =====================================

Routes with CORS get CORS headers on every response, errors included. Tracebacks
only ever go to the server log.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

import httptools
from sls_py.routing import Router
from sls_py.runtime.events import dumps
from sls_py.spec import CorsSpec

from .connection import HttpConnection, Request
from .keys import KeyChecker, UsageLimiter
from .logs import LogSink
from .workers import FunctionPool

_JSON = ("content-type", "application/json")
_ALL_METHODS = ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"]
_PREFIX = str(uuid.uuid4())[:24]  # request ids: a random UUID prefix per run + a counter
_counter = itertools.count(1)


def _message(text: str) -> bytes:
    return dumps({"message": text})


class Route:
    """A route of the gateway: which function, and its key and CORS settings."""

    __slots__ = ("api_key", "cors", "function", "method", "no_origin_cors", "path", "pool")

    def __init__(
        self, method: str, path: str, pool: FunctionPool, api_key: bool, cors: CorsSpec | None
    ) -> None:
        self.method, self.path, self.pool, self.api_key, self.cors = (
            method,
            path,
            pool,
            api_key,
            cors,
        )
        self.function = pool.fn.name
        self.no_origin_cors = _cors_for(cors, None)  # most requests: computed once


_Cors = tuple[list[tuple[str, str]], str]


def _cors_for(cors: CorsSpec | None, origin: str | None) -> _Cors:
    """The CORS headers for a request from ``origin``, as a list and rendered."""
    if cors is None:
        return [], ""
    extra = cors_headers(cors, origin)
    return extra, "".join([f"{k}: {v}\r\n" for k, v in extra])


def cors_headers(cors: CorsSpec, origin: str | None) -> list[tuple[str, str]]:
    """The CORS response headers for a request from ``origin``."""
    wildcard = "*" in cors.origins
    headers: list[tuple[str, str]] = []
    if wildcard and not cors.allow_credentials:
        headers.append(("access-control-allow-origin", "*"))
    elif origin is not None and (wildcard or origin in cors.origins):
        headers.append(("access-control-allow-origin", origin))
        headers.append(("vary", "Origin"))
    if cors.allow_credentials:
        headers.append(("access-control-allow-credentials", "true"))
    return headers


class Gateway:
    """Routes parsed requests to function pools and turns outcomes into responses."""

    def __init__(
        self, routes: list[Route], keys: KeyChecker, limiter: UsageLimiter, logs: LogSink
    ) -> None:
        self.router: Router[Route] = Router()
        for r in routes:
            self.router.add(r.method, r.path, r)
        self.routes = routes
        self.keys, self.limiter, self.logs = keys, limiter, logs

    def handle(self, conn: HttpConnection, req: Request) -> None:
        """Answer ``req`` on ``conn`` (now, or when the function's outcome arrives)."""
        if req.reject is not None and req.reject[0] != 413:
            conn.respond(req.reject[0], [_JSON], _message(req.reject[1]))
            return
        try:
            url = httptools.parse_url(req.url)
            raw_path = url.path or b"/"
            path = (unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path).decode("utf-8")
            raw_query = url.query
            pairs = (
                parse_qsl(raw_query.decode("utf-8"), keep_blank_values=True, errors="strict")
                if raw_query
                else ()
            )
        except httptools.HttpParserInvalidURLError:
            conn.respond(400, [_JSON], _message("The request URL is not valid"))
            return
        except UnicodeDecodeError:
            conn.respond(
                400, [_JSON], _message("The request path or query string is not valid UTF-8")
            )
            return
        origin = req.origin.decode("latin-1") if req.origin is not None else None
        match = self.router.match(req.method, path)
        if req.method == "OPTIONS" and (match is None or match.target.method != "OPTIONS"):
            # the preflight of a CORS route beats an ANY route (as API Gateway's
            # OPTIONS method does), not a route declared for OPTIONS itself
            preflight = self._preflight(path, origin)
            if preflight is not None:
                conn.respond(204, preflight, b"")
                return
        if match is None:
            conn.respond(403, [_JSON], _message("Missing Authentication Token"))
            return
        route = match.target
        cors = route.no_origin_cors if origin is None else _cors_for(route.cors, origin)
        extra = cors[0]
        if req.reject is not None:  # 413, known only now that the route is
            conn.respond(413, [_JSON, *extra], _message(req.reject[1]))
            return
        if route.api_key:
            presented = req.api_key
            key = self.keys.identify(presented.decode("latin-1") if presented is not None else None)
            if key is None:
                conn.respond(403, [_JSON, *extra], _message("Forbidden"))
                return
            if self.limiter.usage is not None:
                refused = self.limiter.check(key)
                if refused is not None:
                    conn.respond(429, [_JSON, *extra], _message(refused))
                    return
        query: dict[str, list[str]] = {}
        for k, v in pairs:
            query.setdefault(k, []).append(v)
        rid = f"{_PREFIX}{next(_counter):012x}"
        event = {  # HttpRequest(...).to_wire(), built directly: this is the hot path
            "type": "http",
            "method": req.method,
            "path": path,
            "route": match.route,
            "path_params": match.params,
            "query": query,
            "raw_headers": req.headers,  # the worker builds the header map
            "source_ip": conn.peer,
        }  # the body travels raw, next to it

        def done(outcome: dict[str, Any]) -> None:
            self._reply(conn, route, rid, cors, outcome)

        if not route.pool.submit(event, done, rid, req.body):
            self.logs.emit(
                route.function,
                rid,
                "WARNING",
                "throttled: at the concurrency limit and the queue is full",
            )
            conn.respond(429, [_JSON, *extra], _message("Too Many Requests"))

    def _reply(
        self,
        conn: HttpConnection,
        route: Route,
        rid: str,
        cors: _Cors,
        outcome: dict[str, Any],
    ) -> None:
        response = outcome.get("response")
        if response is not None:
            # checked and rendered by the worker (channel.response_head)
            head = response["head"]
            if cors[1] and not response["cors"]:
                head += cors[1]
            conn.send(response["status"], f"{head}x-request-id: {rid}\r\n", response["body"])
            return
        extra = cors[0]
        error = outcome.get("error") or {}
        code = error.get("status")
        if code == 504:
            conn.respond(
                504, [_JSON, *extra, ("x-request-id", rid)], _message("Endpoint request timed out")
            )
        elif code in (429, 503):
            conn.respond(
                code, [_JSON, *extra, ("x-request-id", rid)], _message(error.get("message", ""))
            )
        else:
            conn.respond(
                502, [_JSON, *extra, ("x-request-id", rid)], _message("Internal server error")
            )

    def _preflight(self, path: str, origin: str | None) -> list[tuple[str, str]] | None:
        methods = self.router.methods_for(path)
        cors = None
        for m in methods:
            found = self.router.match(m if m != "ANY" else "GET", path)
            if found is not None and found.target.cors is not None:
                cors = found.target.cors
                break
        if cors is None:
            return None
        allowed = cors.methods or sorted(
            {x for m in methods for x in (_ALL_METHODS if m == "ANY" else [m])} | {"OPTIONS"}
        )
        return [
            *cors_headers(cors, origin),
            ("access-control-allow-methods", ",".join(allowed)),
            ("access-control-allow-headers", ",".join(cors.headers)),
            ("access-control-max-age", str(cors.max_age_s)),
        ]
