"""``sls-py trigger upload|schedule`` and ``sls-py send`` for the local provider.

When an ``sls-py run`` serves the stage (see :mod:`sls_py_local.runfile`), it
delivers: the upload lands in the watched bucket folder, the message in the
durable queue, and a schedule request in its inbox (its outcome comes back).
Otherwise the matching functions run right away, each in a fresh process, and
their outcomes are returned.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

from sls_py.errors import FunctionFailed, ProviderError, SlsPyError
from sls_py.project import Project
from sls_py.provider import TriggerRequest
from sls_py.spec import QueueTriggerSpec, ScheduleTriggerSpec, Spec
from sls_py.ui import UI

from .invokers import oneshot_invoker, outcome_data
from .resources import InvalidKey, LocalDriver, atomic_write, check_key
from .runfile import _pid_alive, running_instance
from .services import LocalServices, stage_root, upload_targets


class TriggerError(SlsPyError):
    """A trigger request that cannot be carried out as given."""


def fire(spec: Spec, project: Project, request: TriggerRequest, ui: UI) -> dict[str, Any]:
    """Carry out ``request``; return what happened as JSON-able data."""
    root = stage_root(spec, project)
    running = running_instance(root)
    if request.kind == "upload":
        result = _upload(spec, project, request, ui, running)
    elif request.kind == "schedule":
        result = _schedule(spec, project, request, ui, running)
    elif request.kind == "queue":
        result = _send(spec, project, request, ui, running)
    else:
        raise TriggerError(
            f"unknown trigger kind {request.kind!r}", hint="use upload, schedule or queue"
        )
    _raise_first_failure(result)
    return result


def _raise_first_failure(result: dict[str, Any]) -> None:
    """Exit non-zero when a function failed (its outcome was reported on the way)."""
    from sls_py.runtime.errors import ErrorInfo

    for inv in result.get("invocations", []):
        if inv.get("error"):
            raise FunctionFailed(inv["function"], ErrorInfo.from_wire(inv["error"]))


def _services(spec: Spec, project: Project, ui: UI) -> LocalServices:
    """An unstarted LocalServices: its firing methods, with a process per invocation."""
    return LocalServices(spec, project, oneshot_invoker(spec, project, ui), ui)


def _delivered_by(running: dict[str, Any]) -> str:
    return f"sls-py run (pid {running['pid']})"


def _upload(
    spec: Spec, project: Project, request: TriggerRequest, ui: UI, running: dict[str, Any] | None
) -> dict[str, Any]:
    key = request.key or ""
    try:
        check_key(key)
    except InvalidKey as exc:
        raise TriggerError(
            str(exc), hint="pass --key with a relative key, e.g. --key photos/a.jpg"
        ) from None
    data = request.data or b""
    driver = LocalDriver(stage_root(spec, project))
    driver.bucket(request.target).put(key, data)
    path = driver.buckets_dir / request.target / key
    info: dict[str, Any] = {
        "bucket": request.target,
        "key": key,
        "size": len(data),
        "etag": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "path": str(path),
        "functions": upload_targets(spec, request.target, key),
    }
    if running is not None:
        info["delivered_by"] = _delivered_by(running)
        ui.info(f"stored {path}; the running {info['delivered_by']} fires its upload triggers")
        return info
    pairs = asyncio.run(_services(spec, project, ui).fire_upload(path))
    info["delivered_by"] = "fresh processes"
    info["invocations"] = [outcome_data(fn, outcome) for fn, outcome in pairs]
    return info


def _schedule(
    spec: Spec, project: Project, request: TriggerRequest, ui: UI, running: dict[str, Any] | None
) -> dict[str, Any]:
    fn = spec.function(request.target)
    triggers = [t for t in fn.triggers if isinstance(t, ScheduleTriggerSpec)]
    if not triggers:
        raise TriggerError(f"function {fn.name!r} has no schedule trigger")
    if running is not None:
        request_data = {"kind": "schedule", "function": fn.name}
        inbox = Path(running.get("inbox") or stage_root(spec, project) / "inbox")
        answer = _ask_running(running, inbox, request_data, fn.timeout_s, ui)
        if answer is not None:
            if "error" in answer:
                raise ProviderError(
                    f"the running sls-py run refused the request: {answer['error']}"
                )
            return {"function": fn.name, "delivered_by": _delivered_by(running), **answer}

    async def fire_all() -> list[dict[str, Any]]:
        services = _services(spec, project, ui)
        out = []
        for t in triggers:
            outcome = await services.fire_schedule(fn, t)
            out.append({"schedule": t.name, **outcome_data(fn.name, outcome)})
        return out

    return {
        "function": fn.name,
        "delivered_by": "fresh processes",
        "invocations": asyncio.run(fire_all()),
    }


def _ask_running(
    running: dict[str, Any], inbox: Path, request: dict[str, Any], timeout_s: float, ui: UI
) -> dict[str, Any] | None:
    """Drop ``request`` in the running services' inbox and wait for the answer.

    Returns None when the run stopped before taking the request (the caller
    then runs it itself).
    """
    name = uuid.uuid4().hex
    req_path, res_path = inbox / f"{name}.json", inbox / f"{name}.result.json"
    atomic_write(req_path, json.dumps(request).encode(), inbox.parent / "tmp")
    ui.info(f"sent to the running {_delivered_by(running)}; waiting for the outcome")
    deadline = time.monotonic() + timeout_s + 30
    while time.monotonic() < deadline:
        if res_path.exists():
            answer: dict[str, Any] = json.loads(res_path.read_text(encoding="utf-8"))
            res_path.unlink(missing_ok=True)
            return answer
        if req_path.exists() and not _pid_alive(int(running["pid"])):
            req_path.unlink(missing_ok=True)
            return None
        time.sleep(0.05)
    req_path.unlink(missing_ok=True)
    raise ProviderError(
        f"the running {_delivered_by(running)} did not answer within {timeout_s + 30:g} s",
        hint="check its output; restart it if it hangs",
    )


def _send(
    spec: Spec, project: Project, request: TriggerRequest, ui: UI, running: dict[str, Any] | None
) -> dict[str, Any]:
    queue = next((q for q in spec.queues if q.name == request.target), None)
    if queue is None:
        known = ", ".join(q.name for q in spec.queues) or "none"
        raise TriggerError(
            f"app {spec.app!r} has no queue {request.target!r}", hint=f"known queues: {known}"
        )
    body = (request.data or b"").decode("utf-8")
    services = _services(spec, project, ui)
    store = services.driver.queue_store()
    message_id = store.send(queue.name, body)
    info: dict[str, Any] = {"queue": queue.name, "message_id": message_id}
    routes = [
        (fn, t)
        for fn in spec.functions
        for t in fn.triggers
        if isinstance(t, QueueTriggerSpec) and t.queue == queue.name
    ]
    if running is not None:
        info["delivered_by"] = _delivered_by(running)
        ui.info(f"queued {message_id}; the running {info['delivered_by']} delivers it")
        return info
    if not routes:
        info["delivered_by"] = None
        ui.info(f"queued {message_id}; no function is triggered by queue {queue.name}")
        return info

    async def deliver() -> list[dict[str, Any]]:
        out = []
        for fn, t in routes:
            got = store.receive(
                queue.name, t.batch_size, queue.visibility_timeout_s, queue.max_receives
            )
            if not got:
                continue
            outcome, failed = await services.deliver_batch(fn.name, queue, got)
            out.append(
                {
                    "messages": [r.message.id for r in got],
                    "failed": sorted(failed),
                    **outcome_data(fn.name, outcome),
                }
            )
        return out

    info["delivered_by"] = "fresh processes"
    info["invocations"] = asyncio.run(deliver())
    return info
