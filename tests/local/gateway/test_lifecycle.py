"""Stopping `sls-py run` leaves no process behind; hot reload swaps code safely."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import Server, alive, descendants, run_load, run_server, wait_until, write_project

pytestmark = pytest.mark.timeout(120)


def _spread_workers(server: Server) -> None:
    """Make several functions start workers, some scaled out."""
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: httpx.get(server.url + "/slow?s=0.3", timeout=30), range(3)))
    with server.client() as c:
        assert c.get("/crash").status_code == 200
        assert c.get("/hog").status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_leaves_no_orphans(reload_project: Path, sig: signal.Signals) -> None:
    with run_server(reload_project) as server:
        _spread_workers(server)
        tree = descendants(server.proc.pid)
        assert len(tree) >= 1 + 1 + 3  # templates and workers
        server.proc.send_signal(sig)
        assert server.proc.wait(timeout=15) == 0
    wait_until(lambda: not any(alive(p) for p in tree), timeout=10)
    assert not (reload_project / ".sls-py" / "local" / "dev" / "run.json").exists()


def test_ctrl_c_to_the_whole_process_group(reload_project: Path) -> None:
    """A terminal's Ctrl-C reaches every process of the group, workers included."""
    with run_server(reload_project, "--no-reload", new_session=True) as server:
        _spread_workers(server)
        tree = descendants(server.proc.pid)
        os.killpg(server.proc.pid, signal.SIGINT)
        assert server.proc.wait(timeout=15) == 0
        assert "Traceback" not in server.output()
    wait_until(lambda: not any(alive(p) for p in tree), timeout=10)


