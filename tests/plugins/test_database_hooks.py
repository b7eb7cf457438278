"""The database hooks (``sls_py_migrate``, ``sls_py_db_shell``) as the CLI calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import CliRunner, Recorder, plugins_with, recording_plugin, write_project

DB_APP = """
from sls_py import App

app = App("shop")
orders = app.database("orders", migrations="migrations")
audit = app.database("audit")


@app.function()
def hello(payload: dict, ctx) -> dict:
    return {}
"""


@pytest.fixture
def db_project(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "shop", DB_APP, module="shopapp")
    (root / "migrations").mkdir()
    return root


def _setup(**answers: object) -> tuple[Recorder, object]:
    rec = Recorder(answers=dict(answers))
    return rec, plugins_with(("fake", recording_plugin(rec)))


@pytest.mark.hook("sls_py_migrate")
def test_migrate_reports_each_database(run_cli: CliRunner, db_project: Path) -> None:
    reports = [
        {"database": "orders", "applied": ["001.sql"], "already": [], "changed": []},
        {"database": "audit", "applied": [], "already": ["001.sql"], "changed": ["001.sql"]},
    ]
    rec, plugins = _setup(sls_py_migrate=reports)
    res = run_cli(plugins, "migrate", "--project", str(db_project), "--provider", "fake")
    assert res.code == 0, res.err
    lines = res.err.splitlines()
    assert lines[:2] == [
        "database 'orders': applied 001.sql (0 already applied)",
        "database 'audit': applied nothing new (1 already applied)",
    ]
    assert "001.sql changed after being applied" in lines[2]
    assert sorted(rec.calls[-1][1]) == ["project", "spec", "ui"]
    res = run_cli(plugins, "migrate", "--json", "--project", str(db_project), "--provider", "fake")
    assert json.loads(res.out) == reports


def test_migrate_without_databases_calls_nothing(run_cli: CliRunner, project: Path) -> None:
    rec, plugins = _setup(sls_py_migrate=[])
    res = run_cli(plugins, "migrate", "--project", str(project), "--provider", "fake")
    assert (res.code, rec.hooks_called()) == (0, ["sls_py_validate_spec"])
    assert "declares no database" in res.err


@pytest.mark.hook("sls_py_db_shell")
def test_db_shell_names_the_database_and_returns_its_exit_code(run_cli: CliRunner, db_project: Path) -> None:
    rec, plugins = _setup(sls_py_db_shell=3)
    res = run_cli(plugins, "db", "shell", "audit", "--project", str(db_project), "--provider", "fake")
    assert res.code == 3, res.err
    assert rec.calls[-1][1]["database"] == "audit"
    # two databases and none named: one line saying which exist
    res = run_cli(plugins, "db", "shell", "--project", str(db_project), "--provider", "fake")
    assert res.code == 2
    assert res.err.splitlines() == [
        "error: app 'shop' has 2 databases: name one",
        "hint: sls-py db shell orders  (known: orders, audit)",
    ]
    res = run_cli(plugins, "db", "shell", "nope", "--project", str(db_project), "--provider", "fake")
    assert res.err.splitlines()[0] == "error: app 'shop' has no database 'nope'"
