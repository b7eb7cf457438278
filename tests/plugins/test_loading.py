"""Loading providers through the ``sls_py`` entry-point group, as installed
distributions: broken plugins are reported by name and the others keep
working; ``SLS_PY_DISABLE_PLUGINS`` blocks by name; capabilities are checked
before any hook runs; unimplemented commands say so.

Entry points come from throwaway distributions: a ``.dist-info`` folder with
``entry_points.txt`` next to the plugin's module, on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sls_py import cli as cli_module
from sls_py import session as session_module
from sls_py.provider import ProviderInfo
from sls_py.spec import CAPABILITIES

from .conftest import CliRunner, Recorder, plugins_with, recording_plugin

GOOD = """
from sls_py import hookimpl
from sls_py.provider import Invocation, ProviderInfo

@hookimpl
def sls_py_provider_info():
    return ProviderInfo(name="goodone", version="1.0.0", capabilities=frozenset({CAPS}))

@hookimpl
def sls_py_invoke(function, payload):
    return Invocation(function, result={"from": "goodone", "payload": payload})
""".replace("{CAPS}", repr(set(CAPABILITIES)))

CRASHY = 'raise RuntimeError("cannot import crashy")\n'

NOINFO = """
from sls_py import hookimpl

@hookimpl
def sls_py_provider_info():
    raise ValueError("no info today")
"""

TYPO = """
from sls_py import hookimpl
from sls_py.provider import ProviderInfo

@hookimpl
def sls_py_provider_info():
    return ProviderInfo(name="typo", version="1")

@hookimpl
def sls_py_deploi(spec):
    return None
"""

BADCAP = """
from sls_py import hookimpl
from sls_py.provider import ProviderInfo

@hookimpl
def sls_py_provider_info():
    return ProviderInfo(name="badcap", version="1", capabilities=frozenset({"invoke", "teleport"}))
"""


def add_distribution(site: Path, name: str, module_source: str) -> None:
    """Install ``sls_py_test_<name>`` as distribution ``<name>`` with an ``sls_py`` entry point."""
    module = f"sls_py_test_{name}"
    (site / f"{module}.py").write_text(textwrap.dedent(module_source), encoding="utf-8")
    info = site / f"sls_py_test_{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: sls-py-test-{name}\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[sls_py]\n{name} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of throwaway distributions on ``sys.path``: one good, four broken."""
    folder = tmp_path / "site"
    folder.mkdir()
    for name, source in (
        ("goodone", GOOD),
        ("crashy", CRASHY),
        ("noinfo", NOINFO),
        ("typo", TYPO),
        ("badcap", BADCAP),
    ):
        add_distribution(folder, name, source)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("SLS_PY_DISABLE_PLUGINS", raising=False)
    return folder


