"""Build side of caches on AWS: ElastiCache Serverless (Valkey) in a VPC.

A cache is the one resource that needs a VPC. When an app declares one, the
stage gets (no network needed to work this out):

- ``network``: a VPC (``10.42.0.0/16``, DNS on) with two private subnets in two
  availability zones, and two security groups: ``<app>-<stage>-net-function``
  (the functions; no ingress) and ``<app>-<stage>-net-services`` (ingress only
  from the function group: 6379-6380 for the caches, 443 for an interface
  endpoint). Nothing has a route to the internet. Gateway endpoints for S3 and
  DynamoDB (free) are added when the app has buckets or tables, and interface
  endpoints (billed by the hour) for SQS when it has queues, for Lambda when a
  function invokes another (``invokes=``, fan-out), for SSM when it reads
  ``app.config``, and for the RDS Data API and Secrets Manager when it declares
  an ``app.database`` (the function's driver calls both over HTTPS), so
  functions in the VPC still reach them. With
  ``vpc = "vpc-..."`` and ``subnets = [...]`` in ``[tool.sls-py.providers.aws]``
  the given VPC and subnets are used instead (only the security groups and
  endpoints are created in it, and removed).
- ``cache``: one ElastiCache Serverless cache per ``app.cache`` (engine Valkey,
  in the private subnets, behind the services group).
- every function gets the VPC config (the private subnets, the function
  group) and ``SLS_PY_CACHES`` (``{"name": "rediss://endpoint:port/0"}``) in
  its environment, filled in at apply time from the cache's endpoint, which
  AWS makes up. The planner compares that variable with the recorded endpoints.

Idle costs are said in the plan (:func:`idle_cost`): the caches and interface
endpoints cost money while nothing runs; the VPC, subnets, security
groups and gateway endpoints do not.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sls_py.errors import ConfigError

if TYPE_CHECKING:
    from sls_py.spec import Spec

    from .model import Names, Resource
    from .state import Entry, State

#: the function environment variable holding the caches' URLs (see sls_py.runtime.resources)
CACHES_ENV = "SLS_PY_CACHES"
VPC_CIDR = "10.42.0.0/16"
SUBNET_CIDRS = ("10.42.0.0/20", "10.42.16.0/20")
CACHE_PORTS = (6379, 6380)  # ElastiCache Serverless: the endpoint and the reader endpoint
ENGINE = "valkey"
MAX_CACHE_NAME = 40  # ElastiCache's limit on a serverless cache's name

CACHE_IDLE_COST = (
    "costs money while idle: ElastiCache Serverless for Valkey bills at least 100 MB of "
    "data stored (about $6/month in us-east-1) plus the ECPUs used"
)
#: services a function in the private subnets reaches through a billed interface endpoint
INTERFACE_ENDPOINTS = ("sqs", "lambda", "ssm", "rds-data", "secretsmanager")


def interface_idle_cost(services: list[str]) -> str:
    """The plan's note for interface endpoints (each bills per hour in both subnets)."""
    return (
        f"costs money while idle: {len(services)} VPC interface endpoint(s) ({', '.join(services)}) "
        f"bill per hour in each of the 2 subnets (about ${15 * len(services)}/month in us-east-1), "
        "so functions in the VPC reach those services"
    )


def network_name(spec: Spec) -> str:
    """The Name tag of the stage's VPC, subnets and security groups."""
    return spec.qualified("net")


def serverless_cache_name(qualified: str) -> str:
    """A valid ElastiCache Serverless name: at most 40 characters, lower case,
    no double or trailing hyphen; shortened with a hash when too long."""
    name = "-".join(p for p in qualified.lower().split("-") if p)
    if len(name) <= MAX_CACHE_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_CACHE_NAME - 9].rstrip('-')}-{digest}"


