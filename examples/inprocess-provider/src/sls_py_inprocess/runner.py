"""Running an app's functions inside this process.

Every invocation goes through :func:`sls_py.runtime.execute`, the one place
that knows handler styles, so the semantics are the same as on any other
provider. A function runs on a thread so its timeout can be kept: when it
expires the caller gets a 504 error at once; the thread itself cannot be
stopped and is abandoned (a documented limit of running in-process).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sls_py.config import Project, resolve_environment
from sls_py.runtime import (
    Context,
    ErrorInfo,
    Event,
    Outcome,
    QueueBatch,
    QueueMessage,
    ScheduleEvent,
    UploadEvent,
    execute,
    find_function,
    use_driver,
)
from sls_py.spec import QueueTriggerSpec, ScheduleTriggerSpec, Spec, UploadTriggerSpec

from .driver import FileDriver, PendingMessage, PendingUpload, now_iso

#: Invocations run one at a time: they share this process's environment.
_serial = threading.Lock()
#: At most this many rounds of triggers fired by other triggers' writes.
MAX_CHAIN = 20


def state_root(spec: Spec, project: Project) -> Path:
    """Where this provider keeps a stage's resources and deployment record."""
    return project.state_dir / "inprocess" / spec.stage


class Runner:
    """An app loaded into this process, with its resources under the project's state folder."""

    def __init__(self, spec: Spec, project: Project) -> None:
        self.spec, self.project = spec, project
        self.app = project.load_app()
        self.driver = FileDriver(state_root(spec, project))
        self.names = {
            "buckets": {b.name: b.qualified_name for b in spec.buckets},
            "queues": {q.name: q.qualified_name for q in spec.queues},
            "tables": {t.name: t.qualified_name for t in spec.tables},
        }
        if spec.configs:  # app.config handles read the stage's store, over its defaults
            self.names["configs"] = {c.name: c.name for c in spec.configs}
            self.names["config_defaults"] = dict(spec.configs[0].defaults)

    @contextmanager
    def _environment(self, env: dict[str, str]) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        use_driver(self.driver, self.names)
        try:
            yield
        finally:
            use_driver(None)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def run(self, function: str, event: Event) -> tuple[Outcome, str]:
        """Run ``function`` for ``event``, then fire the triggers its writes caused.

        Returns the outcome and the request id.
        """
        outcome, request_id = self._run_one(function, event)
        self.fire_pending()
        return outcome, request_id

    def _run_one(self, function: str, event: Event) -> tuple[Outcome, str]:
        fn = self.spec.function(function)
        handler = find_function(self.app, fn.name)
        request_id = str(uuid.uuid4())
        ctx = Context(
            request_id=request_id,
            function_name=fn.name,
            stage=self.spec.stage,
            deadline_ms=int(datetime.now(UTC).timestamp() * 1000 + fn.timeout_s * 1000),
            memory_mb=fn.memory_mb,
            provider="inprocess",
        )
        box: list[Outcome] = []
        env = {**resolve_environment(fn.environment), "SLS_PY_STAGE": self.spec.stage}
        with _serial, self._environment(env):
            worker = threading.Thread(
                target=lambda: box.append(execute(handler, event, ctx)), daemon=True
            )
            worker.start()
            worker.join(fn.timeout_s)
        if not box:
            return Outcome(
                error=ErrorInfo(
                    type="TimeoutError",
                    message=f"function {fn.name!r} timed out after {fn.timeout_s:g} s",
                    status=504,
                )
            ), request_id
        return box[0], request_id

    # --- triggers -------------------------------------------------------------

    def fire_schedule(self, function: str) -> Outcome:
        """Fire ``function``'s first schedule now."""
        fn = self.spec.function(function)
        trig = next((t for t in fn.triggers if isinstance(t, ScheduleTriggerSpec)), None)
        if trig is None:
            raise LookupError(f"function {function!r} has no schedule trigger")
        event = ScheduleEvent(
            schedule=trig.name,
            expression=trig.expression,
            time=now_iso(),
            payload=trig.payload,
        )
        return self.run(function, event)[0]

    def fire_pending(self) -> list[tuple[str, Outcome]]:
        """Deliver uploads and messages made since the last call to their triggers."""
        fired: list[tuple[str, Outcome]] = []
        for _ in range(MAX_CHAIN):
            pending = self.driver.take_pending()
            if not pending:
                break
            for item in pending:
                if isinstance(item, PendingUpload):
                    fired.extend(self._deliver_upload(item))
            messages = [m for m in pending if isinstance(m, PendingMessage)]
            fired.extend(self._deliver_messages(messages))
        return fired

    def _deliver_upload(self, up: PendingUpload) -> list[tuple[str, Outcome]]:
        event = UploadEvent(
            bucket=up.bucket,
            key=up.key,
            size=up.size,
            etag=up.etag,
            content_type=up.content_type,
            time=up.time,
        )
        out = []
        for fn in self.spec.functions:
            for t in fn.triggers:
                if (
                    isinstance(t, UploadTriggerSpec)
                    and t.bucket == up.bucket
                    and up.key.startswith(t.prefix)
                    and up.key.endswith(t.suffix)
                ):
                    out.append((fn.name, self._run_one(fn.name, event)[0]))
        return out

    def _deliver_messages(self, messages: list[PendingMessage]) -> list[tuple[str, Outcome]]:
        out = []
        for fn in self.spec.functions:
            for t in fn.triggers:
                if not isinstance(t, QueueTriggerSpec):
                    continue
                mine = [m for m in messages if m.queue == t.queue]
                for start in range(0, len(mine), t.batch_size):
                    chunk = mine[start : start + t.batch_size]
                    batch = QueueBatch(
                        queue=t.queue,
                        messages=[
                            QueueMessage(
                                id=m.id, body=m.body, queue=m.queue, receive_count=m.receive_count
                            )
                            for m in chunk
                        ],
                    )
                    outcome = self._run_one(fn.name, batch)[0]
                    self._dead_letter(t.queue, chunk, outcome)
                    out.append((fn.name, outcome))
        return out

    def _dead_letter(self, queue: str, chunk: list[PendingMessage], outcome: Outcome) -> None:
        """Failed messages are delivered again at once (no visibility timeout in-process)
        until they were received ``max_receives`` times; then they go to the queue's
        dead-letter file."""
        if outcome.error is not None:
            failed = {m.id for m in chunk}
        else:
            failed = set((outcome.result or {}).get("failed") or [])
        if not failed:
            return
        import json
        from dataclasses import replace

        max_receives = next(q.max_receives for q in self.spec.queues if q.name == queue)
        dead = []
        for m in chunk:
            if m.id not in failed:
                continue
            if m.receive_count < max_receives:
                self.driver.pending.append(replace(m, receive_count=m.receive_count + 1))
            else:
                dead.append(m)
        if not dead:
            return
        path = self.driver.root / "dead-letter" / f"{queue}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            for m in dead:
                f.write(json.dumps({"id": m.id, "body": m.body}) + "\n")


def describe(outcome: Outcome) -> dict[str, Any]:
    """An outcome as JSON data, for ``sls-py trigger --json``."""
    return {"result": outcome.result, "error": outcome.error.to_wire() if outcome.error else None}
