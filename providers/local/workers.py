"""Worker pools: each function's processes, forked from its group's template.

A :class:`FunctionPool` owns one function's workers, forked from the
:class:`Template` (a process that has imported the app) of its
:class:`~.group.TemplateGroup`, which the functions whose environments are
equal share. An invocation goes to an idle warm worker, else waits in a bounded
queue while the pool scales out up to the function's concurrency; a full queue
is refused (429). Each worker serves one invocation at a time over pipes driven
by asyncio protocol callbacks.

A worker that times out is killed (504); one that dies or runs out of memory
fails only its own invocation (502); either way the pool forks a new one when
work is waiting. Hot reload starts a new template for the group; new
invocations go to its workers while in-flight ones finish on the old workers,
which are then stopped.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from sls_py.runtime import Outcome
from sls_py.runtime.errors import ErrorInfo
from sls_py.spec import FunctionSpec

from .group import TemplateGroup
from .handles import Callback, Pending, Template, TemplateFailed, Worker, error_outcome
from .launch import TemplateEnv
from .logs import LogSink
from .settings import PoolSettings

__all__ = ["FunctionPool", "Pending", "PoolSettings", "TemplateFailed", "Worker", "error_outcome"]


class FunctionPool:
    """One function's warm workers and queue; its template is its group's."""

    def __init__(
        self,
        fn: FunctionSpec,
        env: dict[str, str],
        cwd: Path,
        logs: LogSink,
        settings: PoolSettings,
        loop: asyncio.AbstractEventLoop,
        group: TemplateGroup | None = None,
    ) -> None:
        """:param env: the function's environment (see
            :func:`~.oneshot.function_environment`); used for the template only
            when the pool has no ``group``, whose environment is the template's.
        :param group: the template processes it shares with the functions whose
            environments are equal; by default one of its own."""
        self.fn, self.env, self.cwd, self.logs, self.settings, self.loop = (
            fn,
            env,
            cwd,
            logs,
            settings,
            loop,
        )
        if group is None:
            own = TemplateEnv(fn.name, (fn.name,), env, fn.memory_mb)
            group = TemplateGroup(own, cwd, settings, loop)
        self.group = group
        group.pools.append(self)
        self.max_workers = fn.concurrency or settings.max_workers or os.cpu_count() or 1
        #: the group's template this pool forks its workers from (``None``: not
        #: started yet, or lost; the next invocation asks the group)
        self.template: Template | None = None
        self.starting: asyncio.Task[None] | None = None
        self.workers: set[Worker] = set()
        self.idle: list[Worker] = []
        self.queue: deque[Pending] = deque()
        self.spawning = 0
        self.crashed: set[int] = set()
        self.closed = False
        # one timer per pool for the workers' deadlines, not one per invocation
        self.deadline_timer: asyncio.TimerHandle | None = None

    # --- public API -------------------------------------------------------

    async def start(self, prewarm: int = 1) -> bool:
        """Take the group's template (started, once for the whole group, if none
        runs) and fork ``prewarm`` workers; ``False`` (and the reason in the log)
        when the function's code does not import. Invocations that come meanwhile
        wait for it."""
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

    def adopt(self, new: Template, first: Worker | None) -> None:
        """Serve new invocations from ``new``, the group's template of freshly
        imported code (see :meth:`.group.TemplateGroup.reload`): ``first`` was
        forked from it for this pool (``None``: the pool was not serving then).
        Idle workers of the old code stop; busy ones finish their invocation first.
        A pool that has not started keeps waiting for its first invocation."""
        old = self.template
        if old is None and first is None:
            return
        self.template = new
        warm = max(1, sum(1 for w in self.workers if w.template is old)) if old is not None else 1
        for w in [w for w in self.idle if w.template is not new]:
            self.idle.remove(w)
            w.stop()
            self._forget(w)
        if first is not None:
            self.workers.add(first)
            self.worker_free(first)  # takes the oldest queued invocation, if one waits
        for _ in range(min(warm, self.max_workers) - (first is not None)):
            self._spawn()

    def last_used(self) -> float:
        """When this function last ran (monotonic; infinity while it runs or has work
        waiting, 0 if never): reloads start the templates of the busiest first."""
        if self.queue or any(w.current is not None for w in self.workers):
            return float("inf")
        return max((w.idle_since for w in self.workers), default=0.0)

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
        """Kill every worker of this function (and the group's templates, once every
        pool of the group has closed)."""
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
        self.group.pool_closed()

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
        """The group's ``template`` exited: start over from a new one if it was this
        pool's (at once when invocations wait, else on the next)."""
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
        self.group.worker_gone(w)

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
            template = await self.group.current()
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
            worker = await template.spawn(self)
        except (TemplateFailed, OSError) as exc:
            self.spawning -= 1
            self.logs.emit(self.fn.name, "", "ERROR", f"cannot start a worker: {exc}")
            if template is self.template:
                template.close()
                self.group.template_lost(template)
            return
        self.spawning -= 1
        self.workers.add(worker)
        self.worker_free(worker)