def network_settings(spec: Spec) -> dict[str, Any]:
    """``vpc`` and ``subnets`` from ``[tool.sls-py.providers.aws]``, checked."""
    raw = spec.provider_settings("aws")
    vpc, subnets = raw.get("vpc"), raw.get("subnets")
    if vpc is None and subnets is None:
        return {"vpc": None, "subnets": None}
    if not isinstance(vpc, str) or not vpc.startswith("vpc-"):
        raise ConfigError(
            f"[tool.sls-py.providers.aws] vpc = {vpc!r} is not a VPC id",
            hint='name an existing VPC, e.g. vpc = "vpc-0abc...", with subnets = ["subnet-...", ...]',
        )
    if (
        not isinstance(subnets, list)
        or len(subnets) < 2
        or not all(isinstance(s, str) and s.startswith("subnet-") for s in subnets)
    ):
        raise ConfigError(
            "[tool.sls-py.providers.aws] vpc needs subnets = [...]: two or more private "
            "subnet ids of that VPC, in different availability zones",
            hint='for example: subnets = ["subnet-0aaa...", "subnet-0bbb..."]',
        )
    return {"vpc": vpc, "subnets": sorted(subnets)}


def network_resources(spec: Spec, names: Names) -> list[Resource]:
    """The ``network`` and ``cache`` resources of ``spec`` (none without a cache)."""
    from .model import Resource

    if not spec.caches:
        return []
    tags = names.tags()
    conf = network_settings(spec)
    endpoints = []
    if spec.buckets:
        endpoints.append("s3")
    if spec.tables:
        endpoints.append("dynamodb")
    if spec.queues:
        endpoints.append("sqs")
    if any(fn.invokes for fn in spec.functions):  # ctx.invoke / fan-out call Lambda's API
        endpoints.append("lambda")
    if spec.configs:  # app.config reads SSM at call time
        endpoints.append("ssm")
    if spec.databases:  # the Data API driver: rds-data calls, and the secret's ARN looked up once
        endpoints += ["rds-data", "secretsmanager"]
    out = [
        Resource(
            "network",
            network_name(spec),
            {
                "name": network_name(spec),
                "vpc": conf["vpc"],
                "subnets": conf["subnets"],
                "cidr": VPC_CIDR if conf["vpc"] is None else None,
                "endpoints": endpoints,
                "tags": tags,
            },
        )
    ]
    for cache in spec.caches:
        out.append(
            Resource(
                "cache",
                cache.name,
                {
                    "name": serverless_cache_name(cache.qualified_name),
                    "engine": ENGINE,
                    "network": network_name(spec),
                    "tags": tags,
                },
            )
        )
    return out


def idle_cost(res: Resource) -> str:
    """What a new resource costs while nothing runs, for the plan ('' if nothing)."""
    if res.kind == "cache":
        return CACHE_IDLE_COST
    interfaces = [e for e in res.props.get("endpoints", []) if e in INTERFACE_ENDPOINTS]
    if res.kind == "network" and interfaces:
        return interface_idle_cost(interfaces)
    return ""


def cache_urls(state: State) -> dict[str, str]:
    """``SLS_PY_CACHES`` as the recorded caches say: logical name -> ``rediss://`` URL."""
    return {
        e.name: str(e.outputs["url"])
        for e in state.entries.values()
        if e.kind == "cache" and e.outputs.get("url")
    }


def function_network_changes(res: Resource, config: dict[str, Any], state: State) -> list[str]:
    """What differs between a function on AWS and its desired VPC config and cache URLs."""
    import json

    changes = []
    in_vpc = bool((config.get("VpcConfig") or {}).get("SubnetIds"))
    if in_vpc != bool(res.props.get("vpc")):
        changes.append("vpc")
    env = (config.get("Environment") or {}).get("Variables", {})
    want = cache_urls(state) if res.props.get("vpc") else {}
    have = json.loads(env[CACHES_ENV]) if CACHES_ENV in env else {}
    if have != want:
        changes.append("caches")
    return changes


def without_caches(variables: dict[str, str]) -> dict[str, str]:
    """A function's environment without ``SLS_PY_CACHES`` (filled in at apply time)."""
    return {k: v for k, v in variables.items() if k != CACHES_ENV}


def recorded_network(state: State) -> Entry | None:
    """The stage's recorded ``network`` entry, if any."""
    return next((e for e in state.entries.values() if e.kind == "network"), None)
