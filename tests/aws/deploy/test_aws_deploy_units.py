"""Unit tests of the AWS deploy engine's pieces: limits, names, the planner on
recorded state, error translation at the boto3 boundary (botocore's own
Stubber), invoke decoding, and logs read from a moto server."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aws_deploy_support import ACCOUNT, REGION, Moto
from botocore.response import StreamingBody
from botocore.stub import Stubber
from sls_py.errors import ProviderError, SpecError
from sls_py.spec import FunctionSpec, HttpTriggerSpec, QueueSpec, QueueTriggerSpec, Spec, TableSpec
from sls_py_aws.cloud import Cloud
from sls_py_aws.model import Target, desired_resources, unique_bucket_name
from sls_py_aws.operate import invoke, logs
from sls_py_aws.planner import plan_changes
from sls_py_aws.state import Entry, State
from sls_py_aws.validate import validate


def make_spec(**changes: Any) -> Spec:
    fn = FunctionSpec(
        name="api",
        handler="m:f",
        style="request",
        timeout_s=changes.pop("timeout_s", 10),
        triggers=[HttpTriggerSpec(method="GET", path="/")],
    )
    data: dict[str, Any] = {"app": "shop", "stage": "dev", "app_ref": "m:app", "functions": [fn]}
    data.update(changes)
    return Spec(**data)


# --- limits -----------------------------------------------------------------------


def test_timeout_over_900_seconds_is_refused() -> None:
    with pytest.raises(SpecError, match="timeout_s = 901 is over Lambda's limit of 900 s"):
        validate(make_spec(timeout_s=901))


def test_http_function_outliving_api_gateway_gets_a_warning() -> None:
    assert validate(make_spec(timeout_s=29)) == []
    assert validate(make_spec(timeout_s=30)) == [
        "function 'api' has HTTP routes and timeout_s = 30, but API Gateway stops waiting "
        "after 29 s: callers get 504 before the function ends"
    ]


def test_names_over_aws_limits_are_refused() -> None:
    long_fn = FunctionSpec(name="f" * 32, handler="m:f", style="payload")
    spec = Spec(app="a" * 32, stage="dev", app_ref="m:app", functions=[long_fn])
    with pytest.raises(SpecError, match="over AWS's limit of 64") as err:
        validate(spec)
    assert err.value.hint == "use a shorter app, stage or function name"


def test_queue_visibility_shorter_than_its_consumer_is_refused() -> None:
    fn = FunctionSpec(
        name="w",
        handler="m:f",
        style="queue",
        timeout_s=45,
        triggers=[QueueTriggerSpec(queue="jobs")],
    )
    spec = Spec(
        app="shop",
        stage="dev",
        app_ref="m:app",
        functions=[fn],
        queues=[QueueSpec(name="jobs", qualified_name="shop-dev-jobs", visibility_timeout_s=30)],
    )
    with pytest.raises(SpecError, match="visibility_timeout_s = 30 is shorter") as err:
        validate(spec)
    assert err.value.hint == "declare the queue with visibility_timeout_s >= 45"


def test_bucket_names_are_global_lower_case_and_at_most_63_characters() -> None:
    assert unique_bucket_name("shop-dev-uploads", ACCOUNT) == f"shop-dev-uploads-{ACCOUNT}"
    long = unique_bucket_name("a" * 30 + "-" + "b" * 30, ACCOUNT)
    assert len(long) == 63 and long.endswith(f"-{ACCOUNT}") and long == long.lower()
    assert long == unique_bucket_name("a" * 30 + "-" + "b" * 30, ACCOUNT)
    assert long != unique_bucket_name("a" * 30 + "-" + "c" * 30, ACCOUNT)


# --- the planner on recorded state --------------------------------------------------


def test_a_table_whose_key_changed_is_replaced_and_unchanged_resources_plan_nothing(
    tmp_path: Path,
) -> None:
    spec = make_spec(tables=[TableSpec(name="t", qualified_name="shop-dev-t", key="id")])
    target = Target(account=ACCOUNT, region=REGION, code_sha256="abc", code_size=10)
    desired = desired_resources(spec, target, {})
    state = State(path=tmp_path / "s.json", app="shop", stage="dev")
    for r in desired:
        state.entries[r.key] = Entry(r.kind, r.name, r.recorded_props())
    assert plan_changes(desired, state, None) == []

    state.entries["table:t"].props["key"] = "sku"
    steps = [(s.action, s.kind, s.name, s.reason) for s in plan_changes(desired, state, None)]
    assert steps == [
        ("delete", "table", "t", "key changed: must be replaced"),
        ("create", "table", "t", "replaces the deleted one"),
    ]


def test_secrets_never_reach_the_recorded_props() -> None:
    spec = make_spec()
    target = Target(account=ACCOUNT, region=REGION, code_sha256="abc", code_size=10)
    desired = desired_resources(spec, target, {"api": {"TOKEN": "s3cret"}})
    fn = next(r for r in desired if r.kind == "function")
    assert fn.props["environment"]["TOKEN"] == "s3cret"
    assert "s3cret" not in json.dumps(fn.recorded_props())


# --- the boto3 boundary ------------------------------------------------------------


def stubbed(service: str) -> tuple[Cloud, Stubber]:
    import boto3

    cloud = Cloud(region=REGION)
    client = boto3.client(
        service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    cloud._clients[service] = client
    return cloud, Stubber(client)


def test_access_denied_names_the_call_and_the_permission() -> None:
    cloud, stub = stubbed("lambda")
    stub.add_client_error(
        "create_function",
        service_error_code="AccessDeniedException",
        service_message="User: arn:aws:iam::1:user/dev is not authorized",
        http_status_code=403,
    )
    with stub, pytest.raises(ProviderError) as err:
        cloud.call(
            "lambda",
            "create_function",
            FunctionName="f",
            Role="arn:aws:iam::1:role/r",
            Code={"ZipFile": b"x"},
        )
    assert err.value.message == (
        "AWS denied lambda.create_function: User: arn:aws:iam::1:user/dev is not authorized"
    )
    assert err.value.hint == "allow the permission lambda:CreateFunction for the credentials in use"


def test_missing_ok_turns_not_found_into_none_and_counts_calls() -> None:
    cloud, stub = stubbed("lambda")
    stub.add_client_error(
        "get_function_configuration",
        service_error_code="ResourceNotFoundException",
        http_status_code=404,
    )
    stub.add_client_error(
        "delete_function",
        service_error_code="ResourceConflictException",
        http_status_code=409,
        service_message="busy",
    )
    with stub:
        assert (
            cloud.call("lambda", "get_function_configuration", missing_ok=True, FunctionName="f")
            is None
        )
        with pytest.raises(
            ProviderError, match=r"lambda\.delete_function failed: ResourceConflictException: busy"
        ):
            cloud.call("lambda", "delete_function", missing_ok=True, FunctionName="f")
    assert [(c.operation, c.mutating) for c in cloud.calls] == [
        ("get_function_configuration", False),
        ("delete_function", True),
    ]


_REUSE_MESSAGE = (
    "You must wait 60 seconds after deleting a queue before you can create another "
    "with the same name."
)


@pytest.mark.parametrize(
    "code", ["AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently"]
)
def test_a_queue_name_deleted_moments_ago_is_waited_for_and_said(
    code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS refuses a queue's name for 60 s after that queue was deleted (a `remove`
    then a `deploy`); moto does not, so the refusal is stubbed here."""
    from sls_py.ui import PlainUI
    from sls_py_aws import handlers_compute
    from sls_py_aws.executor import Ctx

    cloud, stub = stubbed("sqs")
    for _ in range(2):
        stub.add_client_error(
            "create_queue",
            service_error_code=code,
            service_message=_REUSE_MESSAGE,
            http_status_code=400,
            expected_params={"QueueName": "clonezero-dev-jobs"},
        )
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/clonezero-dev-jobs"
    stub.add_response("create_queue", {"QueueUrl": url}, {"QueueName": "clonezero-dev-jobs"})
    slept: list[float] = []
    monkeypatch.setattr(handlers_compute, "_sleep", slept.append)
    out = io.StringIO()
    ctx = Ctx(cloud=cloud, names=None, state=None, ui=PlainUI(out))  # type: ignore[arg-type]
    with stub:
        made = handlers_compute.create_queue(ctx, set(), QueueName="clonezero-dev-jobs")
    stub.assert_no_pending_responses()
    assert made["QueueUrl"] == url
    assert slept == [5, 5]
    assert out.getvalue().count("waiting") == 1  # said once, not per retry
    assert (
        "SQS does not reuse the name clonezero-dev-jobs until 60 s after that queue was "
        "deleted: waiting" in out.getvalue()
    )


