"""The package's ``template.yaml`` against what ``sls-py deploy`` creates.

- cfn-lint checks the whole template (every resource type, property and
  reference), for an app using every trigger and resource kind and for the
  example app's ``prod`` stage.
- On a moto server over HTTP: the app is deployed with ``sls-py deploy``, then
  ``sls-py remove`` takes it away and the template is deployed through moto's CloudFormation
  (the zip uploaded to an artifact bucket, as a pipeline would); both are read
  back through AWS read APIs (``aws_deploy_support.snapshot``) and compared.

moto's CloudFormation cannot check everything, and the comparison says where:
it skips ``AWS::ApiGateway::Stage``, ``ApiKey``, ``UsagePlan``,
``UsagePlanKey`` and ``GatewayResponse`` and ``AWS::Lambda::EventInvokeConfig``
silently; it ignores a RestApi's tags and binary media types, a function's tags
and a bucket's
``NotificationConfiguration``; it keeps an inline role policy as the Python
repr of the document (read back with ``ast.literal_eval``); and it
fails on a ``MOCK`` method (it reads ``Integration.Uri``, which a MOCK
integration must not have), so the CORS preflight methods are taken out of the
copy moto gets. Those parts are compared with the direct deploy's from the
template itself instead (same values), and cfn-lint checks them.
"""

from __future__ import annotations

import ast
import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_deploy_support import Moto, cli, copy_app, empty_snapshot, snapshot
from aws_package_support import everything_project

pytestmark = pytest.mark.slow

TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return everything_project(tmp_path_factory.mktemp("cfn") / "cfnapp", app="cfnapp")


@pytest.fixture(scope="module")
def packaged(project: Path, moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cfn-out") / "package"
    done = cli(
        ["package", "--provider", "aws", "--project", str(project), "--output", str(out)],
        moto.env(PKGAPP_TOKEN=TOKEN),
    )
    assert done.returncode == 0, done.stderr
    return out


def _template(folder: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((folder / "template.yaml").read_text()))


def _lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "parseable", "--", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_template_passes_cfn_lint(packaged: Path, moto: Moto, tmp_path: Path) -> None:
    """Both templates pass; a copy with one wrong property, linted in the same run, does not."""
    example = copy_app(tmp_path)
    out = tmp_path / "prod-package"
    made = cli(
        ["package", "--provider", "aws", "--project", str(example), "--stage", "prod", "--output", str(out)],
        moto.env(),
    )
    assert made.returncode == 0, made.stderr
    # the example app reads its magic word as config: the role may read the stage's SSM path
    (role,) = [r for r in _template(out)["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    (config_read,) = [
        st
        for st in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        if st["Sid"] == "ConfigRead"
    ]
    assert config_read["Resource"] == [
        {"Fn::Sub": "arn:aws:ssm:${AWS::Region}:${AWS::AccountId}:parameter/clonezero/prod"},
        {"Fn::Sub": "arn:aws:ssm:${AWS::Region}:${AWS::AccountId}:parameter/clonezero/prod/*"},
    ]
    # a database: its secret, Aurora cluster and instance (migrations stay with sls-py migrate)
    db_project = everything_project(tmp_path / "dbapp", source=DATABASE_APP, app="dbapp")
    # cfn-lint knows AWS's engine versions: the provider's default (16.6) is deprecated
    # for new clusters there (W3690), so this app pins a current one
    pyproject = db_project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "include_dependencies = false", 'include_dependencies = false\ndatabase_engine_version = "16.8"'
        )
    )
    (db_project / "migrations").mkdir()
    (db_project / "migrations" / "001_items.sql").write_text("CREATE TABLE items (id text PRIMARY KEY);\n")
    db_out = tmp_path / "db-package"
    made = cli(
        ["package", "--provider", "aws", "--project", str(db_project), "--output", str(db_out)], moto.env()
    )
    assert made.returncode == 0, made.stderr
    db_types = sorted(
        r["Type"]
        for r in _template(db_out)["Resources"].values()
        if "RDS" in r["Type"] or "Secret" in r["Type"]
    )
    assert db_types == ["AWS::RDS::DBCluster", "AWS::RDS::DBInstance", "AWS::SecretsManager::Secret"]
    db_plan = json.loads((db_out / "plan.json").read_text())
    assert [s["kind"] for s in db_plan["steps"] if s["kind"].startswith(("database", "migrations"))] == [
        "database-secret",
        "database",
        "database-instance",
        "migrations",
    ]
    doc = _template(packaged)
    doc["Resources"]["FunctionHello"]["Properties"]["MemorySize"] = "lots"
    broken = tmp_path / "broken.yaml"
    broken.write_text(json.dumps(doc))
    done = _lint(packaged / "template.yaml", out / "template.yaml", db_out / "template.yaml", broken)
    assert done.returncode != 0 and done.stderr == ""
    findings = done.stdout.splitlines()
    assert findings and all(line.startswith(f"{broken}:") for line in findings), done.stdout
    assert all(line.endswith("E3012:'lots' is not of type 'integer'") for line in findings), done.stdout


