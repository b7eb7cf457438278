"""sls-py provider ``docsonly``: an HTTP gateway written from docs/providers.md alone.

The test of issue 14's goal: a provider written from the documented contract
(routes, the gateway's answers, API keys, CORS, the timeout error, SIGTERM),
with nothing read from the conformance suite or the other providers, in well
under 300 lines, passes the conformance suite. Functions run in the serving
process, one at a time, on a thread (so a timeout answers at once; the thread is
abandoned). Memory is declared as not emulated.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sls_py import hookimpl
from sls_py.config import Project, resolve_environment
from sls_py.provider import ApiKey, Invocation, ProviderInfo, RunOptions
from sls_py.routing import Router
from sls_py.runtime import Context, ErrorInfo, Event, HttpRequest, Outcome, Payload, execute, find_function
from sls_py.spec import CorsSpec, Spec
from sls_py.ui import UI

NAME = "docsonly"
MAX_BODY = 6 * 1024 * 1024
ANY_METHODS = ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"]
_serial = threading.Lock()  # functions share this process's environment
_apps: dict[str, Any] = {}

Answer = tuple[int, dict[str, str], bytes]


@hookimpl
def sls_py_provider_info() -> ProviderInfo:
    return ProviderInfo(
        name=NAME,
        version="0.1.0",
        description="An HTTP gateway written from docs/providers.md alone.",
        capabilities=frozenset(
            {"invoke", "trigger.http", "http.api_key", "http.cors", "function.timeout", "function.memory"}
        ),
        not_emulated={"function.memory": "functions share the gateway's process"},
    )


def run_function(spec: Spec, project: Project, function: str, event: Event) -> tuple[Outcome, str]:
    """Run ``function`` for ``event`` through ``execute()``, keeping its timeout."""
    fn = spec.function(function)
    app = _apps.get(str(project.root))
    if app is None:
        app = _apps[str(project.root)] = project.load_app()
    request_id = str(uuid.uuid4())
    ctx = Context(
        request_id=request_id,
        function_name=fn.name,
        stage=spec.stage,
        deadline_ms=int(time.time() * 1000 + fn.timeout_s * 1000),
        memory_mb=fn.memory_mb,
        provider=NAME,
    )
    box: list[Outcome] = []
    env = resolve_environment(fn.environment)
    with _serial:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        handler = find_function(app, fn.name)
        worker = threading.Thread(target=lambda: box.append(execute(handler, event, ctx)), daemon=True)
        worker.start()
        worker.join(fn.timeout_s)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if not box:  # the contract's timeout error, which execute() cannot build
        message = f"function {fn.name!r} timed out after {fn.timeout_s:g} s"
        return Outcome(error=ErrorInfo(type="TimeoutError", message=message, status=504)), request_id
    return box[0], request_id


@hookimpl
def sls_py_invoke(spec: Spec, project: Project, function: str, payload: Any) -> Invocation:
    outcome, request_id = run_function(spec, project, function, Payload(payload))
    return Invocation(function, result=outcome.result, error=outcome.error, request_id=request_id)


@hookimpl
def sls_py_api_keys(spec: Spec, project: Project) -> list[ApiKey]:
    path = project.state_dir / NAME / spec.stage / "api-keys.json"
    keys: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if any(name not in keys for name in spec.gateway.api_keys):
        keys.update({n: secrets.token_urlsafe(24) for n in spec.gateway.api_keys if n not in keys})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(keys))
        path.chmod(0o600)
    return [ApiKey(name, keys[name]) for name in spec.gateway.api_keys]


def message(status: int, text: str, extra: dict[str, str] | None = None) -> Answer:
    """An answer the gateway writes itself: JSON ``{"message": text}``."""
    body = json.dumps({"message": text}).encode()
    return status, {"content-type": "application/json", **(extra or {})}, body


def cors_headers(cors: CorsSpec | None, origin: str | None) -> dict[str, str]:
    """``access-control-allow-origin`` (and credentials, vary) for a route's CORS."""
    if cors is None:
        return {}
    if "*" in cors.origins and not cors.allow_credentials:
        out = {"access-control-allow-origin": "*"}
    elif origin is not None and ("*" in cors.origins or origin in cors.origins):
        out = {"access-control-allow-origin": origin, "vary": "Origin"}
    else:
        return {}
    if cors.allow_credentials:
        out["access-control-allow-credentials"] = "true"
    return out


