"""What a benchmark should say about the machine it ran on, next to its figures.

    from machine import probe, describe     # bench/ is on sys.path for bench scripts
    facts = probe()                          # a dict (JSON-able): results["machine"] = facts
    print(describe(facts))                   # one line

``probe()`` reports the logical CPUs (all, and those this process may use), the
SMT sibling groups among them (physical cores), the load average, whether
this is a virtual machine, the local gateway's pinning decision for the
default settings (``sls_py_local.settings.cpu_layout``, decided, not applied),
and whether Python can write bytecode: ``PYTHONDONTWRITEBYTECODE`` (or ``-B``),
``sys.pycache_prefix``, and whether the source trees' ``__pycache__`` folders
are writable (sls-py's own package and, with ``source``, the app's). Stdlib
only, besides sls_py_local for the pinning decision (optional).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def _siblings(cpus: list[int]) -> list[list[int]]:
    try:
        from sls_py_local.settings import smt_siblings
    except ImportError:  # without sls-py: every CPU a core of its own
        return [[c] for c in cpus]
    return [list(g) for g in smt_siblings(cpus)]


def _pinning(cpus: list[int]) -> str:
    try:
        from sls_py_local.settings import PoolSettings, cpu_layout
    except ImportError:
        return "unknown (sls_py_local not importable)"
    return cpu_layout(PoolSettings(), cpus=cpus).describe()


def _virtual() -> str:
    """The hypervisor's name (``lscpu``'s "Hypervisor vendor" comes from the same
    flag), or ``""`` on bare metal or when unknown."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            info = f.read()
    except OSError:
        return ""
    if " hypervisor" not in info:
        return ""
    try:
        vendor = Path("/sys/class/dmi/id/sys_vendor").read_text().strip()
    except OSError:
        vendor = ""
    return vendor or "yes"


def _pycache_writable(package_dir: Path) -> bool:
    """Whether Python could write ``package_dir/__pycache__`` (existing or not)."""
    cache = package_dir / "__pycache__"
    target = cache if cache.is_dir() else package_dir
    return os.access(target, os.W_OK | os.X_OK)


def probe(source: Path | str | None = None) -> dict[str, Any]:
    """The machine's facts as a dict (see the module's docstring); ``source``: the
    app's source folder, whose ``__pycache__`` is checked too."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    groups = _siblings(cpus)
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else []
    env_flag = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    trees: dict[str, bool] = {}
    try:
        import sls_py

        trees["sls_py"] = _pycache_writable(Path(sls_py.__file__).parent)
    except ImportError:
        pass
    if source is not None:
        trees["app"] = _pycache_writable(Path(source))
    written = not (env_flag or sys.flags.dont_write_bytecode)
    return {
        "logical_cpus": os.cpu_count(),
        "usable_cpus": cpus,
        "smt_groups": groups,
        "physical_cores": len(groups),
        "smt": any(len(g) > 1 for g in groups),
        "virtual": _virtual(),
        "load_average": [round(x, 2) for x in load],
        "pinning": _pinning(cpus),
        "pythondontwritebytecode": env_flag,
        "pycache_prefix": sys.pycache_prefix,
        "pycache_writable": trees,
        "bytecode_written": written and (sys.pycache_prefix is not None or all(trees.values())),
        "python": platform.python_version(),
    }


def describe(facts: dict[str, Any]) -> str:
    """One line for a benchmark's output: ``machine: 2 logical CPUs (usable 0-1), ...``."""
    groups = facts["smt_groups"]
    if facts["smt"]:
        smt = "SMT siblings " + " ".join("{" + ",".join(map(str, g)) + "}" for g in groups if len(g) > 1)
    else:
        smt = "no SMT siblings"
    load = "/".join(f"{x:.1f}" for x in facts["load_average"]) or "?"
    why = []
    if facts["pythondontwritebytecode"]:
        why.append("PYTHONDONTWRITEBYTECODE=1")
    for tree, ok in facts["pycache_writable"].items():
        if not ok:
            why.append(f"{tree}'s __pycache__ read-only")
    if facts["pycache_prefix"]:
        why.append(f"pycache prefix {facts['pycache_prefix']}")
    bytecode = ("bytecode written" if facts["bytecode_written"] else "bytecode NOT written") + (
        f" ({', '.join(why)})" if why else ""
    )
    vm = f", VM ({facts['virtual']})" if facts["virtual"] else ""
    usable = ",".join(map(str, facts["usable_cpus"]))
    return (
        f"machine: {facts['logical_cpus']} logical CPUs (usable {usable}), "
        f"{facts['physical_cores']} physical cores, {smt}{vm}; load {load}; "
        f"pinning: {facts['pinning']}; {bytecode}; Python {facts['python']}"
    )


if __name__ == "__main__":
    print(describe(probe(sys.argv[1] if len(sys.argv) > 1 else None)))


def write_json(path: Path, data: Any) -> None:
    """Write a benchmark's raw figures to ``path`` (its folder made first:
    ``bench/results/`` is not in a fresh clone)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