def _for_moto(doc: dict[str, Any]) -> dict[str, Any]:
    """The template without the MOCK methods moto's CloudFormation fails on."""
    doc = copy.deepcopy(doc)
    mock = [
        k
        for k, v in doc["Resources"].items()
        if v["Type"] == "AWS::ApiGateway::Method" and v["Properties"]["Integration"]["Type"] == "MOCK"
    ]
    for k in mock:
        del doc["Resources"][k]
    for res in doc["Resources"].values():
        if "DependsOn" in res:
            res["DependsOn"] = [d for d in res["DependsOn"] if d not in mock]
    return doc


def _comparable(snap: dict[str, Any]) -> dict[str, Any]:
    """What moto's CloudFormation can create, out of a snapshot."""
    snap = copy.deepcopy(snap)
    for role in snap["roles"].values():
        role["policies"] = {
            name: ast.literal_eval(doc) if isinstance(doc, str) else doc  # moto keeps a repr
            for name, doc in role["policies"].items()
        }
    for fn in snap["functions"].values():
        fn.pop("tags")  # moto's CloudFormation ignores a function's Tags
        for perm in fn["permissions"]:
            perm.pop("sid")  # CloudFormation names statements itself
        fn["permissions"].sort(key=json.dumps)
    for api in snap["apis"]:
        for skipped in ("tags", "binary_media_types", "gateway_responses", "stages"):
            api.pop(skipped)
        api["methods"] = {k: v for k, v in api["methods"].items() if not k.startswith("OPTIONS ")}
    for bucket in snap["buckets"].values():
        bucket.pop("lambda_notifications")
    snap.pop("api_keys")
    snap.pop("usage_plans")
    return snap


