"""Config and secrets on AWS: ``sls-py config ... --provider aws`` against a moto
server over HTTP, checked through SSM's and IAM's read APIs; plan, apply, a
no-op redeploy (0 mutating calls) and remove (config kept unless
``--purge-config``). The function side (``AwsConfig``) reads moto's SSM too.

One check needs what moto does not do: moto enforces no IAM or KMS policy, so
an AWS refusal to decrypt is played with botocore's Stubber
(:func:`test_a_refused_decrypt_is_one_clear_error`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_deploy_support import ACCOUNT, REGION, Moto, cli, copy_app, mutating

pytestmark = pytest.mark.slow

SECRET = "s3cret-magic"


def _args(project: Path, stage: str = "prod") -> list[str]:
    return ["--provider", "aws", "--project", str(project), "--stage", stage]


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def sls(moto: Moto, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``sls-py ARGS`` in this process, pointed at moto (a subprocess per call costs
    ~1 s here; ``cli`` runs the real console script where it matters)."""
    from sls_py import cli as cli_module
    from sls_py import session as session_module

    for name in [n for n in __import__("os").environ if n.startswith(("AWS_", "SLS_PY_"))]:
        monkeypatch.delenv(name)
    for name, value in moto.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli_module, "_state", {})
    monkeypatch.setattr(session_module, "_state", {})  # the installed plugins, loaded afresh

    def run(argv: list[str], env: Any = None) -> Result:
        capsys.readouterr()
        code = cli_module.main(argv)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def _ok(r: Any) -> Any:
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r


def _parameters(moto: Moto, path: str) -> dict[str, tuple[str, str]]:
    """``name -> (type, decrypted value)`` of the parameters under ``path``, read from SSM."""
    ssm = moto.client("ssm")
    found = ssm.get_parameters_by_path(Path=path, WithDecryption=True)["Parameters"]
    return {p["Name"]: (p["Type"], p["Value"]) for p in found}


