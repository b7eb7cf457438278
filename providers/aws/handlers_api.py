"""Handlers for API Gateway: the REST API, routes, CORS, stage, usage plan and keys.

Routes are methods with ``AWS_PROXY`` integrations to the functions; CORS
preflights are ``OPTIONS`` methods with a ``MOCK`` integration answering the
configured headers; the stage is (re)deployed whenever routes change; API keys
are attached to the stage through one usage plan with the configured limits.
"""

from __future__ import annotations

from typing import Any

from sls_py.errors import ProviderError

from .cloud import AwsError
from .executor import Ctx, create_again, handles
from .model import Resource
from .state import Entry


def _api_id(ctx: Ctx) -> str:
    api = ctx.state.output(f"api:{ctx.names.api}", "id")
    if not api:
        raise ProviderError(f"internal error: REST API {ctx.names.api} is not recorded yet")
    return str(api)


def _tag(ctx: Ctx, path: str, tags: dict[str, str]) -> None:
    """Set ``tags`` on the API Gateway resource at ``path`` (``/restapis/ID``, ...)."""
    ctx.call(
        "apigateway",
        "tag_resource",
        resourceArn=f"arn:aws:apigateway:{ctx.region}::{path}",
        tags=tags,
    )


# --- the REST API -------------------------------------------------------------


def _api_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    name = res.props["name"]
    for api in ctx.cloud.paginate("apigateway", "get_rest_apis", "items"):
        if api["name"] == name:  # an earlier deploy stopped before recording it
            # made by the same create call as below, binary media types included
            return {"id": api["id"]}
    made = ctx.call(
        "apigateway",
        "create_rest_api",
        name=name,
        description="sls-py",
        endpointConfiguration={"types": ["REGIONAL"]},
        binaryMediaTypes=res.props["binary"],
        tags=res.props["tags"],
    )
    return {"id": made["id"]}


def _api_patch_binary(ctx: Ctx, api_id: str, old: list[str], new: list[str]) -> None:
    """Make the API's binary media types ``new`` (``/`` is ``~1`` in a patch path)."""
    ops = [
        {"op": "remove", "path": "/binaryMediaTypes/" + t.replace("/", "~1")}
        for t in old
        if t not in new
    ]
    ops += [
        {"op": "add", "path": "/binaryMediaTypes/" + t.replace("/", "~1")}
        for t in new
        if t not in old
    ]
    if ops:
        ctx.call("apigateway", "update_rest_api", restApiId=api_id, patchOperations=ops)


def _api_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    if "binary" in changes:
        _api_patch_binary(
            ctx, entry.outputs["id"], entry.props.get("binary", []), res.props["binary"]
        )
    _tag(ctx, f"/restapis/{entry.outputs['id']}", res.props["tags"])
    return {}


def _api_delete(ctx: Ctx, entry: Entry) -> None:
    ctx.cloud.call("apigateway", "delete_rest_api", missing_ok=True, restApiId=entry.outputs["id"])


# --- resources (paths) ----------------------------------------------------------


def _resources(ctx: Ctx, api_id: str) -> dict[str, dict[str, Any]]:
    """The API's resources by path (read once per apply, then kept up to date)."""
    key = f"resources:{api_id}"
    if key not in ctx.cache:
        ctx.cache[key] = {
            r["path"]: r
            for r in ctx.cloud.paginate(
                "apigateway",
                "get_resources",
                "items",
                restApiId=api_id,
                embed=["methods"],
                PaginationConfig={"PageSize": 500},
            )
        }
    found: dict[str, dict[str, Any]] = ctx.cache[key]
    return found


def _ensure_path(ctx: Ctx, api_id: str, path: str) -> str:
    """The id of the resource at ``path``, creating missing segments."""
    known = _resources(ctx, api_id)
    current = "/"
    for part in [p for p in path.split("/") if p]:
        parent = known[current]
        current = current.rstrip("/") + "/" + part
        if current not in known:
            made = ctx.call(
                "apigateway",
                "create_resource",
                restApiId=api_id,
                parentId=parent["id"],
                pathPart=part,
            )
            known[current] = {"id": made["id"], "path": current, "parentId": parent["id"]}
    return str(known[current]["id"])


