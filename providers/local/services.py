"""The local provider's non-HTTP triggers: bucket uploads, schedules and queues.

``sls-py run`` creates one :class:`LocalServices` in its asyncio event loop
and starts it next to the HTTP gateway. It never runs a function itself: it
calls the ``invoke`` coroutine it was given (the gateway's worker pool, or
:func:`oneshot_invoker` for a process per invocation) with the event's wire
form, and acts on the :class:`~sls_py.runtime.Outcome`.

- **Buckets**: ``.sls-py/local/<stage>/buckets/`` is watched (watchfiles). A
  file created or replaced there, by hand, by another program or by a
  function, fires every upload trigger whose bucket, prefix and suffix match,
  once per new content, when the file has stopped changing.
- **Schedules**: each enabled schedule trigger fires at the times
  :func:`sls_py.schedules.parse_schedule` gives, on the real clock or a
  :class:`~sls_py_local.clock.SimulatedClock` (``--clock``).
- **Queues**: each queue trigger polls the stage's durable SQLite queues and
  delivers batches with SQS's rules (see :mod:`sls_py_local.queues`).
- **Inbox**: ``sls-py trigger schedule`` run in another terminal drops a
  request into ``inbox/``; the services fire it and write the outcome beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import mimetypes
import os
import stat
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sls_py.project import Project
from sls_py.runtime import Outcome
from sls_py.runtime.events import QueueBatch, ScheduleEvent, UploadEvent
from sls_py.schedules import parse_schedule
from sls_py.spec import (
    FunctionSpec,
    QueueSpec,
    QueueTriggerSpec,
    ScheduleTriggerSpec,
    Spec,
    UploadTriggerSpec,
)
from sls_py.ui import UI

from .clock import Clock, SimulatedClock, iso_utc, parse_clock
from .invokers import Invoke, failure, outcome_data
from .queues import Received, dead_letter_queue
from .resources import TMP_PREFIX, InvalidKey, LocalDriver, atomic_write, check_key
from .runfile import RunLock

PROBE_PREFIX = ".sls-py-probe-"


def stage_root(spec: Spec, project: Project) -> Path:
    """The stage's local state folder, ``.sls-py/local/<stage>``."""
    return project.state_dir / "local" / spec.stage


