"""Queues, greedy and parameter routes, upload filters, rate schedules,
concurrency, sort keys, and resources removed from the app: an app of its own
(the example app has no queue), deployed in-process against a moto server and
checked through AWS read APIs."""

from __future__ import annotations

import base64
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aws_deploy_support import ACCOUNT, REGION, Moto, empty_snapshot, operation_of, snapshot
from sls_py.config import load_project
from sls_py.ui import PlainUI
from sls_py_aws import deploy as engine

pytestmark = pytest.mark.slow

APP = """
from sls_py import App, Cors, http, queue, schedule, upload

app = App("jobsapp")
inbox = app.bucket("inbox")
work = app.queue("work", visibility_timeout_s=60, max_receives=5)
results = app.table("results", key="job", sort_key="step")


@app.function(name="submit", triggers=[
    http("POST", "/jobs", cors=Cors(origins=("https://a.example",), max_age_s=60)),
    http("GET", "/jobs/{id}"),
])
def submit(request, ctx):
    return {"ok": True}


@app.function(name="worker", timeout_s=30, concurrency=2,
              triggers=[queue("work", batch_size=BATCH)])
def worker(batch, ctx):
    return None


@app.function(name="ingest", triggers=[upload("inbox", prefix="in/", suffix=".csv")])
def ingest(event, ctx):
    return None
"""

TICK = """

@app.function(name="tick", triggers=[schedule("rate(5 minutes)", name="tick")])
def tick(event, ctx):
    return None
"""


