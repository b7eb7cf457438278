"""``app.database`` on AWS, deployed to a moto server over HTTP and read back
through AWS's read APIs: the Aurora Serverless v2 cluster (Data API on), its
db.serverless instance and its Secrets Manager credentials; the plan says what
costs money while idle; a no-op redeploy makes no mutating call; an
interrupted deploy converges; remove leaves nothing.

What moto does not emulate, and is tested elsewhere: moto answers every
``ExecuteStatement`` with no records and does not implement
``BeginTransaction`` (so migrations, which run in transactions, are tested
with botocore's Stubber in test_aws_dataapi.py), and ``HttpEndpointEnabled``
stays false whatever ``EnableHttpEndpoint`` said (the create call is checked
with a botocore hook instead)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aws_deploy_support import Moto, databases, empty_snapshot, snapshot
from sls_py.config import load_project
from sls_py.errors import ProviderError
from sls_py.ui import PlainUI
from sls_py_aws import deploy as engine

pytestmark = pytest.mark.slow

APP = """
from sls_py import App

app = App("dbapp")
orders = app.database("orders")


@app.function(name="noop")
def noop(payload: dict) -> list:
    return orders.query("SELECT 1 AS one")
"""


def write_app(root: Path, settings: str = "") -> None:
    pkg = root / "dbpkg"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(APP)
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""
        [project]
        name = "dbapp"
        version = "0.1.0"

        [tool.sls-py]
        app = "dbpkg.app:app"

        [tool.sls-py.providers.aws]
        include_dependencies = false
    """)
        + settings
    )
    for name in [m for m in sys.modules if m == "dbpkg" or m.startswith("dbpkg.")]:
        del sys.modules[name]


def steps(plan: Any) -> list[tuple[str, str, str, str]]:
    return [(s.action, s.kind, s.name, s.reason) for s in plan.steps]


TAGS = {"sls-py:app": "dbapp", "sls-py:stage": "dev"}


