"""AWS's documented event shapes -> neutral events, and outcomes -> what AWS
expects back. In-process unit tests of sls_py_aws.handler; the same code runs
under awslambdaric in test_aws_lambda_ric.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aws_runtime_support import FIXTURE_APP, WORK_MAGIC
from sls_py.runtime import (
    HttpRequest,
    Payload,
    QueueBatch,
    QueueMessage,
    ScheduleEvent,
    UploadEvent,
)
from sls_py.runtime.errors import ErrorInfo
from sls_py_aws import handler
from sls_py_aws.handler import FunctionError, error_info, error_message, to_neutral

SPELL = {"magic-word": "clonezero-token", "spell": "adder", "x": 40, "y": 2}


def _config(app: Any = None, function: str = "", **kw: Any) -> SimpleNamespace:
    base = {"bucket_names": {}, "queue_names": {}, "cors": {}, "app": app, "function": function}
    return SimpleNamespace(**{**base, **kw})


@pytest.fixture(scope="module")
def work_magic_app() -> Any:
    from sls_py.config import load_project

    return load_project(WORK_MAGIC).load_app()


@pytest.fixture
def fixture_function(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Point the adapter at a function of the fixture app, through the environment."""
    monkeypatch.syspath_prepend(str(FIXTURE_APP))

    def use(function: str, cors: dict[str, Any] | None = None, resources: Any = None) -> None:
        monkeypatch.setenv("SLS_PY_APP", "aws_fixture.app:app")
        monkeypatch.setenv("SLS_PY_FUNCTION", function)
        monkeypatch.setenv("SLS_PY_STAGE", "dev")
        monkeypatch.setenv("SLS_PY_CORS", json.dumps(cors or {}))
        monkeypatch.setenv("SLS_PY_RESOURCES", json.dumps(resources or {}))
        handler.reset()

    yield use
    handler.reset()


def test_rest_proxy_with_base64_body_and_multi_values(aws_event: Callable[[str], Any]) -> None:
    kind, request = to_neutral(aws_event("apigw_rest_post_base64.json"), _config())
    assert kind == "http"
    assert request == HttpRequest(
        method="POST",
        path="/work-magic",
        route="/work-magic",
        path_params={},
        query={"trace": ["1", "2"], "mode": ["fast"]},
        headers={
            "accept": ["application/json"],
            "content-type": ["application/json"],
            "host": ["abcdef1234.execute-api.us-east-1.amazonaws.com"],
            "origin": ["https://clonezero.example"],
            "x-amz-cf-id": ["d3Jfb6Yc-jR4l8M9p2G6hWZ6D5yXnnbXQ0nq3vU1q8Rk3QwG2tW-lQ=="],
            "x-api-key": ["0123456789abcdef0123456789abcdef"],
            "x-forwarded-for": ["198.51.100.7, 130.176.17.78"],
            "x-custom": ["a", "b"],
        },
        body=json.dumps(SPELL).encode(),
        source_ip="198.51.100.7",
    )


def test_rest_proxy_greedy_path_without_body(aws_event: Callable[[str], Any]) -> None:
    event = aws_event("apigw_rest_get_greedy.json")
    assert to_neutral(event, _config()) == (
        "http",
        HttpRequest(
            method="GET",
            path="/files/photos/2026/my photo.png",
            route="/files/{proxy+}",
            path_params={"proxy": "photos/2026/my photo.png"},
            query={},
            headers={
                "accept": ["image/png"],
                "host": ["abcdef1234.execute-api.us-east-1.amazonaws.com"],
            },
            body=b"",
            source_ip="198.51.100.7",
        ),
    )


def test_rest_proxy_with_only_single_value_maps(aws_event: Callable[[str], Any]) -> None:
    event = aws_event("apigw_rest_post_base64.json")
    event["multiValueHeaders"] = None
    event["multiValueQueryStringParameters"] = None
    event["body"], event["isBase64Encoded"] = "plain text", False
    _, request = to_neutral(event, _config())
    assert isinstance(request, HttpRequest)
    assert request.header("X-Custom") == "b"
    assert request.query == {"trace": ["2"], "mode": ["fast"]}
    assert request.body == b"plain text"


def test_http_api_v2(aws_event: Callable[[str], Any]) -> None:
    assert to_neutral(aws_event("apigw_http_v2.json"), _config()) == (
        "http",
        HttpRequest(
            method="POST",
            path="/work-magic",
            route="/work-magic",
            path_params={},
            query={"parameter1": ["value1", "value2"], "parameter2": ["a b"]},
            headers={
                "content-type": ["application/json"],
                "header2": ["value1,value2"],
                "origin": ["https://clonezero.example"],
                "cookie": ["cookie1=one; cookie2=two"],
            },
            body=json.dumps(SPELL).encode(),
            source_ip="192.0.2.1",
        ),
    )


