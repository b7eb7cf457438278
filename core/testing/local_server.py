"""The local provider on a free port, for end-to-end tests.

:func:`start_local_server` copies a project to a scratch folder (so the test
gets fresh state and parallel tests never share buckets or queues), runs
``sls-py run --provider local --port 0 --no-reload`` there as a subprocess,
reads the URL it prints, and returns a :class:`LocalServer` to talk to it.
``stop()`` ends the server's whole process group.

The ``sls_local_server`` pytest fixture is built on it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..config import load_project
from ..errors import NotSupported, ProviderError
from .conformance.harness import ServerProcess

_IGNORE = shutil.ignore_patterns(
    ".sls-py", ".venv", "__pycache__", ".git", ".pytest_cache", "*.egg-info"
)


def local_run_available(provider: str = "local") -> str | None:
    """``None`` if the installed ``provider`` can serve HTTP (``sls-py run``), else why not."""
    from ..plugins import load_plugins

    try:
        found = load_plugins().provider(provider)
    except Exception as exc:
        return f"the {provider} provider is not available: {exc}"
    if not found.implements("sls_py_run"):
        return (
            f"the {provider} provider does not implement `sls-py run` (sls_py_run) "
            "in this installation"
        )
    return None


class LocalServer:
    """A running ``sls-py run`` (of the local provider, by default) for one project copy."""

    def __init__(
        self,
        project: Path,
        stage: str | None,
        process: ServerProcess,
        url: str,
        provider: str = "local",
    ) -> None:
        self.provider = provider
        self.project = project
        self.stage = stage
        self.process = process
        self.url = url.rstrip("/")
        self._client: Any = None

    def _cli(self, *argv: str) -> str:
        args = [sys.executable, "-m", "sls_py", *argv, "--provider", self.provider]
        args += ["--project", str(self.project)]
        if self.stage:
            args += ["--stage", self.stage]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise ProviderError(f"`sls-py {' '.join(argv)}` failed: {proc.stderr.strip()}")
        return proc.stdout

    def api_keys(self) -> dict[str, str]:
        """The stage's API keys by name (from ``sls-py api-keys --json``)."""
        return {k["name"]: k["value"] for k in json.loads(self._cli("api-keys", "--json"))}

    def api_key(self, name: str = "default") -> str:
        """The value of API key ``name``."""
        keys = self.api_keys()
        if name not in keys:
            raise KeyError(f"no API key {name!r}; the stage has {sorted(keys)}")
        return keys[name]

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request with httpx (``json=``, ``headers=``, ...); return the response."""
        import httpx

        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=30.0, trust_env=False)
        return self._client.request(method, path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def output(self) -> str:
        """What the server printed so far (routes, logs)."""
        return self.process.text()

    def stop(self) -> None:
        """Stop the server and every process it started."""
        if self._client is not None:
            self._client.close()
        self.process.stop()


def start_local_server(
    project: str | Path, scratch: Path, stage: str | None = None, provider: str = "local"
) -> LocalServer:
    """Copy ``project`` into ``scratch`` and serve it with ``provider`` on a free port.

    The copy gives the server fresh state (``.sls-py/``) that no other test
    shares. The project's code must live inside its folder (``source``).
    """
    reason = local_run_available(provider)
    if reason is not None:
        raise NotSupported(reason)
    source = load_project(project).root
    copy = Path(scratch) / source.name
    shutil.copytree(source, copy, ignore=_IGNORE)
    argv = [sys.executable, "-m", "sls_py", "run", "--provider", provider, "--project", str(copy)]
    argv += ["--host", "127.0.0.1", "--port", "0", "--no-reload"]
    if stage:
        argv += ["--stage", stage]
    process = ServerProcess(argv, cwd=copy)
    return LocalServer(copy, stage, process, process.wait_url(), provider)