def test_config_lifecycle_on_ssm(moto: Moto, tmp_path: Path, sls: Any) -> None:
    project = copy_app(tmp_path)
    env = moto.env()
    args = _args(project)

    r = _ok(cli(["config", "set", "magic-word", SECRET, "--secret", *args], env))  # the real CLI
    assert SECRET not in r.stdout + r.stderr
    _ok(sls(["config", "set", "greeting", "hello prod", *args], env))
    assert _parameters(moto, "/clonezero/prod") == {
        "/clonezero/prod/magic-word": ("SecureString", SECRET),
        "/clonezero/prod/greeting": ("String", "hello prod"),
    }
    ssm = moto.client("ssm")
    described = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": ["/clonezero/prod/magic-word"]}]
    )["Parameters"][0]
    assert described.get("KeyId", "alias/aws/ssm") == "alias/aws/ssm"  # the AWS-managed key
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/clonezero/prod/magic-word")
    assert {t["Key"]: t["Value"] for t in tags["TagList"]} == {
        "sls-py:app": "clonezero",
        "sls-py:stage": "prod",
    }
    assert _parameters(moto, "/clonezero/dev") == {}  # stages never share config

    # reading: secrets masked unless revealed
    r = _ok(sls(["config", "list", *args], env))
    assert r.stdout.splitlines() == ["greeting\thello prod", "magic-word\t********\t(secret)"]
    r = sls(["config", "get", "magic-word", *args], env)
    assert (r.returncode, r.stderr.splitlines()[0]) == (
        2,
        "error: config key 'magic-word' of stage 'prod' is a secret",
    )
    assert _ok(sls(["config", "get", "magic-word", "--reveal", *args], env)).stdout == SECRET + "\n"

    # the same value again changes nothing; a secret stays a secret
    moto.start_recording()
    _ok(sls(["config", "set", "magic-word", SECRET, "--secret", *args], env))
    assert mutating(moto.stop_recording()) == []
    r = sls(["config", "set", "magic-word", "plain now", *args], env)
    assert (r.returncode, r.stderr.splitlines()[0]) == (
        2,
        "error: config key 'magic-word' of stage 'prod' is a secret",
    )
    r = sls(["config", "set", "big", "x" * 5000, *args], env)
    assert (r.returncode, r.stderr.splitlines()[0]) == (
        2,
        "error: config value for 'big' is 5000 bytes, over SSM Parameter Store's 4096 bytes "
        "(Standard tier)",
    )

    # deploy: the role may read this stage's path and nothing else; no secret anywhere
    r = _ok(sls(["plan", "--json", *args], env))
    assert SECRET not in r.stdout
    _ok(sls(["deploy", *args], env))
    policy = moto.client("iam").get_role_policy(RoleName="clonezero-prod-lambda", PolicyName="sls-py")
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["ConfigRead"] == {
        "Sid": "ConfigRead",
        "Effect": "Allow",
        "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
        "Resource": [
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/clonezero/prod",
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/clonezero/prod/*",
        ],
    }
    assert not [s for s in statements.values() if any(a.startswith("kms:") for a in s["Action"])]
    function = moto.client("lambda").get_function_configuration(FunctionName="clonezero-prod-work-magic")
    resources = json.loads(function["Environment"]["Variables"]["SLS_PY_RESOURCES"])
    assert (resources["configs"], resources["config_defaults"]) == (
        {"settings": "/clonezero/prod/"},
        {},
    )
    state = (project / ".sls-py" / "state" / "aws" / "prod.json").read_text()
    spec = _ok(sls(["spec", "--project", str(project), "--stage", "prod"], env)).stdout
    assert SECRET not in state + spec + json.dumps(function)

    # a config change needs no deploy: the redeploy makes no mutating call
    _ok(sls(["config", "set", "greeting", "hello again", *args], env))
    assert json.loads(_ok(sls(["plan", "--json", *args], env)).stdout) == {"steps": []}
    moto.start_recording()
    _ok(sls(["deploy", *args], env))
    assert mutating(moto.stop_recording()) == []

    # what the function reads: the AwsDriver's config, through boto3, against moto
    from sls_py_aws.resources import AwsDriver

    driver = AwsDriver(region=REGION, endpoint_url=moto.endpoint)
    assert driver.config("settings", "/clonezero/prod/").read() == {
        "greeting": "hello again",
        "magic-word": SECRET,
    }

    # remove keeps config; --purge-config deletes it
    r = _ok(sls(["remove", *args], env))
    assert "kept 2 config key(s) of stage prod (greeting, magic-word)" in r.stderr
    assert len(_parameters(moto, "/clonezero/prod")) == 2
    r = _ok(sls(["remove", "--purge-config", "--json", *args], env))
    assert json.loads(r.stdout)["config_deleted"] == ["greeting", "magic-word"]
    assert _parameters(moto, "/clonezero/prod") == {}


def test_unset_and_missing_keys(moto: Moto, tmp_path: Path, sls: Any) -> None:
    project = copy_app(tmp_path)
    env = moto.env()
    args = _args(project, "staging")
    _ok(sls(["config", "set", "a", "1", *args], env))
    _ok(sls(["config", "unset", "a", *args], env))
    assert _parameters(moto, "/clonezero/staging") == {}
    r = sls(["config", "unset", "a", *args], env)
    assert (r.returncode, r.stderr.splitlines()) == (
        2,
        ["error: config key 'a' is not set for stage 'staging'", "hint: keys set for stage staging: none"],
    )
    r = sls(["config", "get", "magic-word", *args], env)
    assert r.stderr.splitlines() == [
        "error: config key 'magic-word' is not set for stage 'staging'",
        "hint: set it with `sls-py config set magic-word VALUE --stage staging`",
    ]


def test_a_refused_decrypt_is_one_clear_error() -> None:
    """moto enforces no KMS or IAM policy, so AWS's refusal is played with Stubber."""
    import boto3
    from aws_deploy_support import EXAMPLE_APP
    from botocore.stub import Stubber
    from sls_py.config import load_project
    from sls_py.errors import ProviderError
    from sls_py_aws.cloud import Cloud
    from sls_py_aws.config_store import get_entries

    spec = load_project(EXAMPLE_APP).spec("prod")
    client = boto3.client(
        "ssm", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    cloud = Cloud(region=REGION)
    cloud._clients["ssm"] = client
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_parameters_by_path",
            service_error_code="AccessDeniedException",
            service_message="User is not authorized to perform kms:Decrypt",
            expected_params={"Path": "/clonezero/prod", "Recursive": False, "WithDecryption": True},
        )
        with pytest.raises(ProviderError) as info:
            get_entries(spec, cloud, None, reveal=True)
    assert info.value.message.startswith("AWS denied ssm.get_parameters_by_path:")
    assert info.value.hint == "allow the permission ssm:GetParametersByPath for the credentials in use"
