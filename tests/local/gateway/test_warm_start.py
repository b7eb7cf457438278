"""A warm `sls-py run` serves from the spec cached by the previous start
(core/speccache.py, core/entry.py): its gateway imports neither pydantic nor
the CLI, a change to a source file or to pyproject.toml means a cold start that
builds the spec again, and what the fingerprint cannot see (a declaration that
depends on an environment variable) is caught by the background check, which
restarts the server in place with the new spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sls_py import speccache
from sls_py.config import load_project
from sls_py.entry import _RUN_FLAGS, _RUN_VALUES, _parse
from sls_py.spec import Spec

from .support import run_server, wait_until, write_project

pytestmark = pytest.mark.timeout(120)

APP = """
import os
from sls_py import App, HttpRequest, http

app = App("warm")
ROUTE = os.environ.get("WARM_ROUTE", "/hello")

@app.function(name="hello", triggers=[http("GET", ROUTE)])
def hello(req: HttpRequest, ctx) -> dict:
    return {"answer": "v1", "route": ROUTE}

@app.function(name="double")
def double(n: int, ctx) -> int:
    return 2 * n
"""


def answers(url: str) -> bool:
    """Whether GET ``url`` answers 200 now (a server restarting in place may not)."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def gateway_maps(pid: int) -> str:
    """The gateway process's memory map: its loaded extension modules."""
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture
def warm_project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "warm", "warmapp", APP, app_name="warm")


def test_second_start_serves_without_pydantic_in_the_gateway(warm_project: Path) -> None:
    cache = speccache.cache_file(warm_project, "dev", None)
    with run_server(warm_project) as cold:
        assert httpx.get(cold.url + "/hello").json() == {"answer": "v1", "route": "/hello"}
        cold_maps = gateway_maps(cold.proc.pid)
    assert "pydantic_core" in cold_maps  # the cold start built the spec with pydantic
    data = json.loads(cache.read_text())
    assert data["provider"] == "local" and data["plugin_module"] == "sls_py_local.plugin"
    assert [f["name"] for f in data["spec"]["functions"]] == ["hello", "double"]

    with run_server(warm_project) as warm:
        assert httpx.get(warm.url + "/hello").json() == {"answer": "v1", "route": "/hello"}
        maps = gateway_maps(warm.proc.pid)
        assert "pydantic_core" not in maps
        # the background check built the same spec: no restart
        time.sleep(1.5)
        assert "out of date" not in warm.output()
    assert "GET" in warm.output() and "/hello" in warm.output()  # the route table, as before


def test_a_changed_source_means_a_cold_start_with_the_new_spec(warm_project: Path) -> None:
    with run_server(warm_project):
        pass
    source = warm_project / "warmapp.py"
    source.write_text(source.read_text().replace('"/hello"', '"/bonjour"'))
    with run_server(warm_project) as server:
        assert "pydantic_core" in gateway_maps(server.proc.pid)
        assert httpx.get(server.url + "/bonjour").json()["route"] == "/bonjour"
        assert httpx.get(server.url + "/hello").status_code == 403  # no such route, as API Gateway answers


