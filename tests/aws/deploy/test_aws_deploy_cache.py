"""Caches on AWS against the moto server over HTTP, checked through AWS read
APIs: a cache added to a deployed app brings the VPC, the ElastiCache
Serverless cache and the functions' VPC config; dropping it takes them away
again; a VPC named in config is used and left alone on remove. moto has no
ElastiCache Serverless: tests/support/moto_serverless.py adds it to the moto
server (what it checks is said there); the waiting is covered with botocore's
Stubber in test_aws_cache_units.py."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aws_deploy_support import Moto, empty_snapshot, mutating, snapshot
from sls_py.config import load_project
from sls_py.ui import PlainUI
from sls_py_aws import deploy as engine

pytestmark = pytest.mark.slow

APP = """
from sls_py import App

app = App("cacheapp")
hits = app.cache("hits") if WITH_CACHE else None
files = app.bucket("files")


@app.function(name="count")
def count(payload: dict) -> dict:
    return {"n": hits.incr("n") if hits else 0}
"""


def write_app(root: Path, with_cache: bool, aws: str = "") -> None:
    pkg = root / "cacheapp_code"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(APP.replace("WITH_CACHE", str(with_cache)))
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""
        [tool.sls-py]
        app = "cacheapp_code.app:app"

        [tool.sls-py.providers.aws]
        include_dependencies = false
        """)
        + aws
    )
    for name in [m for m in sys.modules if m.startswith("cacheapp_code")]:
        del sys.modules[name]


def steps(plan: Any) -> list[tuple[str, str, str, str]]:
    return [(s.action, s.kind, s.name, s.reason) for s in plan.steps]


def deploy(root: Path, stage: str) -> list[tuple[str, str, str, str]]:
    project = load_project(root)
    spec = project.spec(stage)
    result = engine.deploy(spec, project, engine.make_cloud(spec), PlainUI(quiet=True))
    return [(s.action, s.kind, s.name, s.reason) for s in result.applied]


def plan(root: Path, stage: str) -> list[tuple[str, str, str, str]]:
    project = load_project(root)
    spec = project.spec(stage)
    return steps(engine.plan(spec, project, engine.make_cloud(spec)))


def function_vpc(moto: Moto, stage: str) -> tuple[list[str], dict[str, str]]:
    cfg = moto.client("lambda").get_function_configuration(FunctionName=f"cacheapp-{stage}-count")
    env = cfg["Environment"]["Variables"]
    return (cfg.get("VpcConfig") or {}).get("SubnetIds", []), json.loads(env.get("SLS_PY_CACHES", "{}"))


def test_adding_then_dropping_a_cache(aws_env: Moto, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    write_app(root, with_cache=False)
    deploy(root, "dev")
    assert function_vpc(aws_env, "dev") == ([], {})
    assert snapshot(aws_env, "cacheapp", "dev")["vpcs"] == {}

    write_app(root, with_cache=True)
    cost = (
        "new; costs money while idle: ElastiCache Serverless for Valkey bills at least 100 MB "
        "of data stored (about $6/month in us-east-1) plus the ECPUs used"
    )
    assert plan(root, "dev") == [
        ("update", "role", "cacheapp-dev-lambda", "policy changed"),
        ("create", "network", "cacheapp-dev-net", "new"),
        ("create", "cache", "hits", cost),
        ("update", "function", "count", "code, vpc changed"),
    ]
    deploy(root, "dev")
    subnets, caches = function_vpc(aws_env, "dev")
    snap = snapshot(aws_env, "cacheapp", "dev")
    assert len(subnets) == 2 and set(snap["subnets"]) == {
        "cacheapp-dev-net-private-1",
        "cacheapp-dev-net-private-2",
    }
    endpoint = snap["caches"]["cacheapp-dev-hits"]["endpoint"]["Address"]
    assert caches == {"hits": f"rediss://{endpoint}:6379/0"}
    assert [e["service"] for e in snap["vpc_endpoints"]] == ["com.amazonaws.us-east-1.s3"]
    assert plan(root, "dev") == []  # the filled-in SLS_PY_CACHES compares equal

    write_app(root, with_cache=False)
    assert plan(root, "dev") == [
        ("delete", "cache", "hits", "no longer in the app"),
        ("delete", "network", "cacheapp-dev-net", "no longer in the app"),
        ("update", "role", "cacheapp-dev-lambda", "policy changed"),
        ("update", "function", "count", "code, vpc, caches changed"),
    ]
    deploy(root, "dev")
    assert function_vpc(aws_env, "dev") == ([], {})
    snap = snapshot(aws_env, "cacheapp", "dev")
    assert {k: snap[k] for k in ("vpcs", "subnets", "security_groups", "vpc_endpoints", "caches")} == {
        k: empty_snapshot()[k] for k in ("vpcs", "subnets", "security_groups", "vpc_endpoints", "caches")
    }
    policy = aws_env.client("iam").get_role_policy(RoleName="cacheapp-dev-lambda", PolicyName="sls-py")
    assert "ec2:" not in json.dumps(policy["PolicyDocument"])  # VPC permissions only with a cache


def test_a_vpc_named_in_config_is_used_and_left_alone(aws_env: Moto, tmp_path: Path) -> None:
    ec2 = aws_env.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = sorted(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"][
            "SubnetId"
        ]
        for i, z in enumerate("ab")
    )
    root = tmp_path / "proj"
    write_app(root, with_cache=True, aws=f'vpc = "{vpc}"\nsubnets = {json.dumps(subnets)}\n')
    deploy(root, "byo")
    assert sorted(function_vpc(aws_env, "byo")[0]) == subnets
    snap = snapshot(aws_env, "cacheapp", "byo")
    assert snap["vpcs"] == {} and snap["subnets"] == {}  # none of ours: the given ones
    assert {g["vpc"] for g in snap["security_groups"].values()} == {"<vpc-0>"}
    assert sorted(snap["caches"]["cacheapp-byo-hits"]["subnets"]) == ["<subnet-0>", "<subnet-1>"]

    aws_env.start_recording()
    assert deploy(root, "byo") == []
    assert mutating(aws_env.stop_recording()) == []

    project = load_project(root)
    spec = project.spec("byo")
    engine.remove(spec, project, engine.make_cloud(spec), PlainUI(quiet=True))
    assert snapshot(aws_env, "cacheapp", "byo") == empty_snapshot()
    left = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    assert sorted(s["SubnetId"] for s in left) == subnets  # the user's VPC is untouched
