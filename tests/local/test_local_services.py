"""LocalServices with an in-process invoke: schedules on a simulated clock, queue delivery,
the run lock. (The bucket watcher with real worker processes is in test_local_watcher.py.)"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sls_py.config import Project, ProjectConfig
from sls_py.errors import ProviderError
from sls_py.runtime import Outcome
from sls_py.runtime.events import ScheduleEvent
from sls_py.spec import FunctionSpec, QueueSpec, QueueTriggerSpec, ScheduleTriggerSpec, Spec
from sls_py.ui import PlainUI
from sls_py_local.queues import QueueStore
from sls_py_local.runfile import read_run_info, running_instance
from sls_py_local.services import LocalServices


def make_project(root: Path) -> Project:
    """A project rooted at ``root`` (its state goes to ``root/.sls-py``)."""
    return Project(root=root, config=ProjectConfig(app="nowhere:app"), name="t")


def make_spec(**fields: Any) -> Spec:
    """A spec for app ``t``, stage ``dev``."""
    return Spec(app="t", stage="dev", app_ref="nowhere:app", **fields)


async def wait_for(check: Callable[[], Any], timeout: float = 20.0, step: float = 0.02) -> Any:
    """Poll ``check`` (in a thread) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await asyncio.sleep(step)


def schedule_spec() -> Any:
    return make_spec(
        functions=[
            FunctionSpec(
                name="tick",
                handler="m:tick",
                style="schedule",
                triggers=[
                    ScheduleTriggerSpec(name="hourly", expression="rate(1 hour)"),
                    ScheduleTriggerSpec(name="off", expression="rate(1 minute)", enabled=False),
                ],
            ),
            FunctionSpec(
                name="report",
                handler="m:report",
                style="schedule",
                triggers=[
                    ScheduleTriggerSpec(
                        name="nightly", expression="cron(0 2 * * ? *)", payload={"full": True}
                    )
                ],
            ),
        ]
    )