def test_database_plan_apply_noop_update_remove(
    aws_env: Moto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "db-project"
    write_app(root)
    project = load_project(root)
    spec = project.spec("dev")
    cloud = engine.make_cloud(spec)
    ui = PlainUI(quiet=True)
    planned = [s for s in steps(engine.plan(spec, project, cloud)) if s[1].startswith("database")]
    assert planned == [
        ("create", "database-secret", "orders", "new"),
        ("create", "database", "orders", "new"),
        (
            "create",
            "database-instance",
            "orders",
            "new; costs money while idle: Aurora Serverless v2 bills its minimum capacity "
            "(0.5 ACU, about $0.06/hour in us-east-1) around the clock, plus storage",
        ),
    ]

    created: list[dict[str, Any]] = []
    cloud.client("rds").meta.events.register(
        "provide-client-params.rds.CreateDBCluster", lambda params, **kw: created.append(dict(params))
    )
    engine.deploy(spec, project, cloud, ui)
    assert databases(aws_env, "dbapp", "dev") == {
        "clusters": {
            "dbapp-dev-orders": {
                "engine": "aurora-postgresql",
                "database": "orders",
                "scaling": {"MinCapacity": 0.5, "MaxCapacity": 2.0},
                "encrypted": True,
                "members": ["dbapp-dev-orders-1"],
                "tags": TAGS,
            }
        },
        "instances": {"dbapp-dev-orders-1": ("db.serverless", "dbapp-dev-orders")},
        "secrets": {"dbapp-dev-orders-credentials": TAGS},
    }
    assert [(c["EnableHttpEndpoint"], c["MasterUsername"]) for c in created] == [(True, "sls_py")]
    # the generated password: in the secret and given to the cluster, nowhere else
    secret = json.loads(
        aws_env.client("secretsmanager").get_secret_value(SecretId="dbapp-dev-orders-credentials")[
            "SecretString"
        ]
    )
    assert secret["username"] == "sls_py" and len(secret["password"]) == 40
    assert created[0]["MasterUserPassword"] == secret["password"]
    out = capsys.readouterr()
    state_text = engine.state_file(spec, project).read_text()
    assert secret["password"] not in out.out + out.err + state_text

    # the function is pointed at the cluster; the role may call the Data API on it, and
    # read that secret, and nothing else of RDS or Secrets Manager
    fn = aws_env.client("lambda").get_function_configuration(FunctionName="dbapp-dev-noop")
    resources = json.loads(fn["Environment"]["Variables"]["SLS_PY_RESOURCES"])
    cluster_arn = "arn:aws:rds:us-east-1:123456789012:cluster:dbapp-dev-orders"
    assert resources["databases"] == {"orders": cluster_arn}
    policy = aws_env.client("iam").get_role_policy(RoleName="dbapp-dev-lambda", PolicyName="sls-py")
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["DatabaseDataApi"]["Resource"] == [cluster_arn]
    assert statements["DatabaseDataApi"]["Action"] == [
        "rds-data:BatchExecuteStatement",
        "rds-data:BeginTransaction",
        "rds-data:CommitTransaction",
        "rds-data:ExecuteStatement",
        "rds-data:RollbackTransaction",
    ]
    assert statements["DatabaseSecrets"]["Resource"] == [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:dbapp-dev-orders-credentials-??????"
    ]

    # a no-op redeploy: nothing planned, no mutating call
    cloud = engine.make_cloud(spec)
    assert steps(engine.plan(spec, project, cloud)) == []
    result = engine.deploy(spec, project, cloud, ui)
    assert (result.applied, result.outputs["mutating_calls"]) == ([], 0)

    # a capacity change updates the cluster in place
    write_app(root, "database_min_capacity = 1\ndatabase_max_capacity = 4\n")
    project = load_project(root)
    spec = project.spec("dev")
    cloud = engine.make_cloud(spec)
    assert steps(engine.plan(spec, project, cloud)) == [
        ("update", "database", "orders", "max_capacity, min_capacity changed"),
        ("update", "function", "noop", "code changed"),  # pyproject.toml is in the zip
    ]
    engine.deploy(spec, project, cloud, ui)
    scaling = databases(aws_env, "dbapp", "dev")["clusters"]["dbapp-dev-orders"]["scaling"]
    assert scaling == {"MinCapacity": 1.0, "MaxCapacity": 4.0}

    engine.remove(spec, project, engine.make_cloud(spec), ui)
    assert databases(aws_env, "dbapp", "dev") == {"clusters": {}, "instances": {}, "secrets": {}}
    assert snapshot(aws_env, "dbapp", "dev") == empty_snapshot()


def test_an_interrupted_deploy_converges_and_remove_finds_it_by_name(
    aws_env: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "db-project"
    write_app(root)
    project = load_project(root)
    spec = project.spec("conv")
    ui = PlainUI(quiet=True)
    # stop after the cluster is created (role, secret, cluster), before its instance
    monkeypatch.setenv("SLS_PY_FAIL_AFTER_STEP", "3")
    with pytest.raises(ProviderError, match="stopped after step 3"):
        engine.deploy(spec, project, engine.make_cloud(spec), ui)
    monkeypatch.delenv("SLS_PY_FAIL_AFTER_STEP")
    assert databases(aws_env, "dbapp", "conv")["instances"] == {}
    # the state of the last step is lost too: the cluster is adopted, not made twice
    state = json.loads(engine.state_file(spec, project).read_text())
    del state["resources"]["database:orders"]
    engine.state_file(spec, project).write_text(json.dumps(state))
    engine.deploy(spec, project, engine.make_cloud(spec), ui)
    found = databases(aws_env, "dbapp", "conv")
    assert (list(found["clusters"]), found["instances"], list(found["secrets"])) == (
        ["dbapp-conv-orders"],
        {"dbapp-conv-orders-1": ("db.serverless", "dbapp-conv-orders")},
        ["dbapp-conv-orders-credentials"],
    )
    cloud = engine.make_cloud(spec)
    assert (steps(engine.plan(spec, project, cloud)), cloud.mutating_calls) == ([], 0)

    engine.state_file(spec, project).unlink()  # remove without a state file: found by name
    engine.remove(spec, project, engine.make_cloud(spec), ui)
    assert databases(aws_env, "dbapp", "conv") == {"clusters": {}, "instances": {}, "secrets": {}}
    assert snapshot(aws_env, "dbapp", "conv") == empty_snapshot()
