"""AWS Lambda's Runtime API on 127.0.0.1, and AWS's own runtime client
(``python -m awslambdaric``) running a handler from an unpacked Lambda zip
against it.

The one place both users of a real Lambda runtime get it from: the AWS runtime
tests (tests/aws/runtime, through ``aws_runtime_support.start_lambda``) and
the aws conformance harness (tests/conformance/aws_lambda.py).

- :class:`RuntimeApi` plays the Runtime API (2018-06-01) for one function:
  :meth:`~RuntimeApi.submit` queues an event for the runtime's long poll on
  ``/invocation/next``; :meth:`~RuntimeApi.wait` returns what it posted to
  ``/invocation/{id}/response`` or ``/error``; ``/init/error`` bodies are kept
  in ``init_errors``.
- :class:`LambdaProcess` starts awslambdaric on a task root with the
  environment Lambda gives a function, one event at a time.
- :func:`unpack_package` builds the provider's zip and extracts it as Lambda
  does (``/var/task``).
"""

from __future__ import annotations

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from sls_py.config import Project
    from sls_py.spec import Spec

API = "/2018-06-01/runtime"
#: Fake credentials and region: what boto3 in a test and in a function under test uses.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
TRACE_ID = "Root=1-5759e988-bd862e3fe1be46a994272793"
LOG_STREAM = "2026/11/27/[$LATEST]0123456789abcdef"
#: How long past its deadline a runtime may take to answer before it counts as stuck.
GRACE_S = 10.0


@dataclass
class RuntimeAnswer:
    """What the runtime posted back for one event: ``/response`` (``ok``) or ``/error``."""

    request_id: str
    ok: bool
    payload: Any


class RuntimeApi:
    """The Lambda Runtime API (2018-06-01) on 127.0.0.1 and a free port, for one function."""

    def __init__(self, function_arn: str) -> None:
        self.function_arn = function_arn
        self.pending: queue.Queue[tuple[str, bytes, int] | None] = queue.Queue()
        self.answers: dict[str, RuntimeAnswer] = {}
        self.arrived = threading.Condition()
        self.init_errors: list[Any] = []
        self.server = _Server(self)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        """``host:port``, the value of ``AWS_LAMBDA_RUNTIME_API``."""
        return f"127.0.0.1:{self.server.server_address[1]}"

    def submit(self, event: Any, timeout_s: float = 30) -> str:
        """Queue ``event`` (JSON) with a deadline ``timeout_s`` from now; return its request id."""
        request_id = str(uuid.uuid4())
        deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
        self.pending.put((request_id, json.dumps(event).encode("utf-8"), deadline_ms))
        return request_id

    def wait(self, request_id: str, timeout_s: float, alive: Callable[[], bool]) -> RuntimeAnswer:
        """The runtime's answer to ``request_id``; TimeoutError after ``timeout_s`` or once
        ``alive()`` is false."""
        end = time.monotonic() + timeout_s
        with self.arrived:
            while request_id not in self.answers:
                if time.monotonic() > end or not alive():
                    raise TimeoutError(f"no answer for {request_id}")
                self.arrived.wait(0.1)
            return self.answers.pop(request_id)

    def stop(self) -> None:
        """Answer every long poll (now and later) with an error, and close the server."""
        self.pending.put(None)
        self.server.shutdown()
        self.server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: RuntimeApi) -> None:
        self.api = api
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a runtime killed at the end of a test resets its connection: not an error
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def api(self) -> RuntimeApi:
        return cast(_Server, self.server).api

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
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
        item = self.api.pending.get()  # the long poll
        if item is None:
            self.api.pending.put(None)
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
                "Lambda-Runtime-Invoked-Function-Arn": self.api.function_arn,
                "Lambda-Runtime-Trace-Id": TRACE_ID,
            },
        )

    def do_POST(self) -> None:
        body = self._body()
        parts = self.path.split("/")
        if self.path == f"{API}/init/error":
            self.api.init_errors.append(json.loads(body or b"{}"))
        elif len(parts) == 6 and parts[3] == "invocation" and parts[5] in ("response", "error"):
            answer = RuntimeAnswer(
                parts[4], ok=parts[5] == "response", payload=json.loads(body) if body else None
            )
            with self.api.arrived:
                self.api.answers[parts[4]] = answer
                self.api.arrived.notify_all()
        else:
            self._send(404, b'{"errorMessage": "not found"}')
            return
        self._send(202, b'{"status": "OK"}')


# --- awslambdaric on an unpacked zip -------------------------------------------------


def site_dirs() -> list[str]:
    """This venv's site-packages folders."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def runtime_environment(
    task_root: Path, api_address: str, name: str, memory_mb: int, env: Mapping[str, str]
) -> dict[str, str]:
    """The environment Lambda starts a function's runtime with, plus ``env``.

    The venv's site-packages come *after* the zip on PYTHONPATH, to stand in for
    what Lambda's image provides (boto3) and the deps a test zip leaves out (pydantic).
    """
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join([str(task_root), *site_dirs()]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": LOG_STREAM,
        **env,
        "AWS_LAMBDA_RUNTIME_API": api_address,
    }


class LambdaProcess:
    """``python -S -m awslambdaric HANDLER`` on an unpacked zip, with a Runtime API of
    its own: one function, warm, one event at a time (one Lambda execution environment).

    ``-S`` skips site processing, so the editable sls-py install is invisible and
    the zip's own ``sls_py`` is the one imported. Output goes to ``log_path``.
    """

    def __init__(
        self,
        task_root: Path,
        *,
        handler: str,
        name: str,
        env: Mapping[str, str],
        log_path: Path,
        memory_mb: int = 128,
        timeout_s: float = 30,
        function_arn: str | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.log_path = log_path
        self.lock = threading.Lock()
        self.api = RuntimeApi(function_arn or f"arn:aws:lambda:us-east-1:123456789012:function:{name}")
        try:
            with log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-S", "-m", "awslambdaric", handler],
                    cwd=task_root,
                    env=runtime_environment(task_root, self.api.address, name, memory_mb, env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        except BaseException:
            self.api.stop()
            raise

    def alive(self) -> bool:
        return self.proc.poll() is None

    def invoke(self, event: Any) -> RuntimeAnswer:
        """Send ``event`` through the Runtime API (deadline ``timeout_s``); wait for the answer."""
        with self.lock:
            request_id = self.api.submit(event, self.timeout_s)
            try:
                return self.api.wait(request_id, self.timeout_s + GRACE_S, self.alive)
            except TimeoutError:
                raise AssertionError(
                    f"the Lambda runtime gave no answer (exit code {self.proc.poll()}, "
                    f"init errors: {self.api.init_errors}); its log:\n{self.log()}"
                ) from None

    def log(self) -> str:
        """Everything the runtime has written so far (stdout and stderr)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.api.stop()


def unpack_package(spec: Spec, project: Project, dest: Path, wheel_dir: Path | None = None) -> list[str]:
    """Build the provider's zip for ``spec`` and extract it into ``dest`` as Lambda does
    (``/var/task``): without third-party deps, or with them from ``wheel_dir`` (never
    an index). Returns the zip's file names."""
    from sls_py_aws.package import build_package

    built = build_package(spec, project, include_dependencies=wheel_dir is not None, wheel_dir=wheel_dir)
    dest.mkdir(parents=True, exist_ok=True)
    zip_path = dest.parent / f"{dest.name}.zip"
    zip_path.write_bytes(built.data)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return built.files
