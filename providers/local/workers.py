"""Worker pools: each function's processes, forked from its template.

A :class:`FunctionPool` owns one function's :class:`Template` (a process that
has imported the app) and the workers forked from it. An invocation goes to an
idle warm worker, else waits in a bounded queue while the pool scales out up to
the function's concurrency; a full queue is refused (429). Each worker serves
one invocation at a time over pipes driven by asyncio protocol callbacks.

A worker that times out is killed (504); one that dies or runs out of memory
fails only its own invocation (502); either way the pool forks a new one when
work is waiting. Hot reload starts a new template; new invocations go to its
workers while in-flight ones finish on the old workers, which are then stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from sls_py.runtime import Outcome
from sls_py.runtime.errors import ErrorInfo
from sls_py.spec import FunctionSpec

from .handles import Callback, Pending, Template, TemplateFailed, Worker, error_outcome
from .launch import Launch
from .logs import LogSink
from .settings import PoolSettings

__all__ = ["FunctionPool", "Pending", "PoolSettings", "TemplateFailed", "Worker", "error_outcome"]


class FunctionPool:
    """One function's warm workers, queue and template."""

    def __init__(
        self,
        fn: FunctionSpec,
        env: dict[str, str],
        cwd: Path,
        logs: LogSink,
        settings: PoolSettings,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.fn, self.env, self.cwd, self.logs, self.settings, self.loop = (
            fn,
            env,
            cwd,
            logs,
            settings,
            loop,
        )
        self.max_workers = fn.concurrency or settings.max_workers or os.cpu_count() or 1
        self.template: Template | None = None
        self.old_templates: list[Template] = []
        #: hot reload's head start: a template process that has imported the libraries
        #: the app uses (not the app) and waits to import the changed code
        self.spare: Template | None = None
        self.spare_task: asyncio.Task[None] | None = None
        self.starting: asyncio.Task[None] | None = None
        self.workers: set[Worker] = set()
        self.idle: list[Worker] = []
        self.queue: deque[Pending] = deque()
        self.spawning = 0
        self.crashed: set[int] = set()
        self.closed = False
        # a template process started before the event loop (see .launch); the
        # first template adopts it
        self.prestarted: Launch | None = None
        # one timer per pool for the workers' deadlines, not one per invocation
        self.deadline_timer: asyncio.TimerHandle | None = None

    # --- public API -------------------------------------------------------

    async def start(self, prewarm: int = 1) -> bool:
        """Start the template and ``prewarm`` workers; ``False`` (and the reason in
        the log) when the function's code does not import. Invocations that come
        meanwhile wait for it."""
        if self.template is None:
            if self.starting is None:
                self.starting = self.loop.create_task(self._start_template())
            await asyncio.shield(self.starting)
        if self.template is None:
            return False
        for _ in range(min(prewarm, self.max_workers) - len(self.workers) - self.spawning):
            self._spawn()
        return True

    def submit(
        self,
        event: dict[str, Any],
        callback: Callback,
        rid: str | None = None,
        body: bytes | None = None,
    ) -> bool:
        """Run ``event`` (wire form) and call ``callback(outcome_wire)`` once.
        ``False`` when the function is at its concurrency limit and its queue is full.

        With ``body``, ``event`` is an ``http`` event without its ``body`` item
        and the outcome's response body is bytes, not base64 (see :class:`Pending`)."""
        pending = Pending(rid or str(uuid.uuid4()), event, callback, body)
        if self.idle:
            self.idle.pop().run(pending)
            return True
        # waiting for a worker that is starting (or may still start) is not queueing
        free = self.max_workers - (len(self.workers) - len(self.idle))
        if len(self.queue) >= self.settings.queue_size + max(0, free):
            return False
        self.queue.append(pending)
        self._scale()
        return True

    async def invoke(self, event: dict[str, Any]) -> Outcome:
        """Run ``event`` and wait for its :class:`Outcome` (429 error when throttled)."""
        future: asyncio.Future[dict[str, Any]] = self.loop.create_future()

        def done(outcome: dict[str, Any]) -> None:
            if not future.done():
                future.set_result(outcome)

        if not self.submit(event, done):
            return Outcome(
                error=ErrorInfo(
                    "TooManyRequests", f"function {self.fn.name!r} is at its limit", 429
                )
            )
        return Outcome.from_wire(await future)

    async def reload(self) -> Template | None:
        """Serve new invocations from freshly imported code (raises :class:`TemplateFailed`).

        The new template's first worker is forked before the swap, so the first
        invocation after it does not wait for a fork. Returns the new template,
        ``None`` when there was none to replace (the next start imports the new
        code); cancelled, it leaves no new process behind and the old code serving."""
        if self.starting is not None:
            # A template that began starting before the change may have imported the
            # old code: let it finish, then replace it like any running template.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.starting)
        if self.template is None:
            return None  # never started (or failed to): the next start imports the new code
        spare, self.spare = self.spare, None
        if spare is not None and self.spare_task is not None and not self.spare_task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.spare_task)  # nearly there, most likely
        if spare is not None and not spare.waiting():
            spare.close()
            spare = None
        new = spare if spare is not None else Template(self)
        try:
            if new is spare:
                await new.activate()  # imports only the app: its libraries are imported
            else:
                await new.start()
            first = await new.spawn()
        except BaseException:
            for w in list(new.workers):
                w.kill()
            new.close()
            raise
        if self.closed:  # shut down meanwhile
            first.kill()
            new.close()
            return None
        old, self.template = self.template, new
        warm = max(1, len(old.workers)) if old is not None else 1
        if old is not None:
            for w in [w for w in self.idle if w.template is old]:
                self.idle.remove(w)
                w.stop()
                self._forget(w)
            self.old_templates.append(old)
        self._close_drained()
        self.workers.add(first)
        self.worker_free(first)  # takes the oldest queued invocation, if one waits
        for _ in range(min(warm, self.max_workers) - 1):
            self._spawn()
        return new

    def last_used(self) -> float:
        """When this function last ran (monotonic; infinity while it runs or has work
        waiting, 0 if never): reloads start the templates of the busiest first."""
        if self.queue or any(w.current is not None for w in self.workers):
            return float("inf")
        return max((w.idle_since for w in self.workers), default=0.0)

    def start_spare(self) -> None:
        """Start a spare template (see :attr:`spare`) unless one is there already."""
        if self.closed or self.template is None or self.spare is not None:
            return
        spare = self.spare = Template(self, spare=self.template.preload)

        async def run() -> None:
            try:
                await spare.start()
            except TemplateFailed:
                if self.spare is spare:
                    self.spare = None

        self.spare_task = self.loop.create_task(run())

    def close_spare(self) -> None:
        """Stop the spare template, if there is one."""
        spare, self.spare = self.spare, None
        if self.spare_task is not None:
            self.spare_task.cancel()
            self.spare_task = None
        if spare is not None:
            spare.close()

    def busy(self) -> bool:
        """Whether an invocation is running or waiting for a worker."""
        return bool(self.queue) or any(w.current is not None for w in self.workers)

    def reap(self, now: float | None = None) -> None:
        """Stop workers idle for longer than the idle timeout."""
        now = time.monotonic() if now is None else now
        for w in [w for w in self.idle if now - w.idle_since > self.settings.idle_timeout_s]:
            self.idle.remove(w)
            w.stop()
            self._forget(w)

    def watch_deadline(self, deadline: float) -> None:
        """Make sure the workers' deadlines are checked by ``deadline`` (loop time)."""
        timer = self.deadline_timer
        if timer is None or deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self.deadline_timer = self.loop.call_at(deadline, self._check_deadlines)

    def _check_deadlines(self) -> None:
        """Time out the invocations past their deadline; wait for the next one."""
        self.deadline_timer = None
        now = self.loop.time()
        earliest: float | None = None
        for w in list(self.workers):
            deadline = w.deadline
            if deadline is None:
                continue
            if deadline <= now:
                w.time_out()
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self.watch_deadline(earliest)

    #: the server is stopping: a template that exits now is not restarted or reported
    stopping = False

    def close(self) -> None:
        """Kill every worker and template of this function."""
        self.closed = True
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
        if self.starting is not None:
            self.starting.cancel()
        for pending in self.queue:
            pending.finish(error_outcome("ShuttingDown", "the local server is stopping", 503))
        self.queue.clear()
        for w in list(self.workers):
            w.kill()
        for t in [*self.old_templates, *([self.template] if self.template else [])]:
            t.close()
        self.close_spare()

    # --- callbacks from workers and templates --------------------------------

    def worker_free(self, w: Worker) -> None:
        if w.dead:
            return
        if w.template is not self.template:
            w.stop()
            self._forget(w)
            return
        if self.queue:
            w.run(self.queue.popleft())
            return
        w.idle_since = time.monotonic()
        self.idle.append(w)

    def worker_gone(self, w: Worker) -> None:
        if w in self.idle:
            self.idle.remove(w)
        self._forget(w)
        self._scale()

    def template_lost(self, template: Template) -> None:
        if template is self.template and not self.closed:
            self.template = None
            if self.stopping:  # e.g. SIGTERM to the whole process group: nothing to report
                return
            self.logs.emit(
                self.fn.name, "", "ERROR", "the function's template process exited; restarting it"
            )
            if self.queue:
                self._scale()

    def exited(self, pid: int, status: str) -> None:
        if pid in self.crashed:
            self.crashed.discard(pid)
            self.logs.emit(self.fn.name, "", "ERROR", f"worker pid {pid} exited: {status}")

    # --- internals ---------------------------------------------------------

    def _forget(self, w: Worker) -> None:
        self.workers.discard(w)
        w.template.workers.discard(w)
        self._close_drained()

    def _close_drained(self) -> None:
        for t in [t for t in self.old_templates if not t.workers]:
            self.old_templates.remove(t)
            t.close()

    def _scale(self) -> None:
        if self.closed:
            return
        while self.queue and self.idle:
            self.idle.pop().run(self.queue.popleft())
        need = len(self.queue) - self.spawning
        room = self.max_workers - len(self.workers) - self.spawning
        for _ in range(max(0, min(need, room))):
            self._spawn()

    def _spawn(self) -> None:
        if self.template is None:
            if self.starting is None:
                self.starting = self.loop.create_task(self._start_template())
            return
        self.spawning += 1
        self.loop.create_task(self._spawn_one(self.template))

    async def _start_template(self) -> None:
        try:
            template = Template(self, self.prestarted)
            self.prestarted = None
            await template.start()
        except TemplateFailed as exc:
            self.logs.emit(
                self.fn.name,
                "",
                "ERROR",
                f"cannot start the function (retried on its next invocation):\n{exc}",
            )
            queued, self.queue = self.queue, deque()
            for pending in queued:
                pending.finish(
                    error_outcome("ImportError", f"function {self.fn.name!r} failed to import")
                )
            return
        finally:
            self.starting = None
        self.template = template
        self._scale()

    async def _spawn_one(self, template: Template) -> None:
        try:
            worker = await template.spawn()
        except (TemplateFailed, OSError) as exc:
            self.spawning -= 1
            self.logs.emit(self.fn.name, "", "ERROR", f"cannot start a worker: {exc}")
            if template is self.template:
                template.close()
                self.template_lost(template)
            return
        self.spawning -= 1
        self.workers.add(worker)
        self.worker_free(worker)
