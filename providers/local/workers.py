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
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sls_py.runtime import Outcome
from sls_py.runtime.errors import ErrorInfo
from sls_py.spec import FunctionSpec

from . import channel
from .logs import LogSink

Callback = Callable[[dict[str, Any]], None]


class TemplateFailed(Exception):
    """The function's code could not be imported (the traceback is the message)."""


@dataclass(frozen=True)
class PoolSettings:
    """Tuning shared by every pool (``[tool.sls-py.providers.local]``)."""

    max_workers: int = 0  # 0: as many as cores, unless the function sets concurrency
    queue_size: int = 256
    idle_timeout_s: float = 300.0
    start_timeout_s: float = 30.0
    # keep the gateway and the workers on different cores (when there are 2 or more)
    pin_cpus: bool = True


def error_outcome(type_: str, message: str, status: int | None = None) -> dict[str, Any]:
    """An ``Outcome.to_wire()`` for a failure the pool itself detected."""
    return {"result": None, "response": None, "error": ErrorInfo(type_, message, status).to_wire()}


class Pending:
    """One invocation: its event (wire form) and whom to tell the outcome, once."""

    __slots__ = ("callback", "event", "rid")

    def __init__(self, rid: str, event: dict[str, Any], callback: Callback) -> None:
        self.rid, self.event = rid, event
        self.callback: Callback | None = callback

    def finish(self, outcome: dict[str, Any]) -> None:
        callback, self.callback = self.callback, None
        if callback is not None:
            callback(outcome)


