"""Early starts: function processes started before the spec is loaded.

A warm ``sls-py run`` or ``sls-py invoke`` (:mod:`sls_py.entry`) reads the
cached spec as plain JSON and calls :func:`prestart` before it builds the
``Spec`` object, imports this provider's plugin or settles ports: the
function processes it needs (the HTTP functions' templates; the invoked
function's process) start at once, with the environment of the entry process
and ``SLS_PY_BLANK=1``. Each then gets its environment in two steps:

1. at once, the part that the spec and ``os.environ`` alone decide
   (:func:`static_environment`: the function's own variables, ``PYTHONPATH``,
   ``SLS_PY_APP``...): the process imports the app with it;
2. once the caller has settled the rest (the caches' ports, the invoke
   endpoint, the cores), the whole environment, applied before the handler's
   first call.

The app therefore imports while the entry process loads the spec and the
provider's modules, instead of after. What is started but not taken (a
fallback to the CLI, a spec that changed) exits with its parent
(``PR_SET_PDEATHSIG``) or when its pipe closes. A process whose start-up
variables (``PYTHON*`` other than those :func:`adopt` applies) would differ
is not used: the caller starts a fresh one, exactly as without early starts.

On Linux these processes are forked from the entry process (:func:`fork_module`)
rather than started as new interpreters: the entry has by then done nothing
but start Python and read the cached spec, which a new interpreter would do
again (some 50 ms before it even starts importing the app). The forked child becomes what
``python -m sls_py_local.template`` (or ``.oneshot``) started with the same
environment in the project's folder would be: that working directory,
environment, ``sys.path[0]``, ``sys.argv`` and ``__main__``, standard streams,
and no file descriptor of the parent but its own. Only an entry started
without interpreter options of its own (``-X``, ``-O``, ``-I``...) forks: such
options would otherwise pass on to the functions. ``SLS_PY_FORK=0`` turns it
off.

Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sls_py.quickexit import exit_now

from . import sharing

if TYPE_CHECKING:
    import socket
    import subprocess
    from typing import TypeAlias

    #: a function process: started afresh, or forked (:class:`Forked`)
    Process: TypeAlias = "subprocess.Popen[bytes] | Forked"

#: marks a process started early: it waits for its environment first
BLANK_ENV = "SLS_PY_BLANK"
#: ``SLS_PY_FORK=0``: start the early processes as new interpreters, not forks
FORK_ENV = "SLS_PY_FORK"
#: start-up variables that :func:`adopt` applies in a running interpreter
_APPLIED = frozenset({"PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONUNBUFFERED"})

_started: dict[tuple[str, str], Early] = {}


class Early:
    """A process started early for ``function``, and the environment it has so far.

    For a template, ``sock`` is the gateway's end of its control socket; for a
    one-shot process, ``proc.stdin`` takes its environment and request."""

    def __init__(
        self, kind: str, function: str, proc: Process, sock: socket.socket | None,
        base: dict[str, str], env: dict[str, str], cwd: Path,
    ) -> None:
        self.kind, self.function, self.proc, self.sock = kind, function, proc, sock
        self.base = base  # the environment it was started with
        self.env = env  # what step 1 gave it
        self.cwd = cwd

    def fits(self, env: dict[str, str], cwd: Path) -> bool:
        """Whether ``env`` (the whole environment) is what this process would have
        been started with: the same folder, the same start-up variables, and
        nothing step 1 set changed."""
        if Path(cwd).resolve() != self.cwd or self.proc.poll() is not None:
            return False
        startup = {k for k in (*env, *self.base) if k.startswith("PYTHON") and k not in _APPLIED}
        if any(env.get(k) != self.base.get(k) for k in startup):
            return False
        # which functions a template serves it reads after step 2 (a cold start's
        # early template, from the last start's spec, may serve one more or less);
        # whether the app was imported with a function's name, it must not
        if env.get("SLS_PY_FUNCTION") != self.env.get("SLS_PY_FUNCTION"):
            return False
        return all(env.get(k) == v for k, v in self.env.items() if k != sharing.FUNCTIONS_ENV)

    def close(self) -> None:
        """Stop the process (not taken)."""
        if self.sock is not None:
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def static_environment(
    root: Path, source: str, app_ref: str, stage: str, function: str, environment: dict[str, str]
) -> dict[str, str]:
    """A function process's environment as far as the spec and ``os.environ``
    decide it: this process's variables (not ``SLS_PY_*``), the function's own
    (``${env:NAME}`` resolved), the app's folder on ``PYTHONPATH``, and where the
    bytecode goes (see :mod:`.bytecode`). :func:`.oneshot.function_environment`
    adds the resources."""
    from sls_py.project import resolve_environment

    from .bytecode import project_bytecode

    env = {k: v for k, v in os.environ.items() if not k.startswith("SLS_PY_")}
    env.update(resolve_environment(environment))
    folder = str((root / source).resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH", "")) if p)
    env["SLS_PY_APP"] = app_ref
    env["SLS_PY_SOURCE"] = folder
    env["SLS_PY_FUNCTION"] = function
    env["SLS_PY_STAGE"] = stage
    env["SLS_PY_PROVIDER"] = "local"
    env["SLS_PY_PROJECT"] = str(root)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(project_bytecode(root, Path(folder), app_ref).environment())
    return env


def adopt(env: dict[str, str]) -> None:
    """Make ``env`` this process's environment, as if it had started with it:
    ``os.environ``, the ``PYTHONPATH`` entries on ``sys.path`` (where the
    interpreter puts them: after the first entry), whether and where bytecode
    is written, unbuffered standard streams."""
    before = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    after = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if before != after:
        if sys.path[1 : 1 + len(before)] == before:
            del sys.path[1 : 1 + len(before)]
        sys.path[1:1] = after
    os.environ.clear()
    os.environ.update(env)
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    sys.pycache_prefix = env.get("PYTHONPYCACHEPREFIX") or None
    if env.get("PYTHONUNBUFFERED"):
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(write_through=True)


def prestart(command: str, root: Path, spec: dict[str, Any], function: str | None = None) -> None:
    """Start the processes ``command`` will need (called by :mod:`sls_py.entry`
    with the cached spec in its JSON form): for ``run``, the templates of the
    groups of functions with an HTTP one (see :mod:`.sharing`), each under its
    first function's name; for ``invoke``, ``function``'s process. Best effort: a process
    that cannot be started here is started the usual way later."""
    try:
        functions = {f["name"]: f for f in spec["functions"]}
        made: dict[str, dict[str, str]] = {}  # by the function's own variables

        def environment(name: str) -> dict[str, str]:
            declared = functions[name]["environment"]
            key = json.dumps(declared, sort_keys=True)
            if key not in made:
                made[key] = static_environment(
                    root, spec["source"], spec["app_ref"], spec["stage"], name, declared
                )
            return {**made[key], "SLS_PY_FUNCTION": name}

        if command == "run":  # one template per group of functions with an HTTP one
            envs = {name: environment(name) for name in functions}
            share = sharing.sharing_on((spec.get("providers") or {}).get("local") or {})
            for names in sharing.groups(envs, share):
                if any(t.get("kind") == "http" for n in names for t in functions[n]["triggers"]):
                    env = sharing.template_environment(names, envs[names[0]])
                    _started[("template", names[0])] = _start("template", names[0], env, root)
        elif command == "invoke" and function is not None and function in functions:
            _started[("oneshot", function)] = _start("oneshot", function, environment(function), root)
    except Exception:  # best effort: the usual start follows
        pass


def _start(kind: str, function: str, env: dict[str, str], root: Path) -> Early:
    base = {**os.environ, BLANK_ENV: "1"}
    sock = None
    proc: Process
    if kind == "oneshot":
        proc = start_oneshot(base, root, fork=forkable())
    else:
        proc, sock = start_template(base, root, fork=forkable())
    early = Early(kind, function, proc, sock, base, env, root.resolve())
    send(early, env)  # step 1
    return early


def start_oneshot(env: dict[str, str], cwd: Path, *, fork: bool = False) -> Process:
    """Start ``python -m sls_py_local.oneshot`` with ``env`` in ``cwd``, its
    standard streams piped (``fork``: see :func:`fork_module`)."""
    if not fork:
        import subprocess  # (here: a forking start does without it)

        return subprocess.Popen(
            [sys.executable, "-m", "sls_py_local.oneshot"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=str(cwd),
        )
    pipes = [os.pipe() for _ in range(3)]  # (read, write): stdin, stdout, stderr
    try:
        pid = fork_module("sls_py_local.oneshot", env, cwd, (pipes[0][0], pipes[1][1], pipes[2][1]))
    except BaseException:
        for fd in (fd for pair in pipes for fd in pair):
            os.close(fd)
        raise
    for fd in (pipes[0][0], pipes[1][1], pipes[2][1]):
        os.close(fd)
    return Forked(
        pid, os.fdopen(pipes[0][1], "wb"), os.fdopen(pipes[1][0], "rb"), os.fdopen(pipes[2][0], "rb")
    )


def start_template(
    env: dict[str, str], cwd: Path, *, fork: bool = False
) -> tuple[Process, socket.socket]:
    """Start ``python -m sls_py_local.template`` with ``env`` (plus its control
    socket's fd and this process's pid) in ``cwd``, stdin from ``/dev/null``
    (``fork``: see :func:`fork_module`); the process and the socket's other end."""
    import socket

    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {**env, "SLS_PY_CONTROL_FD": str(child.fileno()), "SLS_PY_PARENT_PID": str(os.getpid())}
    proc: Process
    try:
        if fork:
            devnull = os.open(os.devnull, os.O_RDONLY)
            try:
                pid = fork_module("sls_py_local.template", env, cwd, (devnull, 1, 2), child.fileno())
            finally:
                os.close(devnull)
            proc = Forked(pid)
        else:
            import subprocess

            proc = subprocess.Popen(
                [sys.executable, "-m", "sls_py_local.template"],
                env=env,
                cwd=str(cwd),
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
            )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return proc, parent


