"""The template process of a group of functions, and the worker loop its children run.

The gateway starts ``python -m sls_py_local.template`` once per group of
functions whose environments are equal (see :func:`.launch.template_groups`;
a group of one is a function's own template), and again per code generation
on hot reload, with the group's environment: the functions it serves are
``SLS_PY_FUNCTIONS`` (a JSON list), or the one ``SLS_PY_FUNCTION``. The
template imports the app, finds every function's handler, reports ``ready`` on
its control socket, then waits for ``spawn`` messages, each carrying three pipe
ends (requests in, results out, raw stdout/stderr out) as SCM_RIGHTS. For each
it forks a worker (about 2 ms, the app already imported) that sets its
function's own environment (the message's ``env``: ``SLS_PY_FUNCTION``, its
memory limit, its invoke targets and the invoke endpoint) and serves that
function, one invocation at a time.

Control messages (JSON, one per SOCK_SEQPACKET packet):

- template -> gateway: ``{"event": "ready", "pid", "vm_bytes"}``,
  ``{"event": "failed", "error"}``, ``{"event": "spawned", "id", "pid"}``,
  ``{"event": "exited", "pid", "status"}``, and once, when no message waits
  after ``ready`` (the first worker's fork comes first), ``{"event": "preload",
  "modules"}``: what a spare template imports ahead of the next code change;
- gateway -> template: ``{"op": "spawn", "id", "function", "env"}`` with the
  three fds (``env``: what the worker sets, ``null`` values removed; none for a
  group of one, whose environment is its function's);
  ``{"op": "spec"}`` with the write end of a pipe: hot reload asks a new
  template for the spec its (new) code builds. A child forked for it (so the
  template imports nothing more) writes ``{"spec": <Spec JSON>}`` or
  ``{"error": "<one line>"}`` to the pipe and exits.

Both the template and its workers ask the kernel for SIGKILL when their parent
dies (PR_SET_PDEATHSIG), and a worker exits when its request pipe closes, so
no process outlives the gateway. Stdlib (and ``sls_py.runtime``) only.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import resource
import select
import signal
import socket
import sys
import time
import traceback
from typing import Any

from . import channel
from .logformat import format_record
from .procname import TEMPLATE, WORKER, name_process

PR_SET_PDEATHSIG = 1
#: how long a template waits for the gateway's first messages (its first workers'
#: spawns) before it lists what a spare template should import
PRELOAD_LIST_AFTER_S = 0.05


def die_with_parent(expected_parent: int) -> None:
    """Ask for SIGKILL when the parent dies; exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the closing pipes still stop us
        pass
    if os.getppid() != expected_parent:
        os._exit(0)


def vm_bytes() -> int:
    """This process's virtual memory size (the base a memory limit is added to)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def batch_scheduling() -> None:
    """Run this process (and the workers forked from it) under ``SCHED_BATCH``.

    Same share of the CPU as before, but a worker woken by a request does not
    preempt the process that woke it: the gateway finishes its turn (answers
    the client, reads the next request) instead of being switched out in the
    middle of its pipe write whenever the worker lands on its core. Linux only;
    a no-op elsewhere."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is not None:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, os.sched_param(0))