def write_app(root: Path, *, batch: int, with_tick: bool, with_get: bool = True) -> None:
    """Write the ``jobs`` app under ``root``, and forget any ``jobs`` imported
    before: the next load imports this one, as a new CLI process would."""
    for name in [m for m in sys.modules if m == "jobs" or m.startswith("jobs.")]:
        del sys.modules[name]
    pkg = root / "jobs"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    source = APP.replace("BATCH", str(batch)) + (TICK if with_tick else "")
    if not with_get:
        source = source.replace('    http("GET", "/jobs/{id}"),\n', "")
        assert "GET" not in source
    source = source.replace("def submit(request, ctx)", "def submit(request: HttpRequest, ctx)")
    source = source.replace("def worker(batch, ctx)", "def worker(batch: QueueBatch, ctx)")
    source = source.replace("def ingest(event, ctx)", "def ingest(event: UploadEvent, ctx)")
    source = source.replace("def tick(event, ctx)", "def tick(event: ScheduleEvent, ctx)")
    header = "from sls_py import HttpRequest, QueueBatch, ScheduleEvent, UploadEvent\n"
    (pkg / "app.py").write_text(header + source)
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""
        [project]
        name = "jobsapp"
        version = "0.1.0"

        [tool.sls-py]
        app = "jobs.app:app"

        [tool.sls-py.providers.aws]
        include_dependencies = false
    """)
    )


def steps(plan: Any) -> list[tuple[str, str, str, str]]:
    return [(s.action, s.kind, s.name, s.reason) for s in plan.steps]


def test_queue_app_deploys_changes_and_deletes_what_the_app_dropped(
    aws_env: Moto, tmp_path: Path
) -> None:
    root = tmp_path / "jobs-project"
    write_app(root, batch=5, with_tick=True)
    project = load_project(root)
    spec = project.spec("dev")
    cloud = engine.make_cloud(spec)
    ui = PlainUI(quiet=True)
    aws_env.start_recording()
    engine.deploy(spec, project, cloud, ui)
    created = [r for r in aws_env.stop_recording() if operation_of(r) == "POST /restapis"]
    snap = snapshot(aws_env, "jobsapp", "dev")
    # moto drops binaryMediaTypes on create (get_rest_api reads back []), so check
    # what the server was asked: binary responses must reach clients as bytes
    bodies = [base64.b64decode(r["body"]) if r.get("body_encoded") else r["body"] for r in created]
    assert [json.loads(b)["binaryMediaTypes"] for b in bodies] == [["*/*"]]
    p = "jobsapp-dev"
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{p}-work"
    fn_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{p}"

    assert snap["queues"] == {
        f"{p}-work": {
            "visibility": "60",
            "redrive": {"deadLetterTargetArn": f"{queue_arn}-dlq", "maxReceiveCount": 5},
            "tags": {"sls-py:app": "jobsapp", "sls-py:stage": "dev"},
        },
        f"{p}-work-dlq": {
            "visibility": "30",
            "redrive": None,
            "tags": {"sls-py:app": "jobsapp", "sls-py:stage": "dev"},
        },
    }
    worker = snap["functions"][f"{p}-worker"]
    assert worker["event_sources"] == [
        {"source": queue_arn, "batch": 5, "response_types": ["ReportBatchItemFailures"]}
    ]
    assert worker["concurrency"] == 2
    assert worker["permissions"] == []
    assert snap["tables"][f"{p}-results"]["keys"] == [
        {"AttributeName": "job", "KeyType": "HASH"},
        {"AttributeName": "step", "KeyType": "RANGE"},
    ]
    assert snap["buckets"][f"{p}-inbox-{ACCOUNT}"]["lambda_notifications"] == [
        {
            "events": ["s3:ObjectCreated:*"],
            "filter": [{"Name": "prefix", "Value": "in/"}, {"Name": "suffix", "Value": ".csv"}],
            "function": f"{fn_arn}-ingest",
        }
    ]
    assert snap["rules"][f"{p}-tick"]["expression"] == "rate(5 minutes)"
    assert snap["rules"][f"{p}-tick"]["targets"] == [
        {"id": "sls-py", "arn": f"{fn_arn}-tick", "input": None}
    ]
    (api,) = snap["apis"]
    assert api["paths"] == ["/", "/jobs", "/jobs/{id}"]
    uri = (
        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{fn_arn}-submit/invocations"
    )
    cors = {
        "method.response.header.Access-Control-Allow-Headers": (
            "'content-type,x-api-key,authorization'"
        ),
        "method.response.header.Access-Control-Allow-Methods": "'OPTIONS,POST'",
        "method.response.header.Access-Control-Allow-Origin": "'https://a.example'",
        "method.response.header.Access-Control-Max-Age": "'60'",
    }
    assert api["methods"] == {
        "GET /jobs/{id}": {
            "api_key": False,
            "auth": "NONE",
            "integration": "AWS_PROXY",
            "uri": uri,
        },
        "POST /jobs": {"api_key": False, "auth": "NONE", "integration": "AWS_PROXY", "uri": uri},
        "OPTIONS /jobs": {
            "api_key": False,
            "auth": "NONE",
            "integration": "MOCK",
            "uri": None,
            "method_responses": {"200": dict.fromkeys(cors, False)},
            "request_templates": {"application/json": '{"statusCode": 200}'},
            "responses": {"200": cors},
        },
    }
    assert snap["api_keys"] == [] and snap["usage_plans"] == []
    policy = snap["roles"][f"{p}-lambda"]["policies"]["sls-py"]["Statement"]
    assert {s["Sid"]: s["Resource"] for s in policy} == {
        "Logs": sorted(
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{p}-{f}{tail}"
            for f in ("ingest", "submit", "tick", "worker")
            for tail in ("", ":*")
        ),
        "BucketObjects": [f"arn:aws:s3:::{p}-inbox-{ACCOUNT}/*"],
        "BucketList": [f"arn:aws:s3:::{p}-inbox-{ACCOUNT}"],
        "QueueSend": [queue_arn],
        "QueueConsume": [queue_arn],
        "Tables": [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{p}-results"],
    }

    # unchanged: no steps; a second deploy duplicates nothing
    assert steps(engine.plan(spec, project, cloud)) == []
    engine.deploy(spec, project, cloud, ui)
    assert snapshot(aws_env, "jobsapp", "dev") == snap

    # drop the scheduled function, change the batch size
    write_app(root, batch=20, with_tick=False, with_get=False)
    project = load_project(root)
    spec = project.spec("dev")
    assert steps(engine.plan(spec, project, cloud)) == [
        ("delete", "schedule", "tick", "no longer in the app"),
        ("delete", "route", "GET /jobs/{id}", "no longer in the app"),
        ("delete", "function", "tick", "no longer in the app"),
        ("update", "role", f"{p}-lambda", "policy changed"),
        ("update", "function", "submit", "code changed"),
        ("update", "function", "worker", "code changed"),
        ("update", "function", "ingest", "code changed"),
        ("update", "stage", "dev", "routes changed"),
        ("update", "event-source", "worker<-work", "batch_size changed"),
    ]
    engine.deploy(spec, project, cloud, ui)
    after = snapshot(aws_env, "jobsapp", "dev")
    assert f"{p}-tick" not in after["functions"] and after["rules"] == {}
    (api_after,) = after["apis"]
    assert api_after["paths"] == ["/", "/jobs"]
    assert sorted(api_after["methods"]) == ["OPTIONS /jobs", "POST /jobs"]
    assert after["functions"][f"{p}-worker"]["event_sources"] == [
        {"source": queue_arn, "batch": 20, "response_types": ["ReportBatchItemFailures"]}
    ]
    logs = next(
        s
        for s in after["roles"][f"{p}-lambda"]["policies"]["sls-py"]["Statement"]
        if s["Sid"] == "Logs"
    )
    assert not any("tick" in r for r in logs["Resource"])
    assert steps(engine.plan(spec, project, cloud)) == []

    engine.remove(spec, project, cloud, ui)
    assert snapshot(aws_env, "jobsapp", "dev") == empty_snapshot()
    assert json.dumps(engine.load_state(spec, project).entries) == "{}"


def test_big_zips_go_through_a_deployment_bucket(
    aws_env: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda takes at most 50 MB directly; the limit is lowered here so that a
    small zip takes the bucket path (the code is the same)."""
    from sls_py_aws import model

    root = tmp_path / "big"
    write_app(root, batch=5, with_tick=False)
    project = load_project(root)
    spec = project.spec("big")
    cloud = engine.make_cloud(spec)
    package = engine.build(spec, project)
    monkeypatch.setattr(model, "DIRECT_UPLOAD_LIMIT", package.size - 1)
    engine.deploy(spec, project, cloud, PlainUI(quiet=True))

    bucket = f"jobsapp-big-deploys-{ACCOUNT}"
    digest = base64.b64decode(package.code_sha256).hex()
    s3 = aws_env.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"jobsapp-big-{f}/{digest}.zip" for f in ("ingest", "submit", "worker")]
    assert s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read() == package.data
    lam = aws_env.client("lambda")
    for f in ("ingest", "submit", "worker"):
        conf = lam.get_function_configuration(FunctionName=f"jobsapp-big-{f}")
        assert conf["CodeSha256"] == package.code_sha256

    # back under the limit: the deployment bucket is no longer needed and goes
    monkeypatch.setattr(model, "DIRECT_UPLOAD_LIMIT", 50 * 1024 * 1024)
    plan = [(s.action, s.kind, s.name) for s in engine.plan(spec, project, cloud).steps]
    assert plan == [("delete", "deployment-bucket", bucket)]
    engine.deploy(spec, project, cloud, PlainUI(quiet=True))
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    engine.remove(spec, project, cloud, PlainUI(quiet=True))
    assert snapshot(aws_env, "jobsapp", "big") == empty_snapshot()


