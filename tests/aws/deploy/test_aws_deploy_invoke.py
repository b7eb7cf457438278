"""Invocation edges on AWS: IAM grants ``lambda:InvokeFunction`` on the declared
targets only, each target gets an event invoke configuration (two retries, an
SQS on-failure queue) and the callers learn their targets' Lambda names; an
unchanged redeploy makes no mutating call, a lost state converges without
duplicates, a dropped edge removes what it needed, and remove leaves nothing.
Deployed in-process to a moto server over HTTP, checked through AWS read APIs."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aws_deploy_support import Moto, empty_snapshot, mutating, snapshot
from sls_py.config import load_project
from sls_py.ui import PlainUI
from sls_py_aws import deploy as engine

pytestmark = pytest.mark.slow

APP = """
from sls_py import App, Context

app = App("invapp")
chunks = app.fanout("worker")


@app.function(name="worker")
def worker(items: list[int], ctx: Context) -> int:
    return sum(items)


@app.function(name="coordinator", invokes=INVOKES)
def coordinator(payload: dict, ctx: Context) -> list[int]:
    return chunks.map(payload["items"], ctx, chunk=10)


@app.function(name="bystander")
def bystander(payload: dict) -> None:
    return None
"""


def write_app(root: Path, invokes: list[str]) -> None:
    pkg = root / "inv"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(APP.replace("INVOKES", repr(invokes)))
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""
        [project]
        name = "invapp"
        version = "0.1.0"

        [tool.sls-py]
        app = "inv.app:app"

        [tool.sls-py.providers.aws]
        include_dependencies = false
    """)
    )
    for name in [m for m in sys.modules if m == "inv" or m.startswith("inv.")]:
        del sys.modules[name]  # import the changed app, as a new CLI process would


def steps(plan: Any) -> list[tuple[str, str, str, str]]:
    return [(s.action, s.kind, s.name, s.reason) for s in plan.steps]


def invoke_statements(moto: Moto) -> list[dict[str, Any]]:
    doc = moto.client("iam").get_role_policy(RoleName="invapp-dev-lambda", PolicyName="sls-py")
    return [s for s in doc["PolicyDocument"]["Statement"] if s["Sid"].startswith("Invoke")]


def resources_env(moto: Moto, function: str) -> dict[str, Any]:
    conf = moto.client("lambda").get_function_configuration(FunctionName=f"invapp-dev-{function}")
    return dict(json.loads(conf["Environment"]["Variables"]["SLS_PY_RESOURCES"]))


def test_invoke_edges_deploy_converge_and_remove(aws_env: Moto, tmp_path: Path) -> None:
    root = tmp_path / "inv-project"
    write_app(root, ["worker"])
    project = load_project(root)
    spec = project.spec("dev")
    assert [(f.name, f.invokes) for f in spec.functions] == [
        ("worker", []),
        ("coordinator", ["worker"]),
        ("bystander", []),
    ]
    cloud = engine.make_cloud(spec)
    ui = PlainUI(quiet=True)
    planned = steps(engine.plan(spec, project, cloud))
    assert ("create", "async-config", "worker", "new") in planned
    assert [s for s in planned if s[1] == "async-config"] == [("create", "async-config", "worker", "new")]
    engine.deploy(spec, project, cloud, ui)

    account = aws_env.client("sts").get_caller_identity()["Account"]
    assert invoke_statements(aws_env) == [
        {
            "Sid": "InvokeTargets",
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": [f"arn:aws:lambda:us-east-1:{account}:function:invapp-dev-worker"],
        },
        {
            "Sid": "InvokeDeadLetters",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": [f"arn:aws:sqs:us-east-1:{account}:invapp-dev-worker-async-dlq"],
        },
    ]
    lam = aws_env.client("lambda")
    config = lam.get_function_event_invoke_config(FunctionName="invapp-dev-worker")
    dlq_arn = f"arn:aws:sqs:us-east-1:{account}:invapp-dev-worker-async-dlq"
    assert (
        config["MaximumRetryAttempts"],
        config["MaximumEventAgeInSeconds"],
        config["DestinationConfig"]["OnFailure"]["Destination"],
    ) == (2, 21600, dlq_arn)
    sqs = aws_env.client("sqs")
    assert sqs.get_queue_url(QueueName="invapp-dev-worker-async-dlq")["QueueUrl"]
    for other in ("coordinator", "bystander"):
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.get_function_event_invoke_config(FunctionName=f"invapp-dev-{other}")
    assert resources_env(aws_env, "coordinator")["functions"] == {"worker": "invapp-dev-worker"}
    assert "functions" not in resources_env(aws_env, "worker")
    assert "invapp-dev-sls-py-fanout" in aws_env.client("dynamodb").list_tables()["TableNames"]
    first = snapshot(aws_env, "invapp", "dev")

    # unchanged: no steps, and a redeploy makes no mutating call
    assert steps(engine.plan(spec, project, cloud)) == []
    aws_env.start_recording()
    engine.deploy(spec, project, cloud, ui)
    assert mutating(aws_env.stop_recording()) == []

    # the state is lost: the deploy adopts what exists, duplicates nothing
    engine.state_file(spec, project).unlink()
    engine.deploy(spec, project, cloud, ui)
    assert snapshot(aws_env, "invapp", "dev") == first
    assert steps(engine.plan(spec, project, cloud)) == []

    # the edge is dropped: its grant, configuration and queue go with it
    write_app(root, [])
    project = load_project(root)
    spec = project.spec("dev")
    dropped = steps(engine.plan(spec, project, cloud))
    assert ("delete", "async-config", "worker", "no longer in the app") in dropped
    assert ("update", "role", "invapp-dev-lambda", "policy changed") in dropped
    engine.deploy(spec, project, cloud, ui)
    assert invoke_statements(aws_env) == []
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName="invapp-dev-worker")
    assert "functions" not in resources_env(aws_env, "coordinator")
    queues = sqs.list_queues(QueueNamePrefix="invapp-dev-").get("QueueUrls", [])
    assert queues == []

    # back again, then remove: nothing of the stage is left
    write_app(root, ["worker"])
    project = load_project(root)
    spec = project.spec("dev")
    engine.deploy(spec, project, cloud, ui)
    engine.remove(spec, project, cloud, ui)
    assert snapshot(aws_env, "invapp", "dev") == empty_snapshot()