def test_a_queue_name_still_refused_after_the_wait_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sls_py_aws import handlers_compute
    from sls_py_aws.executor import Ctx

    cloud, stub = stubbed("sqs")
    stub.add_client_error(
        "create_queue",
        service_error_code="AWS.SimpleQueueService.QueueDeletedRecently",
        service_message=_REUSE_MESSAGE,
        http_status_code=400,
    )
    monkeypatch.setattr(handlers_compute, "QUEUE_NAME_REUSE_WAIT_S", -1.0)
    ctx = Ctx(cloud=cloud, names=None, state=None)  # type: ignore[arg-type]
    with stub, pytest.raises(ProviderError) as err:
        handlers_compute.create_queue(ctx, set(), QueueName="clonezero-dev-jobs")
    assert err.value.message == (
        "sqs.create_queue failed: AWS.SimpleQueueService.QueueDeletedRecently: " + _REUSE_MESSAGE
    )


def _invoke_response(payload: Any, *, error: str | None = None, log: str = "") -> dict[str, Any]:
    body = json.dumps(payload).encode()
    out: dict[str, Any] = {
        "StatusCode": 200,
        "Payload": StreamingBody(io.BytesIO(body), len(body)),
        "LogResult": base64.b64encode(log.encode()).decode(),
    }
    if error:
        out["FunctionError"] = error
    return out


