"""Handlers for the stage's ``network`` (VPC, subnets, security groups,
endpoints) and its ``cache`` resources (ElastiCache Serverless), and the VPC
part of a function's configuration. See :mod:`sls_py_aws.network`.

Every part is found by its ``Name`` tag (or its name) before it is created, so
a deploy interrupted half-way through a network converges when run again.
Deleting waits for what AWS releases slowly: a cache's network interfaces, and
the interfaces Lambda keeps in the subnets for a while after a function left
the VPC (AWS answers ``DependencyViolation`` meanwhile).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sls_py.errors import ProviderError

from .cloud import AwsError
from .executor import Ctx, handles
from .model import Resource
from .network import (
    CACHE_PORTS,
    CACHES_ENV,
    INTERFACE_ENDPOINTS,
    SUBNET_CIDRS,
    cache_urls,
    recorded_network,
)
from .state import Entry

#: how long a delete waits for AWS to release network interfaces
RELEASE_WAIT_S = 40 * 60.0
#: how long a new cache may take to become available
CACHE_WAIT_S = 30 * 60.0
POLL_S = 5.0
_sleep = time.sleep  # tests replace it


def _tag_spec(ctx: Ctx, kind: str, name: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": ctx.tag_list({**tags, "Name": name})}]


def _by_name(ctx: Ctx, operation: str, key: str, name: str, **filters: str) -> list[dict[str, Any]]:
    """EC2 things whose Name tag is ``name`` (and matching ``filters``)."""
    flt = [{"Name": "tag:Name", "Values": [name]}]
    flt += [{"Name": k, "Values": [v]} for k, v in filters.items()]
    return list(ctx.call("ec2", operation, Filters=flt).get(key, []))


def _poll(done: Callable[[], bool], limit_s: float, what: str, ctx: Ctx) -> None:
    """Call ``done`` until it is true, every ``POLL_S`` (said once), up to ``limit_s``."""
    deadline = time.monotonic() + limit_s
    said = False
    while not done():
        if time.monotonic() > deadline:
            raise ProviderError(
                f"gave up waiting for {what} after {limit_s / 60:g} minutes",
                hint="run the same command again: it goes on from there",
            )
        if not said:
            ctx.note(f"waiting for {what}")
            said = True
        _sleep(POLL_S)


# --- network ----------------------------------------------------------------------


def _vpc(ctx: Ctx, p: dict[str, Any]) -> tuple[str, bool]:
    """The VPC id, and whether it is ours (created by sls-py)."""
    if p["vpc"]:
        return p["vpc"], False
    found = _by_name(ctx, "describe_vpcs", "Vpcs", p["name"])
    if found:
        return found[0]["VpcId"], True
    vpc = ctx.call(
        "ec2",
        "create_vpc",
        CidrBlock=p["cidr"],
        TagSpecifications=_tag_spec(ctx, "vpc", p["name"], p["tags"]),
    )["Vpc"]["VpcId"]
    for attr in ("EnableDnsSupport", "EnableDnsHostnames"):  # interface endpoints need both
        ctx.call("ec2", "modify_vpc_attribute", VpcId=vpc, **{attr: {"Value": True}})
    return vpc, True


def _subnets(ctx: Ctx, p: dict[str, Any], vpc: str) -> list[str]:
    if p["subnets"]:
        return list(p["subnets"])
    zones = ctx.call(
        "ec2", "describe_availability_zones", Filters=[{"Name": "state", "Values": ["available"]}]
    )["AvailabilityZones"]
    zone_names = sorted(z["ZoneName"] for z in zones)[: len(SUBNET_CIDRS)]
    if len(zone_names) < len(SUBNET_CIDRS):
        raise ProviderError(f"ElastiCache needs subnets in 2 availability zones; the region has {zone_names}")
    out = []
    for i, (cidr, zone) in enumerate(zip(SUBNET_CIDRS, zone_names, strict=True)):
        name = f"{p['name']}-private-{i + 1}"
        found = _by_name(ctx, "describe_subnets", "Subnets", name, **{"vpc-id": vpc})
        if found:
            out.append(found[0]["SubnetId"])
            continue
        out.append(
            ctx.call(
                "ec2",
                "create_subnet",
                VpcId=vpc,
                CidrBlock=cidr,
                AvailabilityZone=zone,
                TagSpecifications=_tag_spec(ctx, "subnet", name, p["tags"]),
            )["Subnet"]["SubnetId"]
        )
    return out


def _group(ctx: Ctx, p: dict[str, Any], vpc: str, role: str, description: str) -> str:
    name = f"{p['name']}-{role}"
    found = ctx.call(
        "ec2",
        "describe_security_groups",
        Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc]}],
    )["SecurityGroups"]
    if found:
        return str(found[0]["GroupId"])
    return str(
        ctx.call(
            "ec2",
            "create_security_group",
            GroupName=name,
            Description=description,
            VpcId=vpc,
            TagSpecifications=_tag_spec(ctx, "security-group", name, p["tags"]),
        )["GroupId"]
    )


def _allow_from(ctx: Ctx, services: str, function: str) -> None:
    """Ingress to the services group from the function group only (caches, endpoints)."""
    rules = [(CACHE_PORTS[0], CACHE_PORTS[-1]), (443, 443)]
    group = ctx.call("ec2", "describe_security_groups", GroupIds=[services])["SecurityGroups"][0]
    have = {
        (r.get("FromPort"), r.get("ToPort"))
        for r in group.get("IpPermissions", [])
        if any(g.get("GroupId") == function for g in r.get("UserIdGroupPairs", []))
    }
    missing = [r for r in rules if r not in have]
    if missing:
        ctx.call(
            "ec2",
            "authorize_security_group_ingress",
            GroupId=services,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": lo,
                    "ToPort": hi,
                    "UserIdGroupPairs": [{"GroupId": function}],
                }
                for lo, hi in missing
            ],
        )


def _endpoints(ctx: Ctx, p: dict[str, Any], vpc: str, subnets: list[str], services: str) -> dict[str, str]:
    """The VPC endpoints the stage needs (service -> id); extra ones of ours are deleted."""
    existing = {
        e["ServiceName"].rsplit(".", 1)[-1]: e["VpcEndpointId"]
        for e in ctx.call(
            "ec2",
            "describe_vpc_endpoints",
            Filters=[
                {"Name": "vpc-id", "Values": [vpc]},
                {"Name": "tag:Name", "Values": [p["name"]]},
            ],
        ).get("VpcEndpoints", [])
        if e.get("State", "available").lower() not in ("deleted", "deleting")
    }
    wanted = list(p["endpoints"])
    gone = [existing.pop(s) for s in list(existing) if s not in wanted]
    if gone:
        ctx.call("ec2", "delete_vpc_endpoints", VpcEndpointIds=gone)
    tables = None
    for service in wanted:
        if service in existing:
            continue
        params: dict[str, Any] = {
            "VpcId": vpc,
            "ServiceName": f"com.amazonaws.{ctx.region}.{service}",
            "TagSpecifications": _tag_spec(ctx, "vpc-endpoint", p["name"], p["tags"]),
        }
        if service in INTERFACE_ENDPOINTS:
            params.update(
                VpcEndpointType="Interface",
                SubnetIds=subnets,
                SecurityGroupIds=[services],
                PrivateDnsEnabled=True,
            )
        else:
            if tables is None:
                tables = [
                    t["RouteTableId"]
                    for t in ctx.call(
                        "ec2",
                        "describe_route_tables",
                        Filters=[{"Name": "vpc-id", "Values": [vpc]}],
                    )["RouteTables"]
                ]
            params.update(VpcEndpointType="Gateway", RouteTableIds=tables)
        existing[service] = ctx.call("ec2", "create_vpc_endpoint", **params)["VpcEndpoint"]["VpcEndpointId"]
    return existing


def _network_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    vpc, ours = _vpc(ctx, p)
    subnets = _subnets(ctx, p, vpc)
    function = _group(ctx, p, vpc, "function", "sls-py: the functions of the stage (no ingress)")
    services = _group(ctx, p, vpc, "services", "sls-py: caches and endpoints, from the functions only")
    _allow_from(ctx, services, function)
    endpoints = _endpoints(ctx, p, vpc, subnets, services)
    return {
        "vpc_id": vpc,
        "own_vpc": ours,
        "subnet_ids": subnets,
        "function_group": function,
        "services_group": services,
        "endpoints": endpoints,
    }


def _network_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    moved = [c for c in changes if c in ("vpc", "subnets", "cidr", "name")]
    if moved:
        raise ProviderError(
            f"the stage's network changed ({', '.join(moved)}): sls-py does not move a deployed "
            "stage to another VPC",
            hint="remove the stage (sls-py remove) and deploy it again, or undo the change",
        )
    out = _network_create(ctx, res)  # puts endpoints and rules as they should be
    if "tags" in changes:
        ids = [out["vpc_id"], *out["subnet_ids"]] if out["own_vpc"] else []
        ids += [out["function_group"], out["services_group"], *out["endpoints"].values()]
        ctx.call("ec2", "create_tags", Resources=ids, Tags=ctx.tag_list(res.props["tags"]))
    return out


def _released(ctx: Ctx, operation: str, what: str, **params: Any) -> None:
    """Delete, waiting while AWS still holds network interfaces in it."""

    def attempt() -> bool:
        try:
            ctx.call("ec2", operation, **params)
        except AwsError as exc:
            if exc.code in ("InvalidGroup.NotFound", "InvalidSubnetID.NotFound", "InvalidVpcID.NotFound"):
                return True
            if exc.code == "DependencyViolation":
                return False
            raise
        return True

    _poll(
        attempt,
        RELEASE_WAIT_S,
        f"AWS to release the network interfaces in {what} "
        "(Lambda keeps them up to 20 minutes after a function leaves a VPC)",
        ctx,
    )


def _network_delete(ctx: Ctx, entry: Entry) -> None:
    out = entry.outputs
    endpoints = list((out.get("endpoints") or {}).values())
    if endpoints:
        ctx.tolerate(
            {"InvalidVpcEndpointId.NotFound"}, "ec2", "delete_vpc_endpoints", VpcEndpointIds=endpoints
        )
    for key in ("services_group", "function_group"):
        if out.get(key):
            _released(ctx, "delete_security_group", f"security group {out[key]}", GroupId=out[key])
    if out.get("own_vpc"):
        for subnet in out.get("subnet_ids", []):
            _released(ctx, "delete_subnet", f"subnet {subnet}", SubnetId=subnet)
        if out.get("vpc_id"):
            _released(ctx, "delete_vpc", f"VPC {out['vpc_id']}", VpcId=out["vpc_id"])


# --- caches -------------------------------------------------------------------------


def _describe_cache(ctx: Ctx, name: str) -> dict[str, Any] | None:
    found = ctx.tolerate(
        {"ServerlessCacheNotFoundFault"},
        "elasticache",
        "describe_serverless_caches",
        ServerlessCacheName=name,
    )
    caches = (found or {}).get("ServerlessCaches", [])
    return caches[0] if caches else None


def _cache_outputs(cache: dict[str, Any]) -> dict[str, Any]:
    endpoint = cache.get("Endpoint") or {}
    url = f"rediss://{endpoint['Address']}:{endpoint.get('Port', 6379)}/0" if endpoint.get("Address") else ""
    return {"arn": cache.get("ARN", ""), "url": url}


def _cache_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    net = recorded_network(ctx.state)
    if net is None:
        raise ProviderError("internal error: the cache's network is not recorded")
    cache = _describe_cache(ctx, p["name"])
    if cache is None:
        cache = ctx.call(
            "elasticache",
            "create_serverless_cache",
            ServerlessCacheName=p["name"],
            Engine=p["engine"],
            Description=f"sls-py cache {res.name!r} of {ctx.names.spec.app} ({ctx.names.spec.stage})",
            SecurityGroupIds=[net.outputs["services_group"]],
            SubnetIds=list(net.outputs["subnet_ids"]),
            Tags=ctx.tag_list(p["tags"]),
        )["ServerlessCache"]
    state: dict[str, Any] = {"cache": cache}

    def available() -> bool:
        if str(state["cache"].get("Status", "")).lower() == "available":
            return True
        found = _describe_cache(ctx, p["name"])
        if found is None:
            raise ProviderError(f"ElastiCache cache {p['name']} disappeared while it was created")
        state["cache"] = found
        return str(found.get("Status", "")).lower() == "available"

    _poll(available, CACHE_WAIT_S, f"ElastiCache cache {p['name']} to become available (a few minutes)", ctx)
    return _cache_outputs(state["cache"])


def _cache_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    if set(changes) - {"tags"}:
        raise ProviderError(
            f"cache {res.name!r}: {', '.join(sorted(set(changes) - {'tags'}))} cannot change in place",
            hint="remove the stage and deploy it again, or undo the change",
        )
    ctx.call(
        "elasticache",
        "add_tags_to_resource",
        ResourceName=entry.outputs["arn"],
        Tags=ctx.tag_list(res.props["tags"]),
    )
    return {}


def _cache_delete(ctx: Ctx, entry: Entry) -> None:
    name = entry.props["name"]
    cache = _describe_cache(ctx, name)
    if cache is None:
        return
    if str(cache.get("Status", "")).lower() != "deleting":
        ctx.tolerate(
            {"ServerlessCacheNotFoundFault"},
            "elasticache",
            "delete_serverless_cache",
            ServerlessCacheName=name,
        )
    _poll(
        lambda: _describe_cache(ctx, name) is None,
        CACHE_WAIT_S,
        f"ElastiCache cache {name} to be deleted",
        ctx,
    )


handles("network", _network_create, _network_update, _network_delete)
handles("cache", _cache_create, _cache_update, _cache_delete)


# --- the VPC part of a function's configuration -----------------------------------------


def function_network(ctx: Ctx, p: dict[str, Any], *, leaving: bool = False) -> dict[str, Any]:
    """Extra ``create_function``/``update_function_configuration`` parameters: the
    VPC config and ``SLS_PY_CACHES`` when the function uses the stage's network;
    an empty VPC config when it is ``leaving`` it."""
    if not p.get("vpc"):
        return {"VpcConfig": {"SubnetIds": [], "SecurityGroupIds": []}} if leaving else {}
    net = recorded_network(ctx.state)
    if net is None:
        raise ProviderError("internal error: the function's network is not recorded")
    variables = {
        **p["environment"],
        CACHES_ENV: json.dumps(cache_urls(ctx.state), sort_keys=True, separators=(",", ":")),
    }
    return {
        "VpcConfig": {
            "SubnetIds": list(net.outputs["subnet_ids"]),
            "SecurityGroupIds": [net.outputs["function_group"]],
        },
        "Environment": {"Variables": variables},
    }
