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
from sls_py_local.bytecode import COST, Bytecode, bytecode_plan, tree_writable

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
    assert plan == Bytecode(
        prefix=(state / "pycache").resolve(), reason=f"{os.path.relpath(sls)} is not writable"
    )
    assert plan.environment() == {"PYTHONPYCACHEPREFIX": str((state / "pycache").resolve())}
    assert Bytecode().environment() == {}
    # a folder that does not exist is nobody's to compile
    assert bytecode_plan(state, trees, {}, only(tmp_path / "missing")) == Bytecode()


def test_the_start_up_lines(tmp_path: Path) -> None:
    state = tmp_path / ".sls-py"
    assert Bytecode().describe(state) is None
    line = Bytecode(cached=False, reason="PYTHONDONTWRITEBYTECODE is set").describe(state)
    assert line == (
        "bytecode: not cached (PYTHONDONTWRITEBYTECODE is set), so every function process "
        f"compiles the app and sls-py from source: {COST}; "
        "`unset PYTHONDONTWRITEBYTECODE` before `sls-py run` to cache it"
    )
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


def test_pythondontwritebytecode_is_said_and_kept(tmp_path: Path) -> None:
    project = write_project(tmp_path / "nobc", "bcapp", APP)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPYCACHEPREFIX", None)
    with run_server(project, "--no-reload", env=env) as server:
        got = httpx.get(server.url + "/environ", timeout=30).json()
        output = server.output()
    assert got == {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": None}
    assert output.count("bytecode: not cached (PYTHONDONTWRITEBYTECODE is set)") == 1
    assert "`unset PYTHONDONTWRITEBYTECODE`" in output
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
