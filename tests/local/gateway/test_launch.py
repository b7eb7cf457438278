"""`sls-py run` starts the HTTP functions' templates before the gateway's own
imports and set-up (providers/local/launch.py). The early process is the one
that serves (no second template), it has the function's environment before the
app's import, a failing import is reported and retried with fresh code, and a
start-up that fails leaves nothing running."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sls_py.config import load_project
from sls_py.errors import ConfigError
from sls_py.provider import RunOptions
from sls_py.ui import PlainUI
from sls_py_local import procname
from sls_py_local.launch import listen, prepare
from sls_py_local.server import serve

from .support import alive, descendants, run_server, wait_until, write_project

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _keep_cpu_affinity() -> Iterator[None]:
    """prepare() pins the calling process (the gateway's) to one core: undo it for
    this test process, so later tests here see every core again."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    cpus = os.sched_getaffinity(0)
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)

APP = """
import os

from sls_py import App, HttpRequest, http, schedule

app = App("launchtest")
# what the process saw while the app was imported (the CLI imports it too, without
# SLS_PY_FUNCTION; a function's own template imports it with the function's
# environment, a template shared by several functions without SLS_PY_FUNCTION)
AT_IMPORT = {
    "function": os.environ.get("SLS_PY_FUNCTION"),
    "own": os.environ.get("ONLY_FIRST"),
    "stage": os.environ.get("GREETING"),
}
if AT_IMPORT["function"] == "first" and os.path.exists("broken.flag"):
    raise RuntimeError("broken on purpose")


@app.function(name="first", environment={"ONLY_FIRST": "1"}, triggers=[http("GET", "/first")])
def first(req: HttpRequest, ctx) -> dict:
    return {"at_import": AT_IMPORT, "ppid": os.getppid()}


@app.function(name="second", triggers=[http("GET", "/second")])
def second(req: HttpRequest, ctx) -> dict:
    return {"at_import": AT_IMPORT, "ppid": os.getppid()}


@app.function(name="nightly", triggers=[schedule("rate(1 day)")])
def nightly(event, ctx) -> None:
    return None
"""

CONFIG = """
[tool.sls-py.stages.dev]
environment = { GREETING = "hello" }
"""


def _templates(gateway_pid: int) -> dict[int, str]:
    """The gateway's template processes: pid -> the functions it serves (from its
    environment: ``"second,nightly"`` for a template they share)."""
    found = {}
    for pid in descendants(gateway_pid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2 :].split()[1])
        if parent == gateway_pid and name == procname.TEMPLATE:
            own = [v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"SLS_PY_FUNCTION=")]
            shared = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"SLS_PY_FUNCTIONS=")]
            found[pid] = ",".join(json.loads(shared[0])) if shared else own[0]
    return found


def test_the_early_templates_serve_with_their_environment(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", "launchapp", APP, CONFIG, "launchtest")
    with run_server(project, "--no-reload") as server, server.client() as c:
        first, second = c.get("/first"), c.get("/second")
        assert (first.status_code, second.status_code) == (200, 200)
        assert first.json()["at_import"] == {"function": "first", "own": "1", "stage": "hello"}
        # second shares its template with nightly (their environments are equal)
        assert second.json()["at_import"] == {"function": None, "own": None, "stage": "hello"}
        templates = _templates(server.proc.pid)
        # first's own template, and the one second and the schedule-only nightly
        # share, started early for second: an early template that was not adopted
        # would still be here next to a second one
        assert sorted(templates.values()) == ["first", "second,nightly"]
        by_function = {name: pid for pid, name in templates.items()}
        assert first.json()["ppid"] == by_function["first"]
        assert second.json()["ppid"] == by_function["second,nightly"]


def test_a_failing_early_template_is_reported_and_retried(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", "launchapp", APP, CONFIG, "launchtest")
    (project / "broken.flag").write_text("")
    with run_server(project, "--no-reload") as server, server.client() as c:
        wait_until(lambda: "broken on purpose" in server.output())
        assert "cannot start the function (retried on its next invocation)" in server.output()
        assert c.get("/second").status_code == 200  # the other function is not affected
        (project / "broken.flag").unlink()
        answer = c.get("/first")
        assert (answer.status_code, answer.json()["at_import"]["function"]) == (200, "first")
        assert sorted(_templates(server.proc.pid).values()) == ["first", "second,nightly"]


def test_a_failed_start_up_kills_the_early_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sls_py.errors import ProviderError
    from sls_py_local import server as server_module
    from sls_py_local.runfile import RunLock

    project = load_project(write_project(tmp_path / "p", "launchapp", APP, CONFIG, "launchtest"))
    spec = project.spec()
    options = RunOptions(port=0, reload=False)
    prepared = prepare(spec, project, options)
    assert sorted(prepared.launches) == ["first", "second"]
    assert prepared.listener is not None
    procs = [launch.proc for launch in prepared.launches.values()]
    assert all(p.poll() is None for p in procs)

    def unreadable(*args: object) -> None:
        raise ProviderError("cannot read the API keys")

    monkeypatch.setattr(server_module, "load_api_keys", unreadable)  # fails after prepare()
    with pytest.raises(ProviderError, match="cannot read the API keys"):
        serve(spec, project, options, PlainUI(io.StringIO()), prepared)
    assert all(p.poll() is not None for p in procs)
    assert prepared.listener.fileno() == -1  # closed: the port is free again
    again = RunLock(project.state_dir / "local" / "dev")
    again.acquire()  # the stage's run lock was released too
    again.release()


def test_a_second_run_of_the_stage_is_refused_before_any_template_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sls_py.errors import ProviderError
    from sls_py_local import launch

    project = load_project(write_project(tmp_path / "p", "launchapp", APP, CONFIG, "launchtest"))
    first = prepare(project.spec(), project, RunOptions(port=0, reload=False))
    started: list[str] = []
    real_launch = launch.launch_template

    def counting_launch(env: dict[str, str], memory_mb: int | None, cwd: Path) -> launch.Launch:
        started.append(env.get("SLS_PY_FUNCTION", ""))
        return real_launch(env, memory_mb, cwd)

    monkeypatch.setattr(launch, "launch_template", counting_launch)
    try:
        with pytest.raises(ProviderError, match="another sls-py run already serves") as err:
            prepare(project.spec(), project, RunOptions(port=0, reload=False))
        assert err.value.hint == "stop it first (Ctrl-C in its terminal), or use another --stage"
        assert started == []  # refused before any template started
    finally:
        first.close()


def test_a_busy_port_is_refused_before_any_template_starts(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path / "p", "launchapp", APP, CONFIG, "launchtest"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError) as err:
            prepare(project.spec(), project, RunOptions(port=port))
    assert err.value.message.startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert err.value.hint == "choose another port with --port (0 picks a free one)"
    assert _templates(os.getpid()) == {}


def test_the_port_listens_before_the_gateway_runs(tmp_path: Path) -> None:
    """prepare() binds an IP address itself, so a client can connect while the
    gateway still imports (the connection waits in the backlog); a host name is
    left to the event loop."""
    project = load_project(write_project(tmp_path / "p", "launchapp", APP, CONFIG, "launchtest"))
    prepared = prepare(project.spec(), project, RunOptions(port=0, reload=False))
    try:
        assert prepared.listener is not None
        host, port = prepared.listener.getsockname()
        assert host == "127.0.0.1"
        socket.create_connection((host, port), timeout=30).close()
    finally:
        prepared.close()
    assert listen("localhost", 0) is None
    if socket.has_ipv6:
        with contextlib.suppress(ConfigError):  # no IPv6 loopback in this container
            v6 = listen("::1", 0)
            assert v6 is not None
            with v6:
                assert (v6.family, v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)) == (
                    socket.AF_INET6,
                    1,
                )


def test_an_invalid_port_starts_nothing(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path / "p", "launchapp", APP, CONFIG, "launchtest"))
    before = _templates(os.getpid())
    with pytest.raises(ConfigError) as err:
        prepare(project.spec(), project, RunOptions(port=70000))
    assert err.value.message == "--port 70000 is not a TCP port"
    assert _templates(os.getpid()) == before == {}


