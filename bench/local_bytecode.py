"""Benchmark: what a function process pays when its bytecode is not cached.

Times, interleaved, the imports a template of apps/work_magic does (``sls_py.runtime``,
``sls_py_local.template`` and the app) in a fresh interpreter:

- **uncached**: ``PYTHONDONTWRITEBYTECODE=1`` on a copy of the app with no
  ``__pycache__`` (what a user with that variable set gets on every start; the
  installed packages' bytecode, written when they were installed, is still read);
- **uncached, sls-py compiled**: the same, with sls-py's packages as ``pip
  install .`` leaves them (a copy compiled once, first on PYTHONPATH): only the
  app's modules compile (an editable install compiles sls-py's own too);
- **prefix**: ``PYTHONPYCACHEPREFIX`` pointing at a folder filled by a first run
  (what ``sls-py run`` gives function processes when only the tree is read-only).

Reports medians and the differences, the figures ``sls-py run`` quotes at
start-up (providers/local/bytecode.py ``COST`` and ``APP_COST``). Not a test.

    .venv/bin/python bench/local_bytecode.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_gateway import APP_DIR
from local_reload import machine_facts
from local_startup import compiled_copy
from machine import describe

IMPORTS = "import sls_py.runtime, sls_py_local.template, work_magic.app"


def once(project: Path, env: dict[str, str]) -> tuple[float, float]:
    """One fresh interpreter doing a template's imports: wall and CPU time, in ms."""
    code = f"import sys; sys.path.insert(0, {str(project)!r}); {IMPORTS}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=project)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="starts per variant (medians)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "work_magic"
        shutil.copytree(APP_DIR, project, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPYCACHEPREFIX",)}
        packages = compiled_copy(None, Path(tmp) / "packages")
        path = os.pathsep.join(filter(None, [packages, base.get("PYTHONPATH")]))
        variants = {
            "uncached": {**base, "PYTHONDONTWRITEBYTECODE": "1"},
            "uncached, sls-py compiled": {**base, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": path},
            "prefix": {
                **{k: v for k, v in base.items() if k != "PYTHONDONTWRITEBYTECODE"},
                "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"),
            },
        }
        for env in variants.values():  # fills the prefix; warms the page cache
            once(project, env)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, env in variants.items():
                times[name].append(once(project, env))
        facts = machine_facts(project)
    print(describe(facts))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    wall = {name: statistics.median(w for w, _ in v) for name, v in times.items()}
    cpu = {name: statistics.median(c for _, c in v) for name, v in times.items()}
    for name in variants:
        print(f"{name:>25}: median {wall[name]:.0f} ms wall, {cpu[name]:.0f} ms CPU, of {args.runs}")
    for name in ("uncached", "uncached, sls-py compiled"):
        print(
            f"{name} - prefix: +{wall[name] - wall['prefix']:.0f} ms wall "
            f"({wall[name] / wall['prefix']:.2f}x), +{cpu[name] - cpu['prefix']:.0f} ms CPU "
            f"({cpu[name] / cpu['prefix']:.2f}x) a process"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
