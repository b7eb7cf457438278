"""The pytest plugin (``sls_py.testing.pytest_plugin``) as app authors use it,
run with pytester, and the server helper behind ``sls_local_server``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sls_py.testing import start_local_server

pytest_plugins = ["pytester"]

APP = """
from sls_py import App, http

app = App("{name}", api_keys=["default"])


@app.function(name="greet", triggers=[http("POST", "/greet", api_key=True, cors=True)])
def greet(payload: dict, ctx) -> dict:
    return {{"hello": payload["name"], "stage": ctx.stage}}
"""


def write_app(folder: Path, module: str, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(APP.format(name=module.replace("_", "-")), encoding="utf-8")
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "{module}"
            [tool.sls-py]
            app = "{module}:app"
            [tool.sls-py.stages.prod]
            api_keys = ["partner"]
            {extra}
            """
        ),
        encoding="utf-8",
    )
    return folder


def test_sls_app_finds_the_nearest_project(pytester: pytest.Pytester) -> None:
    write_app(pytester.path, "near_app")
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_near.py").write_text(
        textwrap.dedent(
            """
            def test_invoke(sls_app):
                assert sls_app.invoke("greet", {"name": "ada"}) == {"hello": "ada", "stage": "dev"}

            def test_http_checks_keys(sls_app, sls_api_keys):
                assert sorted(sls_api_keys) == ["default"]
                key = {"x-api-key": sls_api_keys["default"]}
                ok = sls_app.post("/greet", {"name": "ada"}, headers=key)
                assert (ok.status, ok.json()) == (200, {"hello": "ada", "stage": "dev"})
                assert sls_app.post("/greet", {"name": "ada"}).status == 403
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_marker_and_ini_choose_project_and_stage(pytester: pytest.Pytester) -> None:
    write_app(pytester.path / "one", "one_app")
    write_app(pytester.path / "two", "two_app")
    pytester.makeini("[pytest]\nsls_project = one\nsls_stage = prod\n")
    pytester.makepyfile(
        test_ini="""
        def test_from_ini(sls_app, sls_api_keys):
            assert (sls_app.spec.app, sls_app.spec.stage) == ("one-app", "prod")
            assert sorted(sls_api_keys) == ["partner"]
        """,
        test_marker="""
        import pytest

        pytestmark = pytest.mark.sls_project("two", stage="dev")

        def test_from_marker(sls_app):
            assert (sls_app.spec.app, sls_app.spec.stage) == ("two-app", "dev")
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_no_project_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lost="def test_lost(sls_app):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no sls-py project found above*sls_project = PATH*"])


@pytest.mark.slow
def test_server_helper_runs_a_provider_on_a_free_port(tmp_path: Path) -> None:
    """The machinery of ``sls_local_server``, with a provider that serves HTTP on this branch."""
    pytest.importorskip("sls_py_inprocess", reason="pip install -e examples/inprocess-provider")
    project = write_app(tmp_path / "proj", "served_app")
    server = start_local_server(project, tmp_path / "scratch", provider="inprocess")
    try:
        assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0")
        assert server.project != project and not (project / ".sls-py").exists(), "state goes to the copy"
        key = server.api_key("default")
        r = server.post("/greet", json={"name": "ada"}, headers={"x-api-key": key})
        assert (r.status_code, r.json()) == (200, {"hello": "ada", "stage": "dev"})
        r = server.post("/greet", json={"name": "ada"}, headers={"x-api-key": "wrong"})
        assert (r.status_code, r.json()) == (403, {"message": "Forbidden"})
        assert "served-app" in server.output()
    finally:
        server.stop()
    assert server.process.proc.poll() is not None, "the server is stopped"
