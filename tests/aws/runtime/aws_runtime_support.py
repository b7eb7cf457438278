"""Support for the AWS runtime tests: AWS's documented events, a moto server
over HTTP, built-and-extracted Lambda zips, and a minimal Lambda Runtime API
server that AWS's own runtime client (awslambdaric) talks to.

A module of its own (not conftest.py) so tests can import its helpers by a
name no other test folder uses; conftest.py re-exports the fixtures."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[2]
EVENTS = HERE / "events"
WORK_MAGIC = REPO / "apps" / "work_magic"
FIXTURE_APP = HERE / "fixture_app"

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture
def aws_event() -> Callable[[str], Any]:
    """Load one of the documented AWS event shapes from ``events/``."""

    def load(name: str) -> Any:
        return json.loads((EVENTS / name).read_text(encoding="utf-8"))

    return load


# --- moto ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server on 127.0.0.1 and a free port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Fake credentials and AWS_ENDPOINT_URL=moto, in this process; returned for children."""
    env = {
        **FAKE_AWS,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


@pytest.fixture
def suffix() -> str:
    """A short unique id, so tests sharing one moto server never share resources."""
    return uuid.uuid4().hex[:8]


# --- building and extracting the zip -------------------------------------------------


@dataclass
class TaskRoot:
    """A built zip extracted as Lambda does (``/var/task``)."""

    path: Path
    files: list[str]
    spec: Any


def extract_package(project_dir: Path, dest: Path, wheel_dir: Path | None = None) -> TaskRoot:
    """Build ``project_dir``'s zip and extract it into ``dest``: without third-party
    deps, or with them from ``wheel_dir`` (never an index)."""
    from sls_py.config import load_project
    from sls_py_aws.package import build_package

    project = load_project(project_dir)
    spec = project.spec()
    built = build_package(
        spec, project, include_dependencies=wheel_dir is not None, wheel_dir=wheel_dir
    )
    dest.mkdir(parents=True, exist_ok=True)
    zip_path = dest.parent / f"{dest.name}.zip"
    zip_path.write_bytes(built.data)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return TaskRoot(path=dest, files=built.files, spec=spec)


# --- a tiny project with a dependency from a local wheel -------------------------------

MINI_APP = """
from sls_py import App

app = App("mini")


@app.function(name="hello")
def hello(payload):
    import tinydep

    return {"value": tinydep.VALUE, "from": tinydep.__file__}
"""


def mini_project(tmp_path: Path, dependencies: list[str], aws: str = "") -> Path:
    root = tmp_path / "mini"
    (root / "mini_app").mkdir(parents=True)
    (root / "mini_app" / "__init__.py").write_text("")
    (root / "mini_app" / "app.py").write_text(MINI_APP)
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "mini"\nversion = "0.1.0"\ndependencies = [{deps}]\n\n'
        f'[tool.sls-py]\napp = "mini_app.app:app"\n\n[tool.sls-py.providers.aws]\n{aws}\n'
    )
    return root


