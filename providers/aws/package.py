"""Build the Lambda deployment package (a zip) for an app: no network unless
dependencies must be downloaded, and the same inputs always give the same bytes.

What goes in, by archive name:

- the app's code: every file under ``project.root / spec.source``, minus what
  must never ship (tests, caches, VCS folders, ``.sls-py/``, virtualenvs,
  ``.env`` files and anything that looks like a credential);
- the sls-py runtime only: ``sls_py/__init__.py``, ``sls_py/app.py``,
  ``sls_py/runtime/*.py`` and ``sls_py_aws/{__init__,handler,resources,dataapi}.py``
  (no CLI, pluggy, typer or boto3: Lambda's Python runtime provides boto3),
  minus the modules of features the spec does not use (:data:`FEATURE_FILES`);
- the app's ``[project.dependencies]``, installed by pip for Lambda's platform
  (manylinux wheels for the configured runtime and architecture), cached
  under ``.sls-py/aws/deps/<hash>/`` so a rebuild does not reinstall them;
  with a cache declared (``app.cache``), the client library valkey-py too
  (:func:`with_cache_client`), unless the app lists valkey or redis itself.

Determinism: entries are sorted, every timestamp is 1980-01-01 00:00, every
file is mode 0644, the compression level is fixed, and no directory entries
or extra fields are written. :attr:`BuiltPackage.code_sha256` is what Lambda
reports as ``CodeSha256``, so an unchanged app is recognised without an upload.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sls_py.config import Project
from sls_py.errors import SlsPyError
from sls_py.spec import Spec

#: The handler every function in the zip is configured with.
HANDLER = "sls_py_aws.handler.handle"
#: Lambda's limit on a function's unpacked code (250 MB).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
#: Above this zipped size Lambda refuses a direct upload: use a deployment bucket.
MAX_DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024

DEFAULT_RUNTIME = "python3.12"
ARCHITECTURES = ("x86_64", "arm64")
_PIP_ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}
# glibc of the Lambda base image: Amazon Linux 2023 for python3.12+, Amazon Linux 2 before.
_GLIBC_MINOR = {True: 34, False: 26}

_COMPLETE = ".complete"  # marks a finished dependency install in the cache
_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16
_COMPRESS_LEVEL = 6

# Names that never ship from the app's folder, at any depth.
_SKIP_DIRS = {
    ".git",
    ".hg",
    ".svn",
    ".sls-py",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    ".idea",
    ".vscode",
    "node_modules",
    "tests",
    "test",
    ".aws",
    ".ssh",
    ".gnupg",
    ".azure",
    ".config",
}
_SKIP_FILES = [
    "*.pyc",
    "*.pyo",
    ".DS_Store",
    "conftest.py",
    "test_*.py",
    "*_test.py",
    # secrets and credentials
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "credentials",
    "credentials.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".pypirc",
    ".npmrc",
    ".git-credentials",
    ".dockercfg",
    "*.kdbx",
    "service-account*.json",
    "*-credentials.json",
    "*.tfstate",
    "*.tfstate.*",
]
# Top-level folders of the app's folder that are build output, not code.
_SKIP_TOP_DIRS = {"build", "dist"}

_RUNTIME_FILES = {
    "sls_py": ["__init__.py", "app.py", "runtime/*.py"],
    "sls_py_aws": ["__init__.py", "handler.py", "resources.py", "dataapi.py"],
}
#: Runtime modules that serve one optional feature, by the capability that uses
#: it (:meth:`Spec.required_capabilities`): packed only into the zip of an app
#: that declares the feature. The core imports them lazily (on first use), so a
#: function that cannot use them never misses them. A new feature's handle or
#: driver goes in a module of its own, imported on first use, and gets one line
#: here, e.g. ``"resource.cache": ("sls_py/runtime/cache.py", "sls_py_aws/cache.py")``.
#: Every other file matched by ``_RUNTIME_FILES`` is core: always packed.
FEATURE_FILES: dict[str, tuple[str, ...]] = {
    "resource.cache": ("sls_py/runtime/cache.py",),
    "resource.config": ("sls_py/runtime/config.py",),
    "function.invoke": ("sls_py/runtime/invoke.py",),
    "resource.database": (
        "sls_py/runtime/database.py",
        "sls_py/runtime/sql.py",
        "sls_py_aws/dataapi.py",
    ),
}
# Requirements that are never installed into the zip: the runtime is packed
# from this installation, and Lambda provides boto3.
_NOT_PACKED = {"sls-py"}


class PackageError(SlsPyError):
    """The package cannot be built (bad settings, a missing wheel, too big)."""


@dataclass(frozen=True)
class BuiltPackage:
    """A built deployment package."""

    data: bytes  # the zip
    code_sha256: str  # base64(sha256(data)), as Lambda's CodeSha256
    size: int  # zipped bytes
    unzipped_size: int
    handler: str  # "sls_py_aws.handler.handle"
    files: list[str]  # archive names, sorted

    @property
    def needs_bucket(self) -> bool:
        """True when the zip is too big to upload directly (> 50 MB)."""
        return self.size > MAX_DIRECT_UPLOAD_BYTES

    def describe(self) -> str:
        """One line for progress output: file count and sizes."""
        return (
            f"{len(self.files)} files, {_human(self.size)} zipped "
            f"({_human(self.unzipped_size)} unzipped)"
        )


@dataclass(frozen=True)
class Platform:
    """Where the package runs: Python version and CPU architecture."""

    runtime: str  # "python3.12"
    architecture: str  # "x86_64" | "arm64"

    @property
    def python_version(self) -> str:
        return self.runtime.removeprefix("python")

    @property
    def pip_platforms(self) -> list[str]:
        """pip ``--platform`` values accepted by Lambda's image for this runtime."""
        arch = _PIP_ARCH[self.architecture]
        minor = int(self.python_version.split(".")[1])
        top = _GLIBC_MINOR[minor >= 12]
        return [f"manylinux2014_{arch}"] + [f"manylinux_2_{m}_{arch}" for m in range(17, top + 1)]