def release_memory() -> None:
    """Move every object to the garbage collector's permanent generation
    (``gc.freeze``, meant for pre-fork servers): forked workers' collections then
    do not write to, and so copy, the pages of the app's objects; and hand freed
    heap pages back to the kernel (glibc's ``malloc_trim``).

    No ``gc.collect()`` first: after importing the example app it took ~30-60 ms
    (35k objects) to free about 60, on the path of every template's first request."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    gc.freeze()


def preload_clients() -> None:
    """Import, once, what a worker would otherwise import on its first resource
    call after the fork: the local driver's module, the Redis client when the app
    declares a cache (valkey-py imports asyncio: ~6 MB and ~150 ms here), psycopg
    when it declares a database. Workers forked afterwards share these pages
    with the template instead of each importing a private copy, and their first
    call does not wait for the import.

    Called before the template forks a function's second worker, not before
    ``ready``: the first request does not wait for it, and a function that never
    runs two workers at once (most, on a developer's machine) does not pay it in
    its template as well as in its one worker; nor does start-up, when a shared
    template forks one worker for each HTTP function while the first request
    runs. (The cache client is the exception: :func:`_load_handlers` imports it
    before ``ready``, so here it is already there.) Nothing is connected or
    opened here (no socket or file may be shared by forked workers)."""
    import importlib

    try:
        config = json.loads(os.environ.get("SLS_PY_RESOURCES") or "{}")
    except ValueError:
        return
    names = [str(config.get("driver", "")).partition(":")[0]]
    if config.get("configs"):
        names += ["sls_py.configfile"]
    if config.get("caches"):  # idna: socket.create_connection encodes the host name with it
        names += ["encodings.idna"]
        from sls_py.runtime.cache import preload_client

        preload_client()
    if config.get("databases"):
        names += ["psycopg"]
    for name in filter(None, names):
        with contextlib.suppress(Exception):  # not installed: imported lazily, or the error then
            importlib.import_module(name)


def _send(ctrl: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        ctrl.send(json.dumps(message).encode())


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by signal {sig} ({signal.Signals(sig).name})"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def main() -> int:
    """The template: import the app, then fork workers on request."""
    name_process(TEMPLATE)
    ctrl = socket.socket(fileno=int(os.environ.pop("SLS_PY_CONTROL_FD")))
    die_with_parent(int(os.environ.pop("SLS_PY_PARENT_PID")))
    early_error = None
    if os.environ.pop("SLS_PY_BLANK", "") == "1":  # started early (see .blank)
        started, early_error = _start_early(ctrl)
        if not started:
            return 0
    cpus = os.environ.pop("SLS_PY_CPUS", "")
    batch = os.environ.pop("SLS_PY_SCHED_BATCH", "") == "1"
    json_logs = os.environ.pop("SLS_PY_LOG_JSON", "") == "1"
    shared = os.environ.pop("SLS_PY_FUNCTIONS", "")  # a template several functions share
    names = json.loads(shared) if shared else [os.environ["SLS_PY_FUNCTION"]]
    spare = os.environ.pop("SLS_PY_SPARE", None)
    if spare is not None and not _wait_as_spare(ctrl, spare, cpus):
        return 0
    try:
        if early_error is not None:
            _send(ctrl, {"event": "failed", "error": early_error})
            return 1
        handlers = _load_handlers(names)
    except BaseException:
        _send(ctrl, {"event": "failed", "error": traceback.format_exc()})
        return 1
    if cpus:
        # the cores the gateway leaves to workers, which inherit it; only now: while
        # `sls-py run` starts, the templates' imports (what the first request waits
        # for) may use every core, and the gateway has little to do
        with contextlib.suppress(OSError, ValueError):
            os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    me = os.getpid()
    if batch:  # after the import, which the first request waits for: workers inherit it
        batch_scheduling()
    release_memory()
    _send(ctrl, {"event": "ready", "pid": me, "vm_bytes": vm_bytes()})

    def reap(signum: int, frame: Any) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            _send(ctrl, {"event": "exited", "pid": pid, "status": _status(status)})

    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the gateway's to handle
    spawned: set[str] = set()  # the functions it has forked a worker for
    preloaded = False
    listed = False
    while True:
        if not listed and not select.select([ctrl], [], [], PRELOAD_LIST_AFTER_S)[0]:
            # off the first request's path (some 10 ms of realpath calls): once no
            # message came for a moment (the first workers' spawns come first)
            _send(ctrl, {"event": "preload", "modules": _preload_list()})
            listed = True
        try:  # a spawn message carries its function's environment: up to a few KB
            data, fds, _, _ = socket.recv_fds(ctrl, 1 << 16, 3)
        except OSError:
            return 0
        if not data:
            return 0
        message = json.loads(data)
        if message.get("op") == "spec" and len(fds) == 1:
            if os.fork() == 0:
                code = 1
                try:
                    ctrl.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    die_with_parent(me)
                    code = _report_spec(fds[0])
                finally:
                    os._exit(code)
            os.close(fds[0])
            continue
        name = message.get("function") or names[0]
        if message.get("op") != "spawn" or len(fds) != 3 or name not in handlers:
            for fd in fds:  # (a function not served here: its worker is lost at once)
                os.close(fd)
            continue
        if name in spawned and not preloaded:
            # a function's second worker: from now on, what they import is worth sharing
            preload_clients()
            release_memory()
            preloaded = True
        spawned.add(name)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ctrl.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                die_with_parent(me)
                name_process(WORKER)
                _own_environment(message.get("env") or {})
                code = _worker(handlers[name], name, json_logs, *fds)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        _send(ctrl, {"event": "spawned", "id": message["id"], "pid": pid})


def _start_early(ctrl: socket.socket) -> tuple[bool, str | None]:
    """A template started before the spec was loaded (:mod:`.blank`): take the
    first part of its environment, import the app with it, then take the whole
    environment. ``(False, None)``: the gateway closed the socket (not taken);
    else ``(True, the import's traceback or None)``."""
    from sls_py.runtime import load_app
    from sls_py.runtime.dispatch import ensure_path

    from .blank import receive

    if not receive(_recv_big(ctrl)):
        return False, None
    error = None
    try:  # its functions are found after step 2, which says which they are
        ensure_path(os.environ["SLS_PY_SOURCE"])
        load_app(os.environ["SLS_PY_APP"])
    except BaseException:  # reported as the template's failure, after step 2
        error = traceback.format_exc()
    return receive(_recv_big(ctrl)), error


def _recv_big(ctrl: socket.socket) -> bytes:
    """One control message of any size up to 1 MB (an environment)."""
    try:
        return ctrl.recv(1 << 20)
    except OSError:
        return b""


def _wait_as_spare(ctrl: socket.socket, modules: str, cpus: str) -> bool:
    """A spare template for hot reload: import what the last generation imported
    that is not the app's own code (the libraries: pydantic, a cache client, ...),
    report ``spare``, and wait for ``go`` (``True``) or the socket to close. It
    starts while the gateway serves: on the workers' cores, off the gateway's."""
    import importlib

    if cpus:
        with contextlib.suppress(OSError, ValueError):
            os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})

    for module in json.loads(modules):
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    _send(ctrl, {"event": "spare"})
    while True:
        try:
            data = ctrl.recv(4096)
        except OSError:
            return False
        if not data:
            return False
        if json.loads(data).get("op") == "go":
            return True


