"""Run one invocation in a fresh worker process (``sls-py invoke --provider local``).

The child imports the app (and the cache client, for an app with a cache),
then reads one request as JSON on stdin and writes one outcome as JSON on the
stdout it was started with; the function's own prints go to stderr. The parent
starts it before the stage's servers and writes the request once they answer
(:class:`OneShot`); a child started early by ``sls-py invoke`` (:mod:`.blank`)
reads the two steps of its environment on stdin first. The parent kills the
child when the function's timeout expires.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from sls_py.runtime import jsonwire
from sls_py.runtime.errors import ErrorInfo

# The child (python -m sls_py_local.oneshot) starts cold, before the app's imports:
# what only the parent uses is imported where it is used.
if TYPE_CHECKING:
    from sls_py.project import Project
    from sls_py.provider import Invocation
    from sls_py.spec import FunctionSpec, Spec

    from .blank import Process
    from .caches import CacheServer


def function_environment(
    spec: Spec, project: Project, fn: FunctionSpec, resources: dict[str, Any] | None = None
) -> dict[str, str]:
    """The environment a function's process starts with: the stage's, nothing else's.

    :param resources: :func:`local_resources` of ``spec``, when the caller settles
        several functions (it finds the cache servers' ports once, not per function).
    """
    from .blank import static_environment

    env = static_environment(project.root, spec.source, spec.app_ref, spec.stage, fn.name, fn.environment)
    resources = dict(resources if resources is not None else local_resources(spec, project))
    if fn.invokes:  # the functions it may invoke (sls_py.runtime.invoke)
        resources["functions"] = {t: spec.qualified(t) for t in fn.invokes}
    env["SLS_PY_RESOURCES"] = json.dumps(resources)
    return env


def local_resources(
    spec: Spec, project: Project, caches: list[CacheServer] | None = None
) -> dict[str, Any]:
    """The ``SLS_PY_RESOURCES`` value pointing functions at the local driver.

    :param caches: the stage's cache servers, when the caller has them (see
        :func:`sls_py_local.caches.cache_servers`)."""
    options: dict[str, Any] = {"root": str(project.state_dir / "local" / spec.stage)}
    if spec.databases:  # where the stage's PostgreSQL server listens (see .postgres)
        from .postgres import postgres_connection

        options["postgres"] = postgres_connection(project.state_dir, spec.stage).options(functions=True)
    out: dict[str, Any] = {
        "driver": "sls_py_local.resources:LocalDriver",
        "options": options,
        "buckets": {b.name: b.qualified_name for b in spec.buckets},
        "queues": {q.name: q.qualified_name for q in spec.queues},
        "tables": {t.name: t.qualified_name for t in spec.tables},
        "caches": _cache_urls(spec, project, caches),
        "databases": {d.name: d.name for d in spec.databases},
    }
    if spec.configs:  # app.config handles read the stage's config files, over its defaults
        out["configs"] = {c.name: c.name for c in spec.configs}
        out["config_defaults"] = dict(spec.configs[0].defaults)
    return out


def _cache_urls(spec: Spec, project: Project, servers: list[CacheServer] | None) -> dict[str, str]:
    """Each cache's server URL (see :mod:`sls_py_local.caches`)."""
    if not spec.caches:
        return {}
    if servers is None:
        from .caches import cache_servers

        servers = cache_servers(spec, project)
    return {s.name: s.url for s in servers}


def invoke_once(spec: Spec, project: Project, function: str, event: dict[str, Any]) -> Invocation:
    """Run ``function`` for ``event`` (wire form) in a new process; kill it at its timeout."""
    with OneShot(spec, project, function) as child:
        return child.run(event)


def invalid_event(event: dict[str, Any]) -> ErrorInfo | None:
    """Why ``event`` (wire form) cannot be sent to a function (NaN, Infinity, ...),
    as the function would answer; ``None`` when it can."""
    try:
        payload = event.get("payload") if event.get("type") == "payload" else event
        jsonwire.check_finite(payload, "Payload" if payload is not event else "Event")
    except jsonwire.InvalidJson as exc:
        return ErrorInfo(type="InvalidInput", message=exc.message, status=400, details=exc.errors)
    return None


