"""Functions whose environments are equal share one template process, which forks
the workers of each (providers/local/group.py, launch.template_groups): each
worker still is its function's (its name, memory limit, invoke targets, timeout,
logs); a function with an environment of its own gets a template of its own; a
function without an HTTP trigger forks from the shared template on its first
invocation; the shared template's death restarts every function using it, and
hot reload swaps them all to the new code."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sls_py.config import load_project
from sls_py.errors import ConfigError
from sls_py_local import procname

from .support import Server, run_server, started_early, wait_until, write_project

pytestmark = pytest.mark.timeout(120)

APP = """
import os
import time

from sls_py import App, HttpRequest, http

app = App("sharing")
files = app.bucket("files")
VERSION = 1
# what the template saw while it imported the app
AT_IMPORT = os.environ.get("SLS_PY_FUNCTION")
if os.environ.get("SLS_PY_RESOURCES"):  # in a template (not when the CLI builds the spec):
    files.list()  # the resource driver is made here, before any worker's fork


def _about(ctx) -> dict:
    ctx.logger.info("%s says hello", ctx.function_name)
    return {
        "version": VERSION,
        "function": ctx.function_name,
        "env_function": os.environ.get("SLS_PY_FUNCTION"),
        "memory_mb": ctx.memory_mb,
        "at_import": AT_IMPORT,
        "can_call_back": "SLS_PY_INVOKE_TOKEN" in os.environ,
        "template": os.getppid(),
    }


def _try_invoke(ctx) -> object:
    try:
        return ctx.invoke("helper", {})
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _allocate(req: HttpRequest) -> None:
    block = bytearray(int(req.query_param("mb", "0")) * 1024 * 1024)
    del block


@app.function(name="alpha", memory_mb=128, invokes=["helper"], triggers=[http("GET", "/alpha")])
def alpha(req: HttpRequest, ctx) -> dict:
    _allocate(req)
    return {**_about(ctx), "invoked": _try_invoke(ctx)}


@app.function(name="beta", memory_mb=256, timeout_s=1, triggers=[http("GET", "/beta")])
def beta(req: HttpRequest, ctx) -> dict:
    _allocate(req)
    time.sleep(float(req.query_param("s", "0")))
    return {**_about(ctx), "invoked": _try_invoke(ctx)}


@app.function(name="helper")
def helper(payload: dict, ctx) -> dict:
    return {"function": ctx.function_name, "template": os.getppid(), "version": VERSION}


@app.function(name="loner", environment={"OWN": "yes"}, triggers=[http("GET", "/loner")])
def loner(req: HttpRequest, ctx) -> dict:
    return {**_about(ctx), "own": os.environ.get("OWN")}
"""


def _project(tmp_path: Path, config: str = "") -> Path:
    return write_project(tmp_path / "sharing", "sharingapp", APP, config, "sharing")


def _templates(gateway: int, *, spares: bool = False) -> set[int]:
    """The gateway's template processes (its children named sls-py-template, see
    sls_py_local.procname), without the spare one waiting for the next reload
    unless ``spares``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            name = Path(f"/proc/{entry}/comm").read_text().strip()
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z" or int(fields[1]) != gateway or name != procname.TEMPLATE:
            continue
        if spares or b"SLS_PY_SPARE=" not in environ:
            found.add(int(entry))
    return found


