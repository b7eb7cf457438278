"""Support for the AWS runtime tests: AWS's documented events, a moto server
over HTTP, built-and-extracted Lambda zips, and the zip's handler started under
AWS's own runtime client (awslambdaric) against the Lambda Runtime API server
of ``support.lambda_runtime_api`` (shared with the aws conformance harness).

A module of its own (not conftest.py) so tests can import its helpers by a
name no other test folder uses; conftest.py re-exports the fixtures."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.lambda_runtime_api import FAKE_AWS, LambdaProcess, unpack_package

HERE = Path(__file__).parent
REPO = HERE.parents[2]
EVENTS = HERE / "events"
WORK_MAGIC = REPO / "apps" / "work_magic"
FIXTURE_APP = HERE / "fixture_app"


@pytest.fixture
def aws_event() -> Callable[[str], Any]:
    """Load one of the documented AWS event shapes from ``events/``."""

    def load(name: str) -> Any:
        return json.loads((EVENTS / name).read_text(encoding="utf-8"))

    return load


# --- moto ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server on 127.0.0.1 and a free port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Fake credentials and AWS_ENDPOINT_URL=moto, in this process; returned for children."""
    env = {
        **FAKE_AWS,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


@pytest.fixture(scope="session")
def cache_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real valkey-server on 127.0.0.1: what a deployed function's cache would be
    (moto has no ElastiCache Serverless; the functions get this URL in SLS_PY_CACHES)."""
    from support.valkey_server import running_valkey

    with running_valkey(tmp_path_factory.mktemp("valkey")) as url:
        yield url


@pytest.fixture(scope="session")
def data_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The RDS Data API on 127.0.0.1 in front of a real PostgreSQL server (moto runs
    no SQL; see support.data_api): give functions its ``url`` as
    ``AWS_ENDPOINT_URL_RDS_DATA``; ``.postgres`` is the server behind it."""
    from support.data_api import start_data_api

    postgres, api = start_data_api(tmp_path_factory.mktemp("data-api-postgres"))
    try:
        yield api
    finally:
        api.stop()
        postgres.stop()


@pytest.fixture
def suffix() -> str:
    """A short unique id, so tests sharing one moto server never share resources."""
    return uuid.uuid4().hex[:8]


# --- building and extracting the zip -------------------------------------------------


@dataclass
class TaskRoot:
    """A built zip extracted as Lambda does (``/var/task``)."""

    path: Path
    files: list[str]
    spec: Any


def extract_package(project_dir: Path, dest: Path, wheel_dir: Path | None = None) -> TaskRoot:
    """Build ``project_dir``'s zip and extract it into ``dest``: without third-party
    deps, or with them from ``wheel_dir`` (never an index)."""
    from sls_py.config import load_project

    project = load_project(project_dir)
    spec = project.spec()
    files = unpack_package(spec, project, dest, wheel_dir=wheel_dir)
    return TaskRoot(path=dest, files=files, spec=spec)


# --- a tiny project with a dependency from a local wheel -------------------------------

MINI_APP = """
from sls_py import App

app = App("mini")


@app.function(name="hello")
def hello(payload):
    import tinydep

    return {"value": tinydep.VALUE, "from": tinydep.__file__}
"""


def mini_project(tmp_path: Path, dependencies: list[str], aws: str = "") -> Path:
    root = tmp_path / "mini"
    (root / "mini_app").mkdir(parents=True)
    (root / "mini_app" / "__init__.py").write_text("")
    (root / "mini_app" / "app.py").write_text(MINI_APP)
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "mini"\nversion = "0.1.0"\ndependencies = [{deps}]\n\n'
        f'[tool.sls-py]\napp = "mini_app.app:app"\n\n[tool.sls-py.providers.aws]\n{aws}\n'
    )
    return root


def write_wheel(folder: Path, name: str, tag: str = "py3-none-any", value: int = 42) -> Path:
    """Write a minimal valid wheel for module ``name`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n".encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{dist}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: sls-py-tests\n"
            f"Root-Is-Purelib: {'true' if tag.endswith('any') else 'false'}\nTag: {tag}\n"
        ).encode(),
    }
    record = (
        "".join(
            f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
            f"{len(data)}\n"
            for path, data in files.items()
        )
        + f"{dist}/RECORD,,\n"
    )
    files[f"{dist}/RECORD"] = record.encode()
    path = folder / f"{name}-1.0-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, data in files.items():
            zf.writestr(arcname, data)
    return path


# --- the zip under awslambdaric ------------------------------------------------------------


@pytest.fixture
def start_lambda(tmp_path: Path) -> Iterator[Callable[..., LambdaProcess]]:
    """Start ``python -S -m awslambdaric sls_py_aws.handler.handle`` on a task root,
    with a Runtime API of its own (see ``support.lambda_runtime_api``)."""
    started: list[LambdaProcess] = []

    def start(task_root: Path, env: dict[str, str], name: str = "fn") -> LambdaProcess:
        started.append(
            LambdaProcess(
                task_root,
                handler="sls_py_aws.handler.handle",
                name=name,
                env=env,
                log_path=tmp_path / f"{name}-{len(started)}.log",
                memory_mb=256,
            )
        )
        return started[-1]

    yield start
    for lp in started:
        lp.stop()


#: what every Lambda zip holds besides the app: the runtime's core, nothing else
RUNTIME_FILES = [
    "sls_py/__init__.py",
    "sls_py/app.py",
    "sls_py/runtime/__init__.py",
    "sls_py/runtime/context.py",
    "sls_py/runtime/dispatch.py",
    "sls_py/runtime/drivers.py",
    "sls_py/runtime/errors.py",
    "sls_py/runtime/events.py",
    "sls_py/runtime/jsonwire.py",
    "sls_py/runtime/records.py",
    "sls_py/runtime/resources.py",
    "sls_py_aws/__init__.py",
    "sls_py_aws/handler.py",
    "sls_py_aws/resources.py",
]
#: packed besides the core only for an app that declares a cache / config / invokes a
#: function / declares a database
CACHE_FILES = ["sls_py/runtime/cache.py"]
CONFIG_FILES = ["sls_py/runtime/config.py"]
INVOKE_FILES = ["sls_py/runtime/invoke.py"]
DATABASE_FILES = ["sls_py/runtime/database.py", "sls_py/runtime/sql.py", "sls_py_aws/dataapi.py"]
#: the example app's own files in its zip: its folder is packed whole, so its migrations
#: go too (not needed at run time; deploy applies them from the project)
WORK_MAGIC_APP_FILES = [
    "migrations/001_photos.sql",
    "pyproject.toml",
    "work_magic/__init__.py",
    "work_magic/app.py",
]
#: the example app declares a cache, config, a fan-out and a database, so its zip holds all four
WORK_MAGIC_RUNTIME_FILES = sorted(
    [*RUNTIME_FILES, *CACHE_FILES, *CONFIG_FILES, *INVOKE_FILES, *DATABASE_FILES]
)
