"""The inprocess provider as a user meets it: installed on its own, listed by
``sls-py providers``, driven through the ``sls-py`` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip(
    "sls_py_inprocess", reason="install it: pip install -e examples/inprocess-provider"
)

APP = """
from sls_py import App, UploadEvent, http, upload

app = App("shop")
files = app.bucket("files")
orders = app.table("orders", key="id")
events = app.queue("events", max_receives=3)


@app.function(name="order", triggers=[http("POST", "/orders")])
def order(payload: dict, ctx) -> dict:
    orders.put({"id": payload["id"], "qty": payload["qty"]})
    files.put(f"receipts/{payload['id']}.txt", f"{payload['qty']} items")
    return {"ordered": payload["id"]}


@app.function(name="receipt", triggers=[upload("files", prefix="receipts/")])
def receipt(event: UploadEvent, ctx) -> None:
    item = orders.get(event.key.split("/")[1].split(".")[0])
    orders.put({**item, "receipt": event.key, "receipt_size": event.size})
"""


def sls(project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SLS_PY_DISABLE_PLUGINS"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sls_py",
            *argv,
            "--project",
            str(project),
            "--provider",
            "inprocess",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    (tmp_path / "shop.py").write_text(APP, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "shop"
            [tool.sls-py]
            app = "shop:app"
            """
        )
    )
    return tmp_path


def test_listed_by_sls_py_providers() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sls_py", "providers", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    listing = {p["name"]: p for p in json.loads(proc.stdout)["providers"]}
    assert listing["inprocess"] == {
        "name": "inprocess",
        "version": "0.1.0",
        "description": "Runs functions inside the calling process: fast tests, no workers.",
        "capabilities": [
            "function.memory",
            "function.timeout",
            "http.api_key",
            "http.cors",
            "invoke",
            "resource.bucket",
            "resource.config",
            "resource.queue",
            "resource.table",
            "trigger.http",
            "trigger.queue",
            "trigger.schedule",
            "trigger.upload",
        ],
        "not_emulated": ["function.memory"],
        "commands": [
            "invoke",
            "run",
            "plan",
            "deploy",
            "remove",
            "url",
            "api-keys",
            "trigger",
            "config get/list",
            "config set",
            "config unset",
        ],
        "plugin": "inprocess",
    }


def test_cli_workflow_plan_deploy_invoke_remove(shop: Path) -> None:
    plan = sls(shop, "plan", "--json")
    assert [(s["action"], s["kind"], s["name"]) for s in json.loads(plan.stdout)["steps"]] == [
        ("create", "bucket", "files"),
        ("create", "function", "order"),
        ("create", "function", "receipt"),
        ("create", "queue", "events"),
        ("create", "table", "orders"),
    ]
    deploy = sls(shop, "deploy")
    assert deploy.returncode == 0, deploy.stderr
    assert (
        "warning: queue 'events': failed messages are retried at once, without"
        in deploy.stderr
    )
    assert json.loads(sls(shop, "plan", "--json").stdout) == {"steps": []}
    invoked = sls(shop, "invoke", "order", '{"id": "o1", "qty": 3}')
    assert (invoked.returncode, invoked.stdout) == (0, '{"ordered": "o1"}\n')
    # the function's bucket write fired the upload trigger; the state persists in .sls-py/inprocess
    table = json.loads((shop / ".sls-py/inprocess/dev/tables/shop-dev-orders.json").read_text())
    assert list(table.values()) == [
        {"id": "o1", "qty": 3, "receipt": "receipts/o1.txt", "receipt_size": 7}
    ]
    assert (
        shop / ".sls-py/inprocess/dev/buckets/shop-dev-files/receipts/o1.txt"
    ).read_text() == "3 items"
    logs = sls(shop, "logs", "order")
    assert logs.returncode == 2
    assert "error: provider 'inprocess' does not implement `logs`\n" in logs.stderr
    removed = sls(shop, "remove", "--json")
    assert len(json.loads(removed.stdout)["steps"]) == 5
    assert not (shop / ".sls-py/inprocess/dev").exists()


def test_validate_spec_refuses_reserved_variables(shop: Path) -> None:
    (shop / "shop.py").write_text(
        "from sls_py import App\napp = App('shop')\n\n"
        "@app.function(name='f', environment={'SLS_PY_STAGE': 'x'})\ndef f(p, ctx):\n    return p\n"
    )
    res = sls(shop, "invoke", "f", "1")
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "error: function 'f' sets SLS_PY_STAGE: SLS_PY_* variables belong to sls-py",
        "hint: rename the variable",
    ]
