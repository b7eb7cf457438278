"""``sls-py deploy --provider aws --package DIR`` against a moto server over HTTP:
it deploys the package's zip without rebuilding (the app's source changed after
packaging, yet Lambda's CodeSha256 is the package's), creates what ``deploy``
creates (a plain ``deploy`` of the same code afterwards plans no change), and a
second ``deploy --package`` changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_deploy_support import Moto, cli, empty_snapshot, snapshot
from aws_package_support import EVERYTHING_APP, everything_project

pytestmark = pytest.mark.slow


def test_deploy_from_a_package(moto: Moto, tmp_path: Path) -> None:
    from sls_py.config import load_project
    from sls_py_aws.package import build_package

    project = everything_project(tmp_path / "pkgapp")
    env = moto.env(PKGAPP_TOKEN="deploy-time-secret")
    out = tmp_path / "package"
    assert (
        cli(["package", "--provider", "aws", "--project", str(project), "--output", str(out)], env).returncode
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    (packaged_sha,) = [z["code_sha256"] for z in manifest["provider_data"]["zips"].values()]

    # the source moves on after packaging: deploy --package must not rebuild it
    source = project / "pkgapp_code.py"
    source.write_text(EVERYTHING_APP.replace('"world"', '"changed"'))
    proj = load_project(project)
    rebuilt = build_package(proj.spec("dev"), proj, include_dependencies=False).code_sha256
    assert rebuilt != packaged_sha

    done = cli(
        ["deploy", "--provider", "aws", "--project", str(project), "--package", str(out), "--json"], env
    )
    assert done.returncode == 0, done.stderr
    applied = json.loads(done.stdout)["applied"]
    assert len(applied) == len(
        json.loads((out / "plan.json").read_text())["steps"]
    )  # the plan of an empty account
    after_package = snapshot(moto, "pkgapp", "dev")
    assert {f["code_sha256"] for f in after_package["functions"].values()} == {packaged_sha}
    env_hello = after_package["functions"]["pkgapp-dev-hello"]["environment"]
    assert env_hello["TOKEN"] == "deploy-time-secret"  # resolved when deployed, never packaged

    again = cli(
        ["deploy", "--provider", "aws", "--project", str(project), "--package", str(out), "--json"], env
    )
    assert (again.returncode, json.loads(again.stdout)["applied"]) == (0, [])

    # the same code deployed from source: nothing to change, the same resources
    source.write_text(EVERYTHING_APP)
    plain = cli(["deploy", "--provider", "aws", "--project", str(project), "--json"], env)
    assert (plain.returncode, json.loads(plain.stdout)["applied"]) == (0, []), plain.stderr
    assert snapshot(moto, "pkgapp", "dev") == after_package

    # moto's state is one per process: leave nothing of this app behind
    gone = cli(["remove", "--provider", "aws", "--project", str(project)], env)
    assert gone.returncode == 0, gone.stderr
    assert snapshot(moto, "pkgapp", "dev") == empty_snapshot()
