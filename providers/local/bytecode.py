"""Whether the function processes can cache their bytecode, and where.

Every function process (a template per function and code generation, a one-shot
``sls-py invoke``) is a fresh interpreter that imports the app and
``sls_py.runtime``. Without cached bytecode (``.pyc``) it compiles them from
source each time: with ``PYTHONDONTWRITEBYTECODE`` set, or when the source tree
(the app's, or sls-py's own when installed from a checkout) is not writable.

- ``PYTHONDONTWRITEBYTECODE`` set: the user's choice is kept; ``sls-py run``
  says so at start-up, with the cost and how to unset it.
- a tree not writable (and ``PYTHONDONTWRITEBYTECODE`` not set): the function
  processes get ``PYTHONPYCACHEPREFIX=.sls-py/pycache``, so their bytecode is
  cached there instead (the first start compiles into it, later ones read it).
- ``PYTHONPYCACHEPREFIX`` already set by the user: kept as it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

#: what compiling from source costs, measured: the imports a template does for the
#: example app (``sls_py.runtime`` and the app) without cached bytecode against with
#: it, in CPU time (steadier than wall time on a busy machine): 355 ms against 294
COST = "about +60 ms of CPU (1.2x) per process start for the example app (bench/local_bytecode.py)"


class Bytecode(NamedTuple):
    """What the function processes do about bytecode (a named tuple, not a
    dataclass: a warm start decides it before it starts the function processes,
    and importing :mod:`dataclasses` there would cost 7 ms)."""

    #: whether their bytecode is cached at all
    cached: bool = True
    #: the ``PYTHONPYCACHEPREFIX`` they get (``None``: beside the sources, or the user's)
    prefix: Path | None = None
    #: why it is not cached beside the sources ("" when it is)
    reason: str = ""

    def environment(self) -> dict[str, str]:
        """What to add to a function process's environment."""
        return {"PYTHONPYCACHEPREFIX": str(self.prefix)} if self.prefix is not None else {}

    def describe(self, state_dir: Path) -> str | None:
        """The start-up line about it (``None``: nothing worth saying)."""
        if not self.cached:
            if self.reason.startswith("PYTHONDONTWRITEBYTECODE"):
                return (
                    f"bytecode: not cached ({self.reason}), so every function process "
                    f"compiles the app and sls-py from source: {COST}; "
                    "`unset PYTHONDONTWRITEBYTECODE` before `sls-py run` to cache it"
                )
            return f"bytecode: not cached ({self.reason}): {COST}"
        if self.prefix is not None:
            where = _shown(self.prefix)
            return (
                f"bytecode: {self.reason}, so function processes cache it in {where} "
                "(PYTHONPYCACHEPREFIX); the first start compiles into it"
            )
        return None


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path, Path.cwd())
    except ValueError:
        return str(path)


def tree_writable(tree: Path) -> bool:
    """Whether Python can cache the bytecode of ``tree``'s modules beside them:
    its ``__pycache__`` (or, before there is one, the folder) is writable, or it
    holds bytecode already (a read-only install compiled when installed)."""
    cache = tree / "__pycache__"
    if cache.is_dir():
        return os.access(cache, os.W_OK) or any(cache.glob("*.pyc"))
    return os.access(tree, os.W_OK)


def bytecode_plan(
    state_dir: Path,
    trees: Iterable[Path],
    environ: Mapping[str, str] | None = None,
    writable: Callable[[Path], bool] = tree_writable,
) -> Bytecode:
    """Decide what the function processes do about bytecode (see the module's docstring).

    :param state_dir: the project's ``.sls-py`` (the prefix goes under it)
    :param trees: the folders whose modules every function process imports
    """
    env = os.environ if environ is None else environ
    if env.get("PYTHONDONTWRITEBYTECODE"):
        return Bytecode(cached=False, reason="PYTHONDONTWRITEBYTECODE is set")
    if env.get("PYTHONPYCACHEPREFIX"):
        return Bytecode()  # the user's own place
    blocked = [t for t in trees if t.is_dir() and not writable(t)]
    if not blocked:
        return Bytecode()
    reason = f"{_shown(blocked[0])} is not writable"
    state_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(state_dir, os.W_OK):
        return Bytecode(cached=False, reason=f"{reason}, nor is {_shown(state_dir)}")
    return Bytecode(prefix=(state_dir / "pycache").resolve(), reason=reason)


_plans: dict[tuple[str, str, str], Bytecode] = {}


def project_bytecode(root: Path, source_dir: Path, app_ref: str) -> Bytecode:
    """:func:`bytecode_plan` for a project (once per process and environment): the
    trees are the app's source folder, the app's top-level package, and sls-py's
    own packages (``sls_py``, ``sls_py_local``)."""
    key = (
        str(root),
        os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        os.environ.get("PYTHONPYCACHEPREFIX", ""),
    )
    plan = _plans.get(key)
    if plan is None:
        import sls_py

        top = app_ref.partition(":")[0].split(".")[0]
        trees = [
            source_dir,
            source_dir / top,
            Path(sls_py.__file__).resolve().parent,
            Path(__file__).resolve().parent,
        ]
        plan = _plans[key] = bytecode_plan(root / ".sls-py", trees)
    return plan