class _ResultProtocol(asyncio.Protocol):
    """Reads a worker's result and log frames."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.decoder = channel.FrameDecoder(worker.on_frame)

    def data_received(self, data: bytes) -> None:
        self.decoder.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.lost()


class _RawOutputProtocol(asyncio.Protocol):
    """Reads what a worker writes to fd 1/2 below Python (C code, subprocesses)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\n" in self.buffer:
            lines, _, self.buffer = self.buffer.rpartition(b"\n")
            self.worker.raw_output(lines.decode("utf-8", "replace"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.buffer:
            self.worker.raw_output(self.buffer.decode("utf-8", "replace"))


class _WriteProtocol(asyncio.Protocol):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.worker.lost()


class Worker:
    """The gateway's handle of one worker process."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self.pool = template.pool
        self.pid: int | None = None
        self.requests: Any = None  # the asyncio write transport of the request pipe
        self.transports: list[asyncio.BaseTransport] = []
        self.current: Pending | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.dead = False
        self.idle_since = 0.0

    def run(self, pending: Pending) -> None:
        """Send ``pending`` to this worker; time it out at the function's timeout."""
        fn = self.pool.fn
        self.current = pending
        deadline_ms = int(time.time() * 1000 + fn.timeout_s * 1000)
        frame = channel.encode(
            channel.REQUEST, {"id": pending.rid, "deadline_ms": deadline_ms, "event": pending.event}
        )
        self.requests.write(frame)
        self.timer = self.pool.loop.call_later(fn.timeout_s, self._timed_out)

    def on_frame(self, kind: bytes, message: Any) -> None:
        if kind == channel.LOG:
            rid = message.get("id") or (self.current.rid if self.current else "")
            self.pool.logs.emit(
                self.pool.fn.name, rid, message.get("level", "INFO"), message.get("message", "")
            )
            return
        pending = self.current
        if kind != channel.RESULT or pending is None or message.get("id") != pending.rid:
            return
        self.current = None
        if self.timer is not None:
            self.timer.cancel()
        if message.get("oom"):
            fn = self.pool.fn
            text = (
                f"function {fn.name!r} ran out of memory (limit {fn.memory_mb} MB); "
                "the worker was stopped and will be replaced"
            )
            self.pool.logs.emit(
                fn.name, pending.rid, "ERROR", text + "; raise memory_mb if it needs more"
            )
            self.kill()
            pending.finish(error_outcome("OutOfMemory", text))
            self.pool.worker_gone(self)
            return
        pending.finish(message["outcome"])
        self.pool.worker_free(self)

    def raw_output(self, text: str) -> None:
        rid = self.current.rid if self.current else ""
        self.pool.logs.emit(self.pool.fn.name, rid, "INFO", text)

    def _timed_out(self) -> None:
        pending, self.current = self.current, None
        self.timer = None
        fn = self.pool.fn
        self.kill()
        if pending is not None:
            self.pool.logs.emit(
                fn.name,
                pending.rid,
                "ERROR",
                f"timed out after {fn.timeout_s:g} s; "
                f"worker pid {self.pid} was killed and will be replaced",
            )
            pending.finish(
                error_outcome(
                    "Timeout", f"function {fn.name!r} timed out after {fn.timeout_s:g} s", 504
                )
            )
        self.pool.worker_gone(self)

    def lost(self) -> None:
        """The worker's result pipe closed: it exited (or was killed)."""
        if self.dead:
            return
        self._close()
        pending, self.current = self.current, None
        if self.timer is not None:
            self.timer.cancel()
        if pending is not None:
            fn = self.pool.fn
            self.pool.crashed.add(self.pid or 0)
            self.pool.logs.emit(
                fn.name,
                pending.rid,
                "ERROR",
                f"worker pid {self.pid} died while handling the request; it will be replaced",
            )
            pending.finish(
                error_outcome(
                    "WorkerCrashed", f"the worker of {fn.name!r} died while handling the request"
                )
            )
        self.pool.worker_gone(self)

    def kill(self) -> None:
        """Kill the process now."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self._close()

    def stop(self) -> None:
        """Let the process finish: closing its request pipe makes it exit."""
        self._close()

    def _close(self) -> None:
        self.dead = True
        for t in self.transports:
            t.close()


class Template:
    """The gateway's handle of one template process (one per function and code generation)."""

    _ids = itertools.count(1)

    def __init__(self, pool: FunctionPool) -> None:
        self.pool = pool
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.ready: asyncio.Future[None] = pool.loop.create_future()
        self.workers: set[Worker] = set()
        self.spawning: dict[int, Worker] = {}
        self.closed = False

    async def start(self) -> None:
        """Start the process and wait until it has imported the app."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(self.pool.env)
        env["SLS_PY_CONTROL_FD"] = str(child.fileno())
        env["SLS_PY_PARENT_PID"] = str(os.getpid())
        env["SLS_PY_MEMORY_MB"] = str(self.pool.fn.memory_mb)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sls_py_local.template"],
                env=env,
                cwd=str(self.pool.cwd),
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        parent.setblocking(False)
        self.sock = parent
        self.pool.loop.add_reader(parent.fileno(), self._on_control)
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), self.pool.settings.start_timeout_s)
        except TimeoutError:
            self.close()
            raise TemplateFailed(
                f"importing the app took longer than {self.pool.settings.start_timeout_s:g} s"
            ) from None
        except TemplateFailed:
            self.close()
            raise

    def _on_control(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            message = json.loads(data)
            event = message.get("event")
            if event == "ready" and not self.ready.done():
                self.ready.set_result(None)
            elif event == "failed" and not self.ready.done():
                self.ready.set_exception(TemplateFailed(message.get("error", "")))
            elif event == "spawned":
                worker = self.spawning.pop(message["id"], None)
                if worker is not None:
                    worker.pid = message["pid"]
                    if worker.dead:
                        worker.kill()
            elif event == "exited":
                self.pool.exited(message["pid"], message.get("status", ""))

    def _lost(self) -> None:
        if not self.ready.done():
            self.ready.set_exception(
                TemplateFailed("the template process exited before it was ready")
            )
        was_open = not self.closed
        self.close()
        if was_open:
            self.pool.template_lost(self)

    async def spawn(self) -> Worker:
        """Fork a worker; it is ready to take requests when this returns."""
        if self.sock is None or self.closed:
            raise TemplateFailed("the template process is gone")
        loop = self.pool.loop
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        out_r, out_w = os.pipe()
        worker = Worker(self)
        spawn_id = next(self._ids)
        try:
            socket.send_fds(
                self.sock,
                [json.dumps({"op": "spawn", "id": spawn_id}).encode()],
                [req_r, resp_w, out_w],
            )
        except OSError:
            for fd in (req_r, req_w, resp_r, resp_w, out_r, out_w):
                os.close(fd)
            raise TemplateFailed("the template process is gone") from None
        for fd in (req_r, resp_w, out_w):
            os.close(fd)
        self.spawning[spawn_id] = worker
        self.workers.add(worker)
        wt, _ = await loop.connect_write_pipe(
            lambda: _WriteProtocol(worker), os.fdopen(req_w, "wb", buffering=0)
        )
        rt, _ = await loop.connect_read_pipe(
            lambda: _ResultProtocol(worker), os.fdopen(resp_r, "rb", buffering=0)
        )
        ot, _ = await loop.connect_read_pipe(
            lambda: _RawOutputProtocol(worker), os.fdopen(out_r, "rb", buffering=0)
        )
        worker.requests = wt
        worker.transports = [wt, rt, ot]
        return worker

    def close(self) -> None:
        """Stop the template (its workers get SIGKILL from the kernel)."""
        if self.closed:
            return
        self.closed = True
        if self.sock is not None:
            with contextlib.suppress(Exception):
                self.pool.loop.remove_reader(self.sock.fileno())
            self.sock.close()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)


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
        self.starting: asyncio.Task[None] | None = None
        self.workers: set[Worker] = set()
        self.idle: list[Worker] = []
        self.queue: deque[Pending] = deque()
        self.spawning = 0
        self.crashed: set[int] = set()
        self.closed = False

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

    def submit(self, event: dict[str, Any], callback: Callback, rid: str | None = None) -> bool:
        """Run ``event`` (wire form) and call ``callback(outcome_wire)`` once.
        ``False`` when the function is at its concurrency limit and its queue is full."""
        pending = Pending(rid or str(uuid.uuid4()), event, callback)
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

    async def reload(self) -> None:
        """Serve new invocations from freshly imported code (raises :class:`TemplateFailed`)."""
        if self.template is None:
            return  # not started yet: it will import the new code when first needed
        new = Template(self)
        await new.start()
        old, self.template = self.template, new
        warm = max(1, len(old.workers))
        for w in [w for w in self.idle if w.template is old]:
            self.idle.remove(w)
            w.stop()
            self._forget(w)
        self.old_templates.append(old)
        self._close_drained()
        for _ in range(min(warm, self.max_workers)):
            self._spawn()

    def reap(self, now: float | None = None) -> None:
        """Stop workers idle for longer than the idle timeout."""
        now = time.monotonic() if now is None else now
        for w in [w for w in self.idle if now - w.idle_since > self.settings.idle_timeout_s]:
            self.idle.remove(w)
            w.stop()
            self._forget(w)

    def close(self) -> None:
        """Kill every worker and template of this function."""
        self.closed = True
        if self.starting is not None:
            self.starting.cancel()
        for pending in self.queue:
            pending.finish(error_outcome("ShuttingDown", "the local server is stopping", 503))
        self.queue.clear()
        for w in list(self.workers):
            w.kill()
        for t in [*self.old_templates, *([self.template] if self.template else [])]:
            t.close()

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
            template = Template(self)
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