def _preload_list() -> list[str]:
    """The modules imported here that are not the app's own (not under its source
    folder): what a spare template imports ahead of the next code change."""
    source = os.path.realpath(os.environ.get("SLS_PY_SOURCE", "")) + os.sep
    names = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name == "__main__" or not path or os.path.realpath(path).startswith(source):
            continue
        names.append(name)
    if len(json.dumps(names)) > 48_000:  # the control socket's packets are 64 KB
        names = sorted({n.split(".")[0] for n in names})
    return names


def _report_spec(fd: int) -> int:
    """Write the spec the app's code (already imported here) and ``pyproject.toml``
    build now, or the one-line reason they do not, to ``fd`` as JSON."""
    try:
        from sls_py.config import load_project
        from sls_py.errors import SlsPyError

        try:
            spec = load_project(os.environ["SLS_PY_PROJECT"]).spec(os.environ["SLS_PY_STAGE"])
            out = json.dumps({"spec": spec.to_data()})
        except SlsPyError as exc:
            out = json.dumps({"error": str(exc) + (f" ({exc.hint})" if exc.hint else "")})
    except BaseException as exc:  # a bug, or an app that does not build a spec
        out = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
    with open(fd, "wb") as f:
        f.write(out.encode())
    return 0


def _load_handlers(names: list[str]) -> dict[str, Any]:
    """Import the app and find the handler of each function in ``names``; one
    that cannot be found fails the template (with the spec built from the same
    code, only a stale cached spec names a function the app lacks, and its
    check restarts ``sls-py run``)."""
    from sls_py.runtime import find_function, load_app, signature_of
    from sls_py.runtime.dispatch import ensure_path

    ensure_path(os.environ["SLS_PY_SOURCE"])
    app = load_app(os.environ["SLS_PY_APP"])
    handlers = {name: find_function(app, name) for name in names}
    if json.loads(os.environ.get("SLS_PY_RESOURCES") or "{}").get("caches"):
        # the app declares a cache: its client library (~100 ms of imports) is loaded
        # once here, not by every worker on its first call
        from sls_py.runtime.cache import preload_client

        preload_client()
    for handler in handlers.values():
        sig = signature_of(handler)
        if (
            sig.style == "payload"
            and isinstance(sig.annotation, type)
            and sig.annotation.__module__ != "builtins"
        ):
            # build the validator now, in the template, instead of in every worker
            from sls_py.runtime import dispatch

            if sig.annotation in dispatch._adapters:
                continue
            try:
                from pydantic import TypeAdapter

                dispatch._adapters[sig.annotation] = TypeAdapter(sig.annotation)
            except Exception:  # not a pydantic-able type: validated lazily as usual
                pass
    return handlers


