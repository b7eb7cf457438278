"""Benchmark: AWS calls and time of deploying the example app to a moto server.

    .venv/bin/python bench/aws_deploy.py [--repeat 5] [--json]

Measures, against a moto server over HTTP on 127.0.0.1 (no internet):

- a first deploy of ``apps/work_magic`` (stage ``dev``),
- a no-op redeploy (target: 0 mutating calls),
- a code-only change (one line added to the app),
- the size of the zip (without third-party dependencies),

counting every AWS call the engine makes (through the one boto3 boundary,
:class:`sls_py_aws.cloud.Cloud`) and, independently, the requests moto
received. Times are the median of ``--repeat`` rounds (each on a fresh
stage) and are also given as ratios to the first deploy of the same run, since
absolute times depend on the machine. Raw figures go to
``bench/results/aws_deploy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tests/support (the moto extensions)
sys.path.insert(0, str(REPO / "tests" / "aws" / "deploy"))

import aws_deploy_support as support  # noqa: E402  (sets the moto environment first)


def _measure(deploy: Any, moto: support.Moto) -> dict[str, Any]:
    moto.start_recording()
    t0 = time.perf_counter()
    cloud, result = deploy()
    seconds = time.perf_counter() - t0
    recorded = moto.stop_recording()
    return {
        "seconds": seconds,
        "calls": len(cloud.calls),
        "mutating_calls": cloud.mutating_calls,
        "requests_seen_by_moto": len(recorded),
        "mutating_requests_seen_by_moto": len(support.mutating(recorded)),
        "steps": len(result.applied),
    }


def run(repeat: int) -> dict[str, Any]:
    moto = support.Moto()
    for name, value in moto.env().items():
        if name.startswith("AWS_"):
            os.environ[name] = value
    os.environ.pop("AWS_PROFILE", None)
    from sls_py.config import load_project
    from sls_py.ui import PlainUI
    from sls_py_aws import deploy as engine

    tmp = Path(tempfile.mkdtemp(prefix="sls-py-bench-"))
    rounds: dict[str, list[dict[str, Any]]] = {
        "first_deploy": [],
        "noop_redeploy": [],
        "code_change": [],
    }
    size = 0
    try:
        for i in range(-1, repeat):  # round -1 warms moto and the imports up; not counted
            root = support.copy_app(tmp, f"app{i + 1}")
            stage = f"bench{i + 1}"

            def deploy(root: Path = root, stage: str = stage) -> tuple[Any, Any]:
                for mod in [
                    m for m in sys.modules if m == "work_magic" or m.startswith("work_magic.")
                ]:
                    del sys.modules[mod]
                project = load_project(root)
                spec = project.spec(stage)
                cloud = engine.make_cloud(spec)
                return cloud, engine.deploy(spec, project, cloud, PlainUI(quiet=True))

            first = _measure(deploy, moto)
            noop = _measure(deploy, moto)
            app_py = root / "work_magic" / "app.py"
            app_py.write_text(app_py.read_text() + f"\nBENCH_ROUND = {i}\n")
            change = _measure(deploy, moto)
            if i >= 0:
                rounds["first_deploy"].append(first)
                rounds["noop_redeploy"].append(noop)
                rounds["code_change"].append(change)
            if not size:
                project = load_project(root)
                size = engine.build(project.spec(stage), project).size
    finally:
        moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    out: dict[str, Any] = {"repeat": repeat, "zip_bytes": size}
    base = statistics.median(r["seconds"] for r in rounds["first_deploy"])
    for name, rs in rounds.items():
        med = statistics.median(r["seconds"] for r in rs)
        out[name] = {
            **{k: v for k, v in rs[-1].items() if k != "seconds"},
            "median_seconds": round(med, 3),
            "ratio_to_first_deploy": round(med / base, 3),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results" / "aws_deploy.json",
        help="where to write the raw figures (JSON)",
    )
    args = parser.parse_args()
    result = run(args.repeat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"zip (no third-party dependencies): {result['zip_bytes'] / 1024:.1f} KB")
    head = ("", "calls", "mutating", "moto saw", "steps", "median s", "ratio")
    print("{:16} {:>6} {:>9} {:>9} {:>6} {:>9} {:>6}".format(*head))
    for name in ("first_deploy", "noop_redeploy", "code_change"):
        r = result[name]
        print(
            f"{name:16} {r['calls']:>6} {r['mutating_calls']:>9} {r['requests_seen_by_moto']:>9} "
            f"{r['steps']:>6} {r['median_seconds']:>9} {r['ratio_to_first_deploy']:>6}"
        )
    ok = (
        result["noop_redeploy"]["mutating_calls"]
        == 0
        == result["noop_redeploy"]["mutating_requests_seen_by_moto"]
    )
    print("target no-op redeploy with 0 mutating calls:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
