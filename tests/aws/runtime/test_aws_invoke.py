"""``ctx.invoke`` / ``ctx.invoke_async`` / ``continue_with`` inside a Lambda function,
through the AwsDriver's Lambda client.

moto cannot run Lambda code, so its ``Invoke`` cannot answer with a target's real
result or function error: these tests use botocore's Stubber on the driver's
real boto3 Lambda client instead, and check the exact requests the function
makes (``RequestResponse`` / ``Event``, the target's Lambda name, the payload)
and how the answers come back (a result, the target's error as ``InvokeFailed``).
The end-to-end path under awslambdaric is in the conformance suite's harness."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from sls_py.runtime import Context, InvokeError, InvokeFailed, use_driver
from sls_py_aws.resources import AwsDriver

NAMES = {"functions": {"worker": "app-dev-worker", "caller": "app-dev-caller"}}


def body(data: Any) -> StreamingBody:
    raw = json.dumps(data).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


@pytest.fixture
def stubbed() -> Iterator[Stubber]:
    client = boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    driver = AwsDriver(region="us-east-1")
    driver._clients["lambda-invoke"] = client  # the client the driver makes on first use
    use_driver(driver, NAMES)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()
    use_driver(None)


def ctx(name: str = "caller") -> Context:
    return Context(request_id="r1", function_name=name, stage="dev", deadline_ms=2**62, provider="aws")


def test_invoke_waits_for_the_result(stubbed: Stubber) -> None:
    stubbed.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": body({"sum": 42})},
        {
            "FunctionName": "app-dev-worker",
            "InvocationType": "RequestResponse",
            "Payload": b'{"x":29,"y":13}',
        },
    )
    assert ctx().invoke("worker", {"x": 29, "y": 13}) == {"sum": 42}


def test_a_function_error_of_the_target_is_invoke_failed(stubbed: Stubber) -> None:
    stubbed.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "Payload": body({"errorType": "HttpError", "errorMessage": "[418] teapot"}),
        },
        {"FunctionName": "app-dev-worker", "InvocationType": "RequestResponse", "Payload": b"{}"},
    )
    with pytest.raises(InvokeFailed) as failed:
        ctx().invoke("worker", {})
    assert (failed.value.error.type, failed.value.error.status, failed.value.error.message) == (
        "HttpError",
        418,
        "teapot",
    )
    assert str(failed.value) == "function 'worker' failed: HttpError (status 418): teapot"


def test_invoke_async_is_an_event_invocation(stubbed: Stubber) -> None:
    stubbed.add_response(
        "invoke",
        {"StatusCode": 202, "ResponseMetadata": {"RequestId": "req-123", "HTTPStatusCode": 202}},
        {"FunctionName": "app-dev-worker", "InvocationType": "Event", "Payload": b'["a","b"]'},
    )
    assert ctx().invoke_async("worker", ["a", "b"]) == "req-123"


def test_continue_with_invokes_itself_asynchronously(stubbed: Stubber) -> None:
    stubbed.add_response(
        "invoke",
        {"StatusCode": 202, "ResponseMetadata": {"RequestId": "req-9", "HTTPStatusCode": 202}},
        {"FunctionName": "app-dev-caller", "InvocationType": "Event", "Payload": b'{"next":7}'},
    )
    assert ctx().continue_with({"next": 7}) == {"continued": "req-9"}


def test_refused_before_any_call(stubbed: Stubber) -> None:
    """No response is stubbed: a call to Lambda would fail the test."""
    with pytest.raises(InvokeError) as undeclared:
        ctx().invoke("other", {})
    assert str(undeclared.value) == (
        "function 'caller' may not invoke 'other': it is not a declared target; "
        "declare it with @app.function(name='caller', invokes=['other'])"
    )
    with pytest.raises(InvokeError) as big:
        ctx().invoke_async("worker", "x" * 262_144)
    assert str(big.value) == (
        "the payload for 'worker' is 262146 bytes, over the 262144 bytes an asynchronous "
        "invocation may carry; put the data in a bucket and pass its key instead"
    )