def _own_environment(env: dict[str, str | None]) -> None:
    """A worker of a shared template takes its function's own environment
    (``None``: the key is removed) before anything of the function's runs. The
    resource driver reads ``SLS_PY_RESOURCES`` on first use; if the app used a
    resource while the template imported it, the driver is made again from this
    worker's (its invoke targets)."""
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    resources = sys.modules.get("sls_py.runtime.resources")
    if "SLS_PY_RESOURCES" in env and resources is not None:
        resources.use_driver(None)


class _Outbox:
    """Frames from a worker to the gateway. Log records of a quick invocation
    wait and leave inside its result frame, formatted here (one write, one
    wake-up of the gateway, which only appends the text); once an invocation
    has run for ``STREAM_AFTER_S`` its logs go out at once as ``L`` frames."""

    STREAM_AFTER_S = 0.05

    def __init__(self, fd: int, function: str, json_lines: bool) -> None:
        self.fd, self.function, self.json_lines = fd, function, json_lines
        self.records: list[tuple[str, str]] = []
        self.started = 0.0
        self.request_id = ""

    def log(self, level: str, message: str) -> None:
        self.records.append((level, message))
        if not self.started or time.monotonic() - self.started > self.STREAM_AFTER_S:
            self.flush()

    def take(self) -> list[str] | None:
        """The records still waiting, as ``[log file lines, terminal text]``
        (see :func:`~sls_py_local.logformat.format_record`), or ``None``."""
        if not self.records:
            return None
        lines, out = [], []
        for level, message in self.records:
            line, text = format_record(
                self.function, self.request_id, level, message, self.json_lines
            )
            lines.append(line)
            out.append(text)
        self.records = []
        return ["".join(lines), "".join(out)]

    def flush(self, last: bytes = b"") -> None:
        rid = self.request_id
        frames = [
            channel.encode(channel.LOG, {"id": rid, "level": level, "message": message})
            for level, message in self.records
        ]
        self.records = []
        frames.append(last)
        with contextlib.suppress(OSError):
            channel.write_all(self.fd, b"".join(frames))


class _FrameLog(logging.Handler):
    """Sends log records to the gateway as ``L`` frames of the current invocation."""

    def __init__(self, outbox: _Outbox) -> None:
        super().__init__()
        self.outbox = outbox
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.exc_info or record.exc_text or record.stack_info:
                text = self.format(record)  # with the traceback
            else:  # what the "%(message)s" formatter gives, without its overhead
                text = record.getMessage()
            self.outbox.log(record.levelname, text)
        except Exception:
            self.handleError(record)


class _FrameStream:
    """``sys.stdout``/``sys.stderr`` of a worker: complete lines become ``L`` frames."""

    def __init__(self, outbox: _Outbox, level: str) -> None:
        self.outbox, self.level = outbox, level
        self.buffer = ""

    def write(self, text: str) -> int:
        self.buffer += text
        if "\n" in self.buffer:
            lines, _, self.buffer = self.buffer.rpartition("\n")
            self._send(lines)
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            text, self.buffer = self.buffer, ""
            self._send(text)

    def _send(self, text: str) -> None:
        self.outbox.log(self.level, text)

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("a worker's output is forwarded as log frames")