def forkable() -> bool:
    """Whether this process may fork the function processes (see the module's
    docstring) instead of starting new interpreters: on Linux, with no thread
    but the main one, and started without interpreter options of its own (so a
    new ``python -m`` with the same environment would have the same flags)."""
    if sys.platform != "linux" or os.environ.get(FORK_ENV, "1") == "0":
        return False
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return False
    argv = getattr(sys, "orig_argv", [])
    return len(argv) >= 2 and (argv[1] == "-m" or not argv[1].startswith("-"))


def fork_module(
    module: str, env: dict[str, str], cwd: Path, stdio: tuple[int, int, int], keep: int | None = None
) -> int:
    """Fork a child that runs ``module`` as ``python -m module`` would, started
    with ``env`` in ``cwd`` with ``stdio`` as its fds 0, 1 and 2 (and ``keep``
    open too); its pid. The child never returns here: it exits when the module
    does, with its exit code."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        import atexit

        atexit._clear()  # the parent's exit handlers are not this process's
        os.chdir(cwd)
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)
        _close_fds_but({0, 1, 2} | ({keep} if keep is not None else set()))
        for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
            if getattr(sys, name) is None:  # the parent started without it
                setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 (for good)
        os.environ.clear()
        os.environ.update(env)
        if not getattr(sys.flags, "safe_path", False):
            sys.path[0] = os.getcwd()  # what `python -m` puts first
        sys.argv[:] = [""]  # runpy sets argv[0] to the module's file
        import runpy

        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message"), as the interpreter reports it
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C while it starts: the gateway says it stops
        code = 130
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        exit_now(code)  # as the interpreter ends, without unwinding into the parent
    raise AssertionError("not reached")  # (for the type checker: exit_now does not return)


def _close_fds_but(keep: set[int]) -> None:
    """Close every file descriptor of this process but ``keep`` (``close_fds``)."""
    try:
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, 1024))
    for fd in open_fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


class Forked:
    """A child from :func:`fork_module`, with what callers use of
    :class:`subprocess.Popen`: ``pid``, ``returncode``, :meth:`poll`,
    :meth:`wait`, :meth:`kill`, :meth:`communicate` and the pipes of its
    standard streams (``None`` when not piped)."""

    def __init__(
        self, pid: int, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None,
        stderr: IO[bytes] | None = None,
    ) -> None:
        self.pid, self.stdin, self.stdout, self.stderr = pid, stdin, stdout, stderr
        self.args = [sys.executable, f"(forked, pid {pid})"]
        self.returncode: int | None = None
        self._io: tuple[list[Any], dict[str, bytes]] | None = None

    def poll(self) -> int | None:
        """The exit code once it has exited (negative: the signal), else ``None``."""
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped elsewhere: its code is lost (as Popen does)
            self.returncode = 0
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to exit (:class:`subprocess.TimeoutExpired` after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            if deadline is None:
                self._reap(0)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                import subprocess

                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def communicate(
        self, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[bytes, bytes]:
        """Write ``input`` to its stdin and close it, read its stdout and stderr to
        their ends, wait for it: ``(stdout, stderr)``, as Popen's (a call after
        :class:`subprocess.TimeoutExpired` goes on where that one stopped)."""
        import threading

        if self._io is None:
            out: dict[str, bytes] = {}

            def feed() -> None:
                if self.stdin is None:
                    return
                try:
                    if input:
                        with contextlib.suppress(OSError):  # it exited without reading
                            self.stdin.write(input)
                finally:
                    with contextlib.suppress(OSError):
                        self.stdin.close()

            def drain(name: str, stream: IO[bytes] | None) -> None:
                if stream is not None:
                    with stream:
                        out[name] = stream.read()

            threads = [threading.Thread(target=feed, daemon=True)]
            threads += [
                threading.Thread(target=drain, args=(name, stream), daemon=True)
                for name, stream in (("stdout", self.stdout), ("stderr", self.stderr))
            ]
            for thread in threads:
                thread.start()
            self._io = (threads, out)
        threads, out = self._io
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                import subprocess

                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return out.get("stdout", b""), out.get("stderr", b"")


def take(kind: str, function: str, env: dict[str, str], cwd: Path) -> Early | None:
    """The process started early for ``function`` (``kind``: ``"template"`` or
    ``"oneshot"``), if it fits ``env`` and ``cwd`` (see :meth:`Early.fits`);
    one that does not fit is stopped. ``None``: start one the usual way."""
    early = _started.pop((kind, function), None)
    if early is None:
        return None
    if not early.fits(env, cwd):
        early.close()
        return None
    return early


def discard() -> None:
    """Stop every process started early and not taken."""
    while _started:
        _started.popitem()[1].close()


def send(early: Early, env: dict[str, str]) -> None:
    """Step 2: give ``early`` (taken) its whole environment."""
    message = json.dumps({"op": "environment", "env": env}).encode()
    if early.sock is not None:
        early.sock.send(message)
    else:
        assert early.proc.stdin is not None
        early.proc.stdin.write(message + b"\n")
        early.proc.stdin.flush()


def receive(data: bytes) -> bool:
    """In a process started early: apply the environment message ``data`` with
    :func:`adopt`; ``False`` for none (the parent closed the pipe: exit)."""
    if not data:
        return False
    adopt(json.loads(data)["env"])
    return True
