"""The Lambda zip packs only the runtime modules an app can use: a feature's
modules (config, invoking) only when the spec declares the feature; and the
runtime's bytecode is compiled without docstrings, keeping line numbers.

The lean app below is built, extracted and run unchanged under AWS's own
runtime client (awslambdaric), with bytecode packed (its runtime is this Python).
"""

from __future__ import annotations

import ast
import io
import re
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from aws_runtime_support import (
    CACHE_FILES,
    CONFIG_FILES,
    DATABASE_FILES,
    INVOKE_FILES,
    RUNTIME_FILES,
    WORK_MAGIC,
    WORK_MAGIC_RUNTIME_FILES,
    LambdaProcess,
    TaskRoot,
    extract_package,
)
from sls_py.config import load_project
from sls_py.spec import CAPABILITIES
from sls_py_aws.environment import lambda_environment
from sls_py_aws.package import FEATURE_FILES, build_package, runtime_entries

HERE = f"python{sys.version_info.major}.{sys.version_info.minor}"

LEAN_APP = """
import sls_py.runtime.dispatch as dispatch
from sls_py import App

app = App("lean")


@app.function(name="hello")
def hello(payload, ctx):
    'Say hello.'
    import sys

    return {
        "hello": payload.get("name"),
        "runtime_doc": dispatch.execute.__doc__,
        "app_doc": hello.__doc__,
        "loaded": sorted(m for m in sys.modules if m.startswith("sls_py")),
    }


@app.function(name="caller")
def caller(payload, ctx):
    return ctx.invoke("hello", {"name": "x"})


@app.function(name="boom")
def boom(payload, ctx):
    raise RuntimeError("boom")
"""


def _project(root: Path, app: str, runtime: str = "python3.12") -> Path:
    (root / "lean_app").mkdir(parents=True)
    (root / "lean_app" / "__init__.py").write_text("")
    (root / "lean_app" / "app.py").write_text(textwrap.dedent(app))
    (root / "pyproject.toml").write_text(
        '[project]\nname = "lean"\nversion = "0.1.0"\ndependencies = []\n\n'
        '[tool.sls-py]\napp = "lean_app.app:app"\n\n'
        f'[tool.sls-py.providers.aws]\nruntime = "{runtime}"\n'
    )
    return root


def _sources(root: Path) -> list[str]:
    project = load_project(root)
    built = build_package(project.spec(), project, include_dependencies=False)
    return [f for f in built.files if not f.endswith(".pyc")]


def _app_files(app: str = "lean_app") -> list[str]:
    return ["pyproject.toml", f"{app}/__init__.py", f"{app}/app.py"]


# --- which runtime files go in --------------------------------------------------------


def test_feature_table_names_real_capabilities_and_files() -> None:
    """A typo in a new line of FEATURE_FILES fails here, not in a deployed function."""
    assert set(FEATURE_FILES) <= set(CAPABILITIES)
    everything = dict(runtime_entries())
    for files in FEATURE_FILES.values():
        for name in files:
            assert name in everything and everything[name].is_file(), name
    core = dict(runtime_entries(()))
    assert sorted(core) == RUNTIME_FILES
    assert sorted(everything) == sorted(
        [*RUNTIME_FILES, *CACHE_FILES, *CONFIG_FILES, *INVOKE_FILES, *DATABASE_FILES]
    )


def test_app_without_config_or_invoke_packs_the_core_only(tmp_path: Path) -> None:
    assert _sources(_project(tmp_path, LEAN_APP)) == sorted([*_app_files(), *RUNTIME_FILES])


@pytest.mark.parametrize(
    ("declaration", "extra"),
    [
        ('settings = app.config("settings")', CONFIG_FILES),
        ('@app.function(name="other", invokes=["hello"])\ndef other(payload, ctx):\n    pass', INVOKE_FILES),
        # a declared fan-out imports the invoke module when the app is imported
        ('counting = app.fanout("hello")', INVOKE_FILES),
        ('settings = app.config("s")\ncounting = app.fanout("hello")', CONFIG_FILES + INVOKE_FILES),
        ('db = app.database("main")', DATABASE_FILES),
        ('sessions = app.cache("sessions")', CACHE_FILES),
    ],
)
def test_a_declared_feature_packs_its_modules(
    tmp_path: Path, declaration: str, extra: list[str]
) -> None:
    root = _project(tmp_path, LEAN_APP + "\n" + declaration + "\n")
    assert _sources(root) == sorted([*_app_files(), *RUNTIME_FILES, *extra])


def test_example_app_packs_cache_config_and_invoke() -> None:
    sources = _sources(WORK_MAGIC)
    assert set(CACHE_FILES + CONFIG_FILES + INVOKE_FILES) <= set(sources)
    assert sorted(f for f in sources if f.startswith("sls_py")) == WORK_MAGIC_RUNTIME_FILES


# --- the lean zip under awslambdaric ---------------------------------------------------


@pytest.fixture(scope="module")
def lean_root(tmp_path_factory: pytest.TempPathFactory) -> TaskRoot:
    root = _project(tmp_path_factory.mktemp("lean") / "project", LEAN_APP, runtime=HERE)
    return extract_package(root, tmp_path_factory.mktemp("lean") / "task")


