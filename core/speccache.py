"""A plain-data copy of a command's spec, so a warm start imports neither the CLI
(typer), pydantic nor the app.

``sls-py run`` and ``sls-py invoke`` build the spec the usual way (import the
app, validate with pydantic) and keep what they built in
``.sls-py/cache/spec-<stage>-<provider>.json``, with a fingerprint of what it came
from: ``pyproject.toml``'s bytes, the path, size and modification time of every
``.py`` file under the app's source folder (hidden folders, ``__pycache__``,
``node_modules`` and virtual environments skipped), the same of sls-py's own
modules and of the provider plugin's, and the versions of sls-py and Python.
The next start of the same command line (:mod:`sls_py.entry`) recomputes the
fingerprint, which costs only ``stat`` calls, and serves from the copy when it
matches; any change to those inputs means the usual path, which writes a new copy.

What a fingerprint cannot see (declarations that depend on environment variables,
or on files outside the source folder) is checked after start-up: a warm
``sls-py run`` builds the spec again in a background process, as hot reload does,
and restarts itself in place if it differs.

Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import __version__

#: the copy's format; a copy of another format is ignored
FORMAT = 1
#: ``SLS_PY_SPEC_CACHE=0`` turns the copy off (every start builds the spec)
DISABLE_ENV = "SLS_PY_SPEC_CACHE"
_SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})


def enabled() -> bool:
    """Whether warm starts may use the copy (not when plugins are blocked by name,
    which the copy does not record, or ``SLS_PY_SPEC_CACHE=0``)."""
    return os.environ.get(DISABLE_ENV, "1") != "0" and not os.environ.get("SLS_PY_DISABLE_PLUGINS")


def cache_file(root: Path, stage: str | None, provider: str | None) -> Path:
    """Where the copy for this command line's stage and provider options lives."""
    return root / ".sls-py" / "cache" / f"spec-{stage or '_'}-{provider or '_'}.json"


def _python_files(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if entry.is_dir(follow_symlinks=False):
            if name.startswith(".") or name in _SKIP_DIRS:
                continue
            if os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):  # a virtual environment
                continue
            yield from _python_files(Path(entry.path))
        elif name.endswith(".py"):
            yield entry


def fingerprint(root: Path, source: str, modules: list[str]) -> str:
    """The fingerprint of a project's spec inputs (see the module docstring).

    :param source: the app's source folder, relative to ``root``.
    :param modules: folders of Python modules whose code builds or serves the
        spec (sls-py's own, the provider plugin's); their files' stats count too.
    """
    import hashlib  # here: a warm start's early start comes before this

    h = hashlib.sha256(f"{FORMAT}\0{__version__}\0{sys.version}\0{sys.executable}\0".encode())
    try:
        h.update((root / "pyproject.toml").read_bytes())
    except OSError:
        h.update(b"\0no pyproject.toml")
    folders = [(root / source, True)] + [(Path(m), False) for m in modules]
    for folder, recursive in folders:
        h.update(f"\0{folder}\0".encode())
        found = _python_files(folder) if recursive else _top_level(folder)
        lines = []
        for entry in found:
            with contextlib.suppress(OSError):
                st = entry.stat()
                lines.append(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}\n")
        h.update("".join(sorted(lines)).encode())
    return h.hexdigest()


def _top_level(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        yield from (e for e in os.scandir(folder) if e.name.endswith(".py"))
    except OSError:
        return


def _module_folders(plugin_module: str) -> list[str] | None:
    """sls-py's own folder and the plugin module's, found without importing it;
    ``None`` when the module cannot be found."""
    import importlib.util

    try:
        found = importlib.util.find_spec(plugin_module)
    except (ImportError, ValueError):
        return None
    if found is None or found.origin is None:
        return None
    return [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.abspath(found.origin))]


def store(
    root: Path,
    stage: str | None,
    provider: str | None,
    *,
    spec: Any,
    provider_name: str,
    plugin: object,
    notes: list[str],
    project_name: str,
) -> None:
    """Keep ``spec`` (a :class:`~sls_py.spec.Spec`) for the next start of the same
    command line. Only for a provider whose plugin is a module implementing the
    hooks as functions (as ``local`` does): the warm start calls them directly.
    Best effort: a folder that cannot be written means no copy, not an error."""
    if not enabled() or not isinstance(plugin, type(sys)):
        return
    plugin_module = plugin.__name__
    modules = _module_folders(plugin_module)
    if modules is None:
        return
    data = {
        "format": FORMAT,
        "fingerprint": fingerprint(root, spec.source, modules),
        "provider": provider_name,
        "plugin_module": plugin_module,
        # a module whose prestart(command, root, spec_data, function) the warm start
        # calls first, before the Spec and the plugin are imported (sls_py.entry)
        "early_start": getattr(plugin, "EARLY_START", None),
        "project_name": project_name,
        "notes": notes,
        "spec": spec.to_data(),
    }
    path = cache_file(root, stage, provider)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def discard(root: Path) -> None:
    """Forget every copy of the project's spec (the next start builds it afresh)."""
    for path in (root / ".sls-py" / "cache").glob("spec-*.json"):
        with contextlib.suppress(OSError):
            path.unlink()


def read(root: Path, stage: str | None, provider: str | None) -> dict[str, Any] | None:
    """The copy for this command line, fresh or not (``None``: none this sls-py
    can read); :func:`is_fresh` says whether it still is what the project builds.

    A stale copy still says what the last start ran (the functions, their
    environments): the warm start hands it to the provider's early start first,
    then checks it (or the CLI builds the spec again), and the provider uses what
    still fits."""
    if not enabled():
        return None
    try:
        data = json.loads(cache_file(root, stage, provider).read_bytes())
        if data.get("format") != FORMAT or not isinstance(data["spec"]["source"], str):
            return None
        if not isinstance(data["plugin_module"], str):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return data


def is_fresh(root: Path, data: dict[str, Any]) -> bool:
    """Whether ``data`` (from :func:`read`) is still what the project would build:
    its fingerprint matches the sources' and config's as they are now."""
    modules = _module_folders(data["plugin_module"])
    if modules is None:
        return False
    return fingerprint(root, data["spec"]["source"], modules) == data.get("fingerprint")


def load(root: Path, stage: str | None, provider: str | None) -> dict[str, Any] | None:
    """The copy for this command line, if it is still what the project would
    build (its fingerprint matches), else ``None``."""
    data = read(root, stage, provider)
    return data if data is not None and is_fresh(root, data) else None
