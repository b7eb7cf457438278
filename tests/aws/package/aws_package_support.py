"""Helpers of the package tests: an app that uses every kind of resource the AWS
provider deploys, and running ``sls-py`` as a user would."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

from aws_deploy_support import cli

#: Every trigger and resource kind: HTTP with an API key and CORS, a greedy path,
#: a schedule, uploads into a bucket, a queue with its consumer, a table, and an
#: invocation edge (hello may invoke nightly).
EVERYTHING_APP = """
from sls_py import App, http, queue, schedule, upload

app = App("pkgapp", api_keys=["partner"])
inbox = app.bucket("inbox")
jobs = app.queue("jobs")
items = app.table("items", key="id")


@app.function(name="hello", invokes=["nightly"],
              triggers=[http("POST", "/hello", api_key=True, cors=True),
                                      http("GET", "/files/{path+}")])
def hello(payload: dict, ctx) -> dict:
    return {"hello": payload.get("name", "world")}


@app.function(name="nightly", timeout_s=30, triggers=[schedule("rate(1 day)", name="nightly")])
def nightly(event, ctx) -> None:
    return None


@app.function(name="on-upload", memory_mb=256, triggers=[upload("inbox", prefix="in/")])
def on_upload(event, ctx) -> None:
    return None


@app.function(name="on-job", concurrency=2, triggers=[queue("jobs", batch_size=20)])
def on_job(batch, ctx) -> None:
    return None
"""


def everything_project(root: Path, source: str = EVERYTHING_APP, app: str = "pkgapp") -> Path:
    """A project with :data:`EVERYTHING_APP` (named ``app``: moto's state is one per
    process, so each test module deploys an app of its own), packed without
    third-party deps."""
    source = source.replace('App("pkgapp"', f'App("{app}"')
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "pkgapp"
            version = "0.1.0"

            [tool.sls-py]
            app = "pkgapp_code:app"
            stage = "dev"

            [tool.sls-py.stages.dev]
            environment = { GREETING = "hi", TOKEN = "${env:PKGAPP_TOKEN}" }
            usage = { rate = 5, burst = 10, quota = 1000, period = "WEEK" }

            [tool.sls-py.stages.prod]
            environment = { GREETING = "hello", TOKEN = "${env:PKGAPP_TOKEN}" }

            [tool.sls-py.providers.aws]
            region = "us-east-1"
            include_dependencies = false
            """
        ),
        encoding="utf-8",
    )
    (root / "pkgapp_code.py").write_text(source, encoding="utf-8")
    return root


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


__all__ = ["EVERYTHING_APP", "cli", "everything_project", "tree_hashes"]
