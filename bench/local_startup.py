"""Benchmark: start-up of `sls-py run` and `sls-py invoke` against the interpreter's floor.

The floor is what no sls-py start can beat: a fresh interpreter that imports
the example app (``python -c "import work_magic.app"`` with the app's folder on
the path) and exits. A second reference adds what work-magic's first call
imports (the cache client, valkey-py), which a function process pays too.

Measured in interleaved rounds on a copy of apps/work_magic (medians):

- ``run warm``: ``sls-py run`` with the spec cached by the previous start
  (.sls-py/cache), process start to the first 200 of POST /work-magic;
- ``run cold``: the same with the cached spec removed first (the typer CLI,
  pydantic and the app imported to build the spec, as every start did before);
- ``run after an edit``: the same with the app's module touched first: the
  cached spec is stale and the CLI builds it again, but the early start begins
  from what it says the last start ran;
- ``invoke warm`` / ``invoke after an edit`` / ``invoke cold``: ``sls-py invoke
  work-magic PAYLOAD`` to exit;
- ``minimal app``: the same route in the smallest app (one HTTP function, no
  servers, config or other functions), a warm ``sls-py run`` against its own floor:
  what sls-py itself adds to a start.

    .venv/bin/python bench/local_startup.py [--rounds 7] [--json out.json]
    .venv/bin/python bench/local_startup.py --compare before=/path/to/pkgs  # A/B, same rounds

``--compare NAME=DIR`` measures another version's warm ``run`` and ``invoke``
in the same rounds: DIR holds its ``sls_py``, ``sls_py_local``, ... (e.g.
symlinks into an exported commit), put first on PYTHONPATH.

``--sls-py compiled`` measures sls-py as ``pip install .`` (or a wheel) leaves
it: a copy of each version's packages, compiled once with compileall as pip
does at install (whatever ``PYTHONDONTWRITEBYTECODE`` says), first on PYTHONPATH
for every command here, the floor's included. The default, ``checkout``, runs
the packages where they are (this checkout's editable install, the ``--compare``
folders): with bytecode not writable, every start compiles sls-py's own modules
from source too. Either way the app's copy gets no bytecode it would not write.

Not a test: the figures depend on the machine, which it describes first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_gateway import APP_DIR, first_200, free_port, start_local, stop
from machine import describe, probe, write_json

REPO = Path(__file__).resolve().parent.parent

PAYLOAD = json.dumps({"magic-word": "clonezero-token", "spell": "adder", "x": 29, "y": 13})

#: the smallest app with the same route: one HTTP function, no cache, database,
#: config or other functions (what sls-py itself adds, without the app's servers)
MINIMAL_APP = """
from sls_py import App, http

app = App("minimal", api_keys=["default"])


@app.function(name="work-magic", triggers=[http("POST", "/work-magic", api_key=True)])
def work_magic(payload: dict, ctx) -> dict:
    return {"result": 5}
"""
MINIMAL_CONFIG = """[project]
name = "minimal"
version = "0.1.0"

[tool.sls-py]
app = "minimal_app:app"
"""


#: where each package of a version lives in a checkout, by import name
CHECKOUT_PACKAGES = {"sls_py": "core", "sls_py_local": "providers/local", "sls_py_aws": "providers/aws"}


def compiled_copy(source: Path | None, into: Path) -> str:
    """A copy of one version's packages in ``into``, compiled as ``pip install .``
    compiles what it installs: ``source`` is a ``--compare`` folder (holding
    ``sls_py``, ... or links to them), ``None`` this checkout."""
    import compileall

    for name, where in CHECKOUT_PACKAGES.items():
        package = (REPO / where) if source is None else (source / name)
        if package.is_dir():
            shutil.copytree(package.resolve(), into / name, ignore=shutil.ignore_patterns("__pycache__"))
    if not compileall.compile_dir(str(into), quiet=1):
        raise SystemExit(f"compileall failed in {into}")
    return str(into)


def floor_ms(
    app_dir: Path, extra: str = "", module: str = "work_magic.app", packages: str | None = None
) -> float:
    """A fresh interpreter importing the app (and ``extra``), to its exit."""
    code = f"import sys; sys.path.insert(0, {str(app_dir)!r}); import {module}{extra}"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=variant_env(packages))
    return (time.perf_counter() - started) * 1000


def variant_env(packages: str | None) -> dict[str, str] | None:
    """The environment of a ``--compare`` variant: its packages first on PYTHONPATH."""
    if not packages:
        return None
    path = os.pathsep.join(filter(None, [packages, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def run_ms(
    project: Path, key: str, cold: bool, packages: str | None = None, edited: bool = False
) -> float:
    """``sls-py run``: process start to the first 200 of POST /work-magic; ``cold``:
    the cached spec removed first; ``edited``: the app's module touched first (the
    cached spec is stale, as after an edit)."""
    if cold:
        shutil.rmtree(project / ".sls-py" / "cache", ignore_errors=True)
    if edited:
        touch_app(project)
    port = free_port()
    started = time.perf_counter()
    proc = start_local(project, port, env=variant_env(packages))
    try:
        _, answered = first_200(port, key, started, proc)
    finally:
        stop(proc)
    return answered * 1000


def touch_app(project: Path) -> None:
    """Touch the app's module: its cached spec is stale, as after an edit."""
    module = project / "work_magic" / "app.py"
    os.utime(module, ns=(time.time_ns(), time.time_ns()))