def test_a_simulated_day_fires_hourly_24_times_and_nightly_once(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    async def run() -> None:
        day_over = asyncio.Event()

        async def invoke(function: str, event: dict[str, Any]) -> Outcome:
            calls.append((function, event))
            if event["time"] == "2026-01-02T00:00:00Z":
                day_over.set()
            return Outcome(result=None)

        # 43200 simulated seconds per real second: the day lasts 2 s
        services = LocalServices(
            schedule_spec(),
            make_project(tmp_path),
            invoke,
            PlainUI(quiet=True),
            clock="2026-01-01T00:00:00Z@43200",
        )
        await services.start()
        try:
            await asyncio.wait_for(day_over.wait(), 30)
        finally:
            await services.stop()

    asyncio.run(run())
    in_day = [(f, e) for f, e in calls if e["time"] <= "2026-01-02T00:00:00Z"]
    hourly = [e for f, e in in_day if f == "tick"]
    assert hourly == [
        ScheduleEvent(
            schedule="hourly",
            expression="rate(1 hour)",
            time=f"2026-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z",
            payload=None,
        ).to_wire()
        for h in range(1, 25)
    ]
    assert [e for f, e in in_day if f == "report"] == [
        {
            "type": "schedule",
            "schedule": "nightly",
            "expression": "cron(0 2 * * ? *)",
            "time": "2026-01-01T02:00:00Z",
            "payload": {"full": True},
        }
    ]
    assert {f for f, _ in calls} <= {"tick", "report"}  # the disabled schedule never fired


def queue_spec(visibility: int = 0, max_receives: int = 2, batch: int = 3) -> Any:
    return make_spec(
        functions=[
            FunctionSpec(
                name="worker",
                handler="m:worker",
                style="queue",
                timeout_s=1,
                concurrency=1,  # one batch at a time: with visibility 0 a second poller
                # would legitimately receive the same messages again (at least once)
                triggers=[QueueTriggerSpec(queue="jobs", batch_size=batch)],
            )
        ],
        queues=[
            QueueSpec(
                name="jobs",
                qualified_name="t-dev-jobs",
                visibility_timeout_s=visibility,
                max_receives=max_receives,
            )
        ],
    )


def store_of(tmp_path: Path) -> QueueStore:
    return QueueStore(tmp_path / ".sls-py" / "local" / "dev" / "queues.sqlite3")


def test_queue_batches_partial_failures_retries_and_dead_letters(tmp_path: Path) -> None:
    batches: list[list[tuple[str, int]]] = []
    store = store_of(tmp_path)
    bodies = ["ok-1", "bad-1", "ok-2", "ok-3", "ok-4", "ok-5", "ok-6"]
    ids = {store.send("jobs", b): b for b in bodies}  # sent before start: they waited on disk

    async def invoke(function: str, event: dict[str, Any]) -> Outcome:
        assert function == "worker"
        batches.append([(m["body"], m["receive_count"]) for m in event["messages"]])
        failed = [m["id"] for m in event["messages"] if m["body"].startswith("bad")]
        return Outcome(result={"failed": failed})

    async def run() -> None:
        services = LocalServices(queue_spec(), make_project(tmp_path), invoke, ui)
        await services.start()
        try:
            await wait_for(lambda: store.messages("jobs-dlq"))
            await wait_for(lambda: not store.messages("jobs"))
        finally:
            await services.stop()

    ui = PlainUI(quiet=True)
    asyncio.run(run())
    assert ui.lines[:2] == [
        "queue jobs -> worker (batch 3, visibility 0s, dead letters after 2 receives to jobs-dlq)",
        "warning: queue jobs: visibility timeout 0s is shorter than worker's timeout 1s; "
        "AWS refuses this, and locally a slow batch may be delivered twice",
    ]
    assert not [line for line in ui.lines if "not emulated" in line]
    delivered = [m for b in batches for m in b]
    assert all(1 <= len(b) <= 3 for b in batches)
    assert sorted(delivered) == sorted([(b, 1) for b in bodies] + [("bad-1", 2)]), (
        "each good message once; the bad one twice (max_receives=2)"
    )
    (dead,) = store.messages("jobs-dlq")
    assert (ids[dead.id], dead.body) == ("bad-1", "bad-1")


def test_a_raised_error_fails_the_whole_batch(tmp_path: Path) -> None:
    batches: list[list[tuple[str, int]]] = []
    store = store_of(tmp_path)

    async def invoke(function: str, event: dict[str, Any]) -> Outcome:
        batches.append([(m["body"], m["receive_count"]) for m in event["messages"]])
        if len(batches) == 1:
            raise RuntimeError("worker pool exploded")
        return Outcome(result={"failed": []})

    async def run() -> None:
        services = LocalServices(
            queue_spec(max_receives=3, batch=10),
            make_project(tmp_path),
            invoke,
            PlainUI(quiet=True),
        )
        store.send("jobs", "a")
        store.send("jobs", "b")
        await services.start()
        try:
            await wait_for(lambda: not store.messages("jobs"))
        finally:
            await services.stop()

    asyncio.run(run())
    assert batches == [[("a", 1), ("b", 1)], [("a", 2), ("b", 2)]]
    assert store.messages("jobs-dlq") == []


def test_an_error_outcome_fails_the_batch_and_unknown_ids_too(tmp_path: Path) -> None:
    from sls_py.runtime.errors import ErrorInfo

    seen: list[int] = []
    store = store_of(tmp_path)

    async def invoke(function: str, event: dict[str, Any]) -> Outcome:
        seen.append(event["messages"][0]["receive_count"])
        if len(seen) == 1:
            return Outcome(error=ErrorInfo(type="ValueError", message="nope"))
        if len(seen) == 2:
            return Outcome(result={"failed": ["not-a-message-of-this-batch"]})
        return Outcome(result={"failed": []})

    async def run() -> None:
        services = LocalServices(
            queue_spec(max_receives=5), make_project(tmp_path), invoke, PlainUI(quiet=True)
        )
        store.send("jobs", "x")
        await services.start()
        try:
            await wait_for(lambda: not store.messages("jobs"))
        finally:
            await services.stop()

    asyncio.run(run())
    assert seen == [1, 2, 3]


def test_messages_survive_a_restart_of_the_services(tmp_path: Path) -> None:
    got: list[str] = []
    store = store_of(tmp_path)

    async def invoke(function: str, event: dict[str, Any]) -> Outcome:
        got.extend(m["body"] for m in event["messages"])
        return Outcome(result={"failed": []})

    async def run() -> None:
        project = make_project(tmp_path)
        # a first run that delivers nothing: its invoke never answers before stop
        hang = asyncio.Event()

        async def stuck(function: str, event: dict[str, Any]) -> Outcome:
            await hang.wait()
            return Outcome()

        first = LocalServices(queue_spec(visibility=1), project, stuck, PlainUI(quiet=True))
        first.stop_grace_s = 0.1
        store.send("jobs", "survivor")
        await first.start()
        await wait_for(lambda: store.messages("jobs")[0].receive_count == 1)
        await first.stop()  # the in-flight batch is abandoned, not deleted
        assert [m.body for m in store.messages("jobs")] == ["survivor"]
        second = LocalServices(queue_spec(visibility=1), project, invoke, PlainUI(quiet=True))
        await second.start()
        try:
            await wait_for(lambda: not store.messages("jobs"))
        finally:
            await second.stop()

    asyncio.run(run())
    assert got == ["survivor"]


def test_run_json_and_lock_while_running(tmp_path: Path) -> None:
    root = tmp_path / ".sls-py" / "local" / "dev"

    async def invoke(function: str, event: dict[str, Any]) -> Outcome:
        return Outcome()

    async def run() -> None:
        project = make_project(tmp_path)
        services = LocalServices(queue_spec(), project, invoke, PlainUI(quiet=True), clock="now@1")
        await services.start()
        try:
            info = running_instance(root)
            assert info is not None
            assert (info["version"], info["pid"], info["clock"], info["gateway"]) == (
                1,
                os.getpid(),
                "now@1",
                None,
            )
            assert info["inbox"] == str(root / "inbox")
            services.lock.publish(gateway="http://127.0.0.1:3999")  # what sls-py run adds
            assert read_run_info(root)["gateway"] == "http://127.0.0.1:3999"  # type: ignore[index]
            second = LocalServices(queue_spec(), project, invoke, PlainUI(quiet=True))
            with pytest.raises(ProviderError, match="another sls-py run already serves"):
                await second.start()
        finally:
            await services.stop()
        assert not (root / "run.json").exists()
        assert running_instance(root, wait_s=0) is None

    asyncio.run(run())


def test_stale_run_json_is_not_a_running_instance(tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.mkdir()
    # left behind by a run killed with SIGKILL: no lock holder, and a dead pid
    (root / "run.json").write_text(json.dumps({"version": 1, "pid": 2**22 + 12345, "inbox": "x"}))
    (root / "run.lock").write_text("")
    assert running_instance(root, wait_s=0) is None
    (root / "run.lock").unlink()
    assert running_instance(root, wait_s=0) is None


def test_run_json_keeps_fields_this_process_wrote_and_drops_a_dead_runs(tmp_path: Path) -> None:
    from sls_py_local.runfile import RunLock

    root = tmp_path / "state"
    root.mkdir()
    (root / "run.json").write_text(json.dumps({"pid": os.getpid(), "port": 3001}))
    lock = RunLock(root)
    lock.acquire()
    try:
        lock.publish(clock=None)
        info = read_run_info(root)
        assert info is not None
        assert (info["port"], info["pid"], info["version"], info["gateway"]) == (
            3001,
            os.getpid(),
            1,
            None,
        )
    finally:
        lock.release()
    (root / "run.json").write_text(json.dumps({"pid": 2**22 + 7, "port": 9}))
    lock = RunLock(root)
    lock.acquire()
    try:
        lock.publish()
        assert "port" not in (read_run_info(root) or {})
    finally:
        lock.release()
    assert not (root / "run.json").exists()


def test_update_switches_to_the_new_spec_without_losing_messages(tmp_path: Path) -> None:
    got: list[tuple[str, str]] = []
    store = store_of(tmp_path)

    async def invoke(function: str, event: dict[str, Any]) -> Outcome:
        got.extend((function, m["body"]) for m in event["messages"])
        return Outcome(result={"failed": []})

    old = queue_spec()
    fn = old.functions[0]
    new = old.model_copy(update={"functions": [fn.model_copy(update={"name": "worker-v2"})]})

    async def run() -> None:
        services = LocalServices(old, make_project(tmp_path), invoke, PlainUI(quiet=True))
        await services.start()
        try:
            store.send("jobs", "before")
            await wait_for(lambda: got)
            await services.update(new)
            store.send("jobs", "after")
            await wait_for(lambda: len(got) == 2)
        finally:
            await services.stop()

    asyncio.run(run())
    assert got == [("worker", "before"), ("worker-v2", "after")]