def test_a_stale_cache_the_fingerprint_cannot_see_is_caught_and_the_server_restarts(
    warm_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_server(warm_project):
        pass
    monkeypatch.setenv("WARM_ROUTE", "/moved")  # the app's routes depend on it
    with run_server(warm_project) as server:

        wait_until(lambda: answers(server.url + "/moved"), timeout=60)
        assert "the cached spec is out of date" in server.output()
        assert server.proc.poll() is None  # restarted in place: the same process
    assert (
        json.loads(speccache.cache_file(warm_project, "dev", None).read_text())["spec"]["functions"][0][
            "triggers"
        ][0]["path"]
        == "/moved"
    )


def test_warm_start_errors_are_one_line(warm_project: Path) -> None:
    with run_server(warm_project) as server:
        done = subprocess.run(
            [sys.executable, "-m", "sls_py", "run", "-p", str(warm_project), "--port", "0", "--stage", "dev"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert server.proc.poll() is None
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr, done.stderr


def _invoke(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sls_py", "invoke", "double", "21", "-p", str(project), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_invoke_keeps_the_spec_and_answers_the_same_warm(warm_project: Path) -> None:
    cold = _invoke(warm_project, "--stage", "dev")
    assert (cold.returncode, cold.stdout) == (0, "42\n"), cold.stderr
    assert speccache.cache_file(warm_project, "dev", None).exists()
    warm = _invoke(warm_project, "--stage", "dev", "--json")
    assert warm.returncode == 0, warm.stderr
    assert json.loads(warm.stdout)["result"] == 42
    failed = _invoke(warm_project, "--stage", "dev", "--file", "-")  # a payload and --file
    assert failed.returncode == 2 and failed.stderr.startswith("error: give the payload either")


def _imported(argv: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime -m sls_py ARGV``; the result and the top-level
    packages the sls-py process imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sls_py", *argv],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
    )
    names = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return done, names


def test_a_cold_or_stale_run_or_invoke_builds_the_spec_without_the_cli(warm_project: Path) -> None:
    """With no cached spec, or a stale one after an edit, `run` and `invoke` build
    it as the CLI's commands do (sls_py.session) but without typer and the
    plugins' commands; another command still goes through the CLI."""
    argv = ["invoke", "double", "21", "-p", str(warm_project)]
    cold, cold_names = _imported(argv, warm_project)
    assert (cold.returncode, cold.stdout) == (0, "42\n"), cold.stderr
    assert speccache.cache_file(warm_project, None, None).exists()  # kept for next time
    source = warm_project / "warmapp.py"
    source.write_text(source.read_text().replace("2 * n", "3 * n"))
    stale, stale_names = _imported(argv, warm_project)
    assert (stale.returncode, stale.stdout) == (0, "63\n"), stale.stderr
    assert "pydantic" in cold_names and "pydantic" in stale_names  # the spec was built
    assert "typer" not in cold_names and "typer" not in stale_names
    unknown, _ = _imported(["invoke", "nope", "1", "-p", str(warm_project)], warm_project)
    assert unknown.returncode == 2 and "has no function 'nope'" in unknown.stderr  # the CLI's error
    _, cli_names = _imported(["spec", "-p", str(warm_project)], warm_project)
    assert "typer" in cli_names


def test_a_provider_without_warm_start_always_goes_through_the_plugins(warm_project: Path) -> None:
    done = _invoke(warm_project, "--provider", "inprocess")
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr
    assert not (warm_project / ".sls-py" / "cache").exists()


def test_fingerprint_follows_sources_and_config(warm_project: Path) -> None:
    sls_py_dir = str(Path(speccache.__file__).parent)
    first = speccache.fingerprint(warm_project, ".", [sls_py_dir])
    assert speccache.fingerprint(warm_project, ".", [sls_py_dir]) == first
    (warm_project / ".venv").mkdir()
    (warm_project / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (warm_project / ".venv" / "lib.py").write_text("x = 1\n")
    (warm_project / "__pycache__").mkdir()
    (warm_project / "__pycache__" / "x.py").write_text("")
    assert speccache.fingerprint(warm_project, ".", [sls_py_dir]) == first  # skipped folders
    (warm_project / "pkg").mkdir()
    (warm_project / "pkg" / "mod.py").write_text("y = 2\n")
    second = speccache.fingerprint(warm_project, ".", [sls_py_dir])
    assert second != first
    pyproject = warm_project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.sls-py.stages.dev]\nmemory_mb = 256\n")
    assert speccache.fingerprint(warm_project, ".", [sls_py_dir]) != second


def test_a_cache_written_for_other_inputs_is_not_loaded(warm_project: Path) -> None:
    proj = load_project(warm_project)
    spec = proj.spec("dev")
    import sls_py_local.plugin as plugin

    speccache.store(
        warm_project,
        "dev",
        None,
        spec=spec,
        provider_name="local",
        plugin=plugin,
        notes=[],
        project_name="warm",
    )
    loaded = speccache.load(warm_project, "dev", None)
    assert loaded is not None and Spec.from_data(loaded["spec"]) == spec
    assert speccache.load(warm_project, "prod", None) is None  # another command line
    os.utime(warm_project / "warmapp.py", ns=(1, 1))
    assert speccache.load(warm_project, "dev", None) is None


def test_a_plugin_object_that_is_not_a_module_gets_no_cache(warm_project: Path) -> None:
    spec = load_project(warm_project).spec("dev")
    speccache.store(
        warm_project, "dev", None, spec=spec, provider_name="x", plugin=object(), notes=[], project_name="w"
    )
    assert not speccache.cache_file(warm_project, "dev", None).exists()


def test_spec_round_trips_through_plain_data_as_pydantic_would_validate_it(work_magic: Path) -> None:
    spec = load_project(work_magic).spec("prod")
    data = json.loads(json.dumps(spec.to_data()))
    assert Spec.from_data(data) == spec == Spec.model_validate(data)
    assert json.loads(spec.model_dump_json()) == data


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], {"project": "."}),
        (["-p", "x", "--port", "0", "--no-reload"], {"project": "x", "port": "0", "reload": False}),
        (
            ["--project=x", "--stage=prod", "-P", "local"],
            {"project": "x", "stage": "prod", "provider": "local"},
        ),
        (["--help"], None),
        (["--port"], None),
        (["--watch", "x"], None),
    ],
)
def test_the_warm_path_reads_only_the_options_it_knows(args: list[str], expected: dict | None) -> None:
    assert _parse(args, _RUN_VALUES, _RUN_FLAGS) == expected


def test_a_copy_this_sls_py_cannot_read_means_a_cold_start(warm_project: Path) -> None:
    """A cached spec whose fingerprint matches but whose data does not build (written
    by another version, or damaged) is not a traceback: the CLI builds the spec."""
    first = _invoke(warm_project, "--stage", "dev")
    assert first.returncode == 0, first.stderr
    cache = speccache.cache_file(warm_project, "dev", None)
    data = json.loads(cache.read_text())
    data["spec"]["functions"][0]["no_such_field"] = 1
    cache.write_text(json.dumps(data))
    assert speccache.load(warm_project, "dev", None) is not None  # still "fresh" by its fingerprint
    again = _invoke(warm_project, "--stage", "dev")
    assert (again.returncode, again.stdout) == (0, "42\n"), again.stderr
    assert "no_such_field" not in cache.read_text()  # the cold start kept a good copy


def test_a_reload_that_changes_the_spec_restarts_warm(warm_project: Path) -> None:
    """An edit that adds a route restarts `sls-py run` in place; the reload's new
    template built the new spec, which is kept for the restart, so the restarted
    gateway (same process) serves the new route without importing pydantic."""
    with run_server(warm_project, "--reload") as server:
        source = warm_project / "warmapp.py"
        source.write_text(
            source.read_text()
            + '''

@app.function(name="added", triggers=[http("GET", "/added")])
def added(req: HttpRequest, ctx) -> dict:
    return {"added": True}
'''
        )

        wait_until(lambda: answers(server.url + "/added"), timeout=60)
        assert "restarting `sls-py run`" in server.output()
        assert server.proc.poll() is None
        assert "pydantic_core" not in gateway_maps(server.proc.pid)
    data = json.loads(speccache.cache_file(warm_project, "dev", None).read_text())
    assert [f["name"] for f in data["spec"]["functions"]] == ["hello", "double", "added"]