def test_sigterm_to_the_whole_process_group_stops_quietly(work_magic: Path) -> None:
    """`timeout`, a supervisor or `kill -- -PGID` signals every process of the group:
    the templates' exit is part of stopping (which waits for the app's services),
    not a crash reported and restarted."""
    with run_server(work_magic, "--no-reload", new_session=True) as server:
        wait_until(lambda: "PostgreSQL ready" in server.output(), timeout=60)
        fired = subprocess.run(  # templates of the schedule's function and its fan-out too
            [sys.executable, "-m", "sls_py", "trigger", "schedule", "nightly-report", "-p", str(work_magic)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert fired.returncode == 0, fired.stderr
        tree = descendants(server.proc.pid)
        os.killpg(server.proc.pid, signal.SIGTERM)
        assert server.proc.wait(timeout=15) == 0
        out = server.output()
        assert "stopping" in out
        assert "template process exited" not in out and "Traceback" not in out, out
    wait_until(lambda: not any(alive(p) for p in tree), timeout=10)


def test_workers_die_with_a_killed_gateway(reload_project: Path) -> None:
    with run_server(reload_project, "--no-reload") as server:
        _spread_workers(server)
        tree = descendants(server.proc.pid)
        assert tree
        server.proc.kill()  # no chance to clean up: the kernel and the pipes must do it
        server.proc.wait()
    wait_until(lambda: not any(alive(p) for p in tree), timeout=10)


def _version(url: str) -> dict[str, object]:
    r = httpx.get(url + "/version", timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_hot_reload_in_flight_finish_on_old_code_and_syntax_errors_keep_old(
    reload_project: Path,
) -> None:
    module = reload_project / "gwapp.py"
    source = module.read_text()
    with run_server(reload_project) as server:
        assert _version(server.url)["version"] == "v1"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(lambda: httpx.get(server.url + "/version?s=1.5", timeout=30))
            time.sleep(0.3)
            module.write_text(source.replace('VERSION = "v1"', 'VERSION = "v2"'))
            wait_until(lambda: _version(server.url)["version"] == "v2", timeout=30, interval=0.1)
            old = in_flight.result()
        assert (old.status_code, old.json()["version"]) == (200, "v1")  # finished on the old worker

        module.write_text(source.replace('VERSION = "v1"', 'VERSION = "v3"\ndef broken(:\n'))
        wait_until(lambda: "reload failed" in server.output(), timeout=30, interval=0.1)
        assert re.search(r"SyntaxError", server.output())
        assert _version(server.url)["version"] == "v2"  # the old workers keep serving

        module.write_text(source.replace('VERSION = "v1"', 'VERSION = "v4"'))
        wait_until(lambda: _version(server.url)["version"] == "v4", timeout=30, interval=0.1)

        def process_parents() -> dict[int, int]:
            found = {}
            for p in descendants(server.proc.pid):
                with contextlib.suppress(OSError):
                    found[p] = int(Path(f"/proc/{p}/stat").read_text().split()[3])
            return found

        def templates() -> set[int]:
            return {p for p, parent in process_parents().items() if parent == server.proc.pid}

        # every group of functions reloads on its own (3 templates start: echo's and
        # secret's, whose environments are their own, and the one the other nine
        # share): the retired templates are stopped along the way, one per group is
        # left, and at most one spare template for the next reload
        wait_until(lambda: len(templates()) in (3, 4), timeout=30, interval=0.2)
        parents = process_parents()
    templates_left = {p for p, parent in parents.items() if parent == server.proc.pid}
    assert 3 <= len(templates_left) <= 4
    assert all(parent in templates_left for p, parent in parents.items() if p not in templates_left)


RESTART_APP = """
import time

from sls_py import App, HttpRequest, http

app = App("restarts")


@app.function(name="first", triggers=[http("GET", "/first")])
def first(req: HttpRequest, ctx) -> dict:
    time.sleep(float(req.query_param("s", "0")))
    return {"first": True}
"""

SECOND_FUNCTION = """

@app.function(name="second", triggers=[http("GET", "/second")])
def second(req: HttpRequest, ctx) -> dict:
    return {"second": True}
"""


def test_a_new_route_restarts_the_server_in_place(tmp_path: Path) -> None:
    """A source change that changes the spec (here: a new function and route) is
    applied by running `sls-py run` again in the same process, which keeps the
    listening socket: same pid, same URL, no connection refused meanwhile."""
    project = write_project(tmp_path / "restart", "restartapp", RESTART_APP)
    module = project / "restartapp.py"
    refused = 0
    with run_server(project) as server:
        with server.client() as c:
            assert c.get("/first").json() == {"first": True}
            assert c.get("/second").status_code == 403  # no such route yet
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(lambda: httpx.get(server.url + "/first?s=1.5", timeout=30))
            time.sleep(0.3)
            module.write_text(module.read_text() + SECOND_FUNCTION)
            slow = in_flight.result()
        assert (slow.status_code, slow.json()) == (200, {"first": True})  # finished first

        def second_answers() -> bool:
            nonlocal refused
            try:
                return httpx.get(server.url + "/second", timeout=10).status_code == 200
            except httpx.ConnectError:
                refused += 1
                return False
            except httpx.TransportError:  # a connection the old process had accepted
                return False

        wait_until(second_answers, timeout=60, interval=0.1)
        with server.client() as c:
            assert c.get("/second").json() == {"second": True}
            assert c.get("/first").json() == {"first": True}
        assert server.proc.poll() is None  # the same process, running the new spec
        wait_until(lambda: server.output().count(f"ready: {server.url} ") == 2)  # same URL
        output = server.output()
    assert refused == 0
    assert (
        "the app's spec changed (functions added: second): restarting `sls-py run` to apply it"
        in output
    )
    assert "Traceback" not in output


def test_a_code_only_change_does_not_restart(tmp_path: Path) -> None:
    project = write_project(tmp_path / "norestart", "restartapp", RESTART_APP)
    module = project / "restartapp.py"
    with run_server(project) as server:
        module.write_text(module.read_text().replace('{"first": True}', '{"first": 2}'))
        wait_until(lambda: httpx.get(server.url + "/first").json() == {"first": 2}, timeout=30)
        wait_until(lambda: "reloaded: new requests go to the new code" in server.output())
        output = server.output()
    assert "restarting" not in output
    assert output.count("ready: ") == 1


def test_a_configuration_change_restarts_too(tmp_path: Path) -> None:
    project = write_project(tmp_path / "config", "restartapp", RESTART_APP)
    config = project / "pyproject.toml"
    with run_server(project) as server:
        with server.client() as c:
            assert c.get("/first").status_code == 200
        config.write_text(config.read_text() + "\n[tool.sls-py.stages.dev]\nmemory_mb = 256\n")
        wait_until(lambda: server.output().count(f"ready: {server.url} ") == 2, timeout=60)
        with server.client() as c:
            assert c.get("/first").status_code == 200
        output = server.output()
    assert "the app's spec changed (functions changed: first): restarting" in output


def test_describe_spec_change() -> None:
    from sls_py_local.server import describe_spec_change

    old = {"app": "a", "stage": "dev", "functions": [{"name": "f", "memory_mb": 128}]}
    assert describe_spec_change(old, old) is None
    new = {
        "app": "a",
        "stage": "dev",
        "gateway": {"api_keys": ["k"]},
        "functions": [{"name": "f", "memory_mb": 256}, {"name": "g"}],
    }
    assert describe_spec_change(old, new) == (
        "the app's spec changed (functions added: g; functions changed: f; "
        "app settings changed: gateway)"
    )
    assert describe_spec_change(new, {**new, "functions": []}) == (
        "the app's spec changed (functions removed: f, g)"
    )


def test_a_restart_goes_on_with_the_simulated_clock(tmp_path: Path) -> None:
    """`--clock START@SPEED` resumes at the simulated time the restart happened,
    so schedules already fired do not fire again."""
    from sls_py_local.runfile import read_run_info

    project = write_project(tmp_path / "clocked", "restartapp", RESTART_APP)
    module = project / "restartapp.py"
    state = project / ".sls-py" / "local" / "dev"
    with run_server(project, "--clock", "2026-01-01T00:00:00Z@3600") as server:
        assert (read_run_info(state) or {}).get("clock") == "2026-01-01T00:00:00Z@3600"
        time.sleep(1.0)  # an hour of simulated time, at least
        module.write_text(module.read_text() + SECOND_FUNCTION)
        wait_until(lambda: server.output().count(f"ready: {server.url} ") == 2, timeout=60)
        resumed = (read_run_info(state) or {}).get("clock")
    assert isinstance(resumed, str) and resumed.endswith("@3600")
    assert resumed[:19] >= "2026-01-01T01:00:00"  # went on, did not start over


EMBEDDED = """
import sys

from sls_py.config import load_project
from sls_py.provider import RunOptions
from sls_py.ui import PlainUI
from sls_py_local.server import serve

project = load_project(sys.argv[1])
sys.exit(serve(project.spec(), project, RunOptions(port=0), PlainUI(sys.stderr)))
"""


def test_an_embedded_server_asks_for_a_restart_instead(tmp_path: Path) -> None:
    """serve() called by another program does not re-execute that program."""
    project = write_project(tmp_path / "embedded", "restartapp", RESTART_APP)
    module = project / "restartapp.py"
    log = tmp_path / "embedded.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", EMBEDDED, str(project)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        found = wait_until(lambda: re.search(r"ready: (http://\S+)", log.read_text()), timeout=60)
        url = found.group(1)
        module.write_text(module.read_text() + SECOND_FUNCTION)
        wait_until(lambda: "restart the server to apply it" in log.read_text(), timeout=60)
        assert httpx.get(url + "/first").json() == {"first": True}  # still serving
        assert proc.poll() is None
        assert log.read_text().count("ready: ") == 1  # not restarted
        assert (
            "the app's spec changed (functions added: second): restart the server to apply it"
            in log.read_text()
        )
    finally:
        proc.terminate()
        proc.wait(timeout=15)


VERSIONED_APP = """
from sls_py import App, HttpRequest, http

app = App("versions")
VERSION = 1


@app.function(name="version", triggers=[http("GET", "/version")])
def version(req: HttpRequest, ctx) -> dict:
    return {"version": VERSION}


@app.function(name="other", triggers=[http("GET", "/other")])
def other(req: HttpRequest, ctx) -> dict:
    return {"other": VERSION}
"""


def test_no_request_fails_while_the_code_reloads(tmp_path: Path) -> None:
    """Requests keep coming on keep-alive connections while the code is edited,
    once with a second save right after the first (which supersedes the reload
    the first started): every one gets a 200 from the old or the new code, and
    on each connection each function's version never goes back once its new code
    answered (each template, and so each group of functions, reloads on its own)."""
    project = write_project(tmp_path / "versions", "versionsapp", VERSIONED_APP)
    module = project / "versionsapp.py"
    source = module.read_text()
    editing = True
    seen: dict[tuple[int, bytes], list[int]] = {}

    def make(conn: int, i: int) -> tuple[bytes, Any]:
        path = b"/version" if i % 2 == 0 else b"/other"

        def check(status: int, body: bytes) -> str | None:
            if status != 200:
                return f"HTTP {status}: {body[:200]!r}"
            value = next(iter(json.loads(body).values()))
            seen.setdefault((conn, path), []).append(value)
            return None

        return b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n", check

    def edit(version: int) -> None:
        module.write_text(source.replace("VERSION = 1", f"VERSION = {version}"))

    def answers(version: int) -> bool:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            return all(
                next(iter(c.get(p).json().values())) == version for p in ("/version", "/other")
            )

    with run_server(project) as server:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            load = pool.submit(run_load, server.url, 4, 20, make, lambda: editing)
            try:
                time.sleep(0.3)
                edit(2)
                wait_until(lambda: answers(2), timeout=60, interval=0.05)
                edit(3)
                time.sleep(0.02)  # before the first reload is done: it is superseded
                edit(4)
                wait_until(lambda: answers(4), timeout=60, interval=0.05)
                time.sleep(0.3)
            finally:
                editing = False
            result = load.result(timeout=60)
        output = server.output()
    assert result.wrong == []
    assert result.ok == result.sent > 4 * 20
    assert len(seen) == 4 * 2
    for (conn, path), versions in seen.items():
        assert versions == sorted(versions), f"{path!r} on connection {conn} went back: {versions}"
        assert versions[-1] == 4
    assert {2, 4} <= {v for versions in seen.values() for v in versions}
    assert "restarting" not in output
    assert "Traceback" not in output


def test_a_configuration_that_does_not_build_keeps_the_spec(tmp_path: Path) -> None:
    """The new template reports why the spec does not build; nothing restarts."""
    project = write_project(tmp_path / "badconfig", "restartapp", RESTART_APP)
    config = project / "pyproject.toml"
    with run_server(project) as server:
        config.write_text(config.read_text() + "\n[tool.sls-py.stages.dev.functions.nope]\nmemory_mb = 256\n")
        wait_until(lambda: "spec does not build" in server.output(), timeout=60)
        with server.client() as c:
            assert c.get("/first").json() == {"first": True}
        output = server.output()
    assert (
        "the app's spec does not build from the changed code, so routes and settings stay "
        "as they were: " in output
    )
    assert "names unknown function(s) nope" in output
    assert "restarting" not in output
    assert output.count("ready: ") == 1


SPARE_APP = """
import os

from sls_py import App, HttpRequest, http

app = App("spares")
VERSION = 1


@app.function(name="version", triggers=[http("GET", "/version")])
def version(req: HttpRequest, ctx) -> dict:
    return {"version": VERSION, "template": os.getppid()}
"""


def _spares(gateway: int) -> set[int]:
    """The gateway's spare template processes (started with SLS_PY_SPARE)."""
    found = set()
    for pid in descendants(gateway):
        with contextlib.suppress(OSError):
            stat_fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            if int(stat_fields[1]) == gateway and b"SLS_PY_SPARE=" in environ:
                found.add(pid)
    return found


def test_a_reload_starts_from_the_spare_template(tmp_path: Path) -> None:
    """A spare template waits with the app's libraries imported; the next reload
    makes it the function's template (its workers answer), and a new spare follows."""
    project = write_project(tmp_path / "spares", "spareapp", SPARE_APP)
    module = project / "spareapp.py"
    with run_server(project) as server:
        with server.client() as c:
            first = c.get("/version").json()
        spare = wait_until(lambda: _spares(server.proc.pid), timeout=30)
        assert first["template"] not in spare
        (spare_pid,) = spare
        module.write_text(module.read_text().replace("VERSION = 1", "VERSION = 2"))
        with server.client() as c:
            wait_until(lambda: c.get("/version").json()["version"] == 2, timeout=60)
            assert c.get("/version").json() == {"version": 2, "template": spare_pid}
        # the next spare, for the next change
        wait_until(lambda: _spares(server.proc.pid) - {spare_pid}, timeout=30)
        output = server.output()
    assert "reloaded: new requests go to the new code" in output
    assert "Traceback" not in output
