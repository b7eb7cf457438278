"""pytest fixtures for sls-py apps (registered through the ``pytest11`` entry point).

Installed with sls-py; nothing to enable. In an app's tests::

    def test_adder(sls_app):                      # in-process, no server
        assert sls_app.invoke("work-magic", {...}) == {"result": 42}

    @pytest.mark.slow
    def test_over_http(sls_local_server):         # the local provider on a free port
        key = sls_local_server.api_key("default")
        r = sls_local_server.post("/work-magic", json={...}, headers={"x-api-key": key})

Which project: the ``sls_project`` marker on the test module
(``pytestmark = pytest.mark.sls_project("path", stage="dev")``), else the
``sls_project`` ini option (relative to the ini file), else the nearest
folder above the test file whose ``pyproject.toml`` has ``[tool.sls-py]``.
Override the ``sls_project_path`` / ``sls_stage`` fixtures for anything else.

Fixtures:

- ``sls_app``: an :class:`~sls_py.testing.AppClient` (fresh in-memory buckets,
  queues and tables per test; API keys checked with a generated key, see
  ``sls_api_keys``).
- ``sls_api_keys``: the API key values ``sls_app`` accepts, by name.
- ``sls_local_server``: a :class:`~sls_py.testing.local_server.LocalServer`
  (``sls-py run --provider local --port 0`` on a copy of the project), one
  per test module, stopped after. Skipped, with the reason, when the local
  provider cannot serve HTTP in this installation.
"""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .client import AppClient

if TYPE_CHECKING:
    from .local_server import LocalServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("sls_project", "sls-py project folder for the sls_app fixtures (relative to the ini file)")
    parser.addini("sls_stage", "stage for the sls_app fixtures (default: the project's default stage)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sls_project(path, stage=None): the sls-py project the sls_app fixtures use"
    )


def _has_sls_table(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        return "sls-py" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _marker(request: pytest.FixtureRequest) -> pytest.Mark | None:
    return request.node.get_closest_marker("sls_project")


@pytest.fixture(scope="module")
def sls_project_path(request: pytest.FixtureRequest) -> Path:
    """The project the fixtures use (marker, ini option, or nearest ``[tool.sls-py]``)."""
    mark = _marker(request)
    if mark is not None and mark.args:
        base = Path(str(request.node.path)).parent
        return (base / str(mark.args[0])).resolve()
    configured = request.config.getini("sls_project")
    if configured:
        base = request.config.inipath.parent if request.config.inipath else request.config.rootpath
        return (base / str(configured)).resolve()
    start = Path(str(request.node.path)).resolve()
    for folder in [start, *start.parents]:
        if _has_sls_table(folder):
            return folder
    raise pytest.UsageError(
        f"no sls-py project found above {start}: set `sls_project = PATH` in the pytest ini, "
        "mark the module with pytest.mark.sls_project(PATH), "
        "or override the sls_project_path fixture"
    )


@pytest.fixture(scope="module")
def sls_stage(request: pytest.FixtureRequest) -> str | None:
    """The stage the fixtures use (``None``: the project's default)."""
    mark = _marker(request)
    if mark is not None and mark.kwargs.get("stage"):
        return str(mark.kwargs["stage"])
    return str(request.config.getini("sls_stage") or "") or None


@pytest.fixture
def sls_api_keys(sls_project_path: Path, sls_stage: str | None) -> dict[str, str]:
    """A generated value for each of the stage's API keys (what ``sls_app`` accepts)."""
    from ..config import load_project

    spec = load_project(sls_project_path).spec(sls_stage)
    return {name: f"test-{name}-{secrets.token_hex(8)}" for name in spec.gateway.api_keys}


@pytest.fixture
def sls_app(sls_project_path: Path, sls_stage: str | None, sls_api_keys: dict[str, str]) -> AppClient:
    """The app in this process: call functions and routes, fire triggers, read resources."""
    return AppClient(sls_project_path, sls_stage, api_keys=sls_api_keys)


@pytest.fixture(scope="module")
def sls_local_server(
    sls_project_path: Path, sls_stage: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    """The app served by the local provider on a free port (one per module), stopped after."""
    from .local_server import local_run_available, start_local_server

    reason = local_run_available()
    if reason is not None:
        pytest.skip(f"sls_local_server: {reason}")
    server = start_local_server(sls_project_path, tmp_path_factory.mktemp("sls-local"), sls_stage)
    try:
        yield server
    finally:
        server.stop()