def _drop_method(ctx: Ctx, api_id: str, resource_id: str, method: str) -> None:
    """Delete ``method`` of a resource if the API has it (so a put never duplicates)."""
    known = _resources(ctx, api_id)
    entry = next((r for r in known.values() if r["id"] == resource_id), None)
    if entry is not None and method not in (entry.get("resourceMethods") or {}):
        return  # not there: nothing to delete (saves a call on every first deploy)
    ctx.cloud.call(
        "apigateway",
        "delete_method",
        missing_ok=True,
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod=method,
    )
    if entry is not None:
        entry.get("resourceMethods", {}).pop(method, None)


def _put_method(ctx: Ctx, api_id: str, resource_id: str, method: str, *, api_key: bool) -> None:
    """(Re)create a method: an existing one is deleted first, so nothing is duplicated
    and its old integration goes with it."""
    _drop_method(ctx, api_id, resource_id, method)
    params = {
        "restApiId": api_id,
        "resourceId": resource_id,
        "httpMethod": method,
        "authorizationType": "NONE",
        "apiKeyRequired": api_key,
    }
    try:
        ctx.call("apigateway", "put_method", **params)
    except AwsError as exc:  # there after all (the cached list was stale): replace it
        if exc.code != "ConflictException":
            raise
        ctx.call(
            "apigateway",
            "delete_method",
            restApiId=api_id,
            resourceId=resource_id,
            httpMethod=method,
        )
        ctx.call("apigateway", "put_method", **params)
    _mark_method(ctx, api_id, resource_id, method)


def _mark_method(ctx: Ctx, api_id: str, resource_id: str, method: str) -> None:
    """Note in the cached resource list that ``method`` now exists."""
    for r in _resources(ctx, api_id).values():
        if r["id"] == resource_id:
            r.setdefault("resourceMethods", {})[method] = {}


def _prune_path(ctx: Ctx, api_id: str, path: str) -> None:
    """Delete the resource at ``path`` (and empty parents) once nothing uses it."""
    known = _resources(ctx, api_id)
    while path not in ("", "/"):
        found = (
            ctx.cloud.call(
                "apigateway",
                "get_resource",
                missing_ok=True,
                restApiId=api_id,
                resourceId=known[path]["id"],
            )
            if path in known
            else None
        )
        children = [p for p in known if p != path and p.startswith(path.rstrip("/") + "/")]
        if found is None or found.get("resourceMethods") or children:
            return
        ctx.cloud.call(
            "apigateway",
            "delete_resource",
            missing_ok=True,
            restApiId=api_id,
            resourceId=found["id"],
        )
        known.pop(path, None)
        path = path.rsplit("/", 1)[0] or "/"


# --- routes ---------------------------------------------------------------------


def _route_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    api_id = _api_id(ctx)
    resource_id = _ensure_path(ctx, api_id, p["path"])
    _put_method(ctx, api_id, resource_id, p["method"], api_key=p["api_key"])
    uri = (
        f"arn:aws:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/"
        f"{p['function_arn']}/invocations"
    )
    ctx.call(
        "apigateway",
        "put_integration",
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod=p["method"],
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=uri,
    )
    return {"resource_id": resource_id}


def _route_delete(ctx: Ctx, entry: Entry) -> None:
    api_id = _api_id(ctx)
    _drop_method(ctx, api_id, entry.outputs["resource_id"], entry.props["method"])
    _prune_path(ctx, api_id, entry.props["path"])


# --- CORS preflight ---------------------------------------------------------------

_CORS_HEADERS = ("Origin", "Headers", "Methods", "Max-Age", "Credentials")