def test_s3_records_one_upload_each_with_decoded_keys(aws_event: Callable[[str], Any]) -> None:
    config = _config(bucket_names={"clonezero-dev-uploads": "uploads"})
    assert to_neutral(aws_event("s3_put_two_records.json"), config) == (
        "upload",
        [
            UploadEvent(
                bucket="uploads",
                key="photos/my photo.jpg",
                size=1024,
                etag="0123456789abcdef0123456789abcdef",
                content_type=None,
                time="2026-11-27T21:30:00.000Z",
            ),
            UploadEvent(
                bucket="uploads",
                key="photos/café (2)+plus.jpg",
                size=2048,
                etag="fedcba9876543210fedcba9876543210",
                content_type=None,
                time="2026-11-27T21:30:00.000Z",
            ),
        ],
    )


def test_s3_test_event_is_ignored() -> None:
    event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-27T21:30:00.000Z",
        "Bucket": "clonezero-dev-uploads",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
    assert to_neutral(event, _config()) == ("ignore", None)


def test_eventbridge_schedule_found_by_rule_name(
    aws_event: Callable[[str], Any], work_magic_app: Any
) -> None:
    config = _config(app=work_magic_app, function="nightly-report")
    assert to_neutral(aws_event("eventbridge_scheduled.json"), config) == (
        "schedule",
        ScheduleEvent(
            schedule="nightly",
            expression="cron(0 2 * * ? *)",
            time="2026-11-27T02:00:00Z",
            payload=None,
        ),
    )


def test_schedule_from_the_deployers_constant_input(work_magic_app: Any) -> None:
    config = _config(app=work_magic_app, function="nightly-report")
    event = {
        "sls_py_schedule": {
            "name": "nightly",
            "payload": {"full": True},
            "time": "2026-01-02T02:00:00Z",
        }
    }
    assert to_neutral(event, config) == (
        "schedule",
        ScheduleEvent(
            schedule="nightly",
            expression="cron(0 2 * * ? *)",
            time="2026-01-02T02:00:00Z",
            payload={"full": True},
        ),
    )


def test_sqs_batch(aws_event: Callable[[str], Any]) -> None:
    config = _config(queue_names={"fixture-dev-jobs": "jobs"})
    messages = [
        QueueMessage(
            id="059f36b4-87a3-44ab-83d2-661975830a7d",
            body='{"n": 1}',
            queue="jobs",
            attributes={"trace": "abc"},
            receive_count=1,
        ),
        QueueMessage(
            id="2e1424d4-f796-459a-8184-9c92662be6da",
            body='{"n": 2, "fail": true}',
            queue="jobs",
            attributes={},
            receive_count=2,
        ),
        QueueMessage(
            id="9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f",
            body='{"n": 3}',
            queue="jobs",
            attributes={},
            receive_count=1,
        ),
    ]
    assert to_neutral(aws_event("sqs_batch_three.json"), config) == (
        "queue",
        QueueBatch(queue="jobs", messages=messages),
    )


@pytest.mark.parametrize("payload", [SPELL, [1, 2], "text", 7, None, {"Records": []}])
def test_anything_else_is_a_direct_payload(payload: Any) -> None:
    assert to_neutral(payload, _config()) == ("payload", Payload(payload))


def test_http_api_v2_response_uses_cookies(
    aws_event: Callable[[str], Any], fixture_function: Callable[..., None]
) -> None:
    fixture_function("files")
    event = aws_event("apigw_http_v2.json")
    event["routeKey"] = "GET /files/{proxy+}"
    event["pathParameters"] = {"proxy": "a/b.png"}
    assert handler.handle(event, None) == {
        "statusCode": 200,
        "headers": {"content-type": "image/png", "x-proxy": "a/b.png"},
        "cookies": ["a=1; Path=/", "b=2; Path=/"],
        "body": "iVBORw0KGgoA/w==",
        "isBase64Encoded": True,
    }


