"""Latency of the local services: start-up, file created -> invoke, message sent -> invoke.

    .venv/bin/python bench/local_services_latency.py [ROUNDS]

Uses an invoke that answers at once, so it measures the services alone (the
watcher's 0.2 s quiet period, the queue poller's back-off), not the workers.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sls_py.config import Project, ProjectConfig
from sls_py.runtime import Outcome
from sls_py.spec import (
    BucketSpec,
    FunctionSpec,
    QueueSpec,
    QueueTriggerSpec,
    Spec,
    UploadTriggerSpec,
)
from sls_py.ui import PlainUI
from sls_py_local.services import LocalServices


def summary(name: str, seconds: list[float]) -> str:
    """One line: median and max in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return f"{name}: median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms (n={len(ms)})"


async def main(rounds: int) -> None:
    root = Path(tempfile.mkdtemp())
    spec = Spec(
        app="t",
        stage="dev",
        app_ref="x:app",
        buckets=[BucketSpec(name="b", qualified_name="t-dev-b")],
        queues=[QueueSpec(name="q", qualified_name="t-dev-q")],
        functions=[
            FunctionSpec(
                name="f", handler="x:f", style="upload", triggers=[UploadTriggerSpec(bucket="b")]
            ),
            FunctionSpec(
                name="g", handler="x:g", style="queue", triggers=[QueueTriggerSpec(queue="q")]
            ),
        ],
    )
    seen: dict[str, float] = {}

    async def invoke(function: str, event: dict[str, Any]) -> Outcome:
        seen[event.get("key") or event["messages"][0]["body"]] = time.perf_counter()
        return Outcome(result={"failed": []})

    project = Project(root=root, config=ProjectConfig(app="x:app"), name="t")
    services = LocalServices(spec, project, invoke, PlainUI(quiet=True))
    t0 = time.perf_counter()
    await services.start()
    print(f"start(): {(time.perf_counter() - t0) * 1000:.0f} ms")
    store = services.driver.queue_store()
    bucket = root / ".sls-py" / "local" / "dev" / "buckets" / "b"
    uploads, messages = [], []
    for i in range(rounds):
        t = time.perf_counter()
        (bucket / f"{i}.txt").write_bytes(b"x")
        while f"{i}.txt" not in seen:
            await asyncio.sleep(0.002)
        uploads.append(seen[f"{i}.txt"] - t)
        await asyncio.sleep(1.0)  # let the idle queue poller back off to its longest pause
        t = time.perf_counter()
        await asyncio.to_thread(store.send, "q", f"m{i}")
        while f"m{i}" not in seen:
            await asyncio.sleep(0.002)
        messages.append(seen[f"m{i}"] - t)
    await services.stop()
    print(summary("file created -> invoke", uploads))
    print(summary("message sent to an idle queue -> invoke", messages))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
