"""The zip written by ``sls-py package``, unchanged, under AWS's own runtime
client (awslambdaric) with AWS's documented events (``tests/aws/runtime/events``),
configured with exactly the environment the package's ``template.yaml`` gives
each function (its ``Fn::Sub`` resolved for moto's account and region), and
with the resources the template names created on a moto server over HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_deploy_support import ACCOUNT, REGION, Moto, cli, copy_app
from support.lambda_runtime_api import FAKE_AWS, LambdaProcess

pytestmark = pytest.mark.slow

EVENTS = Path(__file__).resolve().parents[1] / "runtime" / "events"


def _event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def packaged(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_app(tmp_path_factory.mktemp("rt"))
    out = tmp_path_factory.mktemp("rt-out") / "package"
    done = cli(["package", "--provider", "aws", "--project", str(project), "--output", str(out)], moto.env())
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def task_root(packaged: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's zip extracted as Lambda does (``/var/task``)."""
    root = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(next(packaged.glob("code-*.zip"))) as zf:
        zf.extractall(root)
    return root


def _resolve(value: Any, params: dict[str, str]) -> Any:
    """A template value with ``Fn::Sub`` worked out, as CloudFormation would."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return re.sub(
            r"\$\{(!?)([^}]*)\}", lambda m: "${" + m[2] + "}" if m[1] else params[m[2]], value["Fn::Sub"]
        )
    return value


def template_environment(packaged: Path, function: str) -> dict[str, str]:
    """The environment ``template.yaml`` sets for ``function`` in moto's account."""
    doc = yaml.safe_load((packaged / "template.yaml").read_text())
    params = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION}
    fn = next(
        r["Properties"]
        for r in doc["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]["FunctionName"] == f"clonezero-dev-{function}"
    )
    return {k: _resolve(v, params) for k, v in fn["Environment"]["Variables"].items()}


@pytest.fixture
def start(task_root: Path, moto: Moto, start_lambda: Any) -> Any:
    """Start a function of the package under awslambdaric, its AWS calls going to moto."""

    def run(function: str, env: dict[str, str]) -> LambdaProcess:
        aws = {**FAKE_AWS, "AWS_ENDPOINT_URL": moto.endpoint}
        return start_lambda(task_root, {**aws, **env}, name=f"clonezero-dev-{function}")

    return run


def test_the_template_points_every_function_at_the_zips_handler(packaged: Path, task_root: Path) -> None:
    doc = yaml.safe_load((packaged / "template.yaml").read_text())
    handlers = {
        r["Properties"]["Handler"] for r in doc["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    }
    assert handlers == {"sls_py_aws.handler.handle"}
    assert (task_root / "sls_py_aws" / "handler.py").is_file()


def test_work_magic_over_http(packaged: Path, start: Any) -> None:
    env = template_environment(packaged, "work-magic")
    fn = start("work-magic", env)
    event = _event("apigw_rest_post_base64.json")
    spell = {"magic-word": "clonezero-token", "spell": "adder", "x": 40, "y": 2}
    event["body"] = base64.b64encode(json.dumps(spell).encode()).decode()
    answer = fn.invoke(event)
    assert (answer.ok, answer.payload) == (
        True,
        {
            "statusCode": 200,
            "headers": {"content-type": "application/json", "access-control-allow-origin": "*"},
            "body": '{"result":42}',
            "isBase64Encoded": False,
        },
    ), fn.log()


def test_upload_then_nightly_report_on_the_templates_resources(
    packaged: Path, start: Any, moto: Moto
) -> None:
    env = template_environment(packaged, "catalog-upload")
    names = json.loads(env["SLS_PY_RESOURCES"])
    assert names["buckets"]["uploads"] == f"clonezero-dev-uploads-{ACCOUNT}"  # as deploy names it
    s3, ddb = moto.client("s3"), moto.client("dynamodb")
    for bucket in names["buckets"].values():
        s3.create_bucket(Bucket=bucket)
    ddb.create_table(
        TableName=names["tables"]["catalog"],
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    photo = b"\xff\xd8\xff\xe0 packaged photo " * 8
    s3.put_object(Bucket=names["buckets"]["uploads"], Key="photos/my photo.jpg", Body=photo)
    event = _event("s3_put_two_records.json")
    record = event["Records"][0]  # key "photos/my+photo.jpg", URL-encoded as S3 sends it
    record["s3"]["bucket"]["name"] = names["buckets"]["uploads"]
    record["s3"]["object"]["size"] = len(photo)
    upload = start("catalog-upload", env)
    answer = upload.invoke({"Records": [record]})
    assert (answer.ok, answer.payload) == (
        True,
        {
            "key": "photos/my photo.jpg",
            "size": len(photo),
            "sha256": hashlib.sha256(photo).hexdigest(),
            "uploaded_at": "2026-11-27T21:30:00.000Z",
        },
    ), upload.log()

    report = start("nightly-report", template_environment(packaged, "nightly-report"))
    answer = report.invoke(_event("eventbridge_scheduled.json"))
    assert (answer.ok, answer.payload) == (True, {"report": "catalog/2026-11-27.json", "photos": 1}), (
        report.log()
    )
    body = s3.get_object(Bucket=names["buckets"]["reports"], Key="catalog/2026-11-27.json")["Body"].read()
    assert json.loads(body)["total_bytes"] == len(photo)
