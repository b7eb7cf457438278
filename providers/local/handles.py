"""The gateway's handles of worker processes and of their template.

A :class:`Template` is one template process (a fresh interpreter that has
imported the app) of a :class:`~sls_py_local.group.TemplateGroup`, the
functions whose environments are equal; :class:`Worker` is one process forked
from it for one of those functions. The gateway talks to a worker over pipes
read and written by asyncio protocol callbacks (:mod:`.channel` frames); the
function's :class:`~sls_py_local.workers.FunctionPool` decides which worker gets
which invocation.
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
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sls_py.runtime.errors import ErrorInfo

from . import channel
from .launch import Launch, launch_template

if TYPE_CHECKING:
    from .blank import Process
    from .group import TemplateGroup
    from .workers import FunctionPool

Callback = Callable[[dict[str, Any]], None]


class TemplateFailed(Exception):
    """The functions' code could not be imported (the traceback is the message)."""


def error_outcome(type_: str, message: str, status: int | None = None) -> dict[str, Any]:
    """An ``Outcome.to_wire()`` for a failure the pool itself detected."""
    return {"result": None, "response": None, "error": ErrorInfo(type_, message, status).to_wire()}


class Pending:
    """One invocation: its event (wire form) and whom to tell the outcome, once.

    With ``body`` (raw bytes), ``event`` is an ``http`` event without its
    ``body`` item: it travels as a raw frame, and the outcome's response body
    comes back as bytes instead of base64 (the gateway's hot path)."""

    __slots__ = ("body", "callback", "event", "rid")

    def __init__(
        self, rid: str, event: dict[str, Any], callback: Callback, body: bytes | None = None
    ) -> None:
        self.rid, self.event, self.body = rid, event, body
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
    """The gateway's handle of one worker process (of ``pool``'s function)."""

    def __init__(self, template: Template, pool: FunctionPool) -> None:
        self.template = template
        self.pool = pool
        self.pid: int | None = None
        self.requests: Any = None  # the asyncio write transport of the request pipe
        self.transports: list[asyncio.BaseTransport] = []
        self.current: Pending | None = None
        self.deadline: float | None = None  # loop time by which the invocation must end
        self.dead = False
        self.idle_since = 0.0

    def run(self, pending: Pending) -> None:
        """Send ``pending`` to this worker; time it out at the function's timeout."""
        fn = self.pool.fn
        self.current = pending
        deadline_ms = int(time.time() * 1000 + fn.timeout_s * 1000)
        message = {"id": pending.rid, "deadline_ms": deadline_ms, "event": pending.event}
        if pending.body is not None:
            frame = channel.encode_raw(channel.RAW_REQUEST, message, pending.body)
        else:
            frame = channel.encode(channel.REQUEST, message)
        self.requests.write(frame)
        self.deadline = self.pool.loop.time() + fn.timeout_s
        self.pool.watch_deadline(self.deadline)

    def on_frame(self, kind: bytes, message: Any) -> None:
        pending = self.current
        if kind == channel.LOG:
            rid = message.get("id") or (pending.rid if pending else "")
            self.pool.logs.emit(
                self.pool.fn.name, rid, message.get("level", "INFO"), message.get("message", "")
            )
            return
        if (
            kind not in (channel.RESULT, channel.RAW_RESULT)
            or pending is None
            or message.get("id") != pending.rid
        ):
            return
        logs = message.get("logs")
        if logs:  # formatted by the worker
            self.pool.logs.write_formatted(self.pool.fn.name, logs[0], logs[1])
        self.current = None
        self.deadline = None
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
        if kind == channel.RAW_RESULT:
            response = message["response"]
            if response is not None:
                response["body"] = message["raw"]
            outcome = {
                "result": message.get("result"),
                "response": response,
                "error": message.get("error"),
            }
        else:
            outcome = message["outcome"]
        # the next queued invocation goes to the worker first, so it runs while
        # the gateway answers this one
        self.pool.worker_free(self)
        pending.finish(outcome)

    def raw_output(self, text: str) -> None:
        rid = self.current.rid if self.current else ""
        self.pool.logs.emit(self.pool.fn.name, rid, "INFO", text)

    def time_out(self) -> None:
        """The invocation ran past its deadline: kill the worker, answer 504."""
        pending, self.current = self.current, None
        self.deadline = None
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
                    "TimeoutError", f"function {fn.name!r} timed out after {fn.timeout_s:g} s", 504
                )
            )
        self.pool.worker_gone(self)

    def lost(self) -> None:
        """The worker's result pipe closed: it exited (or was killed)."""
        if self.dead:
            return
        self._close()
        pending, self.current = self.current, None
        self.deadline = None
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
    """The gateway's handle of one template process (one per group of functions and
    code generation); its events go to the group's pools."""

    _ids = itertools.count(1)

    def __init__(
        self, group: TemplateGroup, launched: Launch | None = None, spare: list[str] | None = None
    ) -> None:
        self.group = group
        self.launched = launched  # already started (see .launch): adopted by start()
        #: a spare: it imports these modules, then waits for activate() to import the app
        self.spare = spare
        self.spared: asyncio.Future[None] = group.loop.create_future()
        #: the modules not the app's own it imported (for the next generation's spare)
        self.preload: list[str] = []
        self.proc: Process | None = None
        self.sock: socket.socket | None = None
        self.ready: asyncio.Future[None] = group.loop.create_future()
        #: the workers forked from it, of every function of the group
        self.workers: set[Worker] = set()
        self.spawning: dict[int, Worker] = {}
        self.closed = False

    async def start(self) -> None:
        """Start the process and wait until it has imported the app (a spare: until
        it has imported its modules)."""
        launched, self.launched = self.launched, None
        if launched is None:
            env = self.group.env.env
            if self.spare is not None:
                env = {**env, "SLS_PY_SPARE": json.dumps(self.spare)}
            launched = launch_template(env, self.group.env.memory_mb, self.group.cwd)
        self.proc, parent = launched.proc, launched.sock
        parent.setblocking(False)
        self.sock = parent
        self.group.loop.add_reader(parent.fileno(), self._on_control)
        await self._wait(self.spared if self.spare is not None else self.ready)

    def waiting(self) -> bool:
        """Whether this is a spare that has imported its modules and waits for activate()."""
        return (
            self.spare is not None
            and not self.closed
            and self.spared.done()
            and not self.spared.cancelled()
            and self.spared.exception() is None
            and not self.ready.done()
        )

    async def activate(self) -> None:
        """Have a started spare import the app; wait until it has."""
        if self.sock is None or not self.waiting():
            raise TemplateFailed("the spare template process is gone")
        try:
            self.sock.send(json.dumps({"op": "go"}).encode())
        except OSError:
            self.close()
            raise TemplateFailed("the spare template process is gone") from None
        await self._wait(self.ready)

    async def _wait(self, until: asyncio.Future[None]) -> None:
        timeout = self.group.settings.start_timeout_s
        try:
            await asyncio.wait_for(asyncio.shield(until), timeout)
        except TimeoutError:
            self.close()
            raise TemplateFailed(f"importing the app took longer than {timeout:g} s") from None
        except (TemplateFailed, asyncio.CancelledError):
            self.close()  # a cancelled start (shutdown, a superseded reload) leaves no process
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
            elif event == "preload":
                self.preload = list(message.get("modules") or [])
            elif event == "spare" and not self.spared.done():
                self.spared.set_result(None)
            elif event == "failed" and not self.ready.done():
                self.ready.set_exception(TemplateFailed(message.get("error", "")))
            elif event == "spawned":
                worker = self.spawning.pop(message["id"], None)
                if worker is not None:
                    worker.pid = message["pid"]
                    if worker.dead:
                        worker.kill()
            elif event == "exited":
                self.group.exited(message["pid"], message.get("status", ""))

    def _lost(self) -> None:
        if not self.spared.done():
            self.spared.set_exception(TemplateFailed("the spare template process exited"))
            self.spared.exception()  # retrieved: nobody may be waiting for it
        if not self.ready.done():
            self.ready.set_exception(
                TemplateFailed("the template process exited before it was ready")
            )
            if self.spare is not None:
                self.ready.exception()
        was_open = not self.closed
        self.close()
        if was_open:
            self.group.template_lost(self)

    async def spawn(self, pool: FunctionPool) -> Worker:
        """Fork a worker of ``pool``'s function; it is ready to take requests when
        this returns."""
        if self.sock is None or self.closed:
            raise TemplateFailed("the template process is gone")
        loop = self.group.loop
        spawn_id = next(self._ids)
        message: dict[str, Any] = {"op": "spawn", "id": spawn_id, "function": pool.fn.name}
        own = self.group.env.overrides.get(pool.fn.name)
        if own:  # a shared template: what the worker sets for its function
            message["env"] = own
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        out_r, out_w = os.pipe()
        worker = Worker(self, pool)
        try:
            socket.send_fds(self.sock, [json.dumps(message).encode()], [req_r, resp_w, out_w])
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

    async def report_spec(self) -> dict[str, Any]:
        """The spec this template's code builds (``{"spec": ...}``, ``Spec`` in JSON
        form) or why it does not (``{"error": "..."}``), from a child it forks."""
        if self.sock is None or self.closed:
            raise TemplateFailed("the template process is gone")
        read_fd, write_fd = os.pipe()
        try:
            socket.send_fds(self.sock, [json.dumps({"op": "spec"}).encode()], [write_fd])
        except OSError:
            os.close(read_fd)
            raise TemplateFailed("the template process is gone") from None
        finally:
            os.close(write_fd)
        loop = self.group.loop
        reader = asyncio.StreamReader(limit=1 << 26)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        try:
            data = await reader.read()
        finally:
            transport.close()
        if not data:  # the child died before it wrote (killed, or out of memory)
            return {"error": "the process building the spec exited without an answer"}
        return dict(json.loads(data))

    def close(self) -> None:
        """Stop the template (its workers get SIGKILL from the kernel)."""
        if self.closed:
            return
        self.closed = True
        if self.sock is not None:
            with contextlib.suppress(Exception):
                self.group.loop.remove_reader(self.sock.fileno())
            self.sock.close()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