class OneShot:
    """One function's process for one invocation (``sls-py invoke``).

    :meth:`start` starts it at once: it imports the app (and the cache client the
    app declares a cache for) while the caller starts the stage's servers, then
    waits for its request on stdin; :meth:`run` sends the request and waits for
    the outcome, killing the process at the function's timeout. As a context
    manager it kills a process still running on the way out (a server that did
    not start, Ctrl-C).
    """

    def __init__(self, spec: Spec, project: Project, function: str) -> None:
        self.spec, self.project = spec, project
        self.fn = spec.function(function)
        self.proc: Process | None = None

    def start(self, resources: dict[str, Any] | None = None) -> None:
        """Start the process (once); ``resources``: as for :func:`function_environment`."""
        if self.proc is None:
            from . import blank

            env = function_environment(self.spec, self.project, self.fn, resources)
            early = blank.take("oneshot", self.fn.name, env, self.project.root)
            if early is not None:  # started by sls_py.entry, importing the app already
                blank.send(early, env)
                self.proc = early.proc
                return
            self.proc = blank.start_oneshot(env, self.project.root)

    def __enter__(self) -> OneShot:
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()

    def run(self, event: dict[str, Any]) -> Invocation:
        """Send ``event`` (wire form); the :class:`Invocation` it ended in."""
        import subprocess
        import uuid

        from sls_py.provider import Invocation

        fn, function = self.fn, self.fn.name
        request_id = str(uuid.uuid4())
        error = invalid_event(event)  # what the function would answer, without running it
        if error is not None:
            return Invocation(function=function, request_id=request_id, error=error)
        self.start()
        assert self.proc is not None
        proc = self.proc
        request = {
            "event": event,
            "request_id": request_id,
            "deadline_ms": int(time.time() * 1000 + fn.timeout_s * 1000),
            "memory_mb": fn.memory_mb,
            "timeout_s": fn.timeout_s,
        }
        try:
            out, err = proc.communicate(_dumps(request), timeout=fn.timeout_s + _startup_grace())
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return Invocation(
                function=function,
                request_id=request_id,
                logs=err.decode("utf-8", "replace"),
                error=ErrorInfo(
                    type="TimeoutError",
                    message=f"function {function!r} timed out after {fn.timeout_s:g} s and was stopped",
                    status=504,
                ),
            )
        logs = err.decode("utf-8", "replace")
        if proc.returncode != 0 or not out.strip():
            return Invocation(
                function=function,
                request_id=request_id,
                logs=logs,
                error=ErrorInfo(
                    type="WorkerCrashed",
                    message=f"the worker process exited with code {proc.returncode} before answering",
                    traceback=logs.splitlines()[-20:],
                ),
            )
        outcome = json.loads(out)
        error = ErrorInfo.from_wire(outcome["error"]) if outcome.get("error") else None
        return Invocation(
            function=function, result=outcome.get("result"), error=error, request_id=request_id, logs=logs
        )


def _dumps(value: Any) -> bytes:
    """Strict JSON (no NaN or Infinity), as every event and answer is written."""
    return json.dumps(value, allow_nan=False).encode()


def _startup_grace() -> float:
    """Seconds allowed for interpreter start and imports, on top of the timeout."""
    return float(os.environ.get("SLS_PY_STARTUP_GRACE_S", "5"))


def _stop_at_deadline(result_out: Any, function: str, timeout_s: float) -> None:
    """Answer with a timeout error and exit when ``timeout_s`` has passed."""
    import signal

    def expire(signum: int, frame: Any) -> None:
        info = ErrorInfo(
            type="TimeoutError",
            message=f"function {function!r} timed out after {timeout_s:g} s and was stopped",
            status=504,
        )
        result_out.write(_dumps({"error": info.to_wire()}).decode())
        result_out.flush()
        os._exit(0)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)


def _receive(stdin: Any) -> bool:
    from .blank import receive

    return receive(stdin.readline())


def _child() -> int:
    """The worker side: run one request from stdin, write the outcome to stdout."""
    import logging

    from .procname import ONESHOT, name_process

    name_process(ONESHOT)

    result_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the function's prints go to stderr with its logs
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s", stream=sys.stderr)
    from sls_py.runtime import Context, event_from_wire, execute, find_function, load_app
    from sls_py.runtime.context import make_logger

    stdin = sys.stdin.buffer
    early = os.environ.pop("SLS_PY_BLANK", "") == "1"
    if early and not _receive(stdin):  # started early (see .blank): step 1 of its environment
        return 0
    source = os.environ["SLS_PY_SOURCE"]
    if source not in sys.path:
        sys.path.insert(0, source)
    name = os.environ["SLS_PY_FUNCTION"]
    # the app first, then the request: the parent starts this process before the
    # stage's servers, and sends the request once they answer
    try:
        handler = find_function(load_app(os.environ["SLS_PY_APP"]), name)
    except Exception as exc:
        info = ErrorInfo(type=f"ImportError[{type(exc).__name__}]", message=str(exc))
        result_out.write(_dumps({"error": info.to_wire()}).decode())
        return 0
    if early and not _receive(stdin):  # step 2: the whole environment
        return 0
    if json.loads(os.environ.get("SLS_PY_RESOURCES") or "{}").get("caches"):
        from sls_py.runtime.cache import preload_client

        preload_client()  # meanwhile, not on the handler's first cache call
    request = json.loads(stdin.read())
    deadline_ms = request["deadline_ms"]
    timeout_s = request.get("timeout_s")
    if timeout_s is not None:
        # The clock starts when the handler does (start-up excluded, as on Lambda),
        # and the worker stops itself at the deadline; the parent's kill is the backstop.
        deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
        _stop_at_deadline(result_out, name, float(timeout_s))
    ctx = Context(
        request_id=request["request_id"],
        function_name=name,
        stage=os.environ["SLS_PY_STAGE"],
        deadline_ms=deadline_ms,
        memory_mb=request.get("memory_mb", 128),
        provider="local",
        logger=make_logger(name, request["request_id"]),
    )
    outcome = execute(handler, event_from_wire(request["event"]), ctx)
    if timeout_s is not None:
        import signal

        signal.setitimer(signal.ITIMER_REAL, 0)  # answered in time: no timeout answer after this
    result_out.write(_dumps(outcome.to_wire()).decode())
    result_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child())
