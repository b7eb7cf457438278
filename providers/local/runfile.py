"""How other commands find a running ``sls-py run`` of a project's stage.

While ``sls-py run`` serves a stage (or the services run alone, see
:mod:`sls_py_local.standalone`), the process holds an exclusive lock on
``.sls-py/local/<stage>/run.lock`` (``flock``; the kernel drops it when the
process dies, however it dies) and keeps ``run.json`` beside it: the services
add the clock and their trigger inbox, the gateway its URL once it serves
(``sls-py url`` reads it)::

    {"version": 1, "pid": 4242, "instance": "3f2c...", "started_at": "2026-01-01T00:00:00Z",
     "clock": "2026-01-01T00:00:00Z@3600" | null, "gateway": "http://127.0.0.1:3000" | null,
     "inbox": "/abs/path/.sls-py/local/dev/inbox"}

A run is live only when the lock is held *and* ``run.json`` names a live pid.
A leftover ``run.json`` (killed with SIGKILL, machine crash) fails the lock
test; a lock inherited by a stray forked child fails the pid test. On systems
without ``fcntl`` the pid test alone is used.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sls_py.errors import ProviderError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RUN_FILE = "run.json"
LOCK_FILE = "run.lock"
VERSION = 1


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _lock_held_elsewhere(root: Path) -> bool:
    """True when another open file description holds the run lock."""
    if fcntl is None:
        return True  # cannot tell: rely on the pid test
    path = root / LOCK_FILE
    if not path.exists():
        return False
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False


def read_run_info(root: Path) -> dict[str, Any] | None:
    """The parsed ``run.json`` of ``root``, or None when missing or unreadable."""
    try:
        data = json.loads((root / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def running_instance(root: Path, *, wait_s: float = 2.0) -> dict[str, Any] | None:
    """The ``run.json`` of the live run serving this stage folder, or None.

    When the lock is held but ``run.json`` is not written yet (the run is
    starting), wait up to ``wait_s`` seconds for it.
    """
    deadline = time.monotonic() + wait_s
    while True:
        if not _lock_held_elsewhere(root):
            return None
        info = read_run_info(root)
        if info is not None and _pid_alive(info["pid"]):
            return info
        if info is not None and not _pid_alive(info["pid"]):
            return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


class RunLock:
    """The lock and ``run.json`` a running instance holds for its lifetime."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._file: IO[str] | None = None
        self.info: dict[str, Any] = {}

    def acquire(self) -> None:
        """Take the lock; raise :class:`ProviderError` if another run holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        f = open(self.root / LOCK_FILE, "a+")  # noqa: SIM115 - held until release()
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                other = read_run_info(self.root) or {}
                raise ProviderError(
                    f"another sls-py run already serves {self.root} (pid {other.get('pid', '?')})",
                    hint="stop it first (Ctrl-C in its terminal), or use another --stage",
                ) from None
        else:  # pragma: no cover - Windows
            other = read_run_info(self.root)
            if other is not None and _pid_alive(other["pid"]) and other["pid"] != os.getpid():
                f.close()
                raise ProviderError(
                    f"another sls-py run already serves {self.root} (pid {other['pid']})",
                    hint="stop it first, or use another --stage",
                )
        self._file = f

    def publish(self, **fields: Any) -> None:
        """Write (or update) ``run.json`` atomically with ``fields``."""
        if not self.info:
            # keep what this same process wrote there already (e.g. the gateway's port)
            existing = read_run_info(self.root) or {}
            self.info = {
                "clock": None,
                "gateway": None,
                **(existing if existing.get("pid") == os.getpid() else {}),
                "version": VERSION,
                "pid": os.getpid(),
                "instance": uuid.uuid4().hex,
                "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        self.info.update(fields)
        from .resources import atomic_write  # not at import: sls-py run takes its lock first

        atomic_write(
            self.root / RUN_FILE, json.dumps(self.info, indent=2).encode(), self.root / "tmp"
        )

    def withdraw(self) -> None:
        """Remove ``run.json`` if it is ours (the run is stopping)."""
        if self._file is None or not self.info:
            return
        if (read_run_info(self.root) or {}).get("instance") == self.info.get("instance"):
            (self.root / RUN_FILE).unlink(missing_ok=True)

    def release(self) -> None:
        """Remove ``run.json`` and drop the lock."""
        if self._file is None:
            return
        self.withdraw()
        if fcntl is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None