def test_broken_plugins_are_reported_by_name_and_the_others_work(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    monkeypatch.setattr(cli_module, "_state", {})
    monkeypatch.setattr(session_module, "_state", {})  # the installed plugins, loaded afresh
    code = cli_module.main(["providers", "--json"])
    listing = json.loads(capsys.readouterr().out)
    assert code == 1, "broken plugins make `sls-py providers` exit non-zero"
    assert listing["broken"] == [
        {
            "name": "badcap",
            "error": "PluginError: plugin 'badcap' declares unknown capabilities: ['teleport']",
        },
        {"name": "crashy", "error": "RuntimeError: cannot import crashy"},
        {"name": "noinfo", "error": "ValueError: no info today"},
        {"name": "typo", "error": listing["broken"][3]["error"]},
    ]
    assert listing["broken"][3]["error"].startswith(
        "PluginError: plugin 'typo' implements an unknown hook"
    )
    assert "sls_py_deploi" in listing["broken"][3]["error"]
    names = [p["name"] for p in listing["providers"]]
    assert "goodone" in names and "local" in names
    # the good provider still works, in the same run of the CLI
    code = cli_module.main(
        ["invoke", "hello", "7", "--project", str(project), "--provider", "goodone"]
    )
    assert (code, capsys.readouterr().out) == (0, '{"from": "goodone", "payload": 7}\n')
    # choosing a broken one says why
    code = cli_module.main(["invoke", "hello", "--project", str(project), "--provider", "noinfo"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: provider 'noinfo' failed to load: ValueError: no info today" in err


def test_disable_plugins_blocks_by_name(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    monkeypatch.setenv("SLS_PY_DISABLE_PLUGINS", "crashy, noinfo,typo,badcap,goodone")
    monkeypatch.setattr(cli_module, "_state", {})
    monkeypatch.setattr(session_module, "_state", {})  # the installed plugins, loaded afresh
    code = cli_module.main(["providers", "--json"])
    listing = json.loads(capsys.readouterr().out)
    assert (code, listing["broken"]) == (0, [])
    assert "goodone" not in [p["name"] for p in listing["providers"]]
    code = cli_module.main(["invoke", "hello", "--project", str(project), "--provider", "goodone"])
    err = capsys.readouterr().err
    assert code == 2 and "no provider named 'goodone' is installed" in err


def test_providers_command_end_to_end(site: Path) -> None:
    """The real console entry point in a fresh interpreter finds the same plugins."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("SLS_PY_DISABLE_PLUGINS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "sls_py", "providers"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "goodone" in proc.stdout and "1.0.0" in proc.stdout
    broken = sorted(line for line in proc.stderr.splitlines() if line.startswith("broken plugin"))
    assert broken[:3] == [
        "broken plugin badcap: PluginError: plugin 'badcap' declares unknown capabilities: "
        "['teleport']",
        "broken plugin crashy: RuntimeError: cannot import crashy",
        "broken plugin noinfo: ValueError: no info today",
    ]
    assert broken[3].startswith("broken plugin typo: ")


def test_missing_capability_is_refused_before_any_hook(run_cli: CliRunner, project: Path) -> None:
    rec = Recorder(capabilities=frozenset(CAPABILITIES) - {"trigger.http", "resource.queue"})
    plugins = plugins_with(("fake", recording_plugin(rec)))
    for argv in (["invoke", "hello"], ["deploy"], ["run", "--port", "0"]):
        res = run_cli(plugins, *argv, "--project", str(project), "--provider", "fake")
        assert (res.code, res.out) == (2, "")
        assert res.err.splitlines() == [
            "error: provider 'fake' does not support HTTP routes (function 'hello'); "
            "queues (queue 'jobs')",
            "hint: remove the feature from the app, or choose another provider with --provider",
        ]
    assert rec.calls == [], "no hook may run for a refused spec, not even sls_py_validate_spec"


def test_not_emulated_capabilities_are_announced(run_cli: CliRunner, project: Path) -> None:
    from sls_py import hookimpl
    from sls_py.provider import Invocation

    class Partial:
        @hookimpl
        def sls_py_provider_info(self) -> ProviderInfo:
            return ProviderInfo(
                "partial",
                "1",
                capabilities=frozenset(CAPABILITIES),
                not_emulated={"http.cors": "CORS is ignored"},
            )

        @hookimpl
        def sls_py_invoke(self, function: str) -> Invocation:
            return Invocation(function, result=1)

    res = run_cli(
        plugins_with(("partial", Partial())),
        "invoke",
        "hello",
        "--project",
        str(project),
        "--provider",
        "partial",
    )
    assert (res.code, res.out) == (0, "1\n")
    assert "not emulated by partial: CORS is ignored (used by route POST /hello)" in res.err


def test_unimplemented_commands_say_so(run_cli: CliRunner, project: Path, tmp_path: Path) -> None:
    from sls_py import hookimpl
    from sls_py.provider import Invocation

    class Mini:
        @hookimpl
        def sls_py_provider_info(self) -> ProviderInfo:
            return ProviderInfo("mini", "1", capabilities=frozenset(CAPABILITIES))

        @hookimpl
        def sls_py_invoke(self, function: str) -> Invocation:
            return Invocation(function, result=None)

    plugins = plugins_with(("mini", Mini()))
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"x")
    commands = {
        "deploy": ["deploy"],
        "plan": ["plan"],
        "remove": ["remove"],
        "run": ["run"],
        "url": ["url"],
        "logs": ["logs", "hello"],
        "api-keys": ["api-keys"],
        "trigger": ["trigger", "upload", "inbox", str(photo)],
    }
    for command, argv in commands.items():
        res = run_cli(plugins, *argv, "--project", str(project), "--provider", "mini")
        assert (res.code, res.err.splitlines()) == (
            2,
            [
                f"error: provider 'mini' does not implement `{command}`",
                "hint: commands 'mini' supports: invoke",
            ],
        ), command
