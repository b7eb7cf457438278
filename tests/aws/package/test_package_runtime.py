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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_deploy_support import ACCOUNT, EXAMPLE_APP, REGION, Moto, cli, copy_app
from support.lambda_runtime_api import FAKE_AWS, LambdaProcess

pytestmark = pytest.mark.slow

EVENTS = Path(__file__).resolve().parents[1] / "runtime" / "events"


def _event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture
def cleanup(moto: Moto) -> Iterator[list[tuple[str, str]]]:
    """``(kind, name)`` of what a test makes on moto, deleted afterwards (moto's
    state is one per process, and other modules deploy the example app)."""
    made: list[tuple[str, str]] = []
    yield made
    s3, ddb, sqs = moto.client("s3"), moto.client("dynamodb"), moto.client("sqs")
    for kind, name in reversed(made):
        if kind == "bucket":
            for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
                s3.delete_object(Bucket=name, Key=obj["Key"])
            s3.delete_bucket(Bucket=name)
        elif kind == "table":
            ddb.delete_table(TableName=name)
        elif kind == "queue":
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
        elif kind == "secret":
            moto.client("secretsmanager").delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


@pytest.fixture(scope="module")
def work_magic(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The example app's package, and its zip extracted as Lambda does (``/var/task``)."""
    tmp = tmp_path_factory.mktemp("rt")
    return _package_and_extract(copy_app(tmp), moto, tmp)


@pytest.fixture(scope="module")
def packaged(work_magic: tuple[Path, Path]) -> Path:
    return work_magic[0]


@pytest.fixture(scope="module")
def task_root(work_magic: tuple[Path, Path]) -> Path:
    return work_magic[1]


def _resolve(value: Any, params: dict[str, str]) -> Any:
    """A template value with ``Fn::Sub`` worked out, as CloudFormation would."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return re.sub(
            r"\$\{(!?)([^}]*)\}",
            # a cache's endpoint attribute stays as it is: `start` swaps in a local server
            lambda m: "${" + m[2] + "}" if m[1] or ".Endpoint." in m[2] else params[m[2]],
            value["Fn::Sub"],
        )
    return value


def template_environment(packaged: Path, function: str, app: str = "clonezero") -> dict[str, str]:
    """The environment ``template.yaml`` sets for ``function`` in moto's account."""
    doc = yaml.safe_load((packaged / "template.yaml").read_text())
    params = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION}
    fn = next(
        r["Properties"]
        for r in doc["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["FunctionName"] == f"{app}-dev-{function}"
    )
    return {k: _resolve(v, params) for k, v in fn["Environment"]["Variables"].items()}


@pytest.fixture(scope="module")
def local_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real valkey-server standing in for the template's ElastiCache caches (moto has none)."""
    from support.valkey_server import running_valkey

    with running_valkey(tmp_path_factory.mktemp("valkey")) as url:
        yield url


@pytest.fixture
def start(task_root: Path, moto: Moto, start_lambda: Any, local_cache: str) -> Any:
    """Start a function of the package under awslambdaric, its AWS calls going to moto
    (and its caches, named in SLS_PY_CACHES by the template, to a local valkey-server)."""

    def run(function: str, env: dict[str, str], root: Path = task_root) -> LambdaProcess:
        # the Data API goes to support.data_api (moto runs no SQL), like the deploy tests'
        aws = {**FAKE_AWS, "AWS_ENDPOINT_URL": moto.endpoint, "AWS_ENDPOINT_URL_RDS_DATA": moto.data_api.url}
        env = dict(env)
        if "SLS_PY_CACHES" in env:
            names = re.findall(r'"([a-z0-9-]+)":"rediss://', env["SLS_PY_CACHES"])
            assert names, env["SLS_PY_CACHES"]
            env["SLS_PY_CACHES"] = json.dumps(dict.fromkeys(names, local_cache))
        return start_lambda(root, {**aws, **env}, name=function)

    return run


def _package_and_extract(project: Path, moto: Moto, tmp: Path) -> tuple[Path, Path]:
    out = tmp / "package"
    done = cli(["package", "--provider", "aws", "--project", str(project), "--output", str(out)], moto.env())
    assert done.returncode == 0, done.stderr
    root = tmp / "task"
    with zipfile.ZipFile(next(out.glob("code-*.zip"))) as zf:
        zf.extractall(root)
    return out, root


def test_the_template_points_every_function_at_the_zips_handler(packaged: Path, task_root: Path) -> None:
    doc = yaml.safe_load((packaged / "template.yaml").read_text())
    handlers = {
        r["Properties"]["Handler"] for r in doc["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    }
    assert handlers == {"sls_py_aws.handler.handle"}
    assert (task_root / "sls_py_aws" / "handler.py").is_file()


def test_work_magic_over_http(packaged: Path, start: Any) -> None:
    env = template_environment(packaged, "work-magic")
    fn = start("clonezero-dev-work-magic", env)
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


def test_upload_on_the_templates_resources(
    packaged: Path, start: Any, moto: Moto, cleanup: list[tuple[str, str]]
) -> None:
    env = template_environment(packaged, "catalog-upload")
    names = json.loads(env["SLS_PY_RESOURCES"])
    assert names["buckets"]["uploads"] == f"clonezero-dev-uploads-{ACCOUNT}"  # as deploy names it
    s3 = moto.client("s3")
    for bucket in names["buckets"].values():
        s3.create_bucket(Bucket=bucket)
        cleanup.append(("bucket", bucket))
    # the catalog database the template names: its cluster's credentials (the function
    # looks the secret up) and its migrations, applied where the Data API runs SQL
    cluster = names["databases"]["catalog"]
    assert cluster == f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:clonezero-dev-catalog"
    from sls_py_aws.dataapi import secret_name

    moto.client("secretsmanager").create_secret(Name=secret_name(cluster), SecretString="{}")
    cleanup.append(("secret", secret_name(cluster)))
    moto.data_api.apply_migrations(EXAMPLE_APP)
    photo = b"\xff\xd8\xff\xe0 packaged photo " * 8
    s3.put_object(Bucket=names["buckets"]["uploads"], Key="photos/my photo.jpg", Body=photo)
    event = _event("s3_put_two_records.json")
    record = event["Records"][0]  # key "photos/my+photo.jpg", URL-encoded as S3 sends it
    record["s3"]["bucket"]["name"] = names["buckets"]["uploads"]
    record["s3"]["object"]["size"] = len(photo)
    upload = start("clonezero-dev-catalog-upload", env)
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
    from sls_py_local.database import LocalDatabase

    db = LocalDatabase("catalog", moto.data_api.postgres.connection.options())
    assert db.execute("SELECT key, size FROM photos", {})[0] == [
        {"key": "photos/my photo.jpg", "size": len(photo)}
    ]
    db._local.conn.close()


def test_a_queue_batch_and_a_schedule(
    moto: Moto, start: Any, tmp_path: Path, cleanup: list[tuple[str, str]]
) -> None:
    import shutil

    project = tmp_path / "fixture_app"
    shutil.copytree(
        EVENTS.parent / "fixture_app", project, ignore=shutil.ignore_patterns(".sls-py", "__pycache__")
    )
    packaged, root = _package_and_extract(project, moto, tmp_path)
    env = template_environment(packaged, "worker", app="fixture")
    queues = json.loads(env["SLS_PY_RESOURCES"])["queues"]
    assert queues == {"jobs": "fixture-dev-jobs", "done": "fixture-dev-done"}
    sqs = moto.client("sqs")
    for name in queues.values():
        sqs.create_queue(QueueName=name)
        cleanup.append(("queue", name))
    worker = start("fixture-dev-worker", env, root)
    event = _event("sqs_batch_three.json")
    for record in event["Records"]:
        record["eventSourceARN"] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:fixture-dev-jobs"
    answer = worker.invoke(event)
    assert (answer.ok, answer.payload) == (
        True,
        {"batchItemFailures": [{"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}]},
    ), worker.log()
    done_url = sqs.get_queue_url(QueueName="fixture-dev-done")["QueueUrl"]
    received = sqs.receive_message(QueueUrl=done_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    assert sorted(json.loads(m["Body"])["done"] for m in received["Messages"]) == [1, 3]

    tick = start("fixture-dev-tick", template_environment(packaged, "tick", app="fixture"), root)
    event = _event("eventbridge_scheduled.json")
    doc = yaml.safe_load((packaged / "template.yaml").read_text())
    rules = [r["Properties"]["Name"] for r in doc["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    assert rules == ["fixture-dev-tick"]
    event["resources"] = [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rules[0]}"]  # as that rule sends it
    answer = tick.invoke(event)
    assert (answer.ok, answer.payload) == (
        True,
        {
            "schedule": "tick",
            "expression": "rate(5 minutes)",
            "time": "2026-11-27T02:00:00Z",
            "payload": {"kind": "tick"},
        },
    ), tick.log()