def _cors_values(p: dict[str, Any]) -> dict[str, str]:
    values = {
        "Origin": p["origin"],
        "Headers": p["headers"],
        "Methods": p["methods"],
        "Max-Age": str(p["max_age_s"]),
    }
    if p["credentials"]:
        values["Credentials"] = "true"
    return {
        f"method.response.header.Access-Control-Allow-{k}"
        if k != "Max-Age"
        else "method.response.header.Access-Control-Max-Age": f"'{v}'"
        for k, v in values.items()
    }


def _cors_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    api_id = _api_id(ctx)
    resource_id = _ensure_path(ctx, api_id, p["path"])
    _put_method(ctx, api_id, resource_id, "OPTIONS", api_key=False)
    common = {"restApiId": api_id, "resourceId": resource_id, "httpMethod": "OPTIONS"}
    values = _cors_values(p)
    ctx.call(
        "apigateway",
        "put_method_response",
        **common,
        statusCode="200",
        responseParameters=dict.fromkeys(values, False),
        responseModels={"application/json": "Empty"},
    )
    ctx.call(
        "apigateway",
        "put_integration",
        **common,
        type="MOCK",
        requestTemplates={"application/json": '{"statusCode": 200}'},
    )
    ctx.call(
        "apigateway",
        "put_integration_response",
        **common,
        statusCode="200",
        responseParameters=values,
        responseTemplates={"application/json": ""},
    )
    return {"resource_id": resource_id}


def _cors_delete(ctx: Ctx, entry: Entry) -> None:
    api_id = _api_id(ctx)
    _drop_method(ctx, api_id, entry.outputs["resource_id"], "OPTIONS")
    _prune_path(ctx, api_id, entry.props["path"])


# --- gateway responses (errors API Gateway answers itself) ---------------------------


def _gateway_response_put(ctx: Ctx, res: Resource) -> dict[str, Any]:
    ctx.call(
        "apigateway",
        "put_gateway_response",
        restApiId=_api_id(ctx),
        responseType=res.props["type"],
        responseParameters={
            "gatewayresponse.header.Access-Control-Allow-Origin": f"'{res.props['origin']}'",
        },
    )
    return {}


def _gateway_response_delete(ctx: Ctx, entry: Entry) -> None:
    ctx.cloud.call(
        "apigateway",
        "delete_gateway_response",
        missing_ok=True,
        restApiId=_api_id(ctx),
        responseType=entry.props["type"],
    )


# --- stage ------------------------------------------------------------------------


def _stage_deploy(ctx: Ctx, res: Resource) -> dict[str, Any]:
    api_id = _api_id(ctx)
    stage = res.props["stage"]
    made = ctx.call(
        "apigateway",
        "create_deployment",
        restApiId=api_id,
        stageName=stage,
        description="sls-py deploy",
    )
    _tag(ctx, f"/restapis/{api_id}/stages/{stage}", res.props["tags"])
    url = f"https://{api_id}.execute-api.{ctx.region}.amazonaws.com/{stage}"
    return {"deployment_id": made["id"], "url": url}


def _stage_delete(ctx: Ctx, entry: Entry) -> None:
    ctx.cloud.call(
        "apigateway",
        "delete_stage",
        missing_ok=True,
        restApiId=_api_id(ctx),
        stageName=entry.props["stage"],
    )


# --- usage plan and API keys ------------------------------------------------------