def _worker(
    handler: Any, name: str, json_logs: bool, req_fd: int, resp_fd: int, log_fd: int
) -> int:
    """Serve invocations from ``req_fd`` until it closes; one at a time."""
    from sls_py.runtime import Context, event_from_wire, execute
    from sls_py.runtime.context import make_logger

    function_logger = make_logger(name, "").logger  # looked up once, not per invocation

    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    stage = os.environ.get("SLS_PY_STAGE", "")
    memory_mb = int(os.environ.get("SLS_PY_MEMORY_MB", "128"))
    limit = vm_bytes() + memory_mb * 1024 * 1024  # the app's imports, plus the function's memory
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    outbox = _Outbox(resp_fd, name, json_logs)
    sys.stdout = _FrameStream(outbox, "INFO")
    sys.stderr = _FrameStream(outbox, "ERROR")
    # the logging module's documented optimisations: records carry no caller,
    # thread or process details (the gateway adds function and request id)
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_FrameLog(outbox))
    root.setLevel(logging.INFO)
    reader = channel.FrameReader(req_fd)
    while True:
        frame = reader.read()
        if frame is None:
            return 0
        kind, request = frame
        raw = kind == channel.RAW_REQUEST
        rid = outbox.request_id = request["id"]
        outbox.started = time.monotonic()
        oom = False
        try:
            ctx = Context(
                request_id=rid,
                function_name=name,
                stage=stage,
                deadline_ms=request["deadline_ms"],
                memory_mb=memory_mb,
                provider="local",
                logger=logging.LoggerAdapter(
                    function_logger, {"function": name, "request_id": rid}
                ),  # what make_logger(name, rid) returns
            )
            event = _http_request(request["event"], request["raw"]) if raw else None
            outcome = execute(handler, event or event_from_wire(request["event"]), ctx)
            oom = outcome.error is not None and outcome.error.type == "MemoryError"
            sys.stdout.flush()
            sys.stderr.flush()
            reply = _reply(rid, outcome, oom, outbox, raw)
        except MemoryError:
            oom = True
            with contextlib.suppress(MemoryError):
                sys.stdout.flush()
                sys.stderr.flush()
            reply = channel.encode(channel.RESULT, {"id": rid, "outcome": None, "oom": True})
        outbox.flush(reply)
        outbox.request_id, outbox.started = "", 0.0
        if oom:
            return 3  # a process that hit its memory limit is not trusted again


def _http_request(wire: dict[str, Any], body: bytes) -> Any:
    """The ``HttpRequest`` of a ``B`` frame: the gateway sends the request's
    header lines as they came (``raw_headers``, pairs of bytes); their names
    are lower-cased here, and repeated headers kept as lists of values."""
    from sls_py.runtime import HttpRequest

    headers: dict[str, list[str]] = {}
    for name, value in wire["raw_headers"]:
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return HttpRequest(
        method=wire["method"],
        path=wire["path"],
        route=wire.get("route", ""),
        path_params=wire.get("path_params") or {},
        query=wire.get("query") or {},
        headers=headers,
        body=body,
        source_ip=wire.get("source_ip", ""),
    )


def _reply(rid: str, outcome: Any, oom: bool, outbox: _Outbox, raw: bool) -> bytes:
    """The result frame: ``S`` with the response body raw for a ``B`` request, else ``R``.

    For an ``S`` frame the response is checked and its header lines rendered
    here, as :func:`~sls_py_local.channel.response_head` says; a response that
    HTTP cannot carry becomes an error (the gateway answers 502) and a log record."""
    if not raw:
        message = {"id": rid, "outcome": outcome.to_wire(), "oom": oom}
        logs = outbox.take()
        if logs:
            message["logs"] = logs
        return channel.encode(channel.RESULT, message)
    body = b""
    response = None
    error = outcome.error.to_wire() if outcome.error is not None else None
    if outcome.response is not None:
        body, headers = outcome.response.encoded()
        try:
            head, cors = channel.response_head(headers)
            given = outcome.response.status
            try:
                status = int(given)  # an HTTPStatus, or "200", as before
            except (TypeError, ValueError):
                status = 0
            if not 100 <= status <= 599:
                raise ValueError(f"invalid response status {given}")
        except ValueError as exc:
            outbox.records.append(("ERROR", f"{exc}: answered 502"))
            body = b""
            from sls_py.runtime.errors import ErrorInfo

            error = ErrorInfo("InvalidResponse", str(exc)).to_wire()
        else:
            response = {"status": status, "head": head, "cors": cors}
    meta = {
        "id": rid,
        "oom": oom,
        "result": outcome.result,
        "response": response,
        "error": error,
        "logs": outbox.take(),
    }
    return channel.encode_raw(channel.RAW_RESULT, meta, body)


if __name__ == "__main__":
    sys.exit(main())