@pytest.mark.slow
def test_lean_zip_runs_under_awslambdaric_without_the_feature_modules(
    lean_root: TaskRoot,
    start_lambda: Callable[..., LambdaProcess],
    aws_env: dict[str, str],
) -> None:
    assert not [f for f in lean_root.files if any(w in f for w in ("config", "invoke", "data"))]
    assert any(f.endswith(".pyc") for f in lean_root.files)  # bytecode packed: runtime = HERE

    def start(function: str) -> LambdaProcess:
        env = lambda_environment(lean_root.spec, lean_root.spec.function(function), names={})
        return start_lambda(lean_root.path, {**aws_env, **env}, name=function)

    hello = start("hello").invoke({"name": "lean"})
    assert hello.ok, hello.payload
    loaded = hello.payload.pop("loaded")
    # the runtime's bytecode has no docstrings, the app's code keeps its own, and neither
    # feature module was missed or imported
    assert hello.payload == {"hello": "lean", "runtime_doc": None, "app_doc": "Say hello."}
    assert not {"sls_py.runtime.config", "sls_py.runtime.invoke", "sls_py.runtime.database"} & set(
        loaded
    )

    # invoking without declaring a target: the same clear error as where the module is packed
    caller = start("caller").invoke({})
    assert not caller.ok
    assert (caller.payload["errorType"], caller.payload["errorMessage"]) == (
        "InvokeError",
        "function 'caller' may not invoke 'hello': it is not a declared target; "
        "declare it with @app.function(name='caller', invokes=['hello'])",
    )

    # tracebacks through the docstring-less runtime bytecode keep their line numbers:
    # each runtime frame's line lies inside the function it names, in the shipped source
    boom = start("boom")
    assert not boom.invoke({}).ok
    frames = re.findall(r'File "[^"]*/(sls_py[^"]*\.py)", line (\d+), in (\w+)\n', boom.log())
    assert {f[2] for f in frames} >= {"execute", "_call", "handle"}, boom.log()
    for rel, line, function in frames:
        tree = ast.parse((lean_root.path / rel).read_text())
        spans = [
            (node.lineno, node.end_lineno or node.lineno)
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name == function
        ]
        assert any(first <= int(line) <= last for first, last in spans), (rel, line, function)


def test_names_of_a_feature_left_out_fail_with_a_clear_import_error(lean_root: TaskRoot) -> None:
    """In a zip without config.py/invoke.py, ``sls_py``'s lazy names say what to declare."""
    import subprocess

    code = (
        "import sls_py, sls_py.runtime\n"
        "print(sls_py.InvokeError is sls_py.runtime.InvokeError)\n"
        "for name in ('ConfigMissing', 'InvokeFailed', 'DatabaseError'):\n"
        "    try:\n"
        "        getattr(sls_py, name)\n"
        "    except ImportError as exc:\n"
        "        print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=lean_root.path,
        env={"PYTHONPATH": str(lean_root.path), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
    )
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines() == [
        "True",
        "FeatureNotPacked sls_py.runtime.config is not in this function's package: "
        "declare the app's config with app.config(...) and deploy again",
        "FeatureNotPacked sls_py.runtime.invoke is not in this function's package: "
        "declare the target with @app.function(..., invokes=[...]) and deploy again",
        "FeatureNotPacked sls_py.runtime.database is not in this function's package: "
        "declare the database with app.database(...) and deploy again",
    ]


def test_runtime_bytecode_has_no_docstrings_and_the_app_keeps_its_own(tmp_path: Path) -> None:
    """Compiled in the build's child; loaded here from the extracted zip's pycs."""
    import importlib.util
    import marshal

    app = '"""The lean app."""\n' + LEAN_APP
    root = _project(tmp_path / "project", app, runtime=HERE)
    project = load_project(root)
    built = build_package(project.spec(), project, include_dependencies=False)
    with zipfile.ZipFile(io.BytesIO(built.data)) as zf:
        tag = sys.implementation.cache_tag

        def code(name: str) -> object:
            folder, _, mod = name.rpartition("/")
            data = zf.read(f"{folder}/__pycache__/{mod[:-3]}.{tag}.pyc")
            assert data[:4] == importlib.util.MAGIC_NUMBER
            assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, unchecked
            assert data[8:16] == importlib.util.source_hash(zf.read(name))
            return marshal.loads(data[16:])

        runtime: dict[str, object] = {"__name__": "packed_errors", "__package__": "sls_py.runtime"}
        exec(code("sls_py/runtime/errors.py"), runtime)  # our own bytecode, just built
        assert runtime.get("__doc__") is None  # the source sets it: compile(source) would too
        assert runtime["HttpError"].__doc__ is None  # type: ignore[attr-defined]
        assert runtime["InvalidInput"].__init__.__doc__ is None  # type: ignore[attr-defined]
        assert "The lean app." in code("lean_app/app.py").co_consts  # type: ignore[attr-defined]


def test_app_bytecode_is_what_py_compile_writes(tmp_path: Path) -> None:
    """Only the runtime loses its docstrings: the app's pyc is py_compile's, byte for byte."""
    import os
    import subprocess

    root = _project(tmp_path / "project", '"""The lean app."""\n' + LEAN_APP, runtime=HERE)
    project = load_project(root)
    built = build_package(project.spec(), project, include_dependencies=False)
    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(io.BytesIO(built.data)) as zf:
        packed = zf.read(f"lean_app/__pycache__/app.{tag}.pyc")
    target = tmp_path / "app.pyc"
    compile_it = (
        "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], "
        "dfile='lean_app/app.py', doraise=True, "
        "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONNODEBUGRANGES": "1"}
    subprocess.run(
        [sys.executable, "-c", compile_it, str(root / "lean_app" / "app.py"), str(target)],
        env=env,
        check=True,
    )
    assert packed == target.read_bytes()