class Gateway:
    """The contract's gateway: route, body size, API key, then the function."""

    def __init__(self, spec: Spec, project: Project, keys: list[str]) -> None:
        self.spec, self.project, self.keys = spec, project, [k.encode() for k in keys]
        self.router: Router[Any] = Router()
        for fn in spec.functions:
            for t in fn.http_triggers():
                self.router.add(t.method, t.path, (fn, t))

    def preflight(self, path: str, origin: str | None) -> dict[str, str] | None:
        methods = [m for m in self.router.methods_for(path) if m != "OPTIONS"]
        listed = sorted({x for m in methods for x in (ANY_METHODS if m == "ANY" else [m])})
        for method in methods:
            found = self.router.match(method, path)
            cors = found.target[1].cors if found is not None else None
            if cors is not None:
                return {
                    **cors_headers(cors, origin),
                    "access-control-allow-methods": ",".join(cors.methods or [*listed, "OPTIONS"]),
                    "access-control-allow-headers": ",".join(cors.headers),
                    "access-control-max-age": str(cors.max_age_s),
                }
        return None

    def answer(self, method: str, target: str, headers: dict[str, list[str]], body: bytes) -> Answer:
        url = urlsplit(target)
        path = unquote(url.path)
        origin = next(iter(headers.get("origin") or []), None)
        match = self.router.match(method, path)
        if method == "OPTIONS" and (match is None or match.target[1].method != "OPTIONS"):
            pre = self.preflight(path, origin)
            if pre is not None:
                return 204, pre, b""
        if match is None:
            return message(403, "Missing Authentication Token")
        fn, trigger = match.target
        cors = cors_headers(trigger.cors, origin)
        if len(body) > MAX_BODY:
            return message(413, "Request Too Long", cors)
        if trigger.api_key:
            given = (headers.get("x-api-key") or [""])[0].encode()
            if not given or not any(hmac.compare_digest(given, k) for k in self.keys):
                return message(403, "Forbidden", cors)
        request = HttpRequest(
            method=method,
            path=path,
            route=match.route,
            path_params=match.params,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=headers,
            body=body,
        )
        outcome, _ = run_function(self.spec, self.project, fn.name, request)
        if outcome.response is None:
            if outcome.error is not None and outcome.error.status == 504:
                return message(504, "Endpoint request timed out", cors)
            return message(502, "Internal server error", cors)
        raw, out = outcome.response.encoded()
        return outcome.response.status, {**cors, **out}, raw


def handler_class(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers: dict[str, list[str]] = {}
            for k, v in self.headers.items():
                headers.setdefault(k.lower(), []).append(v)
            try:
                status, out, raw = gateway.answer(self.command, self.path, headers, body)
            except Exception:  # a bug here must not leak a traceback to the client
                status, out, raw = message(502, "Internal server error")
            self.send_response(status)
            for k, v in out.items():
                if k != "content-length":
                    self.send_header(k, v)
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@hookimpl
def sls_py_run(spec: Spec, project: Project, options: RunOptions, ui: UI) -> int:
    """Serve the routes until SIGINT or SIGTERM (the core handles neither); exit 0."""
    keys = [k.value for k in sls_py_api_keys(spec, project)]
    server = ThreadingHTTPServer((options.host, options.port), handler_class(Gateway(spec, project, keys)))
    server.daemon_threads = True

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    ui.info(f"{NAME}: serving {spec.app} at http://{options.host}:{server.server_address[1]}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
