"""Invocation edges in the spec, and the runtime's invoke / fan-out helpers
(unit tests: an in-memory driver whose functions run in this process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sls_py import App, Context, FanoutFailed, InvokeFailed
from sls_py.config import load_project
from sls_py.errors import SpecError
from sls_py.runtime import MemoryDriver, Payload, execute, use_driver
from sls_py.runtime.invoke import TABLE


def write_project(root: Path, app: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "edges"\n[tool.sls-py]\napp = "edgeapp.app:app"\n'
    )
    pkg = root / "edgeapp"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(textwrap.dedent(app))
    for name in [m for m in sys.modules if m == "edgeapp" or m.startswith("edgeapp.")]:
        del sys.modules[name]
    return root


EDGES = """
    from sls_py import App
    app = App("edges")
    counts = app.fanout("count")

    @app.function(name="count")
    def count(items: list, ctx):
        return len(items)

    @app.function(name="report", invokes=["count", "count", "TARGET"])
    def report(payload: dict, ctx):
        return counts.map(payload["items"], ctx)
"""


def test_spec_records_the_edges_and_the_fanout_table(tmp_path: Path) -> None:
    spec = load_project(write_project(tmp_path / "p", EDGES.replace("TARGET", "report"))).spec()
    assert {f.name: f.invokes for f in spec.functions} == {"count": [], "report": ["count", "report"]}
    assert [(t.name, t.key, t.sort_key, t.sort_key_type) for t in spec.tables] == [
        (TABLE, "job", "index", "number")
    ]
    assert spec.required_capabilities()["function.invoke"] == "function 'report', which invokes count, report"


def test_an_unknown_target_is_refused_with_the_fix(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path / "p", EDGES.replace("TARGET", "reprot")))
    with pytest.raises(SpecError) as refused:
        project.spec()
    assert (refused.value.message, refused.value.hint) == (
        "function 'report' invokes 'reprot', which the app does not declare",
        "declare it with @app.function(name='reprot') or fix the name; known functions: count, report",
    )


def test_cli_spec_shows_edges_and_refuses_unknown_targets(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", EDGES.replace("TARGET", "report"))
    out = subprocess.run(
        [sys.executable, "-m", "sls_py", "spec", "--project", str(root)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert [f["invokes"] for f in json.loads(out.stdout)["functions"]] == [[], ["count", "report"]]
    write_project(root, EDGES.replace("TARGET", "nope"))
    bad = subprocess.run(
        [sys.executable, "-m", "sls_py", "spec", "--project", str(root)], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "function 'report' invokes 'nope', which the app does not declare" in bad.stderr
    assert "Traceback" not in bad.stderr


# --- the runtime, on an in-memory driver ------------------------------------------


class InProcessFunction:
    """A function handle that runs the target here: sync at once, async queued."""

    def __init__(self, driver: FunctionsDriver, name: str) -> None:
        self.driver, self.name = driver, name

    def invoke(self, payload: str) -> dict[str, Any]:
        return self.driver.run(self.name, json.loads(payload)).to_wire()

    def invoke_async(self, payload: str) -> str:
        self.driver.queued.append((self.name, json.loads(payload)))
        return str(len(self.driver.queued))


class FunctionsDriver(MemoryDriver):
    """MemoryDriver plus functions of ``app``; async invocations wait in ``queued``."""

    def __init__(self, app: App) -> None:
        super().__init__()
        self.app = app
        self.queued: list[tuple[str, Any]] = []

    def function(self, name: str, physical: str) -> InProcessFunction:
        return InProcessFunction(self, name)

    def run(self, name: str, payload: Any) -> Any:
        ctx = Context(request_id="r", function_name=name, stage="dev", deadline_ms=2**62)
        return execute(self.app.functions[name].handler, Payload(payload), ctx)

    def deliver(self) -> None:
        while self.queued:
            self.run(*self.queued.pop(0))


app = App("unit")
squares = app.fanout("square")


@app.function(name="square")
def square(numbers: list[int]) -> list[int]:
    if 13 in numbers:
        raise ValueError("unlucky")
    return [n * n for n in numbers]


@app.function(name="boss", invokes=["square"])
def boss(payload: dict[str, Any], ctx: Context) -> Any:
    if payload.get("sync"):
        return ctx.invoke("square", payload["items"])
    return squares.map(payload["items"], ctx, chunk=3, parallel=2)


@pytest.fixture
def driver() -> Iterator[FunctionsDriver]:
    drv = FunctionsDriver(app)
    use_driver(drv, {"functions": {"square": "unit-dev-square"}})
    yield drv
    use_driver(None)


def test_invoke_returns_the_result_or_raises_the_target_error(driver: FunctionsDriver) -> None:
    boss_ctx = Context(request_id="r", function_name="boss", stage="dev", deadline_ms=2**62)
    assert boss({"sync": True, "items": [1, 2]}, boss_ctx) == [1, 4]
    with pytest.raises(InvokeFailed) as failed:
        boss({"sync": True, "items": [13]}, boss_ctx)
    assert (failed.value.error.type, failed.value.error.message) == ("ValueError", "unlucky")


def test_fanout_gathers_in_order_with_bounded_parallelism(
    driver: FunctionsDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivery happens while ``map`` waits (its sleep); at most two chunks are out."""
    seen: list[int] = []

    def deliver_while_waiting(_s: float) -> None:
        seen.append(len(driver.queued))
        driver.deliver()

    monkeypatch.setattr("sls_py.runtime.invoke.time.sleep", deliver_while_waiting)
    ctx = Context(request_id="r", function_name="boss", stage="dev", deadline_ms=2**62)
    assert boss({"items": list(range(10))}, ctx) == [[0, 1, 4], [9, 16, 25], [36, 49, 64], [81]]
    assert max(seen) == 2
    assert driver.tables[TABLE] == {}  # the job's rows are gone
    with pytest.raises(FanoutFailed) as failed:
        boss({"items": [1, 13, 2, 3]}, ctx)
    assert str(failed.value) == "chunk 0 of 2 failed in 'square': ValueError: unlucky"


