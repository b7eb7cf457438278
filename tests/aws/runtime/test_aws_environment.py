"""The environment contract as the deployer builds it (sls_py_aws.environment)."""

from __future__ import annotations

import json

import pytest
from aws_runtime_support import WORK_MAGIC
from sls_py.config import load_project
from sls_py.errors import SpecError
from sls_py.spec import FunctionSpec, Spec
from sls_py_aws.environment import lambda_environment


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_project(WORK_MAGIC).spec()


def test_work_magic_environment(spec: Spec) -> None:
    env = lambda_environment(
        spec,
        spec.function("work-magic"),
        names={"buckets": {"uploads": "clonezero-dev-uploads-1a2b3c"}},
    )
    assert env == {
        "SLS_PY_APP": "work_magic.app:app",
        "SLS_PY_FUNCTION": "work-magic",
        "SLS_PY_STAGE": "dev",
        "SLS_PY_RESOURCES": json.dumps(
            {
                "buckets": {
                    "reports": "clonezero-dev-reports",
                    "uploads": "clonezero-dev-uploads-1a2b3c",
                },
                "config_defaults": {"magic-word": "clonezero-token"},
                "configs": {"settings": "/clonezero/dev/"},
                "databases": {"catalog": "clonezero-dev-catalog"},
                "driver": "sls_py_aws.resources:AwsDriver",
                "options": {},
                "queues": {},
                "tables": {"sls-py-fanout": "clonezero-dev-sls-py-fanout"},
            },
            separators=(",", ":"),
        ),
        "SLS_PY_CORS": json.dumps(
            {
                "POST /work-magic": {
                    "allow_credentials": False,
                    "headers": ["content-type", "x-api-key", "authorization"],
                    "max_age_s": 600,
                    "methods": [],
                    "origins": ["*"],
                }
            },
            separators=(",", ":"),
        ),
    }


def test_secrets_resolve_from_the_deploying_environment(spec: Spec) -> None:
    staging = load_project(WORK_MAGIC).spec("staging")
    fn = staging.function("work-magic").model_copy(
        update={"environment": {"MAGIC_WORD": "${env:CLONEZERO_MAGIC_WORD}"}}
    )
    env = lambda_environment(staging, fn, environ={"CLONEZERO_MAGIC_WORD": "s3cret"})
    assert env["MAGIC_WORD"] == "s3cret"
    resources = json.loads(env["SLS_PY_RESOURCES"])
    assert (resources["tables"], resources["databases"]) == (
        {"sls-py-fanout": "clonezero-staging-sls-py-fanout"},
        {"catalog": "clonezero-staging-catalog"},  # the deployer puts the cluster's ARN here
    )
    # staging has no config defaults: its magic word must be set in SSM
    assert (resources["configs"], resources["config_defaults"]) == (
        {"settings": "/clonezero/staging/"},
        {},
    )


def _with_env(spec: Spec, environment: dict[str, str]) -> FunctionSpec:
    return spec.function("catalog-upload").model_copy(update={"environment": environment})


@pytest.mark.parametrize("key", ["AWS_REGION", "AWS_ACCESS_KEY_ID", "SLS_PY_APP", "_HANDLER"])
def test_reserved_names_are_refused(spec: Spec, key: str) -> None:
    with pytest.raises(SpecError, match=f"environment variable {key} is reserved on AWS Lambda"):
        lambda_environment(spec, _with_env(spec, {key: "x"}))


def test_over_4_kb_is_refused(spec: Spec) -> None:
    with pytest.raises(SpecError, match="over Lambda's limit of 4096 bytes"):
        lambda_environment(spec, _with_env(spec, {"BIG": "x" * 4000}))