def platform_of(spec: Spec) -> Platform:
    """The runtime and architecture from ``[tool.sls-py.providers.aws]``, checked."""
    settings = spec.provider_settings("aws")
    runtime = str(settings.get("runtime") or DEFAULT_RUNTIME)
    architecture = str(settings.get("architecture") or "x86_64")
    if not re.fullmatch(r"python3\.\d{1,2}", runtime):
        raise PackageError(
            f"[tool.sls-py.providers.aws] runtime = {runtime!r} is not a Lambda Python runtime",
            hint='use e.g. runtime = "python3.12"',
        )
    if architecture not in ARCHITECTURES:
        raise PackageError(
            f"[tool.sls-py.providers.aws] architecture = {architecture!r} is not supported",
            hint='use architecture = "x86_64" or "arm64"',
        )
    return Platform(runtime=runtime, architecture=architecture)


def build_package(
    spec: Spec,
    project: Project,
    *,
    include_dependencies: bool = True,
    wheel_dir: Path | None = None,
) -> BuiltPackage:
    """Build the zip for ``spec``'s app.

    :param include_dependencies: install the app's ``[project.dependencies]``
        into the zip (for Lambda's platform); ``False`` packs code and runtime only.
    :param wheel_dir: install dependencies from this folder of wheels only
        (``pip --no-index --find-links``), never from an index: for tests and
        offline builds.
    :raises PackageError: bad runtime settings, a dependency without a wheel
        for the platform, or a package over Lambda's 250 MB unzipped limit.
    """
    platform = platform_of(spec)
    entries: dict[str, Path] = {}
    if include_dependencies:
        requirements = with_cache_client(spec, project_requirements(project))
        if requirements:
            deps = install_dependencies(requirements, platform, project.state_dir, wheel_dir)
            entries.update(_walk(deps, _dependency_skip))
    source = (project.root / spec.source).resolve()
    app_files = dict(_walk(source, _app_skip))
    runtime_files = dict(runtime_entries(packed_features(spec)))
    clash = sorted(set(app_files) & set(runtime_files))
    if clash:
        raise PackageError(
            f"the app's folder {source} holds {clash[0]}, which would replace the sls-py runtime",
            hint="rename that module or package; sls_py and sls_py_aws are reserved names",
        )
    entries.update(app_files)
    entries.update(runtime_files)
    if spec.provider_settings("aws").get("bytecode", True):
        entries.update(bytecode_entries(entries, platform, project.state_dir, runtime_files))

    unzipped = sum(path.stat().st_size for path in entries.values())
    if unzipped > MAX_UNZIPPED_BYTES:
        biggest = _largest_tops(entries)
        raise PackageError(
            f"the package for {spec.app!r} is {_human(unzipped)} unzipped, over Lambda's "
            f"limit of {_human(MAX_UNZIPPED_BYTES)} (largest: {biggest})",
            hint="drop large dependencies or data files from the app's folder, "
            "or move data to a bucket",
        )
    data = _zip(entries)
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
    return BuiltPackage(
        data=data,
        code_sha256=digest,
        size=len(data),
        unzipped_size=unzipped,
        handler=HANDLER,
        files=sorted(entries),
    )


