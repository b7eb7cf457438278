"""Units of the AWS cache support. Where moto cannot answer as AWS does (it has
no ElastiCache Serverless, a cache is never ``creating`` for minutes, and
Lambda leaves no network interfaces behind), botocore's Stubber plays AWS with
answers in the shapes of botocore's own model."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from sls_py import App
from sls_py.config import build_spec, load_project
from sls_py.errors import ConfigError
from sls_py.ui import PlainUI
from sls_py_aws import handlers_cache
from sls_py_aws.cloud import Cloud
from sls_py_aws.executor import Ctx
from sls_py_aws.model import Names
from sls_py_aws.network import network_resources, network_settings, serverless_cache_name
from sls_py_aws.package import with_cache_client
from sls_py_aws.state import Entry, State

REGION = "us-east-1"
NAME = "shop-dev-sessions"


def stubbed(*services: str) -> tuple[Cloud, dict[str, Stubber]]:
    import boto3

    cloud = Cloud(region=REGION)
    stubs = {}
    for service in services:
        client = boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
        cloud._clients[service] = client
        stubs[service] = Stubber(client)
    return cloud, stubs


def spec_of(tmp_path: Path, aws: str = "") -> Any:
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.sls-py]\napp = "a:app"\n\n[tool.sls-py.providers.aws]\n{aws}'
    )
    app = App("shop")
    app.cache("sessions")
    return build_spec(load_project(tmp_path), app, "dev")


def cache(status: str) -> dict[str, Any]:
    return {
        "ServerlessCacheName": NAME,
        "Status": status,
        "ARN": f"arn:aws:elasticache:{REGION}:123456789012:serverlesscache:{NAME}",
        "Endpoint": {"Address": f"{NAME}-x1y2.serverless.use1.cache.amazonaws.com", "Port": 6379},
    }


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    calls: list[float] = []
    monkeypatch.setattr(handlers_cache, "_sleep", calls.append)
    return calls


def test_a_new_cache_is_waited_for_until_available(tmp_path: Path, slept: list[float]) -> None:
    cloud, stubs = stubbed("elasticache")
    stub = stubs["elasticache"]
    by_name = {"ServerlessCacheName": NAME}
    stub.add_client_error(
        "describe_serverless_caches", "ServerlessCacheNotFoundFault", expected_params=by_name
    )
    stub.add_response(
        "create_serverless_cache",
        {"ServerlessCache": cache("creating")},
        {
            "ServerlessCacheName": NAME,
            "Engine": "valkey",
            "Description": "sls-py cache 'sessions' of shop (dev)",
            "SecurityGroupIds": ["sg-services"],
            "SubnetIds": ["subnet-a", "subnet-b"],
            "Tags": [{"Key": "sls-py:app", "Value": "shop"}, {"Key": "sls-py:stage", "Value": "dev"}],
        },
    )
    stub.add_response("describe_serverless_caches", {"ServerlessCaches": [cache("creating")]}, by_name)
    stub.add_response("describe_serverless_caches", {"ServerlessCaches": [cache("available")]}, by_name)
    spec = spec_of(tmp_path)
    state = State(path=tmp_path / "s.json", app="shop", stage="dev")
    state.entries["network:shop-dev-net"] = Entry(
        "network",
        "shop-dev-net",
        {},
        {"subnet_ids": ["subnet-a", "subnet-b"], "services_group": "sg-services", "function_group": "sg-fn"},
    )
    out = io.StringIO()
    ctx = Ctx(cloud=cloud, names=Names(spec, "123456789012", REGION), state=state, ui=PlainUI(out))
    res = network_resources(spec, ctx.names)[1]
    with stub:
        outputs = handlers_cache._cache_create(ctx, res)
    stub.assert_no_pending_responses()
    assert outputs == {
        "arn": cache("available")["ARN"],
        "url": f"rediss://{NAME}-x1y2.serverless.use1.cache.amazonaws.com:6379/0",
    }
    assert slept == [5.0]
    assert out.getvalue().count("waiting for ElastiCache cache shop-dev-sessions to become available") == 1


def test_removing_waits_for_the_cache_and_for_lambdas_network_interfaces(
    tmp_path: Path, slept: list[float]
) -> None:
    cloud, stubs = stubbed("elasticache", "ec2")
    ec, ec2 = stubs["elasticache"], stubs["ec2"]
    by_name = {"ServerlessCacheName": NAME}
    ec.add_response("describe_serverless_caches", {"ServerlessCaches": [cache("available")]}, by_name)
    ec.add_response("delete_serverless_cache", {"ServerlessCache": cache("deleting")}, by_name)
    ec.add_response("describe_serverless_caches", {"ServerlessCaches": [cache("deleting")]}, by_name)
    ec.add_client_error("describe_serverless_caches", "ServerlessCacheNotFoundFault", expected_params=by_name)
    # Lambda still holds interfaces in the function group: AWS refuses twice, then deletes
    ec2.add_response("delete_security_group", {}, {"GroupId": "sg-services"})
    for _ in range(2):
        ec2.add_client_error(
            "delete_security_group", "DependencyViolation", expected_params={"GroupId": "sg-fn"}
        )
    ec2.add_response("delete_security_group", {}, {"GroupId": "sg-fn"})
    for subnet in ("subnet-a", "subnet-b"):
        ec2.add_response("delete_subnet", {}, {"SubnetId": subnet})
    ec2.add_response("delete_vpc", {}, {"VpcId": "vpc-1"})
    out = io.StringIO()
    ctx = Ctx(cloud=cloud, names=None, state=None, ui=PlainUI(out))  # type: ignore[arg-type]
    with ec, ec2:
        handlers_cache._cache_delete(ctx, Entry("cache", "sessions", {"name": NAME}))
        handlers_cache._network_delete(
            ctx,
            Entry(
                "network",
                "shop-dev-net",
                {},
                {
                    "vpc_id": "vpc-1",
                    "own_vpc": True,
                    "subnet_ids": ["subnet-a", "subnet-b"],
                    "function_group": "sg-fn",
                    "services_group": "sg-services",
                    "endpoints": {},
                },
            ),
        )
    ec.assert_no_pending_responses()
    ec2.assert_no_pending_responses()
    assert slept == [5.0, 5.0, 5.0]  # once for the cache, twice for the interfaces
    text = out.getvalue()
    assert text.count("waiting for ElastiCache cache shop-dev-sessions to be deleted") == 1
    assert text.count("waiting for AWS to release the network interfaces in security group sg-fn") == 1


def test_network_settings_are_checked(tmp_path: Path) -> None:
    assert network_settings(spec_of(tmp_path)) == {"vpc": None, "subnets": None}
    given = spec_of(tmp_path, 'vpc = "vpc-1"\nsubnets = ["subnet-b", "subnet-a"]\n')
    assert network_settings(given) == {"vpc": "vpc-1", "subnets": ["subnet-a", "subnet-b"]}
    with pytest.raises(ConfigError, match="vpc needs subnets"):
        network_settings(spec_of(tmp_path, 'vpc = "vpc-1"\n'))
    with pytest.raises(ConfigError, match="is not a VPC id"):
        network_settings(spec_of(tmp_path, 'vpc = "my-vpc"\nsubnets = ["subnet-a", "subnet-b"]\n'))


def test_cache_names_fit_elasticache() -> None:
    assert serverless_cache_name("shop-dev-sessions") == "shop-dev-sessions"
    long = serverless_cache_name("a-very-long-application-name-production-sessions")
    assert len(long) == 40 and long.startswith("a-very-long-application-name-pr")
    assert long != serverless_cache_name("a-very-long-application-name-production-sessionz")


def test_the_package_gets_the_cache_client_only_with_a_cache(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    assert with_cache_client(spec, ["pydantic>=2"]) == ["pydantic>=2", "valkey>=6.0"]
    assert with_cache_client(spec, ["redis==5.0.1"]) == ["redis==5.0.1"]  # the app's own pin
    assert with_cache_client(spec.model_copy(update={"caches": []}), ["pydantic>=2"]) == ["pydantic>=2"]