def _get(server: Server, path: str) -> dict[str, Any]:
    r = httpx.get(server.url + path, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _records(server: Server, message: str) -> set[str]:
    """The functions that logged ``message`` (``--json-logs`` lines of the output)."""
    found = set()
    for line in server.output().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("message") == message:
                found.add(record["function"])
    return found


def test_functions_with_equal_environments_share_one_template(tmp_path: Path) -> None:
    with run_server(_project(tmp_path), "--no-reload", "--json-logs") as server:
        first, second = _get(server, "/alpha"), _get(server, "/beta")
        loner = _get(server, "/loner")
        # alpha, beta and helper share one template; loner (its own environment) has its own
        shared = first["template"]
        assert second["template"] == shared != loner["template"]
        assert _templates(server.proc.pid) == {shared, loner["template"]}
        # the shared template imported the app as no function; loner's as loner
        assert (first["at_import"], second["at_import"], loner["at_import"]) == (None, None, "loner")
        # each worker is its own function's: name, memory limit, invoke permissions
        assert {k: first[k] for k in ("function", "env_function", "memory_mb", "can_call_back")} == {
            "function": "alpha",
            "env_function": "alpha",
            "memory_mb": 128,
            "can_call_back": True,
        }
        assert {k: second[k] for k in ("function", "env_function", "memory_mb", "can_call_back")} == {
            "function": "beta",
            "env_function": "beta",
            "memory_mb": 256,
            "can_call_back": False,
        }
        # helper (no HTTP trigger) forks from the shared template on its first invocation
        assert first["invoked"] == {"function": "helper", "template": shared, "version": 1}
        assert second["invoked"] == (
            "InvokeError: function 'beta' may not invoke 'helper': it is not a declared target; "
            "declare it with @app.function(name='beta', invokes=['helper'])"
        )
        assert loner["own"] == "yes" and "OWN" not in json.dumps(first)
        # the memory limit is each function's: 200 MB fits in beta's 256, not in alpha's 128
        assert httpx.get(server.url + "/beta?mb=200", timeout=30).status_code == 200
        assert httpx.get(server.url + "/alpha?mb=200", timeout=30).status_code == 502
        # and so is the timeout (beta: 1 s)
        assert httpx.get(server.url + "/beta?s=3", timeout=30).status_code == 504
        assert _get(server, "/alpha")["function"] == "alpha"  # a new worker of alpha's
        wait_until(lambda: _records(server, "alpha says hello") == {"alpha"})
        wait_until(lambda: _records(server, "beta says hello") == {"beta"})
        assert _templates(server.proc.pid) == {shared, loner["template"]}
        wait_until(lambda: "timed out after 1 s" in server.output())
        assert "function 'alpha' ran out of memory (limit 128 MB)" in server.output()


def test_killing_the_shared_template_restarts_every_function_using_it(tmp_path: Path) -> None:
    with run_server(_project(tmp_path), "--no-reload", "--json-logs") as server:
        before = _get(server, "/alpha")  # alpha's worker, and helper's (invoked)
        assert _get(server, "/beta")["template"] == before["template"]
        loner = _get(server, "/loner")["template"]
        os.kill(before["template"], signal.SIGKILL)
        restarted = "the function's template process exited; restarting it"
        wait_until(lambda: _records(server, restarted) == {"alpha", "beta", "helper"})
        after = wait_until(lambda: _get(server, "/alpha"))
        assert after["template"] != before["template"]
        assert after["invoked"] == {"function": "helper", "template": after["template"], "version": 1}
        assert _get(server, "/beta")["template"] == after["template"]  # one new template for all
        assert _get(server, "/loner")["template"] == loner  # another group's: untouched
        assert _templates(server.proc.pid) == {after["template"], loner}


def test_hot_reload_serves_the_new_code_for_every_function_of_the_template(tmp_path: Path) -> None:
    project = _project(tmp_path)
    module = project / "sharingapp.py"
    with run_server(project) as server:
        old = _get(server, "/alpha")
        assert _get(server, "/beta")["template"] == old["template"]
        module.write_text(module.read_text().replace("VERSION = 1", "VERSION = 2"))
        wait_until(lambda: "reloaded: new requests go to the new code" in server.output(), timeout=60)
        first, second = _get(server, "/alpha"), _get(server, "/beta")
        assert (first["version"], second["version"], first["invoked"]["version"]) == (2, 2, 2)
        assert second["template"] == first["template"] == first["invoked"]["template"]
        assert first["template"] != old["template"]
        loner = _get(server, "/loner")
        assert loner["version"] == 2
        # the old generation is stopped once drained: one template per group again
        wait_until(lambda: _templates(server.proc.pid) == {first["template"], loner["template"]})
        output = server.output()
    assert "Traceback" not in output


def test_a_warm_start_starts_the_shared_template_early(tmp_path: Path) -> None:
    """The early start (providers/local/blank.py, from the cached spec) finds the same
    groups: the shared template it started is the one that serves."""
    project = _project(tmp_path)
    with run_server(project, "--no-reload"):
        pass  # caches the spec
    with run_server(project, "--no-reload") as server:
        first, second, loner = _get(server, "/alpha"), _get(server, "/beta"), _get(server, "/loner")
        assert first["template"] == second["template"] == first["invoked"]["template"]
        assert _templates(server.proc.pid) == {first["template"], loner["template"]}
        for pid in (first["template"], loner["template"]):
            assert started_early(pid)
        assert (first["function"], second["function"], second["memory_mb"]) == ("alpha", "beta", 256)
        assert (first["at_import"], loner["at_import"]) == (None, "loner")


def test_share_templates_false_gives_each_function_its_own(tmp_path: Path) -> None:
    config = "[tool.sls-py.providers.local]\nshare_templates = false\n"
    with run_server(_project(tmp_path, config), "--no-reload") as server:
        first, second = _get(server, "/alpha"), _get(server, "/beta")
        assert (first["at_import"], second["at_import"]) == ("alpha", "beta")
        assert first["template"] != second["template"]
        assert first["invoked"]["template"] not in (first["template"], second["template"])
    from sls_py_local.settings import pool_settings

    config = '[tool.sls-py.providers.local]\nshare_templates = "no"\n'
    wrong = load_project(_project(tmp_path / "wrong", config))
    with pytest.raises(ConfigError) as err:
        pool_settings(wrong.spec())
    assert (err.value.message, err.value.hint) == (
        "[tool.sls-py.providers.local] share_templates = 'no' is not true or false",
        "share_templates = false starts one template process per function",
    )


def test_template_groups(tmp_path: Path) -> None:
    """What each template's environment holds and what each worker sets for itself."""
    from sls_py_local import invoking
    from sls_py_local.launch import template_groups
    from sls_py_local.oneshot import function_environment
    from sls_py_local.sharing import PER_FUNCTION_KEYS

    assert {invoking.INVOKE_URL_ENV, invoking.INVOKE_TOKEN_ENV} <= set(PER_FUNCTION_KEYS)
    project = load_project(_project(tmp_path))
    spec = project.spec()
    envs = {fn.name: function_environment(spec, project, fn) for fn in spec.functions}
    envs["alpha"].update(SLS_PY_INVOKE_URL="http://127.0.0.1:1", SLS_PY_INVOKE_TOKEN="t")
    shared, own = template_groups(spec, envs)
    assert (shared.name, shared.functions, shared.memory_mb) == ("alpha", ("alpha", "beta", "helper"), None)
    assert (own.name, own.functions, own.memory_mb, own.overrides) == ("loner", ("loner",), 128, {})
    assert own.env == envs["loner"]
    assert json.loads(shared.env["SLS_PY_FUNCTIONS"]) == ["alpha", "beta", "helper"]
    assert not set(PER_FUNCTION_KEYS) & set(shared.env)
    assert "functions" not in json.loads(shared.env["SLS_PY_RESOURCES"])
    alpha = shared.overrides["alpha"]
    assert json.loads(alpha.pop("SLS_PY_RESOURCES"))["functions"] == {"helper": "sharing-dev-helper"}
    assert alpha == {
        "SLS_PY_FUNCTION": "alpha",
        "SLS_PY_MEMORY_MB": "128",
        "SLS_PY_INVOKE_URL": "http://127.0.0.1:1",
        "SLS_PY_INVOKE_TOKEN": "t",
    }
    assert shared.overrides["beta"] == {"SLS_PY_FUNCTION": "beta", "SLS_PY_MEMORY_MB": "256"}
    alone = template_groups(spec, envs, share=False)
    assert [g.functions for g in alone] == [("alpha",), ("beta",), ("helper",), ("loner",)]
    assert all(g.env == envs[g.name] and not g.overrides for g in alone)
