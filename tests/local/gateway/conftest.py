"""Fixtures for the local gateway tests: a test app served by a real `sls-py run`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Server, run_server, write_project

GW_APP = """
from __future__ import annotations

import base64
import os
import signal
import time

from pydantic import BaseModel

from sls_py import App, Cors, HttpRequest, Response, http

app = App("gwtest", api_keys=["default", "other"])
VERSION = "v1"


@app.function(
    name="echo",
    environment={"ONLY_ECHO": "echo-secret"},
    triggers=[http("ANY", "/echo/{name}"), http("GET", "/files/{path+}"), http("POST", "/echo")],
)
def echo(req: HttpRequest, ctx) -> Response:
    print("echo says hello")
    ctx.logger.info("echo %s", req.path)
    return Response.json({
        "method": req.method,
        "path": req.path,
        "route": req.route,
        "params": req.path_params,
        "query": req.query,
        "headers": {k: v for k, v in req.headers.items() if k.startswith("x-")},
        "body": base64.b64encode(req.body).decode(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "env": os.environ.get("ONLY_ECHO"),
        "other_env": os.environ.get("ONLY_SECRET"),
        "request_id": ctx.request_id,
    })


@app.function(
    name="secret",
    environment={"ONLY_SECRET": "s3"},
    triggers=[http("GET", "/secret", api_key=True)],
)
def secret(req: HttpRequest, ctx) -> dict:
    return {"ok": True, "env": os.environ.get("ONLY_ECHO"), "own": os.environ.get("ONLY_SECRET")}


@app.function(name="environ", triggers=[http("GET", "/environ")])
def environ(req: HttpRequest, ctx) -> dict:
    return dict(os.environ)


@app.function(
    name="cors",
    triggers=[
        http(
            "GET",
            "/cors",
            cors=Cors(
                origins=("https://a.example",),
                headers=("content-type", "x-custom"),
                max_age_s=60,
                allow_credentials=True,
            ),
        ),
        http("POST", "/cors-boom", cors=True, api_key=True),
    ],
)
def cors(req: HttpRequest, ctx) -> dict:
    if req.path == "/cors-boom":
        raise RuntimeError("boom behind cors")
    return {"cors": True}


@app.function(name="boom", triggers=[http("GET", "/boom")])
def boom(req: HttpRequest, ctx) -> dict:
    raise RuntimeError("kaboom-detail-only-in-logs")


@app.function(name="slow", timeout_s=1, triggers=[http("GET", "/slow")])
def slow(req: HttpRequest, ctx) -> dict:
    seconds = float(req.query_param("s", "0"))
    time.sleep(seconds)
    return {"slept": seconds, "pid": os.getpid(), "remaining_ms_positive": ctx.remaining_ms() > 0}


@app.function(name="crash", triggers=[http("GET", "/crash")])
def crash(req: HttpRequest, ctx) -> dict:
    how = req.query_param("how")
    if how == "exit":
        os._exit(7)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return {"pid": os.getpid()}


@app.function(name="hog", memory_mb=128, triggers=[http("GET", "/hog")])
def hog(req: HttpRequest, ctx) -> dict:
    block = bytearray(int(req.query_param("mb", "1")) * 1024 * 1024)
    return {"bytes": len(block), "pid": os.getpid()}


class Nums(BaseModel):
    x: int
    y: int


@app.function(name="add", triggers=[http("POST", "/add")])
def add(nums: Nums, ctx) -> dict:
    return {"sum": nums.x + nums.y}


@app.function(name="binary", triggers=[http("GET", "/binary")])
def binary(req: HttpRequest, ctx) -> Response:
    bad = req.query_param("bad", "")
    if bad == "value":  # header injection
        return Response(body=b"x", headers={"x-bad": "a\\r\\nx-injected: 1"})
    if bad == "name":
        return Response(body=b"x", headers={"bad name": "v"})
    if bad == "status":
        return Response(status=999, body=b"x")
    return Response(body=bytes(range(256)), headers={"content-type": "application/octet-stream"})


@app.function(name="version", triggers=[http("GET", "/version")])
def version(req: HttpRequest, ctx) -> dict:
    time.sleep(float(req.query_param("s", "0")))
    return {"version": VERSION, "pid": os.getpid()}
"""

GW_CONFIG = """
[tool.sls-py.providers.local]
max_workers = 4
"""


@pytest.fixture(scope="session")
def gw_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("gw"), "gwapp", GW_APP, GW_CONFIG)


@pytest.fixture(scope="session")
def gw(gw_project: Path) -> Iterator[Server]:
    """The test app served with JSON logs and no reload (reload has its own server)."""
    with run_server(gw_project, "--no-reload", "--json-logs") as server:
        yield server


@pytest.fixture
def reload_project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "reload", "gwapp", GW_APP, GW_CONFIG)
