"""Template entries of the API Gateway kinds: the REST API, routes, CORS preflights,
gateway responses, the stage (with its deployment), the usage plan and API keys.
Registered on :data:`sls_py_aws.template.EMITTERS` when :mod:`sls_py_aws.template`
is imported."""

from __future__ import annotations

from .handlers_api import _cors_values, _limits
from .model import Resource, digest
from .template import Template, emits


@emits("api")
def _api(t: Template, r: Resource) -> None:
    t.add(
        "api",
        r.name,
        "AWS::ApiGateway::RestApi",
        {
            "Name": r.props["name"],
            "Description": "sls-py",
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "BinaryMediaTypes": r.props["binary"],
            "Tags": t.tags(r.props["tags"]),
        },
    )


@emits("route")
def _route(t: Template, r: Resource) -> None:
    p = r.props
    function = t.function_id(p["function"])
    method = t.add(
        "method",
        r.name,
        "AWS::ApiGateway::Method",
        {
            "RestApiId": t.ref("api", t.names.api),
            "ResourceId": t.path(p["path"]),
            "HttpMethod": p["method"],
            "AuthorizationType": "NONE",
            "ApiKeyRequired": p["api_key"],
            "Integration": {
                "Type": "AWS_PROXY",
                "IntegrationHttpMethod": "POST",
                "Uri": {
                    "Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                    f"${{{function}.Arn}}/invocations"
                },
            },
        },
    )
    t.methods.append(method)


@emits("cors")
def _cors(t: Template, r: Resource) -> None:
    values = _cors_values(r.props)
    method = t.add(
        "cors",
        r.name,
        "AWS::ApiGateway::Method",
        {
            "RestApiId": t.ref("api", t.names.api),
            "ResourceId": t.path(r.props["path"]),
            "HttpMethod": "OPTIONS",
            "AuthorizationType": "NONE",
            "ApiKeyRequired": False,
            "Integration": {
                "Type": "MOCK",
                "RequestTemplates": {"application/json": '{"statusCode": 200}'},
                "IntegrationResponses": [
                    {
                        "StatusCode": "200",
                        "ResponseParameters": values,
                        "ResponseTemplates": {"application/json": ""},
                    }
                ],
            },
            "MethodResponses": [
                {
                    "StatusCode": "200",
                    "ResponseParameters": dict.fromkeys(values, False),
                    "ResponseModels": {"application/json": "Empty"},
                }
            ],
        },
    )
    t.methods.append(method)


@emits("gateway-response")
def _gateway_response(t: Template, r: Resource) -> None:
    logical = t.add(
        "gateway-response",
        r.name,
        "AWS::ApiGateway::GatewayResponse",
        {
            "RestApiId": t.ref("api", t.names.api),
            "ResponseType": r.props["type"],
            "ResponseParameters": {
                "gatewayresponse.header.Access-Control-Allow-Origin": f"'{r.props['origin']}'",
            },
        },
    )
    t.methods.append(logical)


@emits("stage")
def _stage(t: Template, r: Resource) -> None:
    p = r.props
    api = t.ref("api", t.names.api)
    # a new logical id whenever routes change, so CloudFormation deploys the API again
    deployment = t.add(
        "deployment",
        r.name,
        "AWS::ApiGateway::Deployment",
        {"RestApiId": api, "Description": "sls-py deploy"},
        suffix=digest([p["routes"], p["cors"]])[:8],
        depends=t.methods,
    )
    t.add(
        "stage",
        r.name,
        "AWS::ApiGateway::Stage",
        {
            "RestApiId": api,
            "StageName": p["stage"],
            "DeploymentId": {"Ref": deployment},
            "Tags": t.tags(p["tags"]),
        },
    )
    t.outputs["Url"] = {
        "Description": "The stage's base URL",
        "Value": {
            "Fn::Sub": f"https://${{{t.id('api', t.names.api)}}}.execute-api.${{AWS::Region}}"
            f".amazonaws.com/{p['stage']}"
        },
    }


@emits("usage-plan")
def _usage_plan(t: Template, r: Resource) -> None:
    p = r.props
    limits = _limits(p)
    throttle = limits.get("throttle")
    quota = limits.get("quota")
    t.add(
        "usage-plan",
        r.name,
        "AWS::ApiGateway::UsagePlan",
        {
            "UsagePlanName": p["name"],
            "Description": "sls-py",
            "ApiStages": [{"ApiId": t.ref("api", t.names.api), "Stage": t.ref("stage", p["stage"])}],
            "Throttle": {
                k: v
                for k, v in (
                    ("RateLimit", throttle.get("rateLimit")),
                    ("BurstLimit", throttle.get("burstLimit")),
                )
                if v is not None
            }
            if throttle
            else None,
            "Quota": {"Limit": quota["limit"], "Period": quota["period"]} if quota else None,
            "Tags": t.tags(p["tags"]),
        },
    )


@emits("api-key")
def _api_key(t: Template, r: Resource) -> None:
    key = t.add(
        "api-key",
        r.name,
        "AWS::ApiGateway::ApiKey",
        {"Name": r.props["name"], "Enabled": True, "Description": "sls-py", "Tags": t.tags(r.props["tags"])},
    )
    t.add(
        "usage-plan-key",
        r.name,
        "AWS::ApiGateway::UsagePlanKey",
        {"KeyId": {"Ref": key}, "KeyType": "API_KEY", "UsagePlanId": t.ref("usage-plan", t.names.usage_plan)},
    )
    t.outputs[f"{key}Id"] = {"Description": f"The id of API key {r.name!r}", "Value": {"Ref": key}}