def write_wheel(folder: Path, name: str, tag: str = "py3-none-any", value: int = 42) -> Path:
    """Write a minimal valid wheel for module ``name`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n".encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{dist}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: sls-py-tests\n"
            f"Root-Is-Purelib: {'true' if tag.endswith('any') else 'false'}\nTag: {tag}\n"
        ).encode(),
    }
    record = (
        "".join(
            f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
            f"{len(data)}\n"
            for path, data in files.items()
        )
        + f"{dist}/RECORD,,\n"
    )
    files[f"{dist}/RECORD"] = record.encode()
    path = folder / f"{name}-1.0-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, data in files.items():
            zf.writestr(arcname, data)
    return path


# --- a minimal Lambda Runtime API ----------------------------------------------------------

API = "/2018-06-01/runtime"


@dataclass
class Invocation:
    """What the runtime posted back for one event."""

    request_id: str
    ok: bool
    payload: Any
    error_type_header: str | None = None


class _QuietServer(ThreadingHTTPServer):
    """A runtime killed at the end of a test resets its connection: not an error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class RuntimeApi:
    """The Lambda Runtime API (2018-06-01) on 127.0.0.1: queue events in, collect answers."""

    pending: queue.Queue[tuple[str, bytes, int] | None] = field(default_factory=queue.Queue)
    answers: dict[str, Invocation] = field(default_factory=dict)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    init_errors: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the runtime was stopped while it long-polled

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                if self.path != f"{API}/invocation/next":
                    self._send(404, b'{"errorMessage": "not found"}')
                    return
                item = api.pending.get()  # the long poll
                if item is None:
                    api.pending.put(None)
                    self._send(500, b'{"errorMessage": "shutting down"}')
                    return
                request_id, event, deadline_ms = item
                self._send(
                    200,
                    event,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": (
                            "arn:aws:lambda:us-east-1:123456789012:function:test"
                        ),
                        "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793",
                    },
                )

            def do_POST(self) -> None:
                body = self._body()
                parts = self.path.split("/")
                if self.path == f"{API}/init/error":
                    api.init_errors.append(json.loads(body or b"{}"))
                    self._send(202, b'{"status": "OK"}')
                    return
                if (
                    len(parts) == 6
                    and parts[3] == "invocation"
                    and parts[5] in ("response", "error")
                ):
                    answer = Invocation(
                        request_id=parts[4],
                        ok=parts[5] == "response",
                        payload=json.loads(body) if body else None,
                        error_type_header=self.headers.get("Lambda-Runtime-Function-Error-Type"),
                    )
                    with api.arrived:
                        api.answers[parts[4]] = answer
                        api.arrived.notify_all()
                    self._send(202, b'{"status": "OK"}')
                    return
                self._send(404, b'{"errorMessage": "not found"}')

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def submit(self, event: Any, timeout_s: float = 30) -> str:
        request_id = str(uuid.uuid4())
        deadline = int(time.time() * 1000 + timeout_s * 1000)
        self.pending.put((request_id, json.dumps(event).encode("utf-8"), deadline))
        return request_id

    def wait(self, request_id: str, timeout_s: float, alive: Callable[[], bool]) -> Invocation:
        end = time.monotonic() + timeout_s
        with self.arrived:
            while request_id not in self.answers:
                if time.monotonic() > end or not alive():
                    raise TimeoutError(f"no answer for {request_id}")
                self.arrived.wait(0.1)
            return self.answers.pop(request_id)

    def stop(self) -> None:
        self.pending.put(None)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class LambdaProcess:
    """awslambdaric running one function from an extracted zip."""

    api: RuntimeApi
    proc: subprocess.Popen[bytes]
    log_path: Path

    def invoke(self, event: Any, timeout_s: float = 30) -> Invocation:
        """Send ``event`` through the Runtime API and wait for the answer."""
        request_id = self.api.submit(event)
        try:
            return self.api.wait(request_id, timeout_s, lambda: self.proc.poll() is None)
        except TimeoutError:
            raise AssertionError(
                f"the runtime did not answer (exit code {self.proc.poll()}); its log:\n{self.log()}"
            ) from None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


@pytest.fixture
def start_lambda(tmp_path: Path) -> Iterator[Callable[..., LambdaProcess]]:
    """Start ``python -S -m awslambdaric sls_py_aws.handler.handle`` on a task root.

    ``-S`` skips site-packages processing (so the editable sls-py install is
    invisible); the venv's site-packages come *after* the zip on PYTHONPATH to
    stand in for what Lambda's image provides (boto3) and the deps the test zip
    leaves out (pydantic).
    """
    started: list[LambdaProcess] = []

    def start(task_root: Path, env: dict[str, str], name: str = "fn") -> LambdaProcess:
        api = RuntimeApi()
        api.start()
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join([str(task_root), *_site_dirs()]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(task_root),
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/27/[$LATEST]0123456789abcdef",
            **env,
        }
        log_path = tmp_path / f"{name}-{len(started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-S", "-m", "awslambdaric", "sls_py_aws.handler.handle"],
                cwd=task_root,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(LambdaProcess(api=api, proc=proc, log_path=log_path))
        return started[-1]

    yield start
    for lp in started:
        lp.proc.kill()
        lp.proc.wait(timeout=10)
        lp.api.stop()