def _limits(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p["rate"] is not None or p["burst"] is not None:
        throttle: dict[str, Any] = {}
        if p["rate"] is not None:
            throttle["rateLimit"] = float(p["rate"])
        if p["burst"] is not None:
            throttle["burstLimit"] = int(p["burst"])
        out["throttle"] = throttle
    if p["quota"] is not None:
        out["quota"] = {"limit": int(p["quota"]), "period": p["period"] or "DAY"}
    return out


def _usage_plan_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    api_id = _api_id(ctx)
    for plan in ctx.cloud.paginate("apigateway", "get_usage_plans", "items"):
        if plan["name"] == p["name"]:  # an earlier deploy stopped before recording it
            _usage_plan_patch(ctx, plan["id"], p)
            return {"id": plan["id"]}
    made = ctx.call(
        "apigateway",
        "create_usage_plan",
        name=p["name"],
        description="sls-py",
        apiStages=[{"apiId": api_id, "stage": p["stage"]}],
        tags=p["tags"],
        **_limits(p),
    )
    return {"id": made["id"]}


def _usage_plan_patch(ctx: Ctx, plan_id: str, p: dict[str, Any]) -> None:
    limits = _limits(p)
    ops: list[dict[str, str]] = []
    for path, value in (
        ("/throttle/rateLimit", p["rate"]),
        ("/throttle/burstLimit", p["burst"]),
        ("/quota/limit", p["quota"]),
    ):
        if value is not None:
            ops.append({"op": "replace", "path": path, "value": str(value)})
    if "quota" in limits:
        ops.append({"op": "replace", "path": "/quota/period", "value": limits["quota"]["period"]})
    if "throttle" not in limits:
        ops.append({"op": "remove", "path": "/throttle"})
    if "quota" not in limits:
        ops.append({"op": "remove", "path": "/quota"})
    ctx.call("apigateway", "update_usage_plan", usagePlanId=plan_id, patchOperations=ops)


def _usage_plan_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    if set(changes) - {"tags"}:
        _usage_plan_patch(ctx, entry.outputs["id"], res.props)
    return {}


def _usage_plan_delete(ctx: Ctx, entry: Entry) -> None:
    plan_id = entry.outputs["id"]
    api_id = ctx.state.output(f"api:{ctx.names.api}", "id")
    if api_id:  # AWS refuses to delete a plan still attached to a stage
        ctx.cloud.call(
            "apigateway",
            "update_usage_plan",
            missing_ok=True,
            usagePlanId=plan_id,
            patchOperations=[
                {"op": "remove", "path": "/apiStages", "value": f"{api_id}:{entry.props['stage']}"}
            ],
        )
    ctx.cloud.call("apigateway", "delete_usage_plan", missing_ok=True, usagePlanId=plan_id)


def _api_key_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    plan_id = ctx.state.output(f"usage-plan:{ctx.names.usage_plan}", "id")
    found = [
        k
        for k in ctx.cloud.paginate("apigateway", "get_api_keys", "items", nameQuery=p["name"])
        if k["name"] == p["name"]
    ]
    if found:  # an earlier deploy stopped before recording it
        key_id = found[0]["id"]
    else:
        key_id = ctx.call(
            "apigateway",
            "create_api_key",
            name=p["name"],
            enabled=True,
            description="sls-py",
            tags=p["tags"],
        )["id"]
    if plan_id:
        attached = {
            k["id"]
            for k in ctx.cloud.paginate(
                "apigateway", "get_usage_plan_keys", "items", usagePlanId=plan_id
            )
        }
        if key_id not in attached:
            ctx.call(
                "apigateway",
                "create_usage_plan_key",
                usagePlanId=plan_id,
                keyId=key_id,
                keyType="API_KEY",
            )
    return {"id": key_id}


def _api_key_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    _tag(ctx, f"/apikeys/{entry.outputs['id']}", res.props["tags"])
    return {}


def _api_key_delete(ctx: Ctx, entry: Entry) -> None:
    ctx.cloud.call("apigateway", "delete_api_key", missing_ok=True, apiKey=entry.outputs["id"])


handles("api", _api_create, _api_update, _api_delete)
handles("route", _route_create, create_again(_route_create), _route_delete)
handles("cors", _cors_create, create_again(_cors_create), _cors_delete)
handles(
    "gateway-response", _gateway_response_put, create_again(_gateway_response_put), _gateway_response_delete
)
handles("stage", _stage_deploy, create_again(_stage_deploy), _stage_delete)
handles("usage-plan", _usage_plan_create, _usage_plan_update, _usage_plan_delete)
handles("api-key", _api_key_create, _api_key_update, _api_key_delete)