def test_a_package_over_250_mb_unzipped_fails_before_any_aws_call(
    aws_env: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sls_py_aws import package as packaging

    root = tmp_path / "huge"
    write_app(root, batch=5, with_tick=False)
    project = load_project(root)
    spec = project.spec("huge")
    monkeypatch.setattr(packaging, "MAX_UNZIPPED_BYTES", 1000)
    aws_env.start_recording()
    with pytest.raises(packaging.PackageError, match="over Lambda's limit"):
        engine.deploy(spec, project, engine.make_cloud(spec), PlainUI(quiet=True))
    assert aws_env.stop_recording() == []


def test_remove_without_a_state_file_finds_the_stage_by_names(
    aws_env: Moto, tmp_path: Path
) -> None:
    root = tmp_path / "lost"
    write_app(root, batch=5, with_tick=True)
    project = load_project(root)
    spec = project.spec("lost")
    cloud = engine.make_cloud(spec)
    engine.deploy(spec, project, cloud, PlainUI(quiet=True))
    other = project.spec("kept")
    engine.deploy(other, project, cloud, PlainUI(quiet=True))
    kept = snapshot(aws_env, "jobsapp", "kept")
    engine.state_file(spec, project).unlink()  # e.g. removed from another checkout

    ui = PlainUI(quiet=True)
    removed = engine.remove(spec, project, cloud, ui)
    assert ui.lines[0] == (
        "No deploy of stage 'lost' is recorded here; found 11 of its resources on AWS by name."
    )
    assert sorted((s.kind, s.name) for s in removed.steps) == sorted(
        [
            ("role", "jobsapp-lost-lambda"),
            ("bucket", "inbox"),
            ("table", "results"),
            ("queue", "work"),
            ("function", "submit"),
            ("function", "worker"),
            ("function", "ingest"),
            ("function", "tick"),
            ("api", "jobsapp-lost"),
            ("schedule", "tick"),
            ("event-source", "worker<-work"),
        ]
    )
    assert snapshot(aws_env, "jobsapp", "lost") == empty_snapshot()
    assert snapshot(aws_env, "jobsapp", "kept") == kept
    assert engine.remove(spec, project, cloud, ui).steps == []
    engine.remove(other, project, cloud, ui)


def test_a_second_deploy_of_a_running_stage_is_refused(aws_env: Moto, tmp_path: Path) -> None:
    from sls_py.errors import ProviderError
    from sls_py_aws.state import stage_lock

    root = tmp_path / "locked"
    write_app(root, batch=5, with_tick=False)
    project = load_project(root)
    spec = project.spec("dev")
    with (
        stage_lock(engine.state_file(spec, project)),
        pytest.raises(ProviderError, match="another deploy or remove of this stage is running"),
    ):
        engine.deploy(spec, project, engine.make_cloud(spec), PlainUI(quiet=True))
    assert snapshot(aws_env, "jobsapp", "dev") == empty_snapshot()


def test_triggers_fire_on_the_deployed_stage(aws_env: Moto, tmp_path: Path) -> None:
    from sls_py.provider import TriggerRequest
    from sls_py_aws.operate import trigger

    root = tmp_path / "fire"
    write_app(root, batch=5, with_tick=False)
    project = load_project(root)
    spec = project.spec("fire")
    cloud = engine.make_cloud(spec)
    engine.deploy(spec, project, cloud, PlainUI(quiet=True))

    bucket = f"jobsapp-fire-inbox-{ACCOUNT}"
    up = TriggerRequest(kind="upload", target="inbox", key="in/a.csv", data=b"a,b\n1,2\n")
    assert trigger(spec, cloud, up) == {"bucket": bucket, "key": "in/a.csv", "size": 8}
    got = aws_env.client("s3").get_object(Bucket=bucket, Key="in/a.csv")["Body"].read()
    assert got == b"a,b\n1,2\n"

    sent = trigger(spec, cloud, TriggerRequest(kind="queue", target="work", data=b'{"job": 7}'))
    assert sent["queue"] == "jobsapp-fire-work"
    sqs = aws_env.client("sqs")
    url = sqs.get_queue_url(QueueName="jobsapp-fire-work")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    in_queue = int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )
    assert in_queue == 1
    engine.remove(spec, project, cloud, PlainUI(quiet=True))
