"""An in-process client for an app: call functions and routes without a server."""

from __future__ import annotations

import hashlib
import hmac
import json as _json
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Project, load_project, resolve_environment
from ..errors import FunctionFailed, SpecError
from ..routing import Router
from ..runtime import (
    Context,
    HttpRequest,
    MemoryDriver,
    Outcome,
    Payload,
    QueueBatch,
    QueueMessage,
    ScheduleEvent,
    UploadEvent,
    execute,
    jsonwire,
    use_driver,
)
from ..runtime.context import make_logger
from ..runtime.events import Event, dumps
from ..runtime.resources import BucketDriver, TableDriver
from ..spec import CorsSpec, FunctionSpec, ScheduleTriggerSpec, Spec, UploadTriggerSpec


@dataclass
class ClientResponse:
    """An HTTP response from :meth:`AppClient.request`."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as strict JSON (NaN or Infinity in it raise, as in a browser)."""
        return jsonwire.loads(self.body, "Response body")


def _json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> ClientResponse:
    return ClientResponse(status, {"content-type": "application/json", **(headers or {})}, dumps(body))


def _cors_headers(cors: CorsSpec | None, origin: str | None) -> dict[str, str]:
    """The CORS response headers for a request from ``origin`` to a route with ``cors``."""
    if cors is None:
        return {}
    if "*" in cors.origins and not cors.allow_credentials:
        out = {"access-control-allow-origin": "*"}  # with or without an Origin header
    elif origin is not None and (origin in cors.origins or "*" in cors.origins):
        out = {"access-control-allow-origin": origin, "vary": "Origin"}
    else:
        return {}
    if cors.allow_credentials:
        out["access-control-allow-credentials"] = "true"
    return out


