"""Early starts (providers/local/blank.py): a warm `sls-py invoke` or `sls-py run`
starts the function processes before it loads the spec, and hands them their
environment in two steps. A function must not be able to tell: what it sees
(os.environ, sys.path, bytecode settings) is what a process started the usual
way sees, and a function whose start-up variables differ gets a usual start.
Each test runs twice: with the early processes forked from the entry process
(the default on Linux) and started as new interpreters (``SLS_PY_FORK=0``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .support import run_server, write_project

pytestmark = pytest.mark.timeout(120)

APP = """
import os, sys
from pathlib import Path
from sls_py import App, HttpRequest, http

if os.environ.get("EARLY_BREAK") == "1":
    raise RuntimeError("broken on purpose")

app = App("early")
IMPORTED_WITH = os.environ.get("GREETING")  # what the app saw at import time

def seen() -> dict:
    started = Path("/proc/self/environ").read_bytes().split(b"\\0")
    # a fork of the entry process keeps its command line (python -m sls_py ...)
    forked = not any(b"sls_py_local." in arg for arg in Path("/proc/self/cmdline").read_bytes().split(b"\\0"))
    volatile = ("SLS_PY_RESOURCES", "SLS_PY_INVOKE", "PYTEST_", "COV_")
    main = sys.modules["__main__"]
    return {
        "early": b"SLS_PY_BLANK=1" in started or forked,
        "forked": forked,
        "cwd": os.getcwd(),
        "argv": [Path(a).name for a in sys.argv],
        "main": (main.__name__, main.__spec__.name if main.__spec__ else None),
        "fds": sorted(os.listdir("/proc/self/fd")),
        "stdin_is_a_pipe_or_null": not os.isatty(0),
        "environ": {k: v for k, v in os.environ.items() if not k.startswith(volatile)},
        "path": sys.path,
        "dont_write_bytecode": sys.dont_write_bytecode,
        "pycache_prefix": sys.pycache_prefix,
        "hash_randomization": sys.flags.hash_randomization,
        "imported_with": IMPORTED_WITH,
    }

@app.function(name="look", environment={"GREETING": "hello"})
def look(n: int, ctx) -> dict:
    return {**seen(), "function": ctx.function_name}

@app.function(name="seeded", environment={"PYTHONHASHSEED": "0"})
def seeded(n: int, ctx) -> dict:
    return seen()

@app.function(name="web", environment={"GREETING": "hello"}, triggers=[http("GET", "/look")])
def web(req: HttpRequest, ctx) -> dict:
    return {**seen(), "function": ctx.function_name}
"""


@pytest.fixture(params=["1", "0"], ids=["forked", "exec"])
def fork(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setenv("SLS_PY_FORK", request.param)
    return request.param == "1"


@pytest.fixture
def project(tmp_path: Path, fork: bool) -> Path:
    return write_project(tmp_path / "early", "earlyapp", APP, app_name="early")


def _invoke(
    project: Path, function: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sls_py", "invoke", function, "1", "-p", str(project)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)


def _without_early(seen: dict) -> dict:
    return {k: v for k, v in seen.items() if k not in ("early", "forked")}


def test_a_warm_invoke_starts_the_function_early_and_it_sees_what_a_usual_start_sees(
    project: Path, tmp_path: Path, fork: bool
) -> None:
    extra = tmp_path / "extra"  # a PYTHONPATH of the user's: the app's folder goes before it
    env = {**os.environ, "PYTHONPATH": str(extra)}
    cold = _invoke(project, "look", env)  # no cached spec yet: the CLI builds it, a usual start
    assert cold.returncode == 0, cold.stderr
    warm = _invoke(project, "look", env)
    assert warm.returncode == 0, warm.stderr
    cold_seen, warm_seen = json.loads(cold.stdout), json.loads(warm.stdout)
    assert cold_seen["early"] is False
    assert (warm_seen["early"], warm_seen["forked"]) == (True, fork)
    # the folder, command line, __main__, open fds, environment, sys.path, bytecode:
    # all as in a process started the usual way
    assert _without_early(warm_seen) == _without_early(cold_seen)
    assert warm_seen["cwd"] == str(project.resolve())
    assert warm_seen["main"] == ["__main__", "sls_py_local.oneshot"]
    assert warm_seen["imported_with"] == "hello"  # step 1 came before the app's import
    assert "SLS_PY_BLANK" not in warm_seen["environ"]
    # PYTHONPATH where the interpreter puts it: after the working folder
    assert warm_seen["path"][1:3] == [str(project.resolve()), str(extra)]


def test_a_function_whose_start_up_variables_differ_gets_a_usual_start(project: Path) -> None:
    assert _invoke(project, "seeded").returncode == 0  # caches the spec
    warm = _invoke(project, "seeded")
    assert warm.returncode == 0, warm.stderr
    seen = json.loads(warm.stdout)
    assert seen["early"] is False  # PYTHONHASHSEED acts at interpreter start only
    assert seen["hash_randomization"] == 0


def test_an_app_that_fails_to_import_in_an_early_process_is_reported_as_usual(project: Path) -> None:
    assert _invoke(project, "look").returncode == 0
    broken = _invoke(project, "look", env={**os.environ, "EARLY_BREAK": "1"})
    assert broken.returncode == 1
    assert "broken on purpose" in broken.stderr and "Traceback" not in broken.stderr, broken.stderr


def test_a_warm_run_starts_the_http_templates_early_and_workers_see_a_usual_start(
    project: Path, fork: bool
) -> None:
    with run_server(project) as cold:
        cold_seen = httpx.get(cold.url + "/look").json()
    with run_server(project) as warm:
        warm_seen = httpx.get(warm.url + "/look").json()
    assert (cold_seen["early"], warm_seen["early"], warm_seen["forked"]) == (False, True, fork)
    assert _without_early(warm_seen) == _without_early(cold_seen)
    assert warm_seen["main"] == ["__main__", "sls_py_local.template"]
    assert warm_seen["function"] == "web" and warm_seen["imported_with"] == "hello"


def test_a_warm_run_whose_app_fails_to_import_early_answers_as_usual(project: Path) -> None:
    with run_server(project):
        pass
    with run_server(project, env={**os.environ, "EARLY_BREAK": "1"}) as server:
        response = httpx.get(server.url + "/look")
        assert response.status_code == 502
        assert "broken on purpose" in server.output()


def test_a_cold_start_after_an_edit_adopts_the_template_the_last_spec_started(project: Path) -> None:
    """The cached spec is stale after an edit (the CLI builds it again), but what it
    says the last start ran still fits: the template started from it imports the
    edited code and serves, the added function included."""
    with run_server(project):
        pass
    source = project / "earlyapp.py"
    source.write_text(
        source.read_text().replace('"function": ctx.function_name}', '"function": ctx.function_name, "v": 2}')
        + """

@app.function(name="added", environment={"GREETING": "hello"}, triggers=[http("GET", "/added")])
def added(req: HttpRequest, ctx) -> dict:
    return {**seen(), "function": ctx.function_name}
"""
    )
    with run_server(project) as server:
        assert "pydantic_core" in Path(f"/proc/{server.proc.pid}/maps").read_text()  # a cold start
        web = httpx.get(server.url + "/look").json()
        added = httpx.get(server.url + "/added").json()
    assert (web["early"], web["v"], web["function"]) == (True, 2, "web")
    assert (added["early"], added["function"]) == (True, "added")  # forked from the same template
