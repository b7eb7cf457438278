"""Functions invoking functions on the local provider, end to end: a real
``sls-py run`` on a free port with real worker processes, calls made from
inside workers (ctx.invoke through the run's internal endpoint, ctx.invoke_async
through the durable queues), a fan-out, a job ten times longer than its
timeout finished with continue_with, and one-shot ``sls-py invoke``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sls_py.testing.local_server import LocalServer, start_local_server
from sls_py_local.invoking import invoke_queue
from sls_py_local.queues import QueueStore, dead_letter_queue
from sls_py_local.resources import LocalDriver
from sls_py_local.runfile import read_run_info

pytestmark = pytest.mark.slow

APP = '''
import time
from sls_py import App, Context, HttpError, InvokeFailed, http

app = App("fanned")
done = app.table("done", key="id")
pieces = app.table("pieces", key="piece", key_type="number")
traces = app.bucket("traces")
squares = app.fanout("square")


@app.function(name="square", timeout_s=5, concurrency=2)
def square(numbers: list[int], ctx: Context) -> list[int]:
    return [n * n for n in numbers]


@app.function(name="add", timeout_s=5)
def add(p: dict) -> dict:
    if p.get("fail"):
        raise HttpError(418, "teapot")
    if p.get("sleep"):
        time.sleep(p["sleep"])
    return {"sum": p["x"] + p["y"]}


@app.function(name="flaky", timeout_s=5)
def flaky(p: dict, ctx: Context) -> None:
    done.put({"id": f"flaky:{p['run']}:{ctx.request_id}"})
    raise RuntimeError("fails every time")


@app.function(name="record", timeout_s=5)
def record(p: dict, ctx: Context) -> None:
    done.put({"id": f"record:{p['run']}"})


@app.function(name="narrow", timeout_s=5, concurrency=1)
def narrow(p: dict, ctx: Context) -> dict:
    time.sleep(p.get("sleep", 0))
    done.put({"id": f"narrow:{p['run']}"})
    return {"ran": p["run"]}


@app.function(name="caller", timeout_s=30, concurrency=4, triggers=[http("POST", "/call")],
              invokes=["add", "flaky", "record", "square", "narrow"])
def caller(p: dict, ctx: Context) -> object:
    mode = p["mode"]
    if mode == "sync":
        return ctx.invoke("add", {"x": p["x"], "y": p["y"]})
    if mode == "narrow":
        try:
            return ctx.invoke("narrow", {"run": p["run"], "sleep": 2})
        except InvokeFailed as exc:
            return {"status": exc.error.status, "message": exc.error.message}
    if mode == "sync-fail":
        try:
            ctx.invoke("add", {"fail": True})
        except InvokeFailed as exc:
            return {"type": exc.error.type, "status": exc.error.status, "message": exc.error.message}
    if mode == "undeclared":
        return ctx.invoke("job", {})
    if mode == "big":
        return ctx.invoke_async("record", {"blob": "x" * 300_000})
    if mode == "async":
        return {"id": ctx.invoke_async(p["target"], {"run": p["run"]})}
    if mode == "fanout":
        return squares.map(range(p["n"]), ctx, chunk=p["chunk"], parallel=p["parallel"])
    if mode == "endpoint":  # what the worker was given (set after the fork: not in /proc)
        import os

        return os.environ["SLS_PY_INVOKE_URL"]
    raise ValueError(mode)


@app.function(name="job", timeout_s=1, invokes=["job"])
def job(state: dict, ctx: Context) -> dict:
    """100 pieces of 0.1 s: ten times the 1 s timeout, done in pieces. The margin is
    wide (0.7 s) so that a busy machine does not stop one mid-piece."""
    i = state.get("next", 0)
    while i < state["total"]:
        if ctx.remaining_ms() < 700:
            return ctx.continue_with({**state, "next": i})
        if pieces.get(i) is None:  # the piece's idempotency key: done once
            time.sleep(0.1)
            traces.put(f"{i}/{ctx.request_id}", b"done")  # every execution leaves a trace
            pieces.put({"piece": i, "request_id": ctx.request_id})
        i += 1
    done.put({"id": f"job:{state['run']}"})
    return {"finished": state["total"]}
'''


def write_project(root: Path) -> Path:
    (root / "fanned_app").mkdir(parents=True)
    (root / "fanned_app" / "__init__.py").write_text("")
    (root / "fanned_app" / "app.py").write_text(APP)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "fanned"
            [tool.sls-py]
            app = "fanned_app.app:app"
            [tool.sls-py.providers.local]
            queue_size = 0
            """
        )
    )
    return root


