"""The built zip, unchanged, under AWS's own runtime client (awslambdaric),
talking to a Lambda Runtime API server on 127.0.0.1, with resources on a moto
server over HTTP. Events are AWS's documented shapes from ``events/``."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_runtime_support import (
    FIXTURE_APP,
    WORK_MAGIC,
    WORK_MAGIC_APP_FILES,
    WORK_MAGIC_RUNTIME_FILES,
    LambdaProcess,
    TaskRoot,
    extract_package,
    mini_project,
    write_wheel,
)
from sls_py.errors import FunctionFailed
from sls_py_aws.environment import lambda_environment
from sls_py_aws.handler import ERROR_MARKER
from sls_py_aws.operate import invocation_error
from sls_py_local.database import LocalDatabase
from support.lambda_invoke import LambdaInvokeService

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work_magic_root(tmp_path_factory: pytest.TempPathFactory) -> TaskRoot:
    return extract_package(WORK_MAGIC, tmp_path_factory.mktemp("wm") / "task")


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory: pytest.TempPathFactory) -> TaskRoot:
    return extract_package(FIXTURE_APP, tmp_path_factory.mktemp("fx") / "task")


def _function_env(
    root: TaskRoot, function: str, names: dict[str, Any], caches: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment the deployer sets (sls_py_aws.environment), names from moto;
    ``caches``: SLS_PY_CACHES, which the deployer fills in with ElastiCache's endpoints
    (moto has none: the tests give a real local valkey-server's URL instead)."""
    env = lambda_environment(root.spec, root.spec.function(function), names=names)
    if caches is not None:
        env["SLS_PY_CACHES"] = json.dumps(caches)
    return env


def _http_event(aws_event: Callable[[str], Any], body: dict[str, Any]) -> dict[str, Any]:
    event = aws_event("apigw_rest_post_base64.json")
    event["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    return event


def test_zip_holds_only_the_runtime_and_the_app(work_magic_root: TaskRoot) -> None:
    sources = [f for f in work_magic_root.files if not f.endswith(".pyc")]
    assert sources == sorted(
[*WORK_MAGIC_APP_FILES, *WORK_MAGIC_RUNTIME_FILES])


def test_work_magic_http_and_direct_invoke(
    work_magic_root: TaskRoot,
    start_lambda: Callable[..., LambdaProcess],
    aws_event: Callable[[str], Any],
    aws_env: dict[str, str],
    cache_url: str,
) -> None:
    caches = {"spells": cache_url}
    fn = start_lambda(
        work_magic_root.path,
        {**aws_env, **_function_env(work_magic_root, "work-magic", {}, caches)},
    )
    spell = {"magic-word": "clonezero-token", "spell": "adder", "x": 40, "y": 2}
    import valkey

    server = valkey.Valkey.from_url(cache_url)
    before = int(server.get("cast:adder") or 0)

    ok = fn.invoke(_http_event(aws_event, spell))
    assert ok.ok, fn.log()
    # the handler's cache call went through the AWS driver to the server in SLS_PY_CACHES
    assert int(server.get("cast:adder") or 0) == before + 1
    assert ok.payload == {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "access-control-allow-origin": "*"},
        "body": '{"result":42}',
        "isBase64Encoded": False,
    }

    wrong = fn.invoke(_http_event(aws_event, {**spell, "magic-word": "abracadabra"}))
    assert wrong.payload == {
        "statusCode": 403,
        "headers": {"content-type": "application/json", "access-control-allow-origin": "*"},
        "body": '{"message":"Wrong magic word"}',
        "isBase64Encoded": False,
    }

    invalid = fn.invoke(_http_event(aws_event, {"spell": "adder"}))
    assert invalid.payload["statusCode"] == 400
    assert invalid.payload["headers"]["access-control-allow-origin"] == "*"
    assert [e["loc"] for e in json.loads(invalid.payload["body"])["errors"]] == [
        ["magic-word"],
        ["x"],
        ["y"],
    ]

    direct = fn.invoke({**spell, "spell": "multiplier", "x": 6, "y": 7})
    assert (direct.ok, direct.payload) == (True, {"result": 42})
    assert "cast multiplier" in fn.log()  # the function's INFO logs reach Lambda's log

    refused = fn.invoke({**spell, "magic-word": "nope"})
    assert not refused.ok
    assert {k: refused.payload[k] for k in ("errorType", "errorMessage", "requestId")} == {
        "errorType": "HttpError",
        "errorMessage": "[403] Wrong magic word",
        "requestId": refused.request_id,
    }

    # invalid input: a readable first line, the per-field errors as JSON on the last
    invalid_direct = fn.invoke({"spell": "adder", "x": 1})
    assert not invalid_direct.ok
    first, last = invalid_direct.payload["errorMessage"].split("\n")
    assert (invalid_direct.payload["errorType"], first) == (
        "InvalidInput",
        "[400] Invalid request body (magic-word: Field required; y: Field required)",
    )
    assert last.startswith(ERROR_MARKER)
    # what Lambda's log shows (awslambdaric writes the error before the traceback)
    assert f"[ERROR] InvalidInput: {first}" in fn.log()
    # sls-py invoke --provider aws reads it back as the local provider reports it
    info = invocation_error(invalid_direct.payload)
    assert (info.type, info.message, info.status, info.details) == (
        "InvalidInput",
        "Invalid request body",
        400,
        [
            {"loc": ["magic-word"], "msg": "Field required", "type": "missing"},
            {"loc": ["y"], "msg": "Field required", "type": "missing"},
        ],
    )
    failed = FunctionFailed("work-magic", info)
    # the lines tests/core/test_cli.py::test_validation_error_lists_the_fields expects locally
    assert f"{failed.function} failed: {failed.message}".splitlines() == [
        "work-magic failed: InvalidInput (status 400): Invalid request body",
        "  magic-word: Field required",
        "  y: Field required",
    ]


