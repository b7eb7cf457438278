"""Where the aws provider keeps the provider contract (docs/providers.md) and the
conformance suite cannot see it (moto runs no Lambda and routes no requests).

- ``route.options``: a browser does not know a method called ``ANY``, so the
  CORS MOCK integration of a path whose CORS route is ``ANY`` lists every
  method that route answers.
- ``invoke.timeout``: Lambda's own timeout error (``Sandbox.Timedout``, "Task
  timed out after 1.00 seconds") becomes the contract's ``TimeoutError``, 504.
  The error payloads are Lambda's documented ones.
"""

from __future__ import annotations

from aws_deploy_support import ACCOUNT, REGION
from sls_py.runtime import ErrorInfo
from sls_py.spec import CorsSpec, FunctionSpec, HttpTriggerSpec, Spec
from sls_py_aws.model import Target, desired_resources
from sls_py_aws.operate import invocation_error, timeout_error


def _cors_methods(*triggers: HttpTriggerSpec) -> dict[str, str]:
    fn = FunctionSpec(name="api", handler="m:f", style="request", triggers=list(triggers))
    spec = Spec(app="shop", stage="dev", app_ref="m:app", functions=[fn])
    target = Target(account=ACCOUNT, region=REGION, code_sha256="abc", code_size=10)
    return {
        r.name: r.props["methods"] for r in desired_resources(spec, target, {}) if r.kind == "cors"
    }


def test_an_any_route_with_cors_lists_every_method_it_answers() -> None:
    assert _cors_methods(
        HttpTriggerSpec(method="ANY", path="/any", cors=CorsSpec()),
        HttpTriggerSpec(method="GET", path="/get", cors=CorsSpec()),
        HttpTriggerSpec(method="POST", path="/own", cors=CorsSpec(methods=["POST"])),
    ) == {
        "/any": "DELETE,GET,HEAD,OPTIONS,PATCH,POST,PUT",
        "/get": "GET,OPTIONS",
        "/own": "POST",
    }


def test_lambdas_timeout_error_is_the_contracts_timeout_error() -> None:
    payload = {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: 0f9c Error: Task timed out after 1.00 seconds",
    }
    assert timeout_error("slow", payload) == ErrorInfo(
        type="TimeoutError", message="function 'slow' timed out after 1 s", status=504
    )
    crash = {"errorType": "RuntimeError", "errorMessage": "boom", "stackTrace": []}
    assert timeout_error("slow", crash) is None
    assert invocation_error(crash) == ErrorInfo(type="RuntimeError", message="boom")
