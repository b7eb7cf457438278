"""Benchmark: the cold start of `sls-py run --provider local`, without load.

Starts ``python -m sls_py run --provider local -p <copy of apps/work_magic>
--no-reload`` N times and reports medians of: port open and first 200 of
POST /work-magic with an API key (from the process start), the wall time and
the CPU time (utime + stime) of the ``sls-py`` process when it logs "ready",
and the RSS of the gateway process and of its whole tree 0.5 s after the first
200, with PSS (shared pages counted once: the headline) next to RSS, by kind
(gateway, templates, workers, servers such as valkey-server). Not a test:
numbers depend on the machine (the first line says what it found: cores, SMT
siblings, load, bytecode); run it on a quiet machine, or compare versions in
the same run with ``--compare``, which interleaves them.

    .venv/bin/python bench/local_cold_start.py [--runs 15]
    .venv/bin/python bench/local_cold_start.py --compare before=/path/to/pkgs

``--compare NAME=DIR`` puts DIR first on PYTHONPATH for that variant's server
(and so its templates): a folder holding ``sls_py``, ``sls_py_local``, ... of
another version, e.g. symlinks into an exported commit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_gateway import APP_DIR, KINDS, first_200, free_port, memory_by_kind, start_local, stop
from machine import describe, probe


def cpu_ms(pid: int) -> float:
    """User + system CPU time of one process so far, in ms."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """The RSS of one process, in MB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_once(project: Path, key: str, pythonpath: str) -> dict[str, float]:
    """One start: the figures of one server, which is stopped afterwards."""
    port = free_port()
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    started = time.perf_counter()
    proc = start_local(project, port, stderr=subprocess.PIPE, env=env)
    ready: dict[str, float] = {}

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if b"ready: http" in line and not ready:
                ready["cpu_ms"] = cpu_ms(proc.pid)
                ready["ready_ms"] = (time.perf_counter() - started) * 1000
        proc.stderr.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        listening, answered = first_200(port, key, started, proc)
        time.sleep(0.5)
        by_kind = memory_by_kind(proc.pid)
        kinds = {f"{k}_pss_mb": by_kind[k]["pss"] / 1024 for k in KINDS}
        return {
            **kinds,
            "tree_pss_mb": by_kind["total"]["pss"] / 1024,
            "port_open_ms": listening * 1000,
            "first_200_ms": answered * 1000,
            "ready_ms": ready.get("ready_ms", float("nan")),
            "cpu_to_ready_ms": ready.get("cpu_ms", float("nan")),
            "gateway_rss_mb": rss_mb(proc.pid),
            "tree_rss_mb": by_kind["total"]["rss"] / 1024,
            "processes": by_kind["total"]["n"],
        }
    finally:
        stop(proc)
        watcher.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="starts per variant (medians)")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another version's packages, first on PYTHONPATH (repeatable)",
    )
    args = parser.parse_args(argv)
    variants = [("this", "")] + [tuple(v.split("=", 1)) for v in args.compare]  # type: ignore[misc]

    print(describe(probe(APP_DIR)), flush=True)
    from sls_py.config import load_project
    from sls_py_local.keys import load_api_keys

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "work_magic"
        shutil.copytree(APP_DIR, project, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
        proj = load_project(project)
        key = load_api_keys(proj.spec(), proj)[0].value
        for _, pythonpath in variants:  # compile bytecode, warm the page cache
            start_once(project, key, pythonpath)
        results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in variants}
        for _ in range(args.runs):
            for name, pythonpath in variants:
                results[name].append(start_once(project, key, pythonpath))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.runs} starts per variant, interleaved; medians (min); load average {load:.1f}")
    for name, rows in results.items():
        med: dict[str, Any] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        low = min(r["first_200_ms"] for r in rows)
        print(
            f"{name:>8}: port open {med['port_open_ms']:.0f} ms, "
            f"first 200 {med['first_200_ms']:.0f} ms ({low:.0f}), "
            f"ready {med['ready_ms']:.0f} ms, CPU to ready {med['cpu_to_ready_ms']:.0f} ms, "
            f"tree PSS {med['tree_pss_mb']:.1f} MB (RSS {med['tree_rss_mb']:.1f} MB, "
            f"{med['processes']:.0f} processes), gateway RSS {med['gateway_rss_mb']:.1f} MB"
        )
        parts = ", ".join(f"{k} {med[f'{k}_pss_mb']:.1f}" for k in KINDS)
        print(f"{'':>8}  PSS by kind, MB: {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