def invoke_ms(
    project: Path, cold: bool, packages: str | None = None, edited: bool = False
) -> float:
    """``sls-py invoke work-magic PAYLOAD``, to its exit (checked: the right answer);
    ``cold`` and ``edited`` as for :func:`run_ms`."""
    if cold:
        shutil.rmtree(project / ".sls-py" / "cache", ignore_errors=True)
    if edited:
        touch_app(project)
    argv = [sys.executable, "-m", "sls_py", "invoke", "work-magic", PAYLOAD, "-p", str(project)]
    argv += ["--provider", "local"]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=variant_env(packages))
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0 or json.loads(done.stdout) != {"result": 42}:
        raise SystemExit(f"sls-py invoke failed ({done.returncode}): {done.stdout}{done.stderr}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (medians)")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another version's packages (sls_py, sls_py_local, ...), first on PYTHONPATH: "
        "its warm run and invoke are measured in the same rounds, on a copy of its own "
        "(repeatable)",
    )
    parser.add_argument(
        "--sls-py",
        choices=("checkout", "compiled"),
        default="checkout",
        help="checkout: each version's packages where they are (with bytecode not writable, "
        "sls-py's own modules compile at every start); compiled: copies compiled once, as "
        "`pip install .` leaves them, for every command (the floor's too)",
    )
    args = parser.parse_args(argv)
    compare = [tuple(v.split("=", 1)) for v in args.compare]
    if any(len(v) != 2 or not Path(v[1]).is_dir() for v in compare):
        parser.error("--compare takes NAME=DIR, DIR a folder holding sls_py, sls_py_local, ...")

    from sls_py.config import load_project
    from sls_py_local.keys import load_api_keys

    facts: dict[str, Any] = probe(APP_DIR)
    facts["sls_py"] = args.sls_py
    print(describe(facts))
    how = "copies compiled as pip installs them" if args.sls_py == "compiled" else "where they are"
    print(f"sls-py's packages: {args.sls_py} ({how})")
    with tempfile.TemporaryDirectory() as tmp:
        mine: str | None = None
        if args.sls_py == "compiled":
            mine = compiled_copy(None, Path(tmp) / "packages-this")
            compare = [(n, compiled_copy(Path(d), Path(tmp) / f"packages-{n}")) for n, d in compare]
        project = Path(tmp) / "work_magic"
        shutil.copytree(APP_DIR, project, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
        proj = load_project(project)
        key = load_api_keys(proj.spec(), proj)[0].value
        minimal = Path(tmp) / "minimal"
        minimal.mkdir()
        (minimal / "minimal_app.py").write_text(MINIMAL_APP)
        (minimal / "pyproject.toml").write_text(MINIMAL_CONFIG)
        mini = load_project(minimal)
        minimal_key = load_api_keys(mini.spec(), mini)[0].value
        measures = {
            "minimal app: floor": lambda: floor_ms(minimal, module="minimal_app", packages=mine),
            "minimal app: run warm": lambda: run_ms(minimal, minimal_key, cold=False, packages=mine),
            "floor": lambda: floor_ms(project, packages=mine),
            "floor + cache client": lambda: floor_ms(project, "; import valkey", packages=mine),
            "run warm": lambda: run_ms(project, key, cold=False, packages=mine),
            "run cold": lambda: run_ms(project, key, cold=True, packages=mine),
            "run after an edit": lambda: run_ms(project, key, cold=False, packages=mine, edited=True),
            "invoke warm": lambda: invoke_ms(project, cold=False, packages=mine),
            "invoke after an edit": lambda: invoke_ms(project, cold=False, packages=mine, edited=True),
            "invoke cold": lambda: invoke_ms(project, cold=True, packages=mine),
        }
        for name, packages in compare:  # a copy each: the spec caches are the versions' own
            copy = Path(tmp) / f"work_magic-{name}"
            shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".sls-py"))
            shutil.copytree(project / ".sls-py" / "local", copy / ".sls-py" / "local")  # the same keys
            measures[f"{name}: run warm"] = lambda c=copy, p=packages: run_ms(c, key, False, p)
            measures[f"{name}: run after an edit"] = lambda c=copy, p=packages: run_ms(
                c, key, False, p, edited=True
            )
            measures[f"{name}: invoke warm"] = lambda c=copy, p=packages: invoke_ms(c, False, p)
            measures[f"{name}: invoke after an edit"] = lambda c=copy, p=packages: invoke_ms(
                c, False, p, edited=True
            )
        for measure in measures.values():  # warm-up: keys, cache data, page cache, bytecode
            measure()
        raw: dict[str, list[float]] = {name: [] for name in measures}
        for _ in range(args.rounds):
            for name, measure in measures.items():  # a cold start writes the cache back
                raw[name].append(measure())
    load = os.getloadavg()[0]
    med = {name: statistics.median(values) for name, values in raw.items()}
    print(f"{args.rounds} interleaved rounds; medians (min); load average {load:.1f}")
    for name, values in raw.items():
        floor = med["minimal app: floor"] if name.startswith("minimal") else med["floor"]
        ratio = "" if name.endswith("floor") else f"  {med[name] / floor:.2f}x the floor"
        print(f"  {name:28s} {med[name]:7.0f} ms ({min(values):.0f}){ratio}")
    if args.json:
        write_json(args.json, {"machine": facts, "load": load, "raw_ms": raw})
    return 0


if __name__ == "__main__":
    sys.exit(main())