CORS_RULE = {
    "origins": ["https://clonezero.example"],
    "headers": ["content-type"],
    "methods": [],
    "max_age_s": 600,
    "allow_credentials": True,
}


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        (
            "https://clonezero.example",
            {
                "access-control-allow-origin": "https://clonezero.example",
                "access-control-allow-credentials": "true",
                "vary": "Origin",
            },
        ),
        ("https://evil.example", {"vary": "Origin"}),
    ],
)
def test_cors_headers_for_listed_origins_only(
    aws_event: Callable[[str], Any],
    fixture_function: Callable[..., None],
    origin: str,
    expected: dict[str, str],
) -> None:
    fixture_function("files", cors={"GET /files/{proxy+}": CORS_RULE})
    event = aws_event("apigw_rest_get_greedy.json")
    event["multiValueHeaders"]["Origin"] = [origin]
    response = handler.handle(event, None)
    cors = {k: v for k, v in response["headers"].items() if k.startswith("access-") or k == "vary"}
    assert cors == expected


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://b.example", {"access-control-allow-origin": "https://b.example", "vary": "Origin"}),
        ("https://a.example", {"access-control-allow-origin": "https://a.example", "vary": "Origin"}),
        ("https://c.example", {"vary": "Origin"}),
        (None, {"vary": "Origin"}),
    ],
)
def test_several_origins_echo_the_allowed_request_origin(
    aws_event: Callable[[str], Any],
    fixture_function: Callable[..., None],
    origin: str | None,
    expected: dict[str, str],
) -> None:
    rule = {**CORS_RULE, "origins": ["https://a.example", "https://b.example"], "allow_credentials": False}
    fixture_function("files", cors={"GET /files/{proxy+}": rule})
    event = aws_event("apigw_rest_get_greedy.json")
    for headers in (event["headers"], event["multiValueHeaders"]):
        for name in [n for n in headers if n.lower() == "origin"]:
            del headers[name]
    if origin is not None:
        event["multiValueHeaders"]["Origin"] = [origin]
    response = handler.handle(event, None)
    cors = {k: v for k, v in response["headers"].items() if k.startswith("access-") or k == "vary"}
    assert cors == expected


@pytest.mark.parametrize(
    ("own", "origin", "expected"),
    [
        ("Accept-Encoding", "https://b.example", "Accept-Encoding, Origin"),
        ("Accept-Encoding", "https://c.example", "Accept-Encoding, Origin"),
        ("accept-encoding, origin", "https://b.example", "accept-encoding, origin"),
        ("*", "https://b.example", "*"),
    ],
)
def test_vary_origin_joins_the_functions_own_vary(
    aws_event: Callable[[str], Any],
    fixture_function: Callable[..., None],
    own: str,
    origin: str,
    expected: str,
) -> None:
    rule = {**CORS_RULE, "origins": ["https://a.example", "https://b.example"], "allow_credentials": False}
    fixture_function("files", cors={"GET /files/{proxy+}": rule})
    event = aws_event("apigw_rest_get_greedy.json")
    event["queryStringParameters"] = {"vary": own}
    event["multiValueQueryStringParameters"] = {"vary": [own]}
    event["multiValueHeaders"]["Origin"] = [origin]
    assert handler.handle(event, None)["headers"]["vary"] == expected


def test_unhandled_http_error_is_raised_for_a_502(
    aws_event: Callable[[str], Any], fixture_function: Callable[..., None]
) -> None:
    fixture_function("crash", cors={"GET /crash": {**CORS_RULE, "origins": ["*"]}})
    event = aws_event("apigw_rest_get_greedy.json")
    event.update(resource="/crash", path="/crash", pathParameters=None)
    with pytest.raises(FunctionError) as caught:
        handler.handle(event, None)
    assert (type(caught.value).__name__, str(caught.value)) == (
        "RuntimeError",
        "crashed on purpose",
    )


