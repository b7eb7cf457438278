"""The packaging hooks, through the CLI with a fake provider: ``sls-py package``
calls ``sls_py_package`` with a fresh folder and records what it wrote;
``sls-py deploy --package`` checks the package and calls
``sls_py_deploy_package`` with the packaged spec. Providers without them are
refused before anything runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from sls_py import hookimpl
from sls_py.packaging import DeployPackage, PackageResult
from sls_py.provider import DeployResult, PlanStep, ProviderInfo
from sls_py.spec import CAPABILITIES

from .conftest import CliRunner, Recorder, plugins_with, recording_plugin


class Packager:
    """A provider that packages one file and deploys it by remembering its bytes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def sls_py_provider_info(self) -> ProviderInfo:
        return ProviderInfo(name="pkg", version="1.0", capabilities=frozenset(CAPABILITIES))

    @hookimpl
    def sls_py_package(self, spec: Any, project: Any, output: Path, ui: Any) -> PackageResult:
        self.calls.append(("sls_py_package", {"spec": spec, "output": output}))
        assert output.is_dir() and not any(output.iterdir())  # a fresh, empty folder
        (output / "code.bin").write_bytes(f"code of {spec.app}".encode())
        return PackageResult(summary=["code.bin: the code"], data={"code": "code.bin"})

    @hookimpl
    def sls_py_deploy_package(self, spec: Any, project: Any, package: DeployPackage, ui: Any) -> DeployResult:
        code = package.read_bytes(package.provider_data["code"])
        self.calls.append(("sls_py_deploy_package", {"spec": spec, "code": code}))
        return DeployResult(
            applied=[PlanStep("create", "function", "hello", "new")], url="https://pkg.example"
        )


@pytest.mark.hook("sls_py_package")
def test_package_writes_the_providers_files_and_the_manifest(
    run_cli: CliRunner, project: Path, tmp_path: Path
) -> None:
    provider = Packager()
    plugins = plugins_with(("pkg", provider))
    out = tmp_path / "out"
    res = run_cli(plugins, "package", "--project", str(project), "--provider", "pkg", "--output", str(out))
    assert res.code == 0, res.err
    assert [hook for hook, _ in provider.calls] == ["sls_py_package"]
    assert provider.calls[0][1]["output"] != out  # written beside, then moved into place
    assert sorted(p.name for p in out.iterdir()) == ["code.bin", "manifest.json", "spec.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("format", "app", "stage", "provider", "provider_data")} == {
        "format": "sls-py-package",
        "app": "tiny",
        "stage": "dev",
        "provider": "pkg",
        "provider_data": {"code": "code.bin"},
    }
    assert "code.bin: the code" in res.err
    listing = json.loads(run_cli(plugins, "providers", "--json").out)
    assert listing["providers"][0]["commands"] == ["package", "deploy --package"]


@pytest.mark.hook("sls_py_deploy_package")
def test_deploy_package_hands_the_checked_package_and_its_spec(
    run_cli: CliRunner, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = Packager()
    plugins = plugins_with(("pkg", provider))
    out = tmp_path / "out"
    assert (
        run_cli(plugins, "package", "--project", str(project), "--provider", "pkg", "--output", str(out)).code
        == 0
    )
    (project / "tinyapp.py").write_text(
        (project / "tinyapp.py").read_text().replace('name="hello"', 'name="hello", memory_mb=512')
    )
    monkeypatch.delitem(sys.modules, "tinyapp", raising=False)  # import the edited app
    res = run_cli(
        plugins, "deploy", "--project", str(project), "--provider", "pkg", "--package", str(out), "--json"
    )
    assert res.code == 0, res.err
    assert json.loads(res.out)["url"] == "https://pkg.example"
    hook, kwargs = provider.calls[-1]
    assert (hook, kwargs["code"]) == ("sls_py_deploy_package", b"code of tiny")
    assert kwargs["spec"].function("hello").memory_mb == 128  # the packaged spec, not the edited app
    assert "warning: the app has changed since this package was built" in " ".join(res.err.split())
    (out / "code.bin").write_bytes(b"tampered")
    res = run_cli(plugins, "deploy", "--project", str(project), "--provider", "pkg", "--package", str(out))
    assert res.code == 2 and "code.bin in package" in res.err
    assert [h for h, _ in provider.calls].count("sls_py_deploy_package") == 1


def test_a_provider_without_the_hooks_is_refused(run_cli: CliRunner, project: Path, tmp_path: Path) -> None:
    rec = Recorder()
    plugins = plugins_with(("fake", recording_plugin(rec)))
    out = tmp_path / "out"
    res = run_cli(plugins, "package", "--project", str(project), "--provider", "fake", "--output", str(out))
    assert res.code == 2
    assert (
        res.err.splitlines()[0]
        == "error: provider 'fake' cannot `package`: it does not implement sls_py_package"
    )
    assert not out.exists()
    res = run_cli(plugins, "deploy", "--project", str(project), "--provider", "fake", "--package", str(out))
    assert res.code == 2
    assert res.err.splitlines()[0] == (
        "error: provider 'fake' cannot `deploy --package`: it does not implement sls_py_deploy_package"
    )
    assert "sls_py_deploy" not in rec.hooks_called()