class AppClient:
    """Calls an app's functions in this process, with in-memory resources.

    ``AppClient("apps/work_magic", stage="dev")`` loads the project the way
    ``sls-py`` does, with the stage's environment applied while a function
    runs. Upload and queue calls fire the matching triggers synchronously.

    HTTP requests get the gateway's answers: 403 for an unknown route, 502 for
    a crash, CORS headers and preflight for routes with CORS, and, when you
    pass ``api_keys={"default": "some-key"}``, 403 ``Forbidden`` for a route
    with ``api_key=True`` called without one of those keys in ``X-API-Key``.
    Timeouts and memory limits are not enforced in-process: test those against
    a provider (``sls_local_server``).
    """

    def __init__(
        self,
        project: str | Path | Project = ".",
        stage: str | None = None,
        *,
        api_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.project = project if isinstance(project, Project) else load_project(project)
        self.app = self.project.load_app()
        self.spec: Spec = self.project.spec(stage) if stage else self.project.spec()
        from .invoking import ClientDriver

        self.driver: MemoryDriver = ClientDriver(self)
        #: payloads of asynchronous invocations that failed every attempt, by function
        self.dead_letters: dict[str, list[Any]] = {}
        self._migrate()
        #: API key values by name; when set, routes with ``api_key=True`` check them.
        self.api_keys: dict[str, str] | None = dict(api_keys) if api_keys is not None else None
        self.router: Router[tuple[FunctionSpec, Any]] = Router()
        for fn in self.spec.functions:
            for t in fn.http_triggers():
                self.router.add(t.method, t.path, (fn, t))

    @contextmanager
    def _environment(self, fn: FunctionSpec) -> Iterator[None]:
        env = {**resolve_environment(fn.environment), "SLS_PY_STAGE": self.spec.stage}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        from ..runtime import resources

        outer = (resources._driver, resources._names)  # a function invoking another nests
        use_driver(
            self.driver, {**self._config_names(), "functions": {t: t for t in fn.invokes}}
        )
        try:
            yield
        finally:
            use_driver(*outer)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _config_names(self) -> dict[str, dict[str, str]]:
        """The names the config handles read: the stage's store and its defaults."""
        if not self.spec.configs:
            return {}
        return {
            "configs": {c.name: c.name for c in self.spec.configs},
            "config_defaults": dict(self.spec.configs[0].defaults),
        }

    def set_config(self, key: str, value: str | None) -> None:
        """Set (or, with ``None``, unset) a config value of the in-memory store, as
        ``sls-py config set`` does for a provider; the next call sees it."""
        if value is None:
            self.driver.config_values.pop(key, None)
        else:
            self.driver.config_values[key] = value
        for decl in self.app.configs.values():
            decl.handle.refresh()

    def run(self, function: str, event: Event) -> Outcome:
        """Run ``function`` for ``event`` and return the raw outcome."""
        fn = self.spec.function(function)
        rid = str(uuid.uuid4())
        ctx = Context(
            request_id=rid,
            function_name=fn.name,
            stage=self.spec.stage,
            deadline_ms=int(datetime.now(UTC).timestamp() * 1000 + fn.timeout_s * 1000),
            memory_mb=fn.memory_mb,
            provider="testing",
            logger=make_logger(fn.name, rid),
        )
        with self._environment(fn):
            return execute(self.app.functions[fn.name].handler, event, ctx)

    def invoke(self, function: str, payload: Any = None) -> Any:
        """Invoke with a payload; return the result or raise :class:`FunctionFailed`."""
        outcome = self.run(function, Payload(payload))
        if outcome.error is not None:
            raise FunctionFailed(function, outcome.error)
        return outcome.result

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str | list[str]] | None = None,
    ) -> ClientResponse:
        """Send an HTTP request to the app's routes, as the gateway would pass it on."""
        method = method.upper()
        hdrs = {k.lower(): [v] for k, v in (headers or {}).items()}
        origin = hdrs.get("origin", [None])[0]
        match = self.router.match(method, path)
        if method == "OPTIONS" and (match is None or match.target[1].method != "OPTIONS"):
            preflight = self._preflight(path, origin)  # beats an ANY route (docs/providers.md)
            if preflight is not None:
                return preflight
        if match is None:
            return _json_response(403, {"message": "Missing Authentication Token"})
        fn, trigger = match.target
        cors = _cors_headers(trigger.cors, origin)
        if trigger.api_key and self.api_keys is not None and not self._key_ok(hdrs):
            return _json_response(403, {"message": "Forbidden"}, cors)
        if json is not None:
            # encoded as an HTTP client such as httpx would (NaN included), so a
            # test can check the 400 the function answers to it
            raw = _json.dumps(json).encode()
        else:
            raw = body.encode() if isinstance(body, str) else body or b""
        req = HttpRequest(
            method=method,
            path=path,
            route=match.route,
            path_params=match.params,
            query={k: v if isinstance(v, list) else [v] for k, v in (query or {}).items()},
            headers=hdrs,
            body=raw,
        )
        outcome = self.run(fn.name, req)
        if outcome.response is None:
            return _json_response(502, {"message": "Internal server error"}, cors)
        data, out = outcome.response.encoded()
        return ClientResponse(outcome.response.status, {**out, **cors}, data)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> ClientResponse:
        """``request("POST", path, json=json, ...)``."""
        return self.request("POST", path, json=json, **kwargs)

    def get(self, path: str, **kwargs: Any) -> ClientResponse:
        """``request("GET", path, ...)``."""
        return self.request("GET", path, **kwargs)

    def _key_ok(self, headers: dict[str, list[str]]) -> bool:
        given = (headers.get("x-api-key") or [""])[0].encode()
        return any(hmac.compare_digest(given, v.encode()) for v in (self.api_keys or {}).values())

    def _preflight(self, path: str, origin: str | None) -> ClientResponse | None:
        methods = [m for m in self.router.methods_for(path) if m != "OPTIONS"]
        any_methods = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
        listed = sorted({x for m in methods for x in (any_methods if m == "ANY" else (m,))})
        for method in methods:
            match = self.router.match(method, path)
            cors = match.target[1].cors if match is not None else None
            if cors is None:
                continue
            headers = _cors_headers(cors, origin)
            headers["access-control-allow-methods"] = ", ".join(
                cors.methods or [*listed, "OPTIONS"]
            )
            headers["access-control-allow-headers"] = ", ".join(cors.headers)
            headers["access-control-max-age"] = str(cors.max_age_s)
            return ClientResponse(204, headers, b"")
        return None

    # --- resources, as the functions left them ---------------------------------

    def bucket(self, name: str) -> BucketDriver:
        """Bucket ``name`` of the in-memory resources: ``get``, ``list``, ``put``, ``delete``."""
        self._declared("buckets", name)
        return self.driver.bucket(name, name)

    def table(self, name: str) -> TableDriver:
        """Table ``name`` of the in-memory resources: ``get``, ``query``, ``scan``, ..."""
        self._declared("tables", name)
        spec = next(t for t in self.spec.tables if t.name == name)
        return self.driver.table(name, name, spec.key, spec.sort_key)

    def database(self, name: str) -> Any:
        """Database ``name`` of the in-memory resources (SQLite, with the app's
        migrations applied): ``execute(sql, params)`` returns ``(rows, count)``."""
        self._declared("databases", name)
        return self.driver.database(name, name)

    def _migrate(self) -> None:
        """Apply each database's migrations to its in-memory SQLite database.

        SQLite, not PostgreSQL: migrations using PostgreSQL-only SQL fail here
        with SQLite's message; test such apps with ``sls_local_server``."""
        from ..migrations import apply_migrations, migration_files

        for db in self.spec.databases:
            driver = self.driver.database(db.name, db.name)
            apply_migrations(driver, db.name, migration_files(self.project.root, db))

    def messages(self, queue: str) -> list[str]:
        """Bodies sent to ``queue`` so far, oldest first."""
        self._declared("queues", queue)
        return list(self.driver.queues.get(queue, []))

    def _declared(self, kind: str, name: str) -> None:
        known = [r.name for r in getattr(self.spec, kind)]
        if name not in known:
            raise SpecError(
                f"app {self.spec.app!r} has no {kind[:-1]} {name!r}",
                hint=f"known {kind}: {', '.join(known) or 'none'}",
            )

    def upload(self, bucket: str, key: str, data: bytes | str) -> list[Outcome]:
        """Put an object in ``bucket`` and run the functions whose upload trigger matches."""
        self._declared("buckets", bucket)
        raw = data.encode() if isinstance(data, str) else data
        self.driver.bucket(bucket, bucket).put(key, raw)
        event = UploadEvent(
            bucket=bucket,
            key=key,
            size=len(raw),
            etag=hashlib.md5(raw).hexdigest(),
            time=datetime.now(UTC).isoformat(),
        )
        outcomes = []
        for fn in self.spec.functions:
            for t in fn.triggers:
                if (
                    isinstance(t, UploadTriggerSpec)
                    and t.bucket == bucket
                    and key.startswith(t.prefix)
                    and key.endswith(t.suffix)
                ):
                    outcomes.append(self.run(fn.name, event))
        return outcomes

    def fire_schedule(self, function: str, at: datetime | None = None) -> Outcome:
        """Fire ``function``'s (first) schedule as if it were ``at`` (default: now)."""
        fn = self.spec.function(function)
        trig = next((t for t in fn.triggers if isinstance(t, ScheduleTriggerSpec)), None)
        if trig is None:
            raise ValueError(f"function {function!r} has no schedule trigger")
        when = (at or datetime.now(UTC)).astimezone(UTC).isoformat()
        event = ScheduleEvent(
            schedule=trig.name, expression=trig.expression, time=when, payload=trig.payload
        )
        return self.run(function, event)

    def deliver(self, function: str, queue: str, bodies: list[str]) -> Outcome:
        """Deliver ``bodies`` to ``function`` as one queue batch."""
        msgs = [QueueMessage(id=str(i), body=b, queue=queue) for i, b in enumerate(bodies)]
        return self.run(function, QueueBatch(queue=queue, messages=msgs))