def wait_until(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    project = write_project(tmp_path_factory.mktemp("src") / "fanned")
    srv = start_local_server(project, tmp_path_factory.mktemp("run"))
    try:
        yield srv
    finally:
        srv.stop()


def driver(server: LocalServer) -> LocalDriver:
    return LocalDriver(server.project / ".sls-py" / "local" / "dev")


def call(server: LocalServer, payload: dict[str, Any]) -> httpx.Response:
    return server.post("/call", json=payload)


def test_invoke_waits_for_the_result_through_the_pool(server: LocalServer) -> None:
    r = call(server, {"mode": "sync", "x": 29, "y": 13})
    assert (r.status_code, r.json()) == (200, {"sum": 42})
    r = call(server, {"mode": "sync-fail"})
    assert r.json() == {"type": "HttpError", "status": 418, "message": "teapot"}
    assert "POST /invoke/add" not in server.output()  # the internal endpoint is not a route


def test_undeclared_target_and_big_payload_are_clear_errors(server: LocalServer) -> None:
    r = call(server, {"mode": "undeclared"})
    assert r.status_code == 502
    wait_until(
        lambda: "InvokeError: function 'caller' may not invoke 'job': it is not a declared "
        "target; declare it with @app.function(name='caller', invokes=['job'])" in server.output()
    )
    assert call(server, {"mode": "big"}).status_code == 502
    wait_until(
        lambda: "the payload for 'record' is 300011 bytes, over the 262144 bytes an "
        "asynchronous invocation may carry; put the data in a bucket" in server.output()
    )


def test_internal_endpoint_needs_the_token(server: LocalServer) -> None:
    # run.json is published once the server is ready, which may be after its URL is printed
    env = wait_until(lambda: read_run_info(server.project / ".sls-py" / "local" / "dev"))
    assert env["gateway"].startswith("http://127.0.0.1:")
    # the endpoint's URL reaches only the workers of functions that invoke; ask one
    url = call(server, {"mode": "endpoint"}).json()
    assert url.startswith("http://127.0.0.1:")
    wrong = httpx.post(f"{url}/invoke/add", json={"x": 1, "y": 2},
                       headers={"authorization": "Bearer nope", "x-sls-py-source": "caller"},
                       trust_env=False)
    assert (wrong.status_code, wrong.json()) == (403, {"message": "Forbidden"})


def test_invoke_async_delivers_and_dead_letters_after_retries(server: LocalServer) -> None:
    table = driver(server).table("done", "", "id", None)
    r = call(server, {"mode": "async", "target": "record", "run": "r1"})
    assert r.status_code == 200
    wait_until(lambda: table.get({"id": "record:r1"}))
    r = call(server, {"mode": "async", "target": "flaky", "run": "f1"})
    message_id = r.json()["id"]
    store = QueueStore(driver(server).root / "queues.sqlite3")
    dead = wait_until(lambda: store.messages(dead_letter_queue(invoke_queue("flaky"))))
    assert [(m.id, json.loads(m.body)) for m in dead] == [(message_id, {"run": "f1"})]
    attempts = [row for row in table.scan() if row["id"].startswith("flaky:f1:")]
    assert len(attempts) == 3  # the first attempt and two retries, as on AWS


def test_fanout_gathers_results_in_order(server: LocalServer) -> None:
    r = call(server, {"mode": "fanout", "n": 23, "chunk": 4, "parallel": 3})
    assert r.status_code == 200, server.output()[-2000:]
    assert r.json() == [[n * n for n in range(i, min(i + 4, 23))] for i in range(0, 23, 4)]
    fan = driver(server).table("sls-py-fanout", "", "job", "index")
    assert fan.scan() == []  # the helper removes its rows once gathered


def test_concurrency_limit_holds_for_invocations(server: LocalServer) -> None:
    """`narrow` runs one at a time and the pools queue nothing (queue_size = 0): of
    three waiting calls made at once, one runs and the others get the pool's 429;
    asynchronous ones are all delivered, throttled attempts retried without counting."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        rs = list(pool.map(lambda i: call(server, {"mode": "narrow", "run": f"n{i}"}), range(3)))
    answers = sorted((r.json().get("ran") is not None, r.json().get("status")) for r in rs)
    assert answers == [(False, 429), (False, 429), (True, None)], [r.json() for r in rs]
    for i in range(4):
        call(server, {"mode": "async", "target": "narrow", "run": f"a{i}"})
    table = driver(server).table("done", "", "id", None)
    wait_until(lambda: all(table.get({"id": f"narrow:a{i}"}) for i in range(4)))
    store = QueueStore(driver(server).root / "queues.sqlite3")
    assert store.messages(dead_letter_queue(invoke_queue("narrow"))) == []


def test_continue_with_finishes_a_job_ten_times_its_timeout(server: LocalServer) -> None:
    d = driver(server)
    # start the job from outside: an asynchronous invocation queued for `job`
    d.queue_store().send(invoke_queue("job"), json.dumps({"run": "j1", "total": 100}))
    table = d.table("done", "", "id", None)
    wait_until(lambda: table.get({"id": "job:j1"}), timeout=120)
    rows = d.table("pieces", "", "piece", None).scan()
    assert sorted(r["piece"] for r in rows) == list(range(100))  # nothing lost
    traces = d.bucket("traces").list()
    assert sorted(int(k.split("/")[0]) for k in traces) == list(range(100))  # nothing done twice
    assert len({r["request_id"] for r in rows}) >= 10  # in pieces: ten invocations or more


def test_oneshot_invoke_waits_for_the_target_in_a_fresh_process(tmp_path: Path) -> None:
    project = write_project(tmp_path / "fanned")
    proc = subprocess.run(
        [sys.executable, "-m", "sls_py", "invoke", "caller", '{"mode": "sync", "x": 2, "y": 3}',
         "--project", str(project)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"sum": 5}
    # no `sls-py run`: the caller's process delivers its fan-out's chunks itself, each in
    # fresh processes (slow on a busy machine: two chunks, delivered side by side)
    proc = subprocess.run(
        [sys.executable, "-m", "sls_py", "invoke", "caller",
         '{"mode": "fanout", "n": 3, "chunk": 2, "parallel": 2}', "--project", str(project)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [[0, 1], [4]]
