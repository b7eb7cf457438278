"""Shared test helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
WORK_MAGIC = REPO / "apps" / "work_magic"


#: the checkout's own code: tests that start sls-py with bytecode writable (the
#: bytecode tests) have its processes write __pycache__ here
SOURCE_TREES = [REPO / "core", REPO / "providers", REPO / "apps", REPO / "examples"]


@pytest.fixture(scope="session", autouse=True)
def _no_bytecode_left_in_the_checkout() -> Any:
    """Remove the ``.pyc`` files the session's processes wrote into the checkout,
    so the tree is left as it was: a benchmark run after the tests would otherwise
    import sls-py's precompiled modules (faster than a fresh checkout's)."""
    import contextlib
    import time

    started = time.time()
    yield
    for tree in SOURCE_TREES:
        for pyc in tree.rglob("__pycache__/*.pyc"):
            with contextlib.suppress(OSError):
                if pyc.stat().st_mtime >= started:
                    pyc.unlink()
        for folder in tree.rglob("__pycache__"):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: bytecode from before the session stays


@pytest.fixture(scope="session", autouse=True)
def _postgres_outside_folder() -> Any:
    """Run as root, the local PostgreSQL keeps clusters (and a copy of pip-installed
    binaries) that its account cannot reach in the project under
    /var/lib/sls-py; the tests' go to a folder of their own, removed afterwards."""
    import tempfile

    if os.geteuid() != 0:
        yield
        return
    folder = Path(tempfile.mkdtemp(prefix="sls-py-test-pg-"))
    folder.chmod(0o755)
    previous = os.environ.get("SLS_PY_POSTGRES_OUTSIDE")
    os.environ["SLS_PY_POSTGRES_OUTSIDE"] = str(folder / "lib" / "postgres")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SLS_PY_POSTGRES_OUTSIDE", None)
        else:
            os.environ["SLS_PY_POSTGRES_OUTSIDE"] = previous
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def work_magic(tmp_path: Path) -> Path:
    """A private copy of the example app, so state written by a test stays in tmp_path."""
    dest = tmp_path / "work_magic"
    shutil.copytree(
        WORK_MAGIC, dest, ignore=shutil.ignore_patterns(".sls-py", "__pycache__", ".pytest_cache")
    )
    return dest


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60):
    """Run ``sls-py ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "sls_py", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