# --- what goes in -------------------------------------------------------------


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _app_skip(rel_parts: tuple[str, ...], is_dir: bool) -> bool:
    """True for app files and folders that must never be packed."""
    name = rel_parts[-1]
    if is_dir:
        if name in _SKIP_DIRS or name.endswith(".egg-info"):
            return True
        return len(rel_parts) == 1 and name in _SKIP_TOP_DIRS
    return _matches(name, _SKIP_FILES)


def _dependency_skip(rel_parts: tuple[str, ...], is_dir: bool) -> bool:
    """Installed dependencies keep everything but bytecode caches, scripts and our marker."""
    name = rel_parts[-1]
    if is_dir:
        return name == "__pycache__" or (len(rel_parts) == 1 and name == "bin")
    return name.endswith((".pyc", ".pyo")) or rel_parts == (_COMPLETE,)


def _walk(root: Path, skip: Callable[[tuple[str, ...], bool], bool]) -> Iterator[tuple[str, Path]]:
    """(archive name, path) for every file under ``root`` that ``skip`` keeps.

    A folder holding ``pyvenv.cfg`` is a virtualenv, whatever its name: never walked;
    nor is a deploy package (``sls-py package --output`` inside the app's folder), so a
    rebuild never packs the previous package.
    """
    from sls_py.packaging import is_package, is_staging

    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).parts
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not skip((*rel, d), True)
            and not (Path(dirpath, d) / "pyvenv.cfg").exists()
            and not is_staging(d)
            and not is_package(Path(dirpath, d))
        )
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if skip((*rel, name), False) or not path.is_file():
                continue
            yield "/".join((*rel, name)), path


def packed_features(spec: Spec) -> set[str]:
    """The capabilities of ``spec`` whose runtime modules (:data:`FEATURE_FILES`) are packed."""
    from sls_py.runtime.invoke import TABLE

    used = set(spec.required_capabilities())
    if any(t.name == TABLE for t in spec.tables):  # app.fanout() imports invoke when declared
        used.add("function.invoke")
    return used & set(FEATURE_FILES)


def runtime_entries(features: Iterable[str] | None = None) -> Iterator[tuple[str, Path]]:
    """The sls-py runtime files, from this installation, by archive name: the core,
    plus the modules of ``features`` (keys of :data:`FEATURE_FILES`; ``None``: all)."""
    import sls_py
    import sls_py_aws

    wanted = set(FEATURE_FILES) if features is None else set(features)
    optional = {f: cap for cap, files in FEATURE_FILES.items() for f in files}
    roots = {"sls_py": Path(sls_py.__file__).parent, "sls_py_aws": Path(sls_py_aws.__file__).parent}
    found: dict[str, Path] = {}
    for package, patterns in _RUNTIME_FILES.items():
        for pattern in patterns:
            for path in roots[package].glob(pattern):
                found[f"{package}/{path.relative_to(roots[package]).as_posix()}"] = path
    for name in optional:  # a feature's files need not match a pattern above
        package, _, rel = name.partition("/")
        found[name] = roots[package] / rel
    for name in sorted(found):
        feature = optional.get(name)
        if found[name].is_file() and (feature is None or feature in wanted):
            yield name, found[name]