def test_invoke_returns_the_result_and_the_log_tail() -> None:
    cloud, stub = stubbed("lambda")
    stub.add_response(
        "invoke",
        _invoke_response({"result": 3}, log="START RequestId: x\ncast adder\n"),
        {"FunctionName": "shop-dev-api", "Payload": b'{"x": 1}', "LogType": "Tail"},
    )
    with stub:
        inv = invoke(make_spec(), cloud, "api", {"x": 1}, logs=True)
    assert (inv.result, inv.error, inv.logs) == (
        {"result": 3},
        None,
        "START RequestId: x\ncast adder\n",
    )


def test_invoke_turns_a_function_error_into_type_status_and_message() -> None:
    cloud, stub = stubbed("lambda")
    stub.add_response(
        "invoke",
        _invoke_response(
            {"errorType": "HttpError", "errorMessage": "[403] Wrong magic word", "stackTrace": []},
            error="Unhandled",
        ),
    )
    with stub:
        inv = invoke(make_spec(), cloud, "api", None, logs=False)
    assert inv.result is None and inv.error is not None
    assert (inv.error.type, inv.error.status, inv.error.message) == (
        "HttpError",
        403,
        "Wrong magic word",
    )


def test_logs_are_read_from_cloudwatch_oldest_first(
    moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in moto.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    cw = moto.client("logs")
    group = "/aws/lambda/shop-dev-api"
    cw.create_log_group(logGroupName=group)
    cw.create_log_stream(logGroupName=group, logStreamName="s")
    rid = "8f5c1a8e-0b4e-4d6e-9a53-3f1f7b7a2f10"
    now_ms = int(__import__("time").time() * 1000)
    cw.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[
            {"timestamp": now_ms - 3_600_000, "message": "old line"},
            {"timestamp": now_ms - 2000, "message": f"START RequestId: {rid} Version: $LATEST\n"},
            {"timestamp": now_ms - 1000, "message": "cast adder\n"},
        ],
    )
    cloud = Cloud(region=REGION)
    records = list(logs(make_spec(), cloud, "api", since_s=600, follow=False))
    assert [(r.function, r.message, r.request_id) for r in records] == [
        ("api", f"START RequestId: {rid} Version: $LATEST", rid),
        ("api", "cast adder", rid),
    ]
    assert [r.time for r in records] == [(now_ms - 2000) / 1000, (now_ms - 1000) / 1000]
    assert list(logs(make_spec(), cloud, "missing", since_s=None, follow=False)) == []


def test_protected_routes_without_api_keys_get_a_warning() -> None:
    fn = FunctionSpec(
        name="api",
        handler="m:f",
        style="request",
        triggers=[HttpTriggerSpec(method="POST", path="/x", api_key=True)],
    )
    spec = Spec(app="shop", stage="dev", app_ref="m:app", functions=[fn])
    assert validate(spec) == [
        "route POST /x requires an API key, but the stage has no api_keys: "
        "API Gateway will answer 403 to every call"
    ]
    with_keys = spec.model_copy(
        update={"gateway": spec.gateway.model_copy(update={"api_keys": ["k"]})}
    )
    assert validate(with_keys) == []


def test_dropping_every_route_deletes_the_api_and_what_goes_with_it_once(tmp_path: Path) -> None:
    target = Target(account=ACCOUNT, region=REGION, code_sha256="abc", code_size=10)
    before = desired_resources(make_spec(), target, {})
    state = State(path=tmp_path / "s.json", app="shop", stage="dev")
    for r in before:
        state.entries[r.key] = Entry(r.kind, r.name, r.recorded_props())
    assert sorted(state.entries) == [
        "api:shop-dev",
        "function:api",
        "permission:api/sls-py-api",
        "role:shop-dev-lambda",
        "route:GET /",
        "stage:dev",
    ]
    no_routes = make_spec(
        functions=[FunctionSpec(name="api", handler="m:f", style="payload", timeout_s=10)]
    )
    after = desired_resources(no_routes, target, {})
    steps = [(s.action, s.kind, s.name) for s in plan_changes(after, state, None)]
    # the route and the stage go with the REST API: no separate steps for them
    assert steps == [("delete", "permission", "api/sls-py-api"), ("delete", "api", "shop-dev")]


@pytest.mark.parametrize(
    ("service", "operation", "action"),
    [
        ("lambda", "update_function_code", "lambda:UpdateFunctionCode"),
        ("lambda", "invoke", "lambda:InvokeFunction"),
        ("s3", "put_bucket_notification_configuration", "s3:PutBucketNotification"),
        ("apigateway", "create_rest_api", "apigateway:POST"),
        ("apigateway", "update_usage_plan", "apigateway:PATCH"),
        ("events", "put_targets", "events:PutTargets"),
        ("iam", "put_role_policy", "iam:PutRolePolicy"),
    ],
)
def test_access_denied_hints_name_the_iam_action(service: str, operation: str, action: str) -> None:
    from sls_py_aws.cloud import _action

    assert _action(service, operation) == action
