"""Helpers for the local gateway tests: projects on disk, a real `sls-py run`
subprocess, raw HTTP over sockets, a small load generator, process trees."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import httpx


def write_project(
    root: Path, module: str, source: str, config: str = "", app_name: str = "gwtest"
) -> Path:
    """A project folder with ``pyproject.toml`` and ``<module>.py``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "{app_name}"
            version = "0.0.1"

            [tool.sls-py]
            app = "{module}:app"
            """
        )
        + textwrap.dedent(config)
    )
    return root


def started_early(pid: int) -> bool:
    """Whether a function process was begun by the early start (sls_py_local.blank):
    forked from sls-py itself (so its command line is still sls-py's), or started
    as a new interpreter with SLS_PY_BLANK=1."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if not any(arg.startswith(b"sls_py_local.") for arg in cmdline):
        return True
    return b"SLS_PY_BLANK=1" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def wait_until(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        time.sleep(interval)


@dataclass
class Server:
    """A running `sls-py run` subprocess."""

    proc: subprocess.Popen[bytes]
    project: Path
    url: str
    log_path: Path
    stage: str = "dev"
    keys: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("sls-py run did not stop on SIGTERM within 15 s") from None


@contextlib.contextmanager
def run_server(
    project: Path,
    *args: str,
    stage: str = "dev",
    new_session: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start `sls-py run --port 0` for ``project``; stop it (SIGTERM) afterwards.
    ``env`` replaces the environment (``COLUMNS`` is added)."""
    log_path = project / f"server-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sls_py",
                "run",
                "-p",
                str(project),
                "--port",
                "0",
                "--stage",
                stage,
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=project,
            env={**(os.environ if env is None else env), "COLUMNS": "200"},
            start_new_session=new_session,

        )
    server = None
    try:

        def ready() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(
                    f"sls-py run exited with {proc.returncode}:\n{log_path.read_text()}"
                )
            text = log_path.read_text(errors="replace")
            m = re.search(r"ready: (http://\S+)", text)
            return m.group(1) if m else None

        url = wait_until(ready, timeout=60)
        keys_file = project / ".sls-py" / "local" / stage / "api-keys.json"
        keys = json.loads(keys_file.read_text()) if keys_file.exists() else {}
        server = Server(proc, project, url, log_path, stage, keys)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- raw HTTP ------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _ResponseCollector:
    def __init__(self) -> None:
        self.done: list[RawResponse] = []
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done.append(
            RawResponse(self.parser.get_status_code(), self.headers, b"".join(self.body))
        )
        self.headers, self.body = {}, []


def raw_request(url: str, data: bytes, timeout: float = 10.0, expect: int = 1) -> list[RawResponse]:
    """Send raw bytes; read until ``expect`` responses or the server closes."""
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()  # type: ignore[union-attr]
    collector = _ResponseCollector()
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        while len(collector.done) < expect:
            chunk = sock.recv(65536)
            if not chunk:
                break
            collector.parser.feed_data(chunk)
    return collector.done


# --- load ------------------------------------------------------------------------


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    wrong: list[str] = field(default_factory=list)


async def _connection_load(
    host: str,
    port: int,
    conn: int,
    make: Callable[[int, int], tuple[bytes, Callable[[int, bytes], str | None]]],
    count: int,
    keep_going: Callable[[], bool],
    result: LoadResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    collector = _ResponseCollector()
    i = 0
    try:
        while i < count or keep_going():
            data, check = make(conn, i)
            i += 1
            writer.write(data)
            while not collector.done:
                chunk = await asyncio.wait_for(reader.read(65536), 30)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                collector.parser.feed_data(chunk)
            response = collector.done.pop(0)
            if collector.done:
                result.wrong.append("more responses than requests")
            problem = check(response.status, response.body)
            if problem:
                result.wrong.append(problem)
            else:
                result.ok += 1
    finally:
        result.sent += i
        writer.close()


def run_load(
    url: str,
    connections: int,
    per_connection: int,
    make: Callable[[int, int], tuple[bytes, Callable[[int, bytes], str | None]]],
    keep_going: Callable[[], bool] = lambda: False,
) -> LoadResult:
    """``connections`` keep-alive connections each sending at least ``per_connection``
    requests in sequence (more while ``keep_going()``); ``make(conn, i)`` gives the
    raw request and a checker of its answer."""
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()  # type: ignore[union-attr]
    result = LoadResult()

    async def main() -> None:
        await asyncio.gather(
            *(
                _connection_load(host, int(port), c, make, per_connection, keep_going, result)
                for c in range(connections)
            )
        )

    asyncio.run(main())
    return result
