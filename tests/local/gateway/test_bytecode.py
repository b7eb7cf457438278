"""Bytecode the function processes cannot write: said at start-up, cached under .sls-py."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sls_py_local.bytecode import APP_COST, COST, Bytecode, bytecode_plan, compiled, tree_writable

from .support import run_server, write_project

APP = """
import os

from sls_py import App, HttpRequest, http

app = App("bytecode")


@app.function(name="environ", triggers=[http("GET", "/environ")])
def environ(req: HttpRequest, ctx) -> dict:
    return {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
"""


def test_the_decision(tmp_path: Path) -> None:
    app, sls = tmp_path / "app", tmp_path / "sls"
    app.mkdir()
    sls.mkdir()
    state = tmp_path / ".sls-py"

    def only(*blocked: Path):
        return lambda tree: tree not in blocked

    trees = [app, sls, tmp_path / "missing"]
    assert bytecode_plan(state, trees, {}, only()) == Bytecode()
    assert bytecode_plan(state, trees, {"PYTHONDONTWRITEBYTECODE": "1"}, only()) == Bytecode(
        cached=False, reason="PYTHONDONTWRITEBYTECODE is set"
    )
    # the user's choice wins over a read-only tree
    assert bytecode_plan(state, trees, {"PYTHONDONTWRITEBYTECODE": "1"}, only(sls)).cached is False
    assert bytecode_plan(state, trees, {"PYTHONPYCACHEPREFIX": "/x"}, only(sls)) == Bytecode()
    plan = bytecode_plan(state, trees, {}, only(sls))
    assert plan == Bytecode(prefix=(state / "pycache").resolve(), reason=f"{sls} is not writable")
    assert plan.environment() == {"PYTHONPYCACHEPREFIX": str((state / "pycache").resolve())}
    assert Bytecode().environment() == {}
    # a folder that does not exist is nobody's to compile
    assert bytecode_plan(state, trees, {}, only(tmp_path / "missing")) == Bytecode()
    # PYTHONDONTWRITEBYTECODE: which of sls-py's own folders hold no bytecode to read
    never = {"PYTHONDONTWRITEBYTECODE": "1"}
    own = [sls, tmp_path / "missing"]
    plan = bytecode_plan(state, trees, never, only(), own=own, has_bytecode=lambda p: False)
    assert plan == Bytecode(cached=False, reason="PYTHONDONTWRITEBYTECODE is set", uncompiled=(sls,))
    plan = bytecode_plan(state, trees, never, only(), own=own, has_bytecode=lambda p: True)
    assert plan.uncompiled == ()
    # ... and only then: writable trees need not be checked
    assert bytecode_plan(state, trees, {}, only(), own=own, has_bytecode=lambda p: False) == Bytecode()


def test_the_start_up_lines(tmp_path: Path) -> None:
    state = tmp_path / ".sls-py"
    assert Bytecode().describe(state) is None
    line = Bytecode(cached=False, reason="PYTHONDONTWRITEBYTECODE is set").describe(state)
    assert line == (
        "bytecode: not cached for the app (PYTHONDONTWRITEBYTECODE is set), so every function "
        "process compiles the app's modules from source (sls-py's own are compiled): "
        f"{APP_COST}; `unset PYTHONDONTWRITEBYTECODE` before `sls-py run` to cache it"
    )
    core, local = tmp_path / "core", tmp_path / "providers" / "local"
    line = Bytecode(
        cached=False, reason="PYTHONDONTWRITEBYTECODE is set", uncompiled=(core, local)
    ).describe(state)
    assert line is not None
    assert line.startswith(
        "bytecode: not cached (PYTHONDONTWRITEBYTECODE is set), and sls-py's own modules have "
        "none either (an editable install), so every function process compiles sls-py and the "
        f"app from source: {COST}; "
    )
    assert f"`python -m compileall -q {core} {local}`" in line
    assert "`unset PYTHONDONTWRITEBYTECODE`" in line
    line = Bytecode(prefix=state / "pycache", reason="src is not writable").describe(state)
    assert line is not None and line.startswith("bytecode: src is not writable, so function")
    assert "pycache (PYTHONPYCACHEPREFIX)" in line


def test_a_tree_with_bytecode_already_is_fine_read_only(tmp_path: Path) -> None:
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"")
    (tmp_path / "__pycache__").chmod(0o555)
    try:
        assert tree_writable(tmp_path)
    finally:
        (tmp_path / "__pycache__").chmod(0o755)


def test_bytecode_is_compiled_when_python_would_use_it(tmp_path: Path) -> None:
    import py_compile

    package = tmp_path / "pkg"
    package.mkdir()
    init = package / "__init__.py"
    init.write_text("x = 1\n")
    assert not compiled(package)  # none
    py_compile.compile(str(init), doraise=True)
    assert compiled(package)
    init.write_text("x = 22\n")  # edited since: Python would compile it again
    assert not compiled(package)
    py_compile.compile(str(init), doraise=True)
    assert compiled(package)
    assert not compiled(tmp_path / "missing")


def _sls_py_copy(into: Path, compile_it: bool) -> Path:
    """A copy of sls-py's packages without their bytecode: as an editable
    install under ``PYTHONDONTWRITEBYTECODE`` has them, or, ``compile_it``, as
    ``pip install .`` leaves them (compiled once). A copy, not the checkout:
    other tests may write the checkout's bytecode meanwhile."""
    import compileall

    import sls_py
    import sls_py_local

    for package in (sls_py, sls_py_local):
        source = Path(package.__file__).resolve().parent
        shutil.copytree(source, into / package.__name__, ignore=shutil.ignore_patterns("__pycache__"))
    if compile_it:
        assert compileall.compile_dir(str(into), quiet=1)
    return into


@pytest.mark.parametrize("install", ["editable", "compiled"])
def test_pythondontwritebytecode_is_said_and_kept(tmp_path: Path, install: str) -> None:
    """The user's choice is kept; the line says what compiles at every start:
    sls-py's own modules too when they hold no bytecode (an editable install),
    else only the app's."""
    project = write_project(tmp_path / "nobc", "bcapp", APP)
    packages = _sls_py_copy(tmp_path / "site", compile_it=install == "compiled")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPYCACHEPREFIX", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(packages), env.get("PYTHONPATH")]))
    with run_server(project, "--no-reload", env=env) as server:
        got = httpx.get(server.url + "/environ", timeout=30).json()
        output = server.output()
    assert got == {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": None}
    assert output.count("bytecode: not cached") == 1
    assert "`unset PYTHONDONTWRITEBYTECODE`" in output
    if install == "editable":
        assert "and sls-py's own modules have none either (an editable install)" in output
        folders = f"{packages / 'sls_py'} {packages / 'sls_py_local'}"
        assert f"`python -m compileall -q {folders}`" in output  # outside the project: absolute
        assert not (packages / "sls_py" / "__pycache__").exists()  # still the user's choice
    else:
        assert "bytecode: not cached for the app (PYTHONDONTWRITEBYTECODE is set)" in output
        assert "compileall" not in output
    assert not (project / "__pycache__").exists()


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only for this process: its mode for a user; immutable
    (``chattr +i``) for root, whom modes do not stop."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: cannot make a folder read-only")
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_tree_caches_bytecode_under_sls_py(tmp_path: Path) -> None:
    """The app's source folder cannot be written, ``.sls-py`` can: the function
    processes cache their bytecode under ``.sls-py/pycache``."""
    project = write_project(tmp_path / "ro", "roapp", APP)
    config = project / "pyproject.toml"
    config.write_text(config.read_text().replace('app = "roapp:app"', 'app = "roapp:app"\nsource = "src"'))
    src = project / "src"
    src.mkdir()
    (project / "roapp.py").rename(src / "roapp.py")
    state = project / ".sls-py"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    with read_only(src):
        assert not os.access(src, os.W_OK)
        with run_server(project, "--no-reload", env=env) as server:
            got = httpx.get(server.url + "/environ", timeout=30).json()
            output = server.output()
    prefix = (state / "pycache").resolve()
    assert got == {"PYTHONDONTWRITEBYTECODE": None, "PYTHONPYCACHEPREFIX": str(prefix)}
    assert "bytecode: src is not writable, so function processes cache it in" in output
    assert "(PYTHONPYCACHEPREFIX)" in output
    assert not (src / "__pycache__").exists()
    cached = prefix / src.resolve().relative_to("/")
    assert [p.name.split(".")[0] for p in cached.glob("*.pyc")] == ["roapp"]