def _deploy_stack(moto: Moto, packaged: Path, doc: dict[str, Any]) -> dict[str, Any]:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="pipeline-artifacts")
    zip_path = next(packaged.glob("code-*.zip"))
    s3.put_object(Bucket="pipeline-artifacts", Key=zip_path.name, Body=zip_path.read_bytes())
    cfn = moto.client("cloudformation")
    cfn.create_stack(
        StackName="cfnapp-dev",
        TemplateBody=json.dumps(doc),
        Parameters=[
            {"ParameterKey": "ArtifactBucket", "ParameterValue": "pipeline-artifacts"},
            {"ParameterKey": "EnvPkgappToken", "ParameterValue": TOKEN},
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    for _ in range(100):
        stack = cfn.describe_stacks(StackName="cfnapp-dev")["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return dict(stack)


def _log_groups(moto: Moto) -> list[str]:
    groups = moto.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/cfnapp-dev-")
    return sorted(g["logGroupName"] for g in groups["logGroups"])


def test_the_template_creates_what_deploy_creates(project: Path, packaged: Path, moto: Moto) -> None:
    env = moto.env(PKGAPP_TOKEN=TOKEN)
    done = cli(["deploy", "--provider", "aws", "--project", str(project)], env)
    assert done.returncode == 0, done.stderr
    direct = snapshot(moto, "cfnapp", "dev")
    invoke_config = moto.client("lambda").get_function_event_invoke_config(FunctionName="cfnapp-dev-nightly")
    assert len(direct["functions"]) == 4 and direct["queues"] and direct["tables"] and direct["rules"]

    # the same names again, from the stack: the direct deploy goes first (sls-py remove)
    gone = cli(["remove", "--provider", "aws", "--project", str(project)], env)
    assert gone.returncode == 0, gone.stderr
    assert snapshot(moto, "cfnapp", "dev") == empty_snapshot()
    doc = _template(packaged)
    stack = _deploy_stack(moto, packaged, _for_moto(doc))
    from_template = snapshot(moto, "cfnapp", "dev")
    assert _comparable(from_template) == _comparable(direct)
    # log groups: Lambda makes them on first use after a deploy; the stack owns them
    assert _log_groups(moto) == [
        f"/aws/lambda/cfnapp-dev-{f}" for f in ("hello", "nightly", "on-job", "on-upload")
    ]
    url = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "Url")
    api_id = from_template["apis"][0]["id"]
    assert api_id == "<api-0>" and url.endswith(".execute-api.us-east-1.amazonaws.com/dev")

    # what moto skipped: the template holds the values the direct deploy created
    res = doc["Resources"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in res.values():
        by_type.setdefault(r["Type"], []).append(r.get("Properties", {}))
    api = direct["apis"][0]
    assert [p["StageName"] for p in by_type["AWS::ApiGateway::Stage"]] == api["stages"] == ["dev"]
    assert {
        p["ResponseType"]: p["ResponseParameters"] for p in by_type["AWS::ApiGateway::GatewayResponse"]
    } == {k: v for k, v in api["gateway_responses"].items() if v}
    # moto reports no binary media types for either; the deploy's own model is the reference
    plan_doc = json.loads((packaged / "plan.json").read_text())
    api_props = next(r["props"] for r in plan_doc["resources"] if r["kind"] == "api")
    assert by_type["AWS::ApiGateway::RestApi"][0]["BinaryMediaTypes"] == api_props["binary"] == ["*/*"]
    (plan,) = direct["usage_plans"]
    (cfn_plan,) = by_type["AWS::ApiGateway::UsagePlan"]
    assert (cfn_plan["UsagePlanName"], cfn_plan["Throttle"], cfn_plan["Quota"]) == (
        plan["name"],
        {"RateLimit": plan["throttle"]["rateLimit"], "BurstLimit": plan["throttle"]["burstLimit"]},
        {"Limit": plan["quota"]["limit"], "Period": plan["quota"]["period"]},
    )
    assert [p["Name"] for p in by_type["AWS::ApiGateway::ApiKey"]] == [k["name"] for k in direct["api_keys"]]
    assert len(by_type["AWS::ApiGateway::UsagePlanKey"]) == len(plan["keys"]) == 1
    (preflight,) = [p for p in by_type["AWS::ApiGateway::Method"] if p["Integration"]["Type"] == "MOCK"]
    options = api["methods"]["OPTIONS /hello"]
    assert (
        preflight["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
        == options["responses"]["200"]
    )
    assert preflight["Integration"]["RequestTemplates"] == options["request_templates"]
    assert preflight["MethodResponses"][0]["ResponseParameters"] == options["method_responses"]["200"]
    (async_config,) = by_type["AWS::Lambda::EventInvokeConfig"]
    dlq_id = async_config["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    dlq_arn = f"arn:aws:sqs:us-east-1:123456789012:{res[dlq_id]['Properties']['QueueName']}"
    assert (
        async_config["MaximumRetryAttempts"],
        async_config["MaximumEventAgeInSeconds"],
        {"OnFailure": {"Destination": dlq_arn}},
    ) == (
        invoke_config["MaximumRetryAttempts"],
        invoke_config["MaximumEventAgeInSeconds"],
        invoke_config["DestinationConfig"],
    )
    tags = {f["tags"]["sls-py:stage"] for f in direct["functions"].values()}
    assert tags == {"dev"}
    for fn in by_type["AWS::Lambda::Function"]:
        name = fn["FunctionName"]
        assert {t["Key"]: t["Value"] for t in fn["Tags"]} == direct["functions"][name]["tags"]
    (bucket,) = [p for p in by_type["AWS::S3::Bucket"] if "NotificationConfiguration" in p]
    (notified,) = direct["buckets"].values()
    (want,) = notified["lambda_notifications"]
    (config,) = bucket["NotificationConfiguration"]["LambdaConfigurations"]
    assert (config["Event"], config["Filter"]["S3Key"]["Rules"]) == (
        want["events"][0],
        [{"Name": r["Name"].lower(), "Value": r["Value"]} for r in want["filter"]],
    )

    # moto's state is one per process: leave nothing of this app behind
    moto.client("cloudformation").delete_stack(StackName="cfnapp-dev")
    assert _log_groups(moto) == []
    apigw = moto.client("apigateway")  # moto's stack deletion leaves the REST API behind
    for api in apigw.get_rest_apis()["items"]:
        if api["name"] == "cfnapp-dev":
            apigw.delete_rest_api(restApiId=api["id"])
    leftover = snapshot(moto, "cfnapp", "dev")
    assert {k: v for k, v in leftover.items() if v} == {}


DATABASE_APP = """
from sls_py import App

app = App("pkgapp")
db = app.database("main", migrations="migrations")


@app.function(name="hello")
def hello(payload: dict, ctx) -> dict:
    return {"rows": db.query("SELECT 1 AS one")}
"""