def project_requirements(project: Project) -> list[str]:
    """The app's ``[project.dependencies]``, minus what is never packed (sls-py)."""
    try:
        data = tomllib.loads(project.pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    deps = data.get("project", {}).get("dependencies") or []
    kept = []
    for req in deps:
        name = re.split(r"[\s\[<>=!~;@(]", str(req).strip(), maxsplit=1)[0]
        if re.sub(r"[-_.]+", "-", name).lower() not in _NOT_PACKED:
            kept.append(str(req).strip())
    return sorted(kept)


#: the Redis-protocol client a cache needs in Lambda (pure Python); an app that
#: lists valkey or redis itself keeps its own pin
CACHE_CLIENT = "valkey>=6.0"


def with_cache_client(spec: Spec, requirements: list[str]) -> list[str]:
    """``requirements`` plus the cache client library when the app declares a cache."""
    if not spec.caches:
        return requirements
    names = {re.split(r"[\s\[<>=!~;@(]", r, maxsplit=1)[0].lower() for r in requirements}
    if names & {"valkey", "redis"}:
        return requirements
    return sorted([*requirements, CACHE_CLIENT])


# --- dependencies ---------------------------------------------------------------


def _wheel_dir_fingerprint(wheel_dir: Path | None) -> list[tuple[str, int]]:
    if wheel_dir is None:
        return []
    return sorted((p.name, p.stat().st_size) for p in Path(wheel_dir).iterdir() if p.is_file())


def install_dependencies(
    requirements: list[str], platform: Platform, state_dir: Path, wheel_dir: Path | None = None
) -> Path:
    """Install ``requirements`` for ``platform`` (cached); return the folder holding them."""
    key = json.dumps(
        {
            "requirements": sorted(requirements),
            "runtime": platform.runtime,
            "architecture": platform.architecture,
            "platforms": platform.pip_platforms,
            "wheels": _wheel_dir_fingerprint(wheel_dir),
            "wheel_dir": str(Path(wheel_dir).resolve()) if wheel_dir else None,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    cache = state_dir / "aws" / "deps"
    target = cache / digest
    if (target / _COMPLETE).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{digest}-", dir=cache))
    try:
        _pip_install(requirements, platform, work, wheel_dir)
        (work / _COMPLETE).write_text(key, encoding="utf-8")
        try:
            work.rename(target)
        except OSError:  # another build finished first: use its copy
            if not (target / _COMPLETE).is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def _pip_install(
    requirements: list[str], platform: Platform, target: Path, wheel_dir: Path | None
) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--only-binary=:all:",
        "--python-version",
        platform.python_version,
        "--implementation",
        "cp",
        "--no-compile",
        "--no-warn-script-location",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]
    for plat in platform.pip_platforms:
        cmd += ["--platform", plat]
    if wheel_dir is not None:
        # --isolated: ignore the user's pip config (extra indexes, find-links)
        cmd[3:3] = ["--isolated"]
        cmd += ["--no-index", "--find-links", str(Path(wheel_dir).resolve())]
    cmd += requirements
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return
    err = proc.stderr + proc.stdout
    missing = re.search(r"No matching distribution found for ([^\s]+)", err)
    where = f"Lambda {platform.runtime} on {platform.architecture}"
    if missing:
        name = missing.group(1)
        raise PackageError(
            f"dependency {name!r} has no wheel for {where} "
            f"({platform.pip_platforms[0]}, cp{platform.python_version.replace('.', '')})",
            hint=f"pin a version of {name} that publishes manylinux wheels, replace it, "
            "or change runtime/architecture in [tool.sls-py.providers.aws]",
        )
    last = [line for line in err.strip().splitlines() if line.strip()][-3:]
    raise PackageError(
        f"installing the app's dependencies for {where} failed: " + " | ".join(last),
        hint="check [project.dependencies] in the app's pyproject.toml",
    )


# --- bytecode ---------------------------------------------------------------------

# Runs in a child with PYTHONHASHSEED=0 so set constants marshal in a fixed order, and
# PYTHONNODEBUGRANGES=1: no column ranges (the ^^^ markers of tracebacks; line numbers
# stay). The pyc is what py_compile writes (an unchecked-hash header, then the marshalled
# code), but a job flagged ``strip`` is compiled from its AST without docstrings: every
# other node keeps its line number, and tracebacks read their text from the shipped .py.
_COMPILER = """
import ast, importlib.util, json, marshal, os, sys
HOLDERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
def nodoc(tree):
    for node in ast.walk(tree):
        if isinstance(node, HOLDERS) and ast.get_docstring(node, clean=False) is not None:
            node.body = node.body[1:] or [ast.copy_location(ast.Pass(), node.body[0])]
    return tree
for source, arcname, target, strip in json.load(sys.stdin):
    data = open(source, "rb").read()
    try:
        code = compile(nodoc(ast.parse(data, arcname)) if strip else data, arcname, "exec",
                       dont_inherit=True)
    except (SyntaxError, ValueError):
        continue  # Python reports the error when the module is imported
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.{os.getpid()}.tmp"  # builds running side by side share the cache
    with open(tmp, "wb") as out:  # magic, flags (hash-based, unchecked), source hash, code
        out.write(importlib.util.MAGIC_NUMBER + b"\\x01\\0\\0\\0" + importlib.util.source_hash(data))
        out.write(marshal.dumps(code))
    os.replace(tmp, target)
"""


def bytecode_entries(
    entries: dict[str, Path],
    platform: Platform,
    state_dir: Path,
    without_docstrings: Iterable[str] = (),
) -> dict[str, Path]:
    """``__pycache__`` files for every ``.py`` entry, when this Python matches the runtime.

    Lambda's code folder is read-only, so without them every cold start compiles
    every module from source. The files are unchecked-hash pycs (no timestamps),
    compiled once per (name, source) and cached under ``.sls-py/aws/pyc/``.
    Another Python version could not write bytecode the runtime accepts:
    then nothing is added and Lambda compiles from source as usual.

    :param without_docstrings: entries compiled without their docstrings (the
        sls-py runtime, which never reads ``__doc__``; an app or a dependency may).
    """
    stripped = set(without_docstrings)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.implementation.name != "cpython" or version != platform.python_version:
        return {}
    tag = sys.implementation.cache_tag
    cache = state_dir / "aws" / "pyc" / f"{tag}-noranges"  # keyed by how it was compiled
    out: dict[str, Path] = {}
    jobs: list[list[str | bool]] = []
    for arcname, path in sorted(entries.items()):
        if not arcname.endswith(".py"):
            continue
        strip = arcname in stripped
        how = b"\0nodoc\0" if strip else b"\0"
        key = hashlib.sha256(arcname.encode() + how + path.read_bytes()).hexdigest()
        target = cache / key[:2] / f"{key}.pyc"
        folder, _, name = arcname.rpartition("/")
        pyc = f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc".lstrip("/")
        if not target.is_file():
            jobs.append([str(path), arcname, str(target), strip])
        out[pyc] = target
    if jobs:
        subprocess.run(
            [sys.executable, "-c", _COMPILER],
            input=json.dumps(jobs),
            text=True,
            env={
                **os.environ,
                "PYTHONHASHSEED": "0",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONNODEBUGRANGES": "1",
            },
            check=True,
            capture_output=True,
        )
    return {name: path for name, path in out.items() if path.is_file()}


# --- the zip ----------------------------------------------------------------------


def _zip(entries: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so external_attr is a mode
            info.external_attr = _FILE_MODE
            zf.writestr(info, entries[name].read_bytes(), compresslevel=_COMPRESS_LEVEL)
    return buffer.getvalue()


def _largest_tops(entries: dict[str, Path]) -> str:
    sizes: dict[str, int] = {}
    for name, path in entries.items():
        top = name.split("/", 1)[0]
        sizes[top] = sizes.get(top, 0) + path.stat().st_size
    top3 = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{name} {_human(size)}" for name, size in top3)


def _human(size: int) -> str:
    """``size`` bytes for people: 812 B, 45.3 KB, 12.0 MB."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"