PROBE = """
import os, signal, sys, threading, time
from pathlib import Path
from sls_py.cli import main

from sls_py_local.runfile import read_run_info

state = Path(sys.argv[1]) / ".sls-py" / "local" / "dev"
heavy = ["croniter", "rich", "sls_py_inprocess.runner"]


def probe():
    while not (read_run_info(state) or {}).get("gateway"):  # published when ready
        time.sleep(0.02)
    print("loaded:", [m for m in heavy if m in sys.modules], flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=probe, daemon=True).start()
sys.exit(main(["run", "-p", sys.argv[1], "--port", "0", "--no-reload"]))
"""

HTTP_APP = """
from sls_py import App, HttpRequest, http

app = App("plainhttp")


@app.function(name="hello", triggers=[http("GET", "/hello")])
def hello(req: HttpRequest, ctx) -> dict:
    return {"hello": "world"}
"""


def test_run_imports_no_rich_croniter_or_other_providers_runners(tmp_path: Path) -> None:
    """What `sls-py run` does not need stays unimported (cold start, gateway memory):
    rich when nothing styled is printed, croniter without cron schedules, and the
    modules of providers that were not chosen beyond their plugin module."""
    project = write_project(tmp_path / "p", "plainhttp", HTTP_APP, "", "plainhttp")
    r = subprocess.run(
        [sys.executable, "-c", PROBE, str(project)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "loaded: []"
    assert "ready: http://127.0.0.1:" in r.stderr


SLOW_APP = """
import os
import time

from sls_py import App, HttpRequest, http

app = App("slowstart")
if os.environ.get("SLS_PY_FUNCTION"):  # in a template only, not when the test builds the spec
    time.sleep(60)


@app.function(name="slow-import", triggers=[http("GET", "/slow-import")])
def slow_import(req: HttpRequest, ctx) -> dict:
    return {}
"""


def test_a_cancelled_template_start_leaves_no_process(tmp_path: Path) -> None:
    """A template whose start is cancelled (shutdown, a superseded reload) is killed
    then, not when the gateway exits."""
    from sls_py_local.handles import Template
    from sls_py_local.logs import LogSink
    from sls_py_local.oneshot import function_environment
    from sls_py_local.settings import PoolSettings
    from sls_py_local.workers import FunctionPool

    project = load_project(write_project(tmp_path / "slow", "slowapp", SLOW_APP))
    spec = project.spec()
    fn = spec.function("slow-import")

    async def cancel_a_start() -> int:
        loop = asyncio.get_running_loop()
        env = function_environment(spec, project, fn)
        logs = LogSink(tmp_path / "logs", stream=io.StringIO())
        pool = FunctionPool(fn, env, project.root, logs, PoolSettings(pin_cpus=False), loop)
        template = Template(pool.group)
        starting = loop.create_task(template.start())
        await asyncio.sleep(0.2)  # started, still importing (60 s)
        assert template.proc is not None and template.proc.poll() is None
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        return template.proc.pid

    pid = asyncio.run(cancel_a_start())
    assert not alive(pid)
