"""Whether the function processes can cache their bytecode, and where.

Every function process (a template per function and code generation, a one-shot
``sls-py invoke``) is a fresh interpreter that imports the app and
``sls_py.runtime``. Without cached bytecode (``.pyc``) it compiles them from
source each time: with ``PYTHONDONTWRITEBYTECODE`` set, or when the source tree
(the app's, or sls-py's own when installed from a checkout) is not writable.

- ``PYTHONDONTWRITEBYTECODE`` set: the user's choice is kept; ``sls-py run``
  says so at start-up, with the cost and how to unset it. Python still reads
  bytecode that exists: sls-py's own modules have it when sls-py was installed
  with ``pip install .`` (pip compiles what it installs, whatever the variable
  says), and then only the app compiles (for the example app, ~0 ms of the
  ~65). An editable install (``pip install -e .``) has none, so the line then
  also says how to compile sls-py's folders once.
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
#: example app (``sls_py.runtime``, the template and the app) without cached bytecode
#: against with it, in CPU time (steadier than wall time on a busy machine): 265 ms
#: against 200; with sls-py's own modules compiled (``pip install .``), 198 against 200
COST = "about +65 ms of CPU (1.3x) per process start for the example app (bench/local_bytecode.py)"
APP_COST = (
    "a cost that grows with the app's own code (the example app's: within the noise, bench/local_bytecode.py)"
)


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
    #: sls-py's own package folders that hold no bytecode either (an editable
    #: install under ``PYTHONDONTWRITEBYTECODE``): every process compiles them
    uncompiled: tuple[Path, ...] = ()

    def environment(self) -> dict[str, str]:
        """What to add to a function process's environment."""
        return {"PYTHONPYCACHEPREFIX": str(self.prefix)} if self.prefix is not None else {}

    def describe(self, state_dir: Path) -> str | None:
        """The start-up line about it (``None``: nothing worth saying)."""
        if not self.cached:
            if self.reason.startswith("PYTHONDONTWRITEBYTECODE") and self.uncompiled:
                folders = " ".join(_shown(p) for p in self.uncompiled)
                return (
                    f"bytecode: not cached ({self.reason}), and sls-py's own modules have "
                    "none either (an editable install), so every function process compiles "
                    f"sls-py and the app from source: {COST}; `python -m compileall -q "
                    f"{folders}` compiles sls-py's once (Python reads bytecode that exists, "
                    "whatever the variable says; `pip install .` does it too), or `unset "
                    "PYTHONDONTWRITEBYTECODE` before `sls-py run` to cache it all"
                )
            if self.reason.startswith("PYTHONDONTWRITEBYTECODE"):
                return (
                    f"bytecode: not cached for the app ({self.reason}), so every function "
                    "process compiles the app's modules from source (sls-py's own are "
                    f"compiled): {APP_COST}; `unset PYTHONDONTWRITEBYTECODE` before "
                    "`sls-py run` to cache it"
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
    """``path`` relative to the working folder when it is inside it, else absolute."""
    try:
        relative = os.path.relpath(path, Path.cwd())
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def tree_writable(tree: Path) -> bool:
    """Whether Python can cache the bytecode of ``tree``'s modules beside them:
    its ``__pycache__`` (or, before there is one, the folder) is writable, or it
    holds bytecode already (a read-only install compiled when installed)."""
    cache = tree / "__pycache__"
    if cache.is_dir():
        return os.access(cache, os.W_OK) or any(cache.glob("*.pyc"))
    return os.access(tree, os.W_OK)


def compiled(package: Path) -> bool:
    """Whether ``package`` holds bytecode Python would use for its ``__init__``
    (where ``PYTHONPYCACHEPREFIX`` puts it, if set): there, of this Python, and
    not older than the source (the header check the import system does)."""
    import importlib.util

    source = package / "__init__.py"
    try:
        with open(importlib.util.cache_from_source(str(source)), "rb") as f:
            header = f.read(16)
        st = source.stat()
    except (OSError, NotImplementedError, ValueError):
        return False
    if header[:4] != importlib.util.MAGIC_NUMBER or len(header) < 16:
        return False
    if int.from_bytes(header[4:8], "little") & 1:  # hash-based (compileall --invalidation-mode)
        return True
    mtime, size = int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")
    return mtime == int(st.st_mtime) & 0xFFFFFFFF and size == st.st_size & 0xFFFFFFFF


def bytecode_plan(
    state_dir: Path,
    trees: Iterable[Path],
    environ: Mapping[str, str] | None = None,
    writable: Callable[[Path], bool] = tree_writable,
    own: Iterable[Path] = (),
    has_bytecode: Callable[[Path], bool] = compiled,
) -> Bytecode:
    """Decide what the function processes do about bytecode (see the module's docstring).

    :param state_dir: the project's ``.sls-py`` (the prefix goes under it)
    :param trees: the folders whose modules every function process imports
    :param own: sls-py's own package folders among them, checked for bytecode
        when ``PYTHONDONTWRITEBYTECODE`` keeps any from being written
    """
    env = os.environ if environ is None else environ
    if env.get("PYTHONDONTWRITEBYTECODE"):
        missing = tuple(p for p in own if p.is_dir() and not has_bytecode(p))
        return Bytecode(cached=False, reason="PYTHONDONTWRITEBYTECODE is set", uncompiled=missing)
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
        own = [Path(sls_py.__file__).resolve().parent, Path(__file__).resolve().parent]
        trees = [source_dir, source_dir / top, *own]
        plan = _plans[key] = bytecode_plan(root / ".sls-py", trees, own=own)
    return plan
