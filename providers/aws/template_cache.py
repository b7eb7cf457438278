"""Template entries of ``app.cache``: the stage's network and its ElastiCache
Serverless caches, and the VPC part of every function (the same names and
settings as :mod:`sls_py_aws.handlers_cache`).

Two differences from ``deploy``, said here: the template gives the private
subnets a route table of their own for the S3/DynamoDB gateway endpoints
(deploy uses the VPC's main table, which a template cannot name), and its
subnets take the region's first two zones through ``Fn::GetAZs``.
"""

from __future__ import annotations

from typing import Any

from .model import Resource
from .network import CACHE_PORTS, CACHES_ENV, INTERFACE_ENDPOINTS, SUBNET_CIDRS
from .template import EMITTERS, Template, emits


def _network_ids(t: Template, name: str, p: dict[str, Any]) -> tuple[Any, list[Any]]:
    if p["vpc"]:
        return p["vpc"], list(p["subnets"])
    return t.ref("vpc", name), [t.ref("subnet", name, f"Private{i + 1}") for i in range(len(SUBNET_CIDRS))]


@emits("network")
def _network(t: Template, r: Resource) -> None:
    p = r.props
    tags = p["tags"]
    if not p["vpc"]:
        t.add(
            "vpc",
            r.name,
            "AWS::EC2::VPC",
            {
                "CidrBlock": p["cidr"],
                "EnableDnsSupport": True,
                "EnableDnsHostnames": True,
                "Tags": t.tags({**tags, "Name": p["name"]}),
            },
        )
        t.add("route-table", r.name, "AWS::EC2::RouteTable", {"VpcId": t.ref("vpc", r.name)})
        for i, cidr in enumerate(SUBNET_CIDRS):
            suffix = f"Private{i + 1}"
            t.add(
                "subnet",
                r.name,
                "AWS::EC2::Subnet",
                {
                    "VpcId": t.ref("vpc", r.name),
                    "CidrBlock": cidr,
                    "AvailabilityZone": {"Fn::Select": [i, {"Fn::GetAZs": ""}]},
                    "Tags": t.tags({**tags, "Name": f"{p['name']}-private-{i + 1}"}),
                },
                suffix=suffix,
            )
            t.add(
                "subnet-routes",
                r.name,
                "AWS::EC2::SubnetRouteTableAssociation",
                {"SubnetId": t.ref("subnet", r.name, suffix), "RouteTableId": t.ref("route-table", r.name)},
                suffix=suffix,
            )
    vpc, subnets = _network_ids(t, r.name, p)
    t.add(
        "security-group",
        r.name,
        "AWS::EC2::SecurityGroup",
        {
            "GroupName": f"{p['name']}-function",
            "GroupDescription": "sls-py: the functions of the stage (no ingress)",
            "VpcId": vpc,
            "Tags": t.tags(tags),
        },
        suffix="Function",
    )
    function_group = t.ref("security-group", r.name, "Function")
    t.add(
        "security-group",
        r.name,
        "AWS::EC2::SecurityGroup",
        {
            "GroupName": f"{p['name']}-services",
            "GroupDescription": "sls-py: caches and endpoints, from the functions only",
            "VpcId": vpc,
            "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": lo, "ToPort": hi, "SourceSecurityGroupId": function_group}
                for lo, hi in ((CACHE_PORTS[0], CACHE_PORTS[-1]), (443, 443))
            ],
            "Tags": t.tags(tags),
        },
        suffix="Services",
    )
    for service in p["endpoints"]:
        props: dict[str, Any] = {
            "VpcId": vpc,
            "ServiceName": {"Fn::Sub": f"com.amazonaws.${{AWS::Region}}.{service}"},
        }
        if service in INTERFACE_ENDPOINTS:
            props.update(
                VpcEndpointType="Interface",
                SubnetIds=subnets,
                SecurityGroupIds=[t.ref("security-group", r.name, "Services")],
                PrivateDnsEnabled=True,
            )
        elif not p["vpc"]:
            props.update(VpcEndpointType="Gateway", RouteTableIds=[t.ref("route-table", r.name)])
        else:
            continue  # a given VPC's route tables are its owner's: no gateway endpoint
        suffix = "".join(w.capitalize() for w in service.split("-"))  # rds-data: RdsData
        t.add("vpc-endpoint", r.name, "AWS::EC2::VPCEndpoint", props, suffix=suffix)


@emits("cache")
def _cache(t: Template, r: Resource) -> None:
    p = r.props
    net = p["network"]
    network = _network_props(t)
    _vpc, subnets = _network_ids(t, net, network)
    t.add(
        "cache",
        r.name,
        "AWS::ElastiCache::ServerlessCache",
        {
            "ServerlessCacheName": p["name"],
            "Engine": p["engine"],
            "SecurityGroupIds": [t.ref("security-group", net, "Services")],
            "SubnetIds": subnets,
            "Tags": t.tags(p["tags"]),
        },
    )


def _network_props(t: Template) -> dict[str, Any]:
    from .network import network_settings

    conf = network_settings(t.spec)
    return {"vpc": conf["vpc"], "subnets": conf["subnets"]}


_plain_function = EMITTERS["function"]


@emits("function")
def _function(t: Template, r: Resource) -> None:
    """The function's entry, plus its VPC config and ``SLS_PY_CACHES`` with a cache."""
    _plain_function(t, r)
    if not r.props.get("vpc"):
        return
    from .network import network_name

    net = network_name(t.spec)
    _vpc, subnets = _network_ids(t, net, _network_props(t))
    props = t.resources[t.id("function", r.name)]["Properties"]
    props["VpcConfig"] = {
        "SubnetIds": subnets,
        "SecurityGroupIds": [t.ref("security-group", net, "Function")],
    }
    urls = ",".join(
        f'"{c.name}":"rediss://${{{t.id("cache", c.name)}.Endpoint.Address}}:'
        f'${{{t.id("cache", c.name)}.Endpoint.Port}}/0"'
        for c in sorted(t.spec.caches, key=lambda c: c.name)
    )
    props["Environment"]["Variables"][CACHES_ENV] = {"Fn::Sub": "{" + urls + "}"}
