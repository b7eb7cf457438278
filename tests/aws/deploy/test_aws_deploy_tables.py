"""Table key types on DynamoDB: a key declared ``number`` is an ``N`` attribute,
``string`` an ``S`` one; a changed key type replaces the table, and a state
recorded before key types were declared plans no change. Deployed in-process
to a moto server and read back with ``describe_table``."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aws_deploy_support import Moto, empty_snapshot, snapshot
from sls_py.config import load_project
from sls_py.errors import ProviderError
from sls_py.ui import PlainUI
from sls_py_aws import deploy as engine

pytestmark = pytest.mark.slow

APP = """
from typing import Any

from sls_py import App

app = App("keysapp")
ledger = app.table("ledger", key="account", sort_key="seq", sort_key_type="SEQ_TYPE")
counters = app.table("counters", key="n", key_type="number")
notes = app.table("notes")


@app.function(name="noop")
def noop(payload: dict[str, Any]) -> None:
    return None
"""


def write_app(root: Path, seq_type: str) -> None:
    pkg = root / "keys"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(APP.replace("SEQ_TYPE", seq_type))
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""
        [project]
        name = "keysapp"
        version = "0.1.0"

        [tool.sls-py]
        app = "keys.app:app"

        [tool.sls-py.providers.aws]
        include_dependencies = false
    """)
    )
    for name in [m for m in sys.modules if m == "keys" or m.startswith("keys.")]:
        del sys.modules[name]  # import the changed app, as a new CLI process would


def key_types(moto: Moto, stage: str) -> dict[str, list[tuple[str, str, str]]]:
    """Each table's key schema with attribute types, as DynamoDB describes it."""
    ddb = moto.client("dynamodb")
    out = {}
    for name in ("ledger", "counters", "notes"):
        table = ddb.describe_table(TableName=f"keysapp-{stage}-{name}")["Table"]
        types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
        out[name] = [
            (k["AttributeName"], k["KeyType"], types[k["AttributeName"]]) for k in table["KeySchema"]
        ]
    return out


def steps(plan: Any) -> list[tuple[str, str, str, str]]:
    return [(s.action, s.kind, s.name, s.reason) for s in plan.steps]


def test_key_types_are_deployed_and_a_changed_type_replaces_the_table(aws_env: Moto, tmp_path: Path) -> None:
    root = tmp_path / "keys-project"
    write_app(root, "number")
    project = load_project(root)
    spec = project.spec("dev")
    cloud = engine.make_cloud(spec)
    ui = PlainUI(quiet=True)
    engine.deploy(spec, project, cloud, ui)
    assert key_types(aws_env, "dev") == {
        "ledger": [("account", "HASH", "S"), ("seq", "RANGE", "N")],
        "counters": [("n", "HASH", "N")],
        "notes": [("id", "HASH", "S")],
    }
    # the number sort key holds numbers, in order (what failed with an S attribute)
    ddb = aws_env.client("dynamodb")
    for seq in (10, 9):
        ddb.put_item(TableName="keysapp-dev-ledger", Item={"account": {"S": "a"}, "seq": {"N": str(seq)}})
    got = ddb.query(
        TableName="keysapp-dev-ledger",
        KeyConditionExpression="account = :a",
        ExpressionAttributeValues={":a": {"S": "a"}},
    )["Items"]
    assert [i["seq"] for i in got] == [{"N": "9"}, {"N": "10"}]
    assert steps(engine.plan(spec, project, cloud)) == []

    # a changed key type: the table must be replaced, and the plan says so
    write_app(root, "string")
    project = load_project(root)
    spec = project.spec("dev")
    assert steps(engine.plan(spec, project, cloud)) == [
        ("delete", "table", "ledger", "sort_key_type changed: must be replaced"),
        ("create", "table", "ledger", "replaces the deleted one"),
        ("update", "function", "noop", "code changed"),
    ]
    engine.deploy(spec, project, cloud, ui)
    assert key_types(aws_env, "dev")["ledger"] == [("account", "HASH", "S"), ("seq", "RANGE", "S")]
    assert steps(engine.plan(spec, project, cloud)) == []

    # a state written before key types were declared: its tables have string keys
    path = engine.state_file(spec, project)
    state = json.loads(path.read_text())
    tables = [e for e in state["resources"].values() if e["kind"] == "table"]
    assert len(tables) == 3
    for entry in tables:
        del entry["props"]["key_type"], entry["props"]["sort_key_type"]
    path.write_text(json.dumps(state))
    assert steps(engine.plan(spec, project, cloud)) == [
        ("delete", "table", "counters", "key_type changed: must be replaced"),
        ("create", "table", "counters", "replaces the deleted one"),
    ]

    # the state is lost and the app now declares another key type: the table of
    # that name is not adopted as if it had the declared keys
    path.unlink()
    write_app(root, "number")
    project = load_project(root)
    spec = project.spec("dev")
    with pytest.raises(ProviderError) as refused:
        engine.deploy(spec, project, cloud, ui)
    assert (refused.value.message, refused.value.hint) == (
        "table 'ledger': DynamoDB table keysapp-dev-ledger already exists with keys "
        "account (string), seq (string), but the app declares account (string), seq (number)",
        "delete the table keysapp-dev-ledger (its items go with it) or declare the keys it has",
    )
    assert key_types(aws_env, "dev")["ledger"] == [("account", "HASH", "S"), ("seq", "RANGE", "S")]

    path.unlink()  # the refused deploy recorded only what it reached; remove finds all by name
    engine.remove(spec, project, cloud, ui)
    assert snapshot(aws_env, "keysapp", "dev") == empty_snapshot()
