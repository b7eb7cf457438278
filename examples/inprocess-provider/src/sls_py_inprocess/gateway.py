"""The ``inprocess`` provider's HTTP gateway: routes, API keys and CORS, on uvicorn.

:class:`Gateway` turns a request into a response with the app's functions
running in this process; :func:`serve` puts it behind uvicorn on a real port
(``sls-py run --provider inprocess --port 0`` picks a free one and prints the
URL). The answers are the gateway contract of docs/providers.md: 403
``Missing Authentication Token`` for an unknown route, 413 ``Request Too Long``
for a body over 6 MB, 403 ``Forbidden`` for a missing or wrong API key, 502
``Internal server error`` for a crash, 504 ``Endpoint request timed out``.
"""

from __future__ import annotations

import hmac
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from sls_py.routing import Router
from sls_py.runtime import HttpRequest
from sls_py.runtime.events import dumps  # strict JSON, as every body the runtime writes
from sls_py.spec import CorsSpec, FunctionSpec, HttpTriggerSpec

from .runner import Runner

Headers = dict[str, str]
JSON = {"content-type": "application/json"}
MAX_BODY = 6 * 1024 * 1024  # the contract's payload limit (API Gateway's to Lambda)
ANY_METHODS = ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"]


def _json(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> tuple[int, Headers, bytes]:
    return status, {**JSON, **(headers or {})}, dumps(body)


class Gateway:
    """Answers HTTP requests for one app, in this process."""

    def __init__(self, runner: Runner, api_keys: list[str]) -> None:
        self.runner = runner
        self.api_keys = [k.encode() for k in api_keys]
        self.router: Router[tuple[FunctionSpec, HttpTriggerSpec]] = Router()
        for fn in runner.spec.functions:
            for t in fn.http_triggers():
                self.router.add(t.method, t.path, (fn, t))

    def _key_ok(self, headers: Mapping[str, list[str]]) -> bool:
        given = (headers.get("x-api-key") or [""])[0].encode()
        return any(hmac.compare_digest(given, k) for k in self.api_keys)

    @staticmethod
    def _cors_headers(cors: CorsSpec | None, origin: str | None) -> Headers:
        if cors is None:
            return {}
        if "*" in cors.origins and not cors.allow_credentials:
            allowed = "*"  # with or without an Origin header
        elif origin is not None and (origin in cors.origins or "*" in cors.origins):
            allowed = origin
        else:
            return {}
        out = {"access-control-allow-origin": allowed}
        if cors.allow_credentials:
            out["access-control-allow-credentials"] = "true"
        if allowed != "*":
            out["vary"] = "Origin"
        return out

    def _preflight(self, path: str, origin: str | None) -> tuple[int, Headers, bytes] | None:
        methods = [m for m in self.router.methods_for(path) if m != "OPTIONS"]
        listed = sorted({x for m in methods for x in (ANY_METHODS if m == "ANY" else [m])})
        for method in methods:
            match = self.router.match(method if method != "ANY" else "GET", path)
            if match is None or match.target[1].cors is None:
                continue
            cors = match.target[1].cors
            headers = self._cors_headers(cors, origin)
            headers.update(
                {
                    "access-control-allow-methods": ", ".join(
                        cors.methods or [*listed, "OPTIONS"]
                    ),
                    "access-control-allow-headers": ", ".join(cors.headers),
                    "access-control-max-age": str(cors.max_age_s),
                }
            )
            return 204, headers, b""
        return None

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, list[str]],
        body: bytes,
    ) -> tuple[int, Headers, bytes]:
        """One request in, one response out: ``(status, headers, body)``."""
        origin = next(iter(headers.get("origin") or []), None)
        match = self.router.match(method, path)
        if method == "OPTIONS" and (match is None or match.target[1].method != "OPTIONS"):
            answer = self._preflight(path, origin)  # beats an ANY route, not an OPTIONS one
            if answer is not None:
                return answer
        if match is None:
            return _json(403, {"message": "Missing Authentication Token"})
        fn, trigger = match.target
        cors = self._cors_headers(trigger.cors, origin)
        if len(body) > MAX_BODY:
            return _json(413, {"message": "Request Too Long"}, cors)
        if trigger.api_key and not self._key_ok(headers):
            return _json(403, {"message": "Forbidden"}, cors)
        request = HttpRequest(
            method=method,
            path=path,
            route=match.route,
            path_params=match.params,
            query=query,
            headers=headers,
            body=body,
        )
        outcome, _ = self.runner.run(fn.name, request)
        if outcome.response is None:
            status = 504 if outcome.error is not None and outcome.error.status == 504 else 502
            message = "Endpoint request timed out" if status == 504 else "Internal server error"
            return _json(status, {"message": message}, cors)
        raw, out_headers = outcome.response.encoded()
        return outcome.response.status, {**out_headers, **cors}, raw


ASGIApp = Callable[
    [
        dict[str, Any],
        Callable[[], Awaitable[dict[str, Any]]],
        Callable[[dict[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


def asgi(gateway: Gateway) -> ASGIApp:
    """The gateway as a raw ASGI application (functions run on a thread pool)."""
    import asyncio

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, list[str]] = {}
        for k, v in scope["headers"]:
            headers.setdefault(k.decode("latin-1").lower(), []).append(v.decode("latin-1"))
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        status, out, raw = await asyncio.to_thread(
            gateway.handle, scope["method"], scope["path"], query, headers, bytes(body)
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in out.items()],
            }
        )
        await send({"type": "http.response.body", "body": raw})

    return app


def serve(gateway: Gateway, host: str, port: int, announce: Callable[[str], None]) -> int:
    """Serve ``gateway`` until SIGINT/SIGTERM; ``announce`` gets the URL once bound."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # listening before the URL is announced: early clients queue, not fail
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    announce(f"http://{shown}:{bound}")
    config = uvicorn.Config(asgi(gateway), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    # The core does not handle signals for `run`. uvicorn stops gracefully on SIGINT and
    # SIGTERM, then raises the signal again for the handler that was there before: make
    # that one a no-op, so the process ends with exit code 0 instead of being killed.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: None)
    server.run(sockets=[sock])
    return 0