def test_fanout_gives_up_when_time_runs_out(driver: FunctionsDriver) -> None:
    import time

    soon = int(time.time() * 1000) + 500
    ctx = Context(request_id="r", function_name="boss", stage="dev", deadline_ms=soon)
    with pytest.raises(FanoutFailed) as late:
        squares.map([1, 2, 3, 4], ctx, chunk=1)  # nothing delivers: no result arrives
    assert "0 of 4 chunks done when this invocation ran out of time" in str(late.value)


CLIENT_APP = """
    from sls_py import App, InvokeFailed
    app = App("edges")
    seen = app.table("seen", key="id")

    @app.function(name="target")
    def target(p: dict, ctx):
        seen.put({"id": f"{p['n']}:{ctx.request_id}"})
        if p.get("fail"):
            raise ValueError("no")
        return p["n"] * 2

    @app.function(name="caller", invokes=["target"])
    def caller(p: dict, ctx):
        if p["mode"] == "sync":
            return ctx.invoke("target", {"n": p["n"]})
        return ctx.invoke_async("target", {"n": p["n"], "fail": True})
"""


def test_app_client_runs_invocations_in_process(tmp_path: Path) -> None:
    from sls_py.testing import AppClient

    client = AppClient(write_project(tmp_path / "p", CLIENT_APP))
    assert client.invoke("caller", {"mode": "sync", "n": 21}) == 42
    assert isinstance(client.invoke("caller", {"mode": "async", "n": 5}), str)
    assert client.dead_letters == {"target": [{"n": 5, "fail": True}]}
    attempts = [r for r in client.table("seen").scan() if r["id"].startswith("5:")]
    assert len(attempts) == 3
