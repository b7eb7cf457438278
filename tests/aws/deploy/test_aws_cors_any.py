"""The preflight API Gateway answers for an ``ANY`` route lists real methods.

A browser does not know a method called ``ANY``: the CORS MOCK integration of a
path whose CORS route is ``ANY`` lists every method that route answers
(docs/providers.md, contract row ``route.options``).
"""

from __future__ import annotations

from aws_deploy_support import ACCOUNT, REGION
from sls_py.spec import CorsSpec, FunctionSpec, HttpTriggerSpec, Spec
from sls_py_aws.model import Target, desired_resources


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