def _catalog_database(data_api: Any, suffix: str, aws_env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The example app's ``catalog`` database as deployed: its cluster's ARN, the
    cluster's credentials in Secrets Manager (moto; the function looks the secret
    up), and the migrations applied on the real PostgreSQL server behind
    ``data_api`` (what deploy does through the Data API). Returns the ARN and the
    functions' extra environment."""
    from sls_py_aws.dataapi import secret_name

    arn = f"arn:aws:rds:{aws_env['AWS_REGION']}:123456789012:cluster:cz-{suffix}-catalog"
    boto3.client("secretsmanager").create_secret(
        Name=secret_name(arn), SecretString=json.dumps({"username": "sls_py", "password": "-"})
    )
    data_api.apply_migrations(WORK_MAGIC)
    return arn, {"AWS_ENDPOINT_URL_RDS_DATA": data_api.url}


def test_upload_then_nightly_report(
    work_magic_root: TaskRoot,
    start_lambda: Callable[..., LambdaProcess],
    aws_event: Callable[[str], Any],
    aws_env: dict[str, str],
    data_api: Any,
    suffix: str,
) -> None:
    s3 = boto3.client("s3")
    ddb = boto3.client("dynamodb")
    cluster, data_env = _catalog_database(data_api, suffix, aws_env)
    aws_env = {**aws_env, **data_env}
    names = {
        "buckets": {"uploads": f"cz-{suffix}-uploads", "reports": f"cz-{suffix}-reports"},
        "tables": {"sls-py-fanout": f"cz-{suffix}-fanout"},
        "databases": {"catalog": cluster},
    }
    for bucket in names["buckets"].values():
        s3.create_bucket(Bucket=bucket)
    ddb.create_table(  # the fan-out's results (app.fanout)
        TableName=names["tables"]["sls-py-fanout"],
        KeySchema=[
            {"AttributeName": "job", "KeyType": "HASH"},
            {"AttributeName": "index", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "job", "AttributeType": "S"},
            {"AttributeName": "index", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    photo = b"\xff\xd8\xff\xe0 not really a jpeg " * 10
    s3.put_object(Bucket=names["buckets"]["uploads"], Key="photos/my photo.jpg", Body=photo)

    upload = start_lambda(
        work_magic_root.path, {**aws_env, **_function_env(work_magic_root, "catalog-upload", names)}
    )
    event = aws_event("s3_put_two_records.json")
    record = event["Records"][0]  # key "photos/my+photo.jpg", URL-encoded as S3 sends it
    record["s3"]["bucket"]["name"] = names["buckets"]["uploads"]
    record["s3"]["object"]["size"] = len(photo)
    answer = upload.invoke({"Records": [record]})
    entry = {
        "key": "photos/my photo.jpg",
        "size": len(photo),
        "sha256": hashlib.sha256(photo).hexdigest(),
        "uploaded_at": "2026-11-27T21:30:00.000Z",
    }
    assert (answer.ok, answer.payload) == (True, entry), upload.log()
    # the row, through the Data API as the function wrote it, read on the server behind it
    rows = LocalDatabase("catalog", data_api.postgres.connection.options()).execute(
        "SELECT key, size, sha256, uploaded_at FROM photos", {}
    )[0]
    assert rows == [
        {
            "key": entry["key"],
            "size": len(photo),
            "sha256": entry["sha256"],
            "uploaded_at": dt.datetime(2026, 11, 27, 21, 30, tzinfo=dt.UTC),
        }
    ]

    # the report fans out to count-chunk through Lambda's Invoke API (InvocationType=Event),
    # which moto cannot run: a LambdaInvokeService plays it for the report's Lambda client
    chunk = start_lambda(
        work_magic_root.path, {**aws_env, **_function_env(work_magic_root, "count-chunk", names)}
    )
    service = LambdaInvokeService(
        lambda _name, ev: chunk.invoke(ev), boto3.client("lambda"), boto3.client("sqs")
    )
    env = {**aws_env, **_function_env(work_magic_root, "nightly-report", names)}
    report = start_lambda(work_magic_root.path, {**env, "AWS_ENDPOINT_URL_LAMBDA": service.url})
    try:
        answer = report.invoke(aws_event("eventbridge_scheduled.json"))
    finally:
        service.stop()
    assert (answer.ok, answer.payload) == (
        True,
        {"report": "catalog/2026-11-27.json", "photos": 1},
    ), report.log()
    body = s3.get_object(Bucket=names["buckets"]["reports"], Key="catalog/2026-11-27.json")["Body"]
    written = json.loads(body.read())
    written.pop("generated_at")
    assert written == {
        "schedule_time": "2026-11-27T02:00:00Z",
        "photos": 1,
        "total_bytes": len(photo),
        "largest": "photos/my photo.jpg",
        "kind": "catalog-summary",
    }


def test_queue_batch_with_one_failing_message(
    fixture_root: TaskRoot,
    start_lambda: Callable[..., LambdaProcess],
    aws_event: Callable[[str], Any],
    aws_env: dict[str, str],
    suffix: str,
) -> None:
    sqs = boto3.client("sqs")
    names = {"queues": {"jobs": f"fx-{suffix}-jobs", "done": f"fx-{suffix}-done"}}
    for queue in names["queues"].values():
        sqs.create_queue(QueueName=queue)
    done_url = sqs.get_queue_url(QueueName=names["queues"]["done"])["QueueUrl"]

    worker = start_lambda(
        fixture_root.path, {**aws_env, **_function_env(fixture_root, "worker", names)}
    )
    event = aws_event("sqs_batch_three.json")
    for record in event["Records"]:
        record["eventSourceARN"] = f"arn:aws:sqs:us-east-1:123456789012:{names['queues']['jobs']}"
    answer = worker.invoke(event)
    assert (answer.ok, answer.payload) == (
        True,
        {"batchItemFailures": [{"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}]},
    ), worker.log()
    received = sqs.receive_message(QueueUrl=done_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    bodies = sorted((json.loads(m["Body"]) for m in received["Messages"]), key=lambda b: b["done"])
    assert bodies == [
        {"done": 1, "attributes": {"trace": "abc"}, "queue": "jobs"},
        {"done": 3, "attributes": {}, "queue": "jobs"},
    ]
    assert "message 2 asked to fail" in worker.log()


def test_binary_response_cookies_and_greedy_path(
    fixture_root: TaskRoot,
    start_lambda: Callable[..., LambdaProcess],
    aws_event: Callable[[str], Any],
) -> None:
    fn = start_lambda(fixture_root.path, _function_env(fixture_root, "files", {}))
    answer = fn.invoke(aws_event("apigw_rest_get_greedy.json"))
    assert answer.payload == {
        "statusCode": 200,
        "headers": {
            "content-type": "image/png",
            "x-proxy": "photos/2026/my photo.png",
            "access-control-allow-origin": "*",
        },
        "multiValueHeaders": {"set-cookie": ["a=1; Path=/", "b=2; Path=/"]},
        "body": base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\xff").decode(),
        "isBase64Encoded": True,
    }, fn.log()


def test_runtime_comes_from_the_zip_and_stays_light(
    fixture_root: TaskRoot, start_lambda: Callable[..., LambdaProcess]
) -> None:
    fn = start_lambda(fixture_root.path, _function_env(fixture_root, "where", {}))
    answer = fn.invoke({"ping": [1, 2]})
    assert answer.ok, fn.log()
    root = fixture_root.path
    assert answer.payload == {
        "sls_py": str(root / "sls_py" / "__init__.py"),
        "handler": str(root / "sls_py_aws" / "handler.py"),
        "loaded": [],
        "payload": {"ping": [1, 2]},
        "context": {
            "request_id": answer.request_id,
            "function_name": "where",
            "stage": "dev",
            "memory_mb": 256,
            "provider": "aws",
            "deadline_in_30s": True,
        },
    }


def test_schedule_input_and_unhandled_error(
    fixture_root: TaskRoot, start_lambda: Callable[..., LambdaProcess]
) -> None:
    tick = start_lambda(fixture_root.path, _function_env(fixture_root, "tick", {}))
    answer = tick.invoke({"sls_py_schedule": {"name": "tick", "time": "2026-11-27T10:05:00Z"}})
    assert (answer.ok, answer.payload) == (
        True,
        {
            "schedule": "tick",
            "expression": "rate(5 minutes)",
            "time": "2026-11-27T10:05:00Z",
            "payload": {"kind": "tick"},
        },
    ), tick.log()

    boom = start_lambda(fixture_root.path, _function_env(fixture_root, "boom", {}))
    failed = boom.invoke({"why": "testing"})
    assert not failed.ok
    assert (failed.payload["errorType"], failed.payload["errorMessage"]) == (
        "RuntimeError",
        "boom: testing",
    )
    assert "RuntimeError: boom: testing" in boom.log()  # the real traceback reaches the logs


def test_app_that_cannot_load_reports_a_clear_error(
    fixture_root: TaskRoot, start_lambda: Callable[..., LambdaProcess], tmp_path: Path
) -> None:
    env = {**_function_env(fixture_root, "where", {}), "SLS_PY_APP": "aws_fixture.missing:app"}
    fn = start_lambda(fixture_root.path, env)
    answer = fn.invoke({})
    assert not answer.ok
    assert answer.payload["errorType"] == "AppImportError"
    assert answer.payload["errorMessage"] == (
        "cannot load aws_fixture.missing:app: ModuleNotFoundError: "
        "No module named 'aws_fixture.missing'"
    )


def test_dependency_from_a_wheel_runs_from_the_zip(
    tmp_path: Path, start_lambda: Callable[..., LambdaProcess]
) -> None:
    write_wheel(tmp_path / "wheels", "tinydep", value=7)
    project = mini_project(tmp_path, ["tinydep==1.0"])
    root = extract_package(project, tmp_path / "task", wheel_dir=tmp_path / "wheels")
    assert "tinydep/__init__.py" in root.files
    fn = start_lambda(root.path, _function_env(root, "hello", {}))
    answer = fn.invoke({})
    assert (answer.ok, answer.payload) == (
        True,
        {"value": 7, "from": str(root.path / "tinydep" / "__init__.py")},
    ), fn.log()


class LambdaInvokeApi:
    """Lambda's Invoke API (``POST /2015-03-31/functions/NAME/invocations``) on
    127.0.0.1 for one function running under awslambdaric: what boto3's
    ``lambda.invoke`` talks to when ``AWS_ENDPOINT_URL`` points here."""

    def __init__(self, name: str, fn: LambdaProcess) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.calls: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                api.calls.append(self.path)
                event = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if self.path != f"/2015-03-31/functions/{name}/invocations":
                    self.send_response(404)
                    self.send_header("x-amzn-ErrorType", "ResourceNotFoundException")
                    body = b'{"Type":"User","message":"Function not found"}'
                else:
                    answer = fn.invoke(event)
                    body = json.dumps(answer.payload).encode()
                    self.send_response(200)
                    self.send_header("X-Amz-Executed-Version", "$LATEST")
                    if not answer.ok:
                        self.send_header("X-Amz-Function-Error", "Unhandled")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_cli_invoke_lists_the_invalid_fields_as_local_does(
    work_magic_root: TaskRoot,
    start_lambda: Callable[..., LambdaProcess],
    tmp_path: Path,
    cache_url: str,
) -> None:
    """``sls-py invoke --provider aws`` as a subprocess -> boto3 -> Lambda's Invoke
    API -> the zip under awslambdaric: a validation error prints the fields, line
    for line as tests/core/test_cli.py expects of the local provider."""
    import os
    import shutil
    import subprocess
    import sys

    from aws_runtime_support import FAKE_AWS

    caches = {"spells": cache_url}
    fn = start_lambda(work_magic_root.path, _function_env(work_magic_root, "work-magic", {}, caches))
    api = LambdaInvokeApi("clonezero-dev-work-magic", fn)
    project = tmp_path / "work_magic"
    shutil.copytree(WORK_MAGIC, project, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLS_PY_"))}
    env.update(FAKE_AWS, AWS_ENDPOINT_URL=api.endpoint, AWS_CONFIG_FILE=os.devnull)
    env.update(AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sls_py", "invoke", "work-magic", '{"spell": "adder", "x": 1}',
             "--provider", "aws", "--project", str(project)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        api.stop()
    assert api.calls == ["/2015-03-31/functions/clonezero-dev-work-magic/invocations"]
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        "work-magic failed: InvalidInput (status 400): Invalid request body",
        "  magic-word: Field required",
        "  y: Field required",
    ]