def test_queue_handler_in_process_reports_failed_items(
    aws_event: Callable[[str], Any], fixture_function: Callable[..., None]
) -> None:
    from sls_py.runtime import MemoryDriver, use_driver

    driver = MemoryDriver()
    use_driver(driver, {"queues": {}})
    try:
        fixture_function("worker", resources={"queues": {"jobs": "fixture-dev-jobs"}})
        result = handler.handle(aws_event("sqs_batch_three.json"), None)
    finally:
        use_driver(None)
    assert result == {
        "batchItemFailures": [{"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}]
    }
    assert [json.loads(m)["done"] for m in driver.queues["done"]] == [1, 3]


def test_error_message_round_trip() -> None:
    info = ErrorInfo(type="HttpError", message="Wrong magic word", status=403)
    assert error_message(info) == "[403] Wrong magic word"
    assert error_info("HttpError", error_message(info)) == info
    invalid = ErrorInfo(
        type="InvalidInput",
        message="Invalid request body",
        status=400,
        details=[{"loc": ["x"], "msg": "Field required", "type": "missing"}],
    )
    assert error_message(invalid).split("\n") == [
        "[400] Invalid request body (x: Field required)",
        'sls-py-error: {"details":[{"loc":["x"],"msg":"Field required","type":"missing"}],'
        '"message":"Invalid request body","status":400,"type":"InvalidInput"}',
    ]
    assert error_info("InvalidInput", error_message(invalid)) == invalid
    assert error_info("ValueError", "no status here") == ErrorInfo(
        type="ValueError", message="no status here"
    )


def test_error_details_survive_any_message() -> None:
    """Whatever a message holds (newlines, brackets, the marker itself), the last
    marker line is the adapter's, so type, message, status and details come back."""
    for message in (
        "two\nlines",
        "[418] looks like a status",
        "ends with\nsls-py-error: {\"type\": \"Fake\", \"message\": \"x\", \"status\": 200}",
    ):
        for details in (None, {"retry_after": 3}, [{"loc": [], "msg": "whole body"}]):
            info = ErrorInfo(type="HttpError", message=message, status=409, details=details)
            assert error_info("HttpError", error_message(info)) == info
    crash = ErrorInfo(type="RuntimeError", message="sls-py-error: not json")
    assert error_message(crash) == "sls-py-error: not json"
    assert error_info("RuntimeError", error_message(crash)) == crash
    # a bad JSON line falls back to the readable part
    assert error_info("HttpError", "[409] busy\nsls-py-error: {broken") == ErrorInfo(
        type="HttpError", message="busy\nsls-py-error: {broken", status=409
    )


def test_many_validation_errors_are_capped() -> None:
    details = [{"loc": [f"f{i}"], "msg": "Field required", "type": "missing"} for i in range(150)]
    info = ErrorInfo(type="InvalidInput", message="Invalid request body", status=400, details=details)
    first, _ = error_message(info).split("\n")
    listed = "; ".join(f"f{i}: Field required" for i in range(10))
    assert first == f"[400] Invalid request body ({listed}; and 140 more)"
    back = error_info("InvalidInput", error_message(info))
    assert back.details == details[:100]


def test_every_upload_record_runs_before_a_failure_is_raised(
    aws_event: Callable[[str], Any], fixture_function: Callable[..., None]
) -> None:
    fixture_function("intake", resources={"buckets": {"inbox": "clonezero-dev-uploads"}})
    import aws_fixture.app

    aws_fixture.app.SEEN.clear()
    event = aws_event("s3_put_two_records.json")
    event["Records"][0]["s3"]["object"]["key"] = "bad+one.jpg"
    with pytest.raises(FunctionError) as caught:
        handler.handle(event, None)
    assert (type(caught.value).__name__, str(caught.value)) == (
        "ValueError",
        "cannot take bad one.jpg",
    )
    assert aws_fixture.app.SEEN == ["inbox:bad one.jpg", "inbox:photos/café (2)+plus.jpg"]

    aws_fixture.app.SEEN.clear()
    event["Records"][0]["s3"]["object"]["key"] = "good.jpg"
    assert handler.handle(event, None) == ["good.jpg", "photos/café (2)+plus.jpg"]


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("text/html; charset=utf-8", True),
        ("application/problem+json", True),
        ("Application/XML", True),
        ("image/png", False),
        ("application/octet-stream", False),
        ("", False),
    ],
)
def test_which_bodies_go_out_as_text(content_type: str, text: bool) -> None:
    assert handler._is_text(content_type) is text


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(SPELL),
        json.dumps({**SPELL, "magic-word": "wrong"}),
        json.dumps({**SPELL, "spell": "shrinker"}),
        json.dumps({**SPELL, "spell": "divider", "y": 0}),
        json.dumps({"spell": "adder", "x": "many"}),
        "not json at all",
        "",
    ],
)
def test_status_and_body_match_the_reference_client(
    body: str, aws_event: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter answers what sls_py.testing.AppClient (the core's reference) answers."""
    from sls_py.testing import AppClient

    client = AppClient(WORK_MAGIC, stage="dev")
    expected = client.request("POST", "/work-magic", body=body)

    monkeypatch.setenv("SLS_PY_APP", "work_magic.app:app")
    monkeypatch.setenv("SLS_PY_FUNCTION", "work-magic")
    monkeypatch.setenv("SLS_PY_STAGE", "dev")
    from sls_py.runtime import MemoryDriver, use_driver

    handler.reset()
    event = aws_event("apigw_rest_post_base64.json")
    event["body"], event["isBase64Encoded"] = body, False
    event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None  # as sent
    driver = MemoryDriver()  # the magic word, as SSM would give it; work-magic's cache
    driver.config_values["magic-word"] = "clonezero-token"
    use_driver(driver)
    try:
        answer = handler.handle(event, None)
    finally:
        use_driver(None)
        handler.reset()
    assert (answer["statusCode"], json.loads(answer["body"])) == (
        expected.status,
        expected.json(),
    )
