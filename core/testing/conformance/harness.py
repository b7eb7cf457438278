"""Harnesses: how the conformance suite drives one provider.

A :class:`Harness` deploys or starts the conformance app (see
:func:`prepare_project`) and offers a few neutral operations: invoke a
function, send an HTTP request, upload an object, fire a schedule, send a
queue message, and read back what the trigger functions recorded. The suite
in :mod:`sls_py.testing.conformance.suite` checks the semantics through these
operations only, so any provider can be checked by writing (or reusing) a
harness.

:class:`PluginHarness` works for any installed provider through its hooks,
the same calls the ``sls-py`` CLI makes; for HTTP it starts
``sls-py run --provider NAME --port 0`` as a subprocess (or uses the URL of a
deployed stage, for a provider that deploys).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from ...config import Project, load_project
from ...errors import NotSupported, ProviderError
from ...plugins import Plugins, Provider, load_plugins
from ...provider import ConfigEntry, Invocation, Plan, ProviderInfo, TriggerRequest
from ...spec import Spec
from ...ui import PlainUI

#: The stage the conformance app is started in.
STAGE = "conformance"
#: The name of the conformance app's API key.
API_KEY_NAME = "conformance"
_URL = re.compile(rb"https?://(?:127\.0\.0\.1|localhost|\[::1\]):\d+")


def prepare_project(dest: Path, capabilities: Iterable[str]) -> Path:
    """Copy the conformance app to ``dest`` for a provider with ``capabilities``.

    The app declares only the functions whose capabilities are in
    ``capabilities`` (written to ``conformance_app/capabilities.json``), so a
    provider's capability check never refuses it. Returns the project folder.
    """
    with as_file(files("sls_py.testing.conformance") / "project") as source:
        target = Path(dest) / "conformance-project"
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".sls-py"))
    (target / "conformance_app" / "capabilities.json").write_text(
        json.dumps(sorted(capabilities)), encoding="utf-8"
    )
    return target


@dataclass
class HttpResult:
    """An HTTP response as the suite sees it: header names in lower case."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class Harness(ABC):
    """What the conformance suite needs from a provider.

    Subclass it for a provider that needs special handling; most providers can
    use :class:`PluginHarness` as it is. ``start`` gets the prepared project
    folder; everything else is called between ``start`` and ``stop``.
    """

    @abstractmethod
    def info(self) -> ProviderInfo:
        """The provider's :class:`~sls_py.provider.ProviderInfo` (capabilities)."""

    @abstractmethod
    def start(self, project: Path) -> None:
        """Deploy or start the conformance app found in ``project``."""

    @abstractmethod
    def stop(self) -> None:
        """Undo ``start``: stop servers, remove deployments. Must not raise."""

    @abstractmethod
    def invoke(self, function: str, payload: Any) -> Invocation:
        """Invoke ``function`` with ``payload``; function errors in ``.error``."""

    def http(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> HttpResult:
        """Send an HTTP request to the app's gateway."""
        raise NotSupported("this harness does not send HTTP requests")

    def api_key(self) -> str:
        """The value of the app's API key named ``conformance``."""
        raise NotSupported("this harness cannot read API keys")

    def upload(self, bucket: str, key: str, data: bytes) -> None:
        """Put an object in ``bucket`` (the app's name), firing upload triggers."""
        raise NotSupported("this harness cannot upload")

    def fire_schedule(self, function: str) -> None:
        """Fire ``function``'s schedule now."""
        raise NotSupported("this harness cannot fire schedules")

    def send(self, queue: str, body: str) -> None:
        """Send a message to ``queue`` (the app's name)."""
        raise NotSupported("this harness cannot send messages")

    def plan(self) -> Plan:
        """What ``deploy`` would change now (after ``start``: nothing)."""
        raise NotSupported("this harness cannot plan")

    # config (resource.config): the stage's store, as `sls-py config ...` uses it

    def config_set(self, key: str, value: str, secret: bool = False) -> ConfigEntry:
        """Set a config value of the stage (``sls-py config set``)."""
        raise NotSupported("this harness cannot set config")

    def config_get(self, keys: list[str] | None, reveal: bool = False) -> list[ConfigEntry]:
        """Read the stage's config store (``sls-py config get/list``)."""
        raise NotSupported("this harness cannot read config")

    def config_unset(self, keys: list[str]) -> list[str]:
        """Delete config keys of the stage (``sls-py config unset``)."""
        raise NotSupported("this harness cannot unset config")

    def records(self, prefix: str) -> list[dict[str, Any]]:
        """What the trigger functions recorded with ids starting with ``prefix``.

        The default invokes the app's ``records`` function.
        """
        inv = self.invoke("records", {"prefix": prefix})
        if inv.error is not None:
            raise AssertionError(
                f"the records function failed: {inv.error.type}: {inv.error.message}"
            )
        return list(inv.result)

    def wait_for_records(
        self, prefix: str, count: int, timeout_s: float = 20.0
    ) -> list[dict[str, Any]]:
        """Poll :meth:`records` until ``count`` records with ``prefix`` exist (or give up)."""
        deadline = time.monotonic() + timeout_s
        found = self.records(prefix)
        while len(found) < count and time.monotonic() < deadline:
            time.sleep(0.2)
            found = self.records(prefix)
        return found


class ServerProcess:
    """``sls-py run`` as a subprocess: started on a free port, URL read from its output."""

    def __init__(
        self, argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.argv = argv
        self.output = bytearray()
        self._lock = threading.Lock()
        self._found = threading.Event()
        self.url: str | None = None
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,  # so stop() can end the whole process group
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            with self._lock:
                self.output += line
                if self.url is None:
                    m = _URL.search(line)
                    if m:
                        self.url = m.group(0).decode()
                        self._found.set()
        self._found.set()

    def wait_url(self, timeout_s: float = 30.0) -> str:
        """The URL the server printed; raises with its output if it never did."""
        self._found.wait(timeout_s)
        if self.url is None:
            self.stop()
            raise ProviderError(
                f"`{' '.join(self.argv)}` printed no URL (exit code {self.proc.poll()}); output:\n"
                + self.text()
            )
        return self.url

    def text(self) -> str:
        """Everything the server wrote so far."""
        with self._lock:
            return self.output.decode("utf-8", "replace")

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(5)


class PluginHarness(Harness):
    """Drives an installed provider through its hooks, as the CLI does.

    :param provider: the provider's name (``--provider``).
    :param plugins: the plugins to use (default: every installed one).
    :param server_for_triggers: start the ``run`` server before firing
        triggers (for providers whose triggers are handled by the server).
    """

    def __init__(
        self, provider: str, plugins: Plugins | None = None, *, server_for_triggers: bool = False
    ) -> None:
        self.provider_name = provider
        self.plugins = plugins if plugins is not None else load_plugins()
        self.provider: Provider = self.plugins.provider(provider)
        self.server_for_triggers = server_for_triggers
        self.ui = PlainUI(quiet=True)
        self.project: Project | None = None
        self.spec: Spec | None = None
        self.server: ServerProcess | None = None
        self.deployed_url: str | None = None
        self.deployed = False
        self._http: Any = None

    def info(self) -> ProviderInfo:
        return self.provider.info

    def start(self, project: Path) -> None:
        self.project = load_project(project)
        self.spec = self.project.spec(STAGE)
        self.provider.check(self.spec, self.project)
        if self.provider.implements("sls_py_deploy"):
            result = self._call("sls_py_deploy", ui=self.ui)
            self.deployed = True
            self.deployed_url = result.url

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.deployed and self.provider.implements("sls_py_remove"):
            try:
                self._call("sls_py_remove", ui=self.ui)
            except Exception as exc:  # stop() must not hide the test's own failure
                print(f"conformance: removing the stage failed: {exc}", file=sys.stderr)

    def _call(self, hook: str, **kwargs: Any) -> Any:
        assert self.project is not None and self.spec is not None, "start() first"
        return self.provider.call(hook, spec=self.spec, project=self.project, **kwargs)

    def invoke(self, function: str, payload: Any) -> Invocation:
        result: Invocation = self._call(
            "sls_py_invoke", function=function, payload=payload, logs=False, ui=self.ui
        )
        return result

    def plan(self) -> Plan:
        if not (self.provider.implements("sls_py_plan") and self.deployed):
            raise NotSupported(
                f"provider {self.provider_name!r} does not implement `plan` and `deploy`"
            )
        plan: Plan = self._call("sls_py_plan", ui=self.ui)
        return plan

    def server_command(self) -> list[str]:
        """The command that serves the app (``sls-py run ... --port 0``)."""
        assert self.project is not None
        return [
            sys.executable, "-m", "sls_py", "run",
            "--provider", self.provider_name,
            "--project", str(self.project.root),
            "--stage", STAGE,
            "--host", "127.0.0.1",
            "--port", "0",
            "--no-reload",
        ]  # fmt: skip

    def ensure_server(self) -> str:
        """Start the server if it is not running; return the gateway's base URL."""
        if self.deployed_url is not None:
            return self.deployed_url
        if not self.provider.implements("sls_py_run"):
            raise NotSupported(
                f"provider {self.provider_name!r} implements neither `run` nor `deploy`: "
                "nothing serves HTTP"
            )
        if self.server is None:
            assert self.project is not None
            self.server = ServerProcess(self.server_command(), cwd=self.project.root)
        return self.server.wait_url()

    def http(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> HttpResult:
        import httpx

        base = self.ensure_server().rstrip("/")
        if self._http is None:
            self._http = httpx.Client(timeout=30.0, trust_env=False)
        r = self._http.request(method, base + path, headers=dict(headers or {}), content=body)
        merged: dict[str, str] = {}
        for k, v in r.headers.multi_items():
            key = k.lower()
            merged[key] = f"{merged[key]}, {v}" if key in merged else v
        return HttpResult(r.status_code, merged, r.content)

    def api_key(self) -> str:
        keys = self._call("sls_py_api_keys")
        for key in keys:
            if key.name == API_KEY_NAME:
                return str(key.value)
        raise AssertionError(
            f"provider returned no API key named {API_KEY_NAME!r}: {[k.name for k in keys]}"
        )

    def _trigger(self, request: TriggerRequest) -> None:
        if self.server_for_triggers:
            self.ensure_server()
        self._call("sls_py_trigger", request=request, ui=self.ui)

    def upload(self, bucket: str, key: str, data: bytes) -> None:
        self._trigger(TriggerRequest(kind="upload", target=bucket, key=key, data=data))

    def fire_schedule(self, function: str) -> None:
        self._trigger(TriggerRequest(kind="schedule", target=function))

    def send(self, queue: str, body: str) -> None:
        self._trigger(TriggerRequest(kind="queue", target=queue, data=body.encode("utf-8")))

    def config_set(self, key: str, value: str, secret: bool = False) -> ConfigEntry:
        entry: ConfigEntry = self._call(
            "sls_py_config_set", key=key, value=value, secret=secret, ui=self.ui
        )
        return entry

    def config_get(self, keys: list[str] | None, reveal: bool = False) -> list[ConfigEntry]:
        found: list[ConfigEntry] = self._call("sls_py_config_get", keys=keys, reveal=reveal)
        return found

    def config_unset(self, keys: list[str]) -> list[str]:
        removed: list[str] = self._call("sls_py_config_unset", keys=keys, ui=self.ui)
        return removed
