"""Unit tests of the template generator (no network): every model kind has a
template entry, and for any account and region the template's names, ARNs,
policy and environments are the ones ``deploy`` computes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aws_package_support import everything_project
from sls_py.config import load_project
from sls_py.errors import ProviderError
from sls_py_aws.artifacts import symbolic_desired
from sls_py_aws.environment import lambda_environment
from sls_py_aws.iam import role_policy
from sls_py_aws.model import KINDS, Names, Resource, Target, desired_resources, physical_names
from sls_py_aws.package import build_package
from sls_py_aws.template import EMITTERS, NOT_IN_TEMPLATE, template

ACCOUNT, REGION = "210987654321", "eu-west-1"


def test_every_kind_of_the_model_has_a_template_entry() -> None:
    assert set(EMITTERS) | set(NOT_IN_TEMPLATE) == set(KINDS)
    assert not set(EMITTERS) & set(NOT_IN_TEMPLATE)


def test_a_kind_without_an_entry_is_refused_not_left_out(tmp_path: Path) -> None:
    proj = load_project(everything_project(tmp_path / "p"))
    spec = proj.spec("dev")
    with pytest.raises(ProviderError, match="resource kind 'gadget' has no CloudFormation template entry"):
        template(spec, [Resource("gadget", "c", {})], "code.zip")


def _resolve(value: Any, params: dict[str, str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"}:
            return re.sub(
                r"\$\{(!?)([^}]*)\}",
                lambda m: "${" + m[2] + "}" if m[1] else params.get(m[2], "${" + m[2] + "}"),
                value["Fn::Sub"],
            )
        return {k: _resolve(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, params) for v in value]
    return value


@pytest.fixture
def spec_and_zip(tmp_path: Path) -> tuple[Any, Any]:
    proj = load_project(everything_project(tmp_path / "p"))
    spec = proj.spec("dev")
    return spec, build_package(spec, proj, include_dependencies=False)


def test_names_policy_and_environments_are_the_deploys_for_any_account(spec_and_zip: tuple[Any, Any]) -> None:
    spec, pkg = spec_and_zip
    doc = template(spec, symbolic_desired(spec, pkg), "code.zip")
    params = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "EnvPkgappToken": "tok"}
    resources = _resolve(doc["Resources"], params)
    names = Names(spec, ACCOUNT, REGION)
    envs = {
        fn.name: lambda_environment(spec, fn, names=physical_names(names), environ={"PKGAPP_TOKEN": "tok"})
        for fn in spec.functions
    }
    desired = desired_resources(spec, Target(ACCOUNT, REGION), envs)

    def props(cfn_type: str) -> list[dict[str, Any]]:
        return [r["Properties"] for r in resources.values() if r["Type"] == cfn_type]

    (role,) = props("AWS::IAM::Role")
    assert role["RoleName"] == names.role
    assert role["Policies"] == [{"PolicyName": "sls-py", "PolicyDocument": role_policy(spec, names)}]
    functions = {p["FunctionName"]: p for p in props("AWS::Lambda::Function")}
    for res in (r for r in desired if r.kind == "function"):
        fn = functions[res.props["name"]]
        assert fn["Environment"]["Variables"] == res.props["environment"]
        assert (fn["MemorySize"], fn["Timeout"], fn.get("ReservedConcurrentExecutions")) == (
            res.props["memory_mb"],
            res.props["timeout_s"],
            res.props["concurrency"],
        )
    assert [p["BucketName"] for p in props("AWS::S3::Bucket")] == [names.bucket("inbox")]
    assert [p["TableName"] for p in props("AWS::DynamoDB::Table")] == [names.table("items")]
    assert sorted(p["QueueName"] for p in props("AWS::SQS::Queue")) == sorted(
        [names.queue("jobs"), names.dlq("jobs"), names.async_dlq("nightly")]
    )
    assert [p["Name"] for p in props("AWS::Events::Rule")] == [names.rule("nightly")]
    sources = sorted(
        p["SourceArn"] for p in props("AWS::Lambda::Permission") if isinstance(p["SourceArn"], str)
    )
    assert sources == sorted(
        [
            f"arn:aws:s3:::{names.bucket('inbox')}",
            names.rule_arn("nightly"),
            f"arn:aws:execute-api:{REGION}:{ACCOUNT}:${{ApiPkgappDev}}/*",  # the API's id, from the stack
        ]
    )


def test_a_long_bucket_name_is_a_parameter(tmp_path: Path) -> None:
    source = (
        "from sls_py import App, upload\n\napp = App('pkgapp')\n"
        "b = app.bucket('a-rather-long-bucket-name-for-this-test-x')\n\n"
        "@app.function(name='f', triggers=[upload('a-rather-long-bucket-name-for-this-test-x')])\n"
        "def f(event, ctx):\n    return None\n"
    )
    proj = load_project(everything_project(tmp_path / "p", source=source))
    spec = proj.spec("dev")
    pkg = build_package(spec, proj, include_dependencies=False)
    doc = template(spec, symbolic_desired(spec, pkg), "code.zip")
    assert "BucketNameARatherLongBucketNameForThisTestX" in doc["Parameters"]
    deployed = Names(spec, ACCOUNT, REGION).bucket("a-rather-long-bucket-name-for-this-test-x")
    params = {
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": REGION,
        "BucketNameARatherLongBucketNameForThisTestX": deployed,
    }
    resources = _resolve(doc["Resources"], params)
    (bucket,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::S3::Bucket"]
    assert bucket["BucketName"] == deployed and len(deployed) <= 63
    (perm,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert perm["SourceArn"] == f"arn:aws:s3:::{deployed}"


def test_the_yaml_reads_back_as_the_same_data() -> None:
    import yaml
    from sls_py_aws.artifacts import _yaml as to_yaml

    value = {
        "Fn::Sub": "a ${!literal} and ${AWS::Region}",
        "ON": "yes",
        "200": ["no", 1, 2.5, True, None, {}, [], "line\nbreak", 'quote " and \\ slash'],
        "application/json": {"nested": [{"a": "b", "c": [1]}, [["deep"]]]},
        "method.response.header.Access-Control-Allow-Origin": "'*'",
        "unicode": "héllo ✓",
    }
    assert yaml.safe_load(to_yaml(value)) == value
