"""An in-process client for an app: call functions and routes without a server."""

from __future__ import annotations

import json as _json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Project, load_project, resolve_environment
from ..errors import FunctionFailed
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
    use_driver,
)
from ..runtime.context import make_logger
from ..runtime.events import Event
from ..spec import FunctionSpec, ScheduleTriggerSpec, Spec, UploadTriggerSpec


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
        return _json.loads(self.body)


def _json_response(status: int, message: str) -> ClientResponse:
    body = _json.dumps({"message": message}).encode()
    return ClientResponse(status, {"content-type": "application/json"}, body)


class AppClient:
    """Calls an app's functions in this process, with in-memory resources.

    ``AppClient("apps/work_magic", stage="dev")`` loads the project the way
    ``sls-py`` does, with the stage's environment applied while a function
    runs. Upload and queue calls fire the matching triggers synchronously.
    """

    def __init__(self, project: str | Path | Project = ".", stage: str | None = None) -> None:
        self.project = project if isinstance(project, Project) else load_project(project)
        self.app = self.project.load_app()
        self.spec: Spec = self.project.spec(stage) if stage else self.project.spec()
        self.driver = MemoryDriver()
        self.router: Router[tuple[FunctionSpec, Any]] = Router()
        for fn in self.spec.functions:
            for t in fn.http_triggers():
                self.router.add(t.method, t.path, (fn, t))

    @contextmanager
    def _environment(self, fn: FunctionSpec) -> Iterator[None]:
        env = resolve_environment(fn.environment)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        use_driver(self.driver)
        try:
            yield
        finally:
            use_driver(None)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

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
        """Send an HTTP request to the app's routes (API keys are not checked here)."""
        match = self.router.match(method, path)
        if match is None:
            return _json_response(403, "Missing Authentication Token")
        fn, _ = match.target
        if json is not None:
            raw = _json.dumps(json).encode()
        else:
            raw = body.encode() if isinstance(body, str) else body or b""
        req = HttpRequest(
            method=method.upper(),
            path=path,
            route=match.route,
            path_params=match.params,
            query={k: v if isinstance(v, list) else [v] for k, v in (query or {}).items()},
            headers={k.lower(): [v] for k, v in (headers or {}).items()},
            body=raw,
        )
        outcome = self.run(fn.name, req)
        if outcome.response is None:
            return _json_response(502, "Internal server error")
        data, hdrs = outcome.response.encoded()
        return ClientResponse(outcome.response.status, hdrs, data)

    def upload(self, bucket: str, key: str, data: bytes | str) -> list[Outcome]:
        """Put an object in ``bucket`` and run the functions whose upload trigger matches."""
        raw = data.encode() if isinstance(data, str) else data
        self.driver.bucket(bucket, bucket).put(key, raw)
        event = UploadEvent(bucket=bucket, key=key, size=len(raw), time=datetime.now(UTC).isoformat())
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
        event = ScheduleEvent(schedule=trig.name, expression=trig.expression, time=when, payload=trig.payload)
        return self.run(function, event)

    def deliver(self, function: str, queue: str, bodies: list[str]) -> Outcome:
        """Deliver ``bodies`` to ``function`` as one queue batch."""
        msgs = [QueueMessage(id=str(i), body=b, queue=queue) for i, b in enumerate(bodies)]
        return self.run(function, QueueBatch(queue=queue, messages=msgs))
