"""How `sls-py run` drives ``sls_py_local.services.LocalServices`` (its invoke,
start, stop and the run lock it hands over), checked with a stand-in module put
first on the package's path, and what happens when one function's code cannot
import."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from sls_py_local.runfile import read_run_info

from .support import run_server, write_project

pytestmark = pytest.mark.timeout(120)

FAKE_SERVICES = """
import json
import os
from pathlib import Path


class LocalServices:
    stop_grace_s = 10.0

    def __init__(self, spec, project, invoke, ui, clock=None, lock=None):
        self.spec, self.project, self.invoke, self.clock = spec, project, invoke, clock
        self.lock = lock
        self.out = Path(os.environ["FAKE_SERVICES_OUT"])

    async def start(self):
        ok = await self.invoke("add", {"type": "payload", "payload": {"x": 2, "y": 40}})
        bad = await self.invoke("add", {"type": "payload", "payload": {"x": "two"}})
        self.out.write_text(json.dumps({
            "clock": self.clock,
            "project": str(self.project.root),
            "functions": [f.name for f in self.spec.functions],
            "ok": [ok.result, ok.error],
            "bad": [bad.error.type, bad.error.status],
            "run_file": sorted(self.lock.info),  # the server's run lock, held and published
        }) + "\\n")

    async def stop(self):
        with open(self.out, "a") as f:
            f.write("stopped\\n")
"""

APP = """
import os

from pydantic import BaseModel

from sls_py import App, HttpRequest, http

if os.environ.get("BREAK_ON_IMPORT"):
    raise RuntimeError("this function's environment breaks the import")

app = App("svc")


class Nums(BaseModel):
    x: int
    y: int


@app.function(name="add", triggers=[http("POST", "/add")])
def add(nums: Nums, ctx) -> dict:
    return {"sum": nums.x + nums.y}


@app.function(
    name="broken", environment={"BREAK_ON_IMPORT": "1"}, triggers=[http("GET", "/broken")]
)
def broken(req: HttpRequest, ctx) -> dict:
    return {}
"""


def test_services_get_the_pool_invoke_and_are_started_and_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shim = tmp_path / "shim"
    (shim / "fake").mkdir(parents=True)
    (shim / "fake" / "services.py").write_text(FAKE_SERVICES)
    (shim / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""\
            import sls_py_local
            sls_py_local.__path__.insert(0, {str(shim / "fake")!r})
            """
        )
    )
    out = tmp_path / "services.out"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_SERVICES_OUT", str(out))
    project = write_project(tmp_path / "svc", "svcapp", APP, "", "svc")
    with run_server(project, "--no-reload", "--clock", "2026-01-01T00:00@3600") as server:
        first = json.loads(out.read_text().splitlines()[0])
        run_file = read_run_info(project / ".sls-py" / "local" / "dev")
        with server.client() as c:
            broken = c.get("/broken")
            works = c.post("/add", json={"x": 1, "y": 1})
        output = server.output()
        assert server.stop() == 0
    assert first == {
        "clock": "2026-01-01T00:00@3600",
        "project": str(project),
        "functions": ["add", "broken"],
        "ok": [{"sum": 42}, None],
        "bad": ["InvalidInput", 400],
        "run_file": [],  # nothing published yet: the gateway's URL goes in once started
    }
    assert run_file is not None and (run_file["gateway"], run_file["pid"]) == (
        server.url,
        server.proc.pid,
    )
    assert out.read_text().splitlines()[1:] == ["stopped"]
    assert read_run_info(project / ".sls-py" / "local" / "dev") is None  # removed on the way out
    assert "not emulated locally" not in output  # the services run the other triggers
    # one function whose code cannot import fails alone, with the reason in the log
    assert (broken.status_code, broken.json()) == (502, {"message": "Internal server error"})
    assert (works.status_code, works.json()) == (200, {"sum": 2})
    assert "this function's environment breaks the import" in output
