"""``sls-py package --provider aws`` and the refusals of ``package`` and
``deploy --package``, through the CLI as a subprocess. None of this may talk to
AWS: the environment points AWS_ENDPOINT_URL at a port nothing listens on and
holds no credentials, so any AWS call would fail the command."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from pathlib import Path

import jsonschema
import pytest
from aws_package_support import cli, everything_project, tree_hashes

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-token-value"


def offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLS_PY_"))}
    env.update(
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        PKGAPP_TOKEN=SECRET,
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return everything_project(tmp_path_factory.mktemp("pkg") / "pkgapp")


@pytest.fixture(scope="module")
def packaged(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "package"
    done = cli(
        ["package", "--provider", "aws", "--project", str(project), "--output", str(out)], offline_env()
    )
    assert done.returncode == 0, done.stderr
    assert f"Packaged pkgapp stage dev for aws into {out}." in done.stderr
    return out


def _package(project: Path, out: Path, *extra: str) -> tuple[int, str]:
    done = cli(
        ["package", "--provider", "aws", "--project", str(project), "--output", str(out), *extra],
        offline_env(),
    )
    return done.returncode, done.stderr


def test_the_package_holds_zip_plan_template_spec_and_manifest(project: Path, packaged: Path) -> None:
    from sls_py import __version__
    from sls_py.config import load_project
    from sls_py_aws import __version__ as aws_version
    from sls_py_aws.package import build_package

    proj = load_project(project)
    built = build_package(proj.spec("dev"), proj, include_dependencies=False)
    zip_name = f"code-{base64.b64decode(built.code_sha256).hex()[:16]}.zip"
    assert (packaged / zip_name).read_bytes() == built.data  # the bytes deploy would upload
    names = sorted(p.name for p in packaged.iterdir())
    assert names == sorted(
        [zip_name, "manifest.json", "plan.json", "plan.schema.json", "spec.json", "template.yaml"]
    )
    manifest = json.loads((packaged / "manifest.json").read_text())
    assert manifest == {
        "format": "sls-py-package",
        "format_version": 1,
        "app": "pkgapp",
        "stage": "dev",
        "provider": "aws",
        "provider_version": aws_version,
        "sls_py_version": __version__,
        "files": {
            name: "sha256:" + hashlib.sha256((packaged / name).read_bytes()).hexdigest()
            for name in names
            if name != "manifest.json"
        },
        "provider_data": {
            "zips": {
                zip_name: {"code_sha256": built.code_sha256, "size": built.size, "files": len(built.files)}
            },
            "functions": dict.fromkeys(["hello", "nightly", "on-upload", "on-job"], zip_name),
            "runtime": "python3.12",
            "architecture": "x86_64",
        },
    }
    assert json.loads((packaged / "spec.json").read_text()) == json.loads(proj.spec("dev").model_dump_json())


def test_plan_json_is_the_plan_against_an_empty_account_and_matches_its_schema(packaged: Path) -> None:
    plan = json.loads((packaged / "plan.json").read_text())
    jsonschema.validate(plan, json.loads((packaged / "plan.schema.json").read_text()))
    assert (plan["basis"], plan["account"], plan["region"]) == (
        "empty-account",
        "${AWS::AccountId}",
        "${AWS::Region}",
    )
    assert [(s["action"], s["kind"], s["name"]) for s in plan["steps"]] == [
        ("create", "role", "pkgapp-dev-lambda"),
        ("create", "bucket", "inbox"),
        ("create", "table", "items"),
        ("create", "queue", "jobs"),
        ("create", "function", "hello"),
        ("create", "function", "nightly"),
        ("create", "function", "on-upload"),
        ("create", "function", "on-job"),
        ("create", "async-config", "nightly"),
        ("create", "api", "pkgapp-dev"),
        ("create", "permission", "hello/sls-py-api"),
        ("create", "permission", "on-upload/sls-py-s3-inbox"),
        ("create", "permission", "nightly/sls-py-events-nightly"),
        ("create", "route", "GET /files/{path+}"),
        ("create", "route", "POST /hello"),
        ("create", "cors", "/hello"),
        ("create", "gateway-response", "DEFAULT_4XX"),
        ("create", "gateway-response", "DEFAULT_5XX"),
        ("create", "stage", "dev"),
        ("create", "usage-plan", "pkgapp-dev-usage"),
        ("create", "api-key", "partner"),
        ("create", "notification", "inbox"),
        ("create", "schedule", "nightly"),
        ("create", "event-source", "on-job<-jobs"),
    ]
    assert sorted(r["key"] for r in plan["resources"]) == sorted(s["details"]["key"] for s in plan["steps"])
    hello = next(r for r in plan["resources"] if r["key"] == "function:hello")["props"]
    assert hello["role"] == "arn:aws:iam::${AWS::AccountId}:role/pkgapp-dev-lambda"
    assert hello["environment"]["TOKEN"] == "${env:PKGAPP_TOKEN}"  # a reference, not the value
    assert hello["environment"]["GREETING"].startswith("sha256:")  # as the state file records it
    inbox = next(r for r in plan["resources"] if r["key"] == "bucket:inbox")["props"]
    assert inbox["name"] == "pkgapp-dev-inbox-${AWS::AccountId}"


def test_no_secret_in_any_file(packaged: Path) -> None:
    for path in packaged.iterdir():
        data = path.read_bytes()
        assert SECRET.encode() not in data, path.name
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                for name in zf.namelist():
                    assert SECRET.encode() not in zf.read(name), name


def test_a_rerun_is_byte_identical(project: Path, packaged: Path, tmp_path: Path) -> None:
    before = tree_hashes(packaged)
    assert _package(project, packaged)[0] == 0  # over the earlier package: replaced
    assert tree_hashes(packaged) == before
    elsewhere = tmp_path / "again"  # and without the secret: packaging never reads it
    env = {k: v for k, v in offline_env().items() if k != "PKGAPP_TOKEN"}
    done = cli(["package", "--provider", "aws", "--project", str(project), "--output", str(elsewhere)], env)
    assert done.returncode == 0, done.stderr
    assert tree_hashes(elsewhere) == before
    assert sorted(p.name for p in packaged.parent.iterdir()) == ["package"]  # no staging left behind


def test_a_package_inside_the_app_folder_is_not_packed_again(project: Path, packaged: Path) -> None:
    inside = project / "build-output"
    assert _package(project, inside)[0] == 0
    assert _package(project, inside)[0] == 0
    assert tree_hashes(inside) == tree_hashes(packaged)


def test_an_earlier_package_is_replaced_whole(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    assert _package(project, out)[0] == 0
    (out / "code-0000000000000000.zip").write_bytes(b"an older zip")
    assert _package(project, out)[0] == 0
    assert not (out / "code-0000000000000000.zip").exists()


def test_an_empty_folder_is_used(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    done = cli(
        ["package", "--provider", "aws", "--project", str(project), "--output", str(out), "--json"],
        offline_env(),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "output": str(out),
        "manifest": json.loads((out / "manifest.json").read_text()),
    }


def test_a_folder_that_is_not_a_package_is_refused_and_left_alone(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, err = _package(project, out)
    assert code == 2
    assert err.splitlines() == [
        f"error: --output {out} is a folder that holds files and is not an sls-py package; "
        "refusing to overwrite it",
        "hint: give a new or empty folder, or the folder of an earlier package to replace it",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, err = _package(project, a_file)
    assert (code, err.splitlines()[0]) == (2, f"error: --output {a_file} exists and is not a folder")


def test_a_provider_without_packaging_is_refused_before_anything_runs(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "local"
    done = cli(
        ["package", "--provider", "local", "--project", str(project), "--output", str(out)], offline_env()
    )
    assert done.returncode == 2
    assert (
        done.stderr.splitlines()[0]
        == "error: provider 'local' cannot `package`: it does not implement sls_py_package"
    )
    assert not out.exists()


# --- deploy --package refusals (all before any AWS call) ------------------------------


def _deploy(project: Path, folder: Path, *extra: str) -> tuple[int, list[str]]:
    done = cli(
        ["deploy", "--provider", "aws", "--project", str(project), "--package", str(folder), *extra],
        offline_env(),
    )
    return done.returncode, done.stderr.splitlines()


def test_deploy_refuses_a_folder_that_is_not_a_package(project: Path, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    code, err = _deploy(project, tmp_path / "x")
    assert code == 2
    assert (
        err[0] == f"error: --package {tmp_path / 'x'} is not an sls-py package "
        "(no manifest.json written by `sls-py package`)"
    )
    assert err[1].startswith("hint: build one with `sls-py package --provider aws --stage dev")
    code, err = _deploy(project, tmp_path / "missing")
    assert (code, err[0]) == (2, f"error: --package {tmp_path / 'missing'} is not a folder")


def test_deploy_refuses_a_package_of_another_stage_or_app(
    project: Path, packaged: Path, tmp_path: Path
) -> None:
    code, err = _deploy(project, packaged, "--stage", "prod")
    assert (code, err[0]) == (2, f"error: package {packaged} was built for stage 'dev', not 'prod'")
    other = everything_project(tmp_path / "other", source=EVERYTHING_OTHER)
    code, err = _deploy(other, packaged)
    assert (code, err[0]) == (2, f"error: package {packaged} was built for app 'pkgapp', not 'otherapp'")


def test_deploy_refuses_a_tampered_package(project: Path, packaged: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(packaged, copy)
    zip_path = next(copy.glob("*.zip"))
    data = bytearray(zip_path.read_bytes())
    data[100] ^= 0xFF
    zip_path.write_bytes(bytes(data))
    code, err = _deploy(project, copy)
    assert code == 2
    assert err == [
        f"error: {zip_path.name} in package {copy} does not match the hash in its manifest "
        "(changed since it was built)",
        "hint: deploy only packages as `sls-py package` wrote them; build it again",
    ]
    zip_path.unlink()
    code, err = _deploy(project, copy)
    assert (code, err[0]) == (2, f"error: package {copy} is missing {zip_path.name}")


EVERYTHING_OTHER = """
from sls_py import App

app = App("otherapp")


@app.function(name="hello")
def hello(payload: dict, ctx) -> dict:
    return {}
"""


def test_an_output_that_cannot_be_written_is_one_line(project: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = _package(project, blocker / "out")
    assert code == 2
    assert err.splitlines()[0].startswith(f"error: cannot write the package to --output {blocker / 'out'}: ")
    assert "Traceback" not in err
