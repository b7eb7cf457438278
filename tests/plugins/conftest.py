"""Helpers for the plugin tests: a tiny project, a recording fake provider, a CLI runner."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sls_py import cli as cli_module
from sls_py import session as session_module
from sls_py.plugins import Plugins
from sls_py.provider import ProviderInfo
from sls_py.spec import CAPABILITIES

TINY_APP = """
from sls_py import App, HttpRequest, Response, http, queue, schedule, upload

app = App("tiny", api_keys=["default"])
inbox = app.bucket("inbox")
jobs = app.queue("jobs")


@app.function(name="hello", triggers=[http("POST", "/hello", api_key=True, cors=True)])
def hello(payload: dict, ctx) -> dict:
    return {"hello": payload.get("name", "world")}


@app.function(name="nightly", triggers=[schedule("rate(1 day)", name="nightly")])
def nightly(event, ctx) -> None:
    return None


@app.function(name="on-upload", triggers=[upload("inbox")])
def on_upload(event, ctx) -> None:
    return None


@app.function(name="on-job", triggers=[queue("jobs")])
def on_job(batch, ctx) -> None:
    return None
"""


def write_project(root: Path, app_source: str = TINY_APP, module: str = "tinyapp") -> Path:
    """A project folder with ``[tool.sls-py]`` pointing at ``module:app``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "{module}"
            [tool.sls-py]
            app = "{module}:app"
            stage = "dev"
            [tool.sls-py.stages.dev]
            environment = {{ GREETING = "hi" }}
            """
        ),
        encoding="utf-8",
    )
    (root / f"{module}.py").write_text(app_source, encoding="utf-8")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The tiny project: one function per trigger kind, a bucket and a queue."""
    return write_project(tmp_path / "tiny")


@dataclass
class Recorder:
    """A fake provider that records every hook call as ``(hook, sorted kwarg names)``.

    Each hook answers with what ``answers[hook]`` holds (a value, or a callable
    taking the keyword arguments).
    """

    name: str = "fake"
    capabilities: frozenset[str] = frozenset(CAPABILITIES)
    answers: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def answer(self, hook: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((hook, kwargs))
        value = self.answers.get(hook)
        return value(**kwargs) if callable(value) else value

    def hooks_called(self) -> list[str]:
        return [hook for hook, _ in self.calls]


def recording_plugin(rec: Recorder) -> object:
    """A plugin object implementing every hook, each recording into ``rec``."""
    from sls_py import hookimpl

    class Plugin:
        @hookimpl
        def sls_py_provider_info(self) -> ProviderInfo:
            return ProviderInfo(name=rec.name, version="9.9", capabilities=rec.capabilities)

        @hookimpl
        def sls_py_validate_spec(self, spec: Any, project: Any) -> Any:
            return rec.answer("sls_py_validate_spec", {"spec": spec, "project": project}) or []

        @hookimpl
        def sls_py_invoke(
            self, spec: Any, project: Any, function: Any, payload: Any, logs: Any, ui: Any
        ) -> Any:
            return rec.answer(
                "sls_py_invoke",
                {
                    "spec": spec,
                    "project": project,
                    "function": function,
                    "payload": payload,
                    "logs": logs,
                    "ui": ui,
                },
            )

        @hookimpl
        def sls_py_run(self, spec: Any, project: Any, options: Any, ui: Any) -> Any:
            return rec.answer(
                "sls_py_run", {"spec": spec, "project": project, "options": options, "ui": ui}
            )

        @hookimpl
        def sls_py_plan(self, spec: Any, project: Any, ui: Any) -> Any:
            return rec.answer("sls_py_plan", {"spec": spec, "project": project, "ui": ui})

        @hookimpl
        def sls_py_deploy(self, spec: Any, project: Any, ui: Any) -> Any:
            return rec.answer("sls_py_deploy", {"spec": spec, "project": project, "ui": ui})

        @hookimpl
        def sls_py_remove(self, spec: Any, project: Any, ui: Any) -> Any:
            return rec.answer("sls_py_remove", {"spec": spec, "project": project, "ui": ui})

        @hookimpl
        def sls_py_url(self, spec: Any, project: Any) -> Any:
            return rec.answer("sls_py_url", {"spec": spec, "project": project})

        @hookimpl
        def sls_py_logs(
            self, spec: Any, project: Any, function: Any, since_s: Any, follow: Any
        ) -> Any:
            return rec.answer(
                "sls_py_logs",
                {
                    "spec": spec,
                    "project": project,
                    "function": function,
                    "since_s": since_s,
                    "follow": follow,
                },
            )

        @hookimpl
        def sls_py_api_keys(self, spec: Any, project: Any) -> Any:
            return rec.answer("sls_py_api_keys", {"spec": spec, "project": project})

        @hookimpl
        def sls_py_trigger(self, spec: Any, project: Any, request: Any, ui: Any) -> Any:
            return rec.answer(
                "sls_py_trigger", {"spec": spec, "project": project, "request": request, "ui": ui}
            )

        @hookimpl
        def sls_py_migrate(self, spec: Any, project: Any, ui: Any) -> Any:
            return rec.answer("sls_py_migrate", {"spec": spec, "project": project, "ui": ui})

        @hookimpl
        def sls_py_db_shell(self, spec: Any, project: Any, database: Any, ui: Any) -> Any:
            return rec.answer(
                "sls_py_db_shell", {"spec": spec, "project": project, "database": database, "ui": ui}
            )

    return Plugin()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


CliRunner = Callable[..., CliResult]


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Run ``sls-py ARGS`` in this process with the given plugins only."""

    def run(plugins: Plugins, *argv: str) -> CliResult:
        monkeypatch.setattr(cli_module, "_state", {})
        monkeypatch.setattr(session_module, "_state", {"plugins": plugins})
        capsys.readouterr()
        code = cli_module.main(list(argv))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def plugins_with(*named: tuple[str, object]) -> Plugins:
    """A plugin manager holding exactly ``named`` plugins."""
    plugins = Plugins.empty()
    for name, plugin in named:
        plugins.register(name, plugin)
    return plugins