def md5_file(path: Path) -> str:
    """The MD5 hex digest of a file (S3's ETag of a single-part upload)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def upload_matches(trigger: UploadTriggerSpec, bucket: str, key: str) -> bool:
    """Whether an object ``key`` created in ``bucket`` fires ``trigger``."""
    return (
        trigger.bucket == bucket and key.startswith(trigger.prefix) and key.endswith(trigger.suffix)
    )


def upload_targets(spec: Spec, bucket: str, key: str) -> list[str]:
    """The functions an upload of ``key`` into ``bucket`` fires, in spec order."""
    return [
        fn.name
        for fn in spec.functions
        if any(
            isinstance(t, UploadTriggerSpec) and upload_matches(t, bucket, key) for t in fn.triggers
        )
    ]


@dataclass(frozen=True)
class _QueueRoute:
    function: FunctionSpec
    trigger: QueueTriggerSpec
    queue: QueueSpec


class LocalServices:
    """Bucket watcher, scheduler, queue pollers and trigger inbox of one stage.

    :param spec: the resolved spec of the stage.
    :param project: the project (its ``.sls-py/local/<stage>`` folder holds the state).
    :param invoke: ``async invoke(function, event_wire) -> Outcome``; called
        concurrently from the event loop, it must not block the loop.
    :param ui: where progress lines and warnings go.
    :param clock: ``None`` for the real clock, or ``"START[@SPEED]"`` (see
        :func:`sls_py_local.clock.parse_clock`) for schedules on a simulated clock.

    :meth:`start` and :meth:`stop` must be awaited in the same running event
    loop; all work happens in tasks of that loop (SQLite and hashing in worker
    threads). Only one instance per stage folder can run at a time.
    """

    #: a file fires once its size and mtime have not changed for this long; a writer
    #: that pauses longer mid-file causes one event for the part and one for the whole
    settle_s = 0.2
    poll_max_s = 0.25  #: longest pause between polls of an idle queue
    stop_grace_s = 10.0  #: how long stop() lets in-flight invocations finish

    def __init__(
        self,
        spec: Spec,
        project: Project,
        invoke: Invoke,
        ui: UI,
        clock: str | None = None,
        lock: RunLock | None = None,
    ) -> None:
        self.spec, self.project, self.invoke, self.ui = spec, project, invoke, ui
        self.clock_text = clock
        self.clock: Clock = parse_clock(clock)
        self.root = stage_root(spec, project)
        self.driver = LocalDriver(self.root)
        self.buckets_dir = self.driver.buckets_dir
        self.inbox_dir = self.root / "inbox"
        # the stage's run lock: taken by start() unless the caller (sls-py run) holds it
        self.own_lock = lock is None
        self.lock = lock if lock is not None else RunLock(self.root)
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._triggers: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[Any]] = set()
        self._fired: dict[Path, tuple[int, int, int]] = {}
        self._settling: set[Path] = set()
        self._probe_seen: asyncio.Event | None = None

    # --- life cycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start watching, scheduling and polling; return once the watcher is live.

        Raises :class:`~sls_py.errors.ProviderError` when another ``sls-py run``
        already serves this stage. Writes ``run.json`` (see :mod:`sls_py_local.runfile`).
        """
        if self.own_lock:
            self.lock.acquire()
        try:
            self.buckets_dir.mkdir(parents=True, exist_ok=True)
            for bucket in self.spec.buckets:
                (self.buckets_dir / bucket.name).mkdir(parents=True, exist_ok=True)
            self.inbox_dir.mkdir(parents=True, exist_ok=True)
            self._stop.clear()
            await asyncio.to_thread(self._seed)
            await self._start_watcher()
            self.lock.publish(clock=self.clock_text, inbox=str(self.inbox_dir))
            for leftover in sorted(self.inbox_dir.glob("*.json")):
                self._on_inbox(leftover)
            # a simulated clock starts now, when the schedules do; rates count from START
            self.clock = parse_clock(self.clock_text)
            self._start_triggers()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every loop, let in-flight invocations finish (up to ``stop_grace_s``),
        remove ``run.json`` and release the lock. Safe to call twice."""
        self.lock.withdraw()  # from now on, sls-py trigger runs functions itself
        self._stop.set()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        self._triggers.clear()
        if self._inflight:
            _done, pending = await asyncio.wait(set(self._inflight), timeout=self.stop_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.own_lock:
            self.lock.release()

    def _start_triggers(self) -> None:
        """Start a loop per schedule and per queue trigger of ``self.spec``."""
        origin = self.clock.start if isinstance(self.clock, SimulatedClock) else self.clock.now()
        for fn, trigger in self._schedules():
            self._triggers.append(asyncio.create_task(self._schedule_loop(fn, trigger, origin)))
        for route in self._queue_routes():
            self._triggers.append(asyncio.create_task(self._queue_loop(route)))
        from .async_invoke import invoke_loop, invoke_targets  # ctx.invoke_async deliveries

        for fn in invoke_targets(self.spec):
            self._triggers.append(asyncio.create_task(invoke_loop(self, fn)))
        self._loops.extend(self._triggers)
        self._announce(origin)

    async def update(self, spec: Spec) -> None:
        """Serve ``spec`` from now on (after a hot reload changed the app).

        Schedule and queue loops are restarted with the new triggers; the
        watcher keeps running and invocations in flight finish. Rates count
        again from now (or from START on a simulated clock).
        """
        for task in self._triggers:
            task.cancel()
        await asyncio.gather(*self._triggers, return_exceptions=True)
        self._loops = [t for t in self._loops if t not in self._triggers]
        self._triggers = []
        self.spec = spec
        for bucket in spec.buckets:
            (self.buckets_dir / bucket.name).mkdir(parents=True, exist_ok=True)
        self._start_triggers()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    def _schedules(self) -> list[tuple[FunctionSpec, ScheduleTriggerSpec]]:
        return [
            (fn, t)
            for fn in self.spec.functions
            for t in fn.triggers
            if isinstance(t, ScheduleTriggerSpec) and t.enabled
        ]

    def _queue_routes(self) -> list[_QueueRoute]:
        queues = {q.name: q for q in self.spec.queues}
        return [
            _QueueRoute(fn, t, queues[t.queue])
            for fn in self.spec.functions
            for t in fn.triggers
            if isinstance(t, QueueTriggerSpec)
        ]

    def _announce(self, origin: datetime) -> None:
        """Say at start-up what will fire what."""
        ui = self.ui
        if self.clock_text:
            now = iso_utc(self.clock.now())
            ui.info(f"schedules run on a simulated clock: {self.clock_text} (now {now})")
        for fn, t in self._schedules():
            nxt = parse_schedule(t.expression).next_after(self.clock.now(), start=origin)
            ui.info(f"schedule {t.name} {t.expression} -> {fn.name} (next {iso_utc(nxt)})")
        for fn in self.spec.functions:
            for t in fn.triggers:
                if isinstance(t, UploadTriggerSpec):
                    where = f"{self.buckets_dir / t.bucket}/{t.prefix}*{t.suffix}"
                    ui.info(f"upload {where} -> {fn.name}")
        for note in self.not_emulated():
            ui.info(f"not emulated locally: {note}")
        for route in self._queue_routes():
            q = route.queue
            ui.info(
                f"queue {q.name} -> {route.function.name} (batch {route.trigger.batch_size}, "
                f"visibility {q.visibility_timeout_s}s, dead letters after {q.max_receives} "
                f"receives to {dead_letter_queue(q.name)})"
            )
            if q.visibility_timeout_s < route.function.timeout_s:
                ui.warn(
                    f"queue {q.name}: visibility timeout {q.visibility_timeout_s}s is shorter than "
                    f"{route.function.name}'s timeout {route.function.timeout_s:g}s; AWS refuses "
                    "this, and locally a slow batch may be delivered twice"
                )

    def not_emulated(self) -> list[str]:
        """What this spec uses that the local services do not reproduce exactly."""
        notes = []
        if any(isinstance(t, UploadTriggerSpec) for fn in self.spec.functions for t in fn.triggers):
            notes.append(
                "upload events carry a content type guessed from the key's extension; "
                "the content_type given to Bucket.put is not kept"
            )
        return notes

    async def _invoke(self, function: str, event: dict[str, Any], what: str) -> Outcome:
        """Call ``invoke`` and report the outcome on the UI; never raises."""
        try:
            outcome = await self.invoke(function, event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = failure(exc)
        if outcome.error is not None:
            self.ui.warn(
                f"{what} -> {function} failed: {outcome.error.type}: {outcome.error.message}"
            )
        else:
            self.ui.info(f"{what} -> {function} ok")
        return outcome

    # --- buckets ------------------------------------------------------------------

    async def _start_watcher(self) -> None:
        """Start the watch loop and wait until it has seen a probe file."""
        self._probe_seen = asyncio.Event()
        self._loops.append(asyncio.create_task(self._watch_loop()))
        probe = self.buckets_dir / f"{PROBE_PREFIX}{os.getpid()}"
        try:
            # until the watch is registered a probe goes unseen: write it again and again
            for _ in range(500):
                probe.write_bytes(b"")
                try:
                    await asyncio.wait_for(self._probe_seen.wait(), timeout=0.02)
                    return
                except TimeoutError:
                    if self._loops[-1].done():
                        self._loops[-1].result()  # the watcher died: raise its error
            raise RuntimeError(f"the file watcher on {self.buckets_dir} did not start")
        finally:
            probe.unlink(missing_ok=True)

    async def _watch_loop(self) -> None:
        from watchfiles import awatch

        while not self._stop.is_set():
            try:
                async for changes in awatch(
                    self.buckets_dir,
                    self.inbox_dir,
                    watch_filter=None,
                    stop_event=self._stop,
                    step=20,
                ):
                    self._on_changes(changes)
            except Exception as exc:
                if self._probe_seen is None or not self._probe_seen.is_set():
                    raise  # never started: start() reports it
                self.ui.warn(f"the bucket watcher failed ({exc}); restarting it")
                await asyncio.sleep(0.5)
                self.buckets_dir.mkdir(parents=True, exist_ok=True)
                self.inbox_dir.mkdir(parents=True, exist_ok=True)

    def _on_changes(self, changes: set[tuple[Any, str]]) -> None:
        from watchfiles import Change

        for change, raw in changes:
            path = Path(raw)
            if path.name.startswith(PROBE_PREFIX):
                if self._probe_seen is not None:
                    self._probe_seen.set()
            elif path.parent == self.inbox_dir:
                if change != Change.deleted:
                    self._on_inbox(path)
            elif change == Change.deleted:
                self._fired.pop(path, None)
            else:
                self._on_bucket_change(path, added=change == Change.added)

    def _seed(self) -> None:
        """Remember the files already there: they were not created by this run."""
        for dirpath, _dirs, files in os.walk(self.buckets_dir):
            for name in files:
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    st = path.stat()
                    self._fired[path] = (st.st_ino, st.st_size, st.st_mtime_ns)

    def _on_bucket_change(self, path: Path, added: bool) -> None:
        """A path under ``buckets/`` was added or modified."""
        if path.name.startswith(TMP_PREFIX) or path.parent == self.buckets_dir:
            return
        if path.is_dir():
            if added:
                # files moved or copied in with their folder may predate its watch
                for dirpath, _dirs, files in os.walk(path):
                    for name in files:
                        self._on_bucket_change(Path(dirpath) / name, added=True)
            return
        if path not in self._settling:
            self._settling.add(path)
            self._spawn(self._settle_and_fire(path))

    async def _settle_and_fire(self, path: Path) -> None:
        """Wait until ``path`` stops changing, then fire its triggers once for this content."""
        previous = None
        try:
            while True:
                try:
                    st = path.stat()
                except OSError:
                    return
                if not stat.S_ISREG(st.st_mode):
                    return
                signature = (st.st_ino, st.st_size, st.st_mtime_ns)
                if signature == previous:
                    break
                previous = signature
                await asyncio.sleep(self.settle_s)
        finally:
            self._settling.discard(path)
        if self._fired.get(path) == signature:
            return
        self._fired[path] = signature
        await self.fire_upload(path)

    async def fire_upload(self, path: Path) -> list[tuple[str, Outcome]]:
        """Fire the upload triggers matching the object file ``path``; return the outcomes."""
        try:
            rel = path.relative_to(self.buckets_dir).as_posix()
        except ValueError:
            return []
        bucket, _, key = rel.partition("/")
        try:
            check_key(key)
        except InvalidKey as exc:
            self.ui.warn(f"{path}: not fired: {exc}")
            return []
        targets = upload_targets(self.spec, bucket, key)
        if not targets:
            return []
        try:
            size = path.stat().st_size
            etag = await asyncio.to_thread(md5_file, path)
        except OSError:
            return []  # deleted again before it could fire
        event = UploadEvent(
            bucket=bucket,
            key=key,
            size=size,
            etag=etag,
            content_type=mimetypes.guess_type(key)[0],
            time=iso_utc(self.clock.now()),
        ).to_wire()
        what = f"upload {bucket}/{key}"
        outcomes = await asyncio.gather(*(self._invoke(fn, event, what) for fn in targets))
        return list(zip(targets, outcomes, strict=True))

    # --- schedules ----------------------------------------------------------------

    async def _schedule_loop(
        self, fn: FunctionSpec, trigger: ScheduleTriggerSpec, origin: datetime
    ) -> None:
        expr = parse_schedule(trigger.expression)
        last = origin
        # a run that fell far behind (machine suspended) skips missed firings
        max_lag = timedelta(seconds=60 * self.clock.speed)
        while True:
            when = expr.next_after(last, start=origin)
            await self.clock.sleep_until(when)
            now = self.clock.now()
            last = when
            if now - when > max_lag:
                self.ui.warn(f"schedule {trigger.name}: skipped firings missed while suspended")
                last = now
                continue
            self._spawn(self.fire_schedule(fn, trigger, when_iso=iso_utc(when)))

    async def fire_schedule(
        self, fn: FunctionSpec, trigger: ScheduleTriggerSpec, when_iso: str | None = None
    ) -> Outcome:
        """Fire one schedule trigger of ``fn`` for the scheduled time ``when_iso`` (default now)."""
        event = ScheduleEvent(
            schedule=trigger.name,
            expression=trigger.expression,
            time=when_iso or iso_utc(self.clock.now()),
            payload=trigger.payload,
        ).to_wire()
        return await self._invoke(fn.name, event, f"schedule {trigger.name} at {event['time']}")

    # --- queues -------------------------------------------------------------------

    async def poll(
        self,
        concurrency: int,
        receive: Callable[[], list[Received]],
        deliver: Callable[[list[Received]], Coroutine[Any, Any, Any]],
    ) -> None:
        """Until cancelled: ``receive`` (in a thread) and hand what it gets to ``deliver``
        as a task, at most ``concurrency`` at once, backing off while nothing comes."""
        slots = asyncio.Semaphore(concurrency)
        pause = 0.02
        while True:
            await slots.acquire()
            try:
                got = await asyncio.to_thread(receive)
            except BaseException:
                slots.release()
                raise
            if not got:
                slots.release()
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.poll_max_s)
                continue
            pause = 0.02
            task = self._spawn(deliver(got))
            task.add_done_callback(lambda _t: slots.release())

    async def _queue_loop(self, route: _QueueRoute) -> None:
        store = self.driver.queue_store()
        await self.poll(
            route.function.concurrency or 2,
            lambda: store.receive(
                route.queue.name,
                route.trigger.batch_size,
                route.queue.visibility_timeout_s,
                route.queue.max_receives,
            ),
            lambda got: self.deliver_batch(route.function.name, route.queue, got),
        )

    async def deliver_batch(
        self, function: str, queue: QueueSpec, got: list[Received]
    ) -> tuple[Outcome, set[str]]:
        """Invoke ``function`` with a batch; delete what succeeded. Returns the outcome
        and the failed ids.

        A raised error fails the whole batch; ``{"failed": [ids]}`` fails those
        messages only (an id that is not in the batch fails the whole batch, as
        on AWS). Failed messages come back after the visibility timeout.
        """
        batch = QueueBatch(queue=queue.name, messages=[r.message for r in got])
        ids = [m.id for m in batch.messages]
        outcome = await self._invoke(
            function, batch.to_wire(), f"queue {queue.name} ({len(ids)} messages)"
        )
        failed: set[str] = set(ids)
        if outcome.error is None:
            result = outcome.result if isinstance(outcome.result, dict) else {}
            reported = {str(i) for i in result.get("failed") or []}
            if reported - set(ids):
                self.ui.warn(
                    f"queue {queue.name}: {function} reported message ids not in the batch; "
                    "the whole batch failed"
                )
            else:
                failed = reported
        store = self.driver.queue_store()
        for r in got:
            if r.message.id in failed:
                last = r.message.receive_count >= queue.max_receives
                fate = f"goes to {dead_letter_queue(queue.name)}" if last else "will be retried"
                self.ui.warn(
                    f"queue {queue.name}: message {r.message.id} failed (receive "
                    f"{r.message.receive_count} of {queue.max_receives}); {fate} after "
                    f"{queue.visibility_timeout_s}s"
                )
            else:
                await asyncio.to_thread(store.delete, queue.name, r.message.id, r.receipt)
        return outcome, failed

    # --- inbox (triggers fired from another terminal) --------------------------------

    def _on_inbox(self, path: Path) -> None:
        if path.suffix != ".json" or path.name.endswith(".result.json") or not path.is_file():
            return
        if path in self._settling:
            return
        self._settling.add(path)
        self._spawn(self._serve_request(path))

    async def _serve_request(self, path: Path) -> None:
        try:
            try:
                request = json.loads(path.read_text(encoding="utf-8"))
                path.unlink()
            except (OSError, ValueError):
                return
            result = await self._answer(request)
            out = path.with_name(path.stem + ".result.json")
            atomic_write(out, json.dumps(result).encode(), self.driver.tmp_dir)
        finally:
            self._settling.discard(path)

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("kind") != "schedule":
            return {"error": f"unknown request kind {request.get('kind')!r}"}
        try:
            fn = self.spec.function(str(request.get("function")))
        except Exception as exc:
            return {"error": str(exc)}
        fired = []
        for trigger in fn.triggers:
            if isinstance(trigger, ScheduleTriggerSpec):
                outcome = await self.fire_schedule(fn, trigger)
                fired.append({"schedule": trigger.name, **outcome_data(fn.name, outcome)})
        return {"invocations": fired}
