"""Benchmark: `sls-py run --provider local` against the in-process ceiling.

Measures, in one run and side by side,

(a) ``sls-py run --provider local`` serving POST /work-magic of apps/work_magic
    with an API key (gateway process + template + forked workers), and
(b) the same handler called in-process by a bare starlette app on uvicorn with
    uvloop and httptools (same API key check, same ``execute``),

with wrk as the load generator, in interleaved rounds (medians reported):
cold start (process start to first 200),
requests/s and p50/p99 latency at 1 and 8 connections, CPU time per request
of each process tree, peak RSS (and PSS, which counts pages shared by forked
workers once) of each process tree, sampled every 0.1 s during a 2 s warm-up
at 8 connections and once after all the runs, and the ratio (a)/(b). Not a
test: numbers depend on the machine.

    apt-get install -y wrk
    .venv/bin/python bench/local_gateway.py [--duration 3] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "apps" / "work_magic"
BODY = json.dumps({"magic-word": "clonezero-token", "spell": "adder", "x": 2, "y": 3})
EXPECTED = b'{"result":5}'

STARLETTE_APP = """
import hmac, os, sys, time, uuid
sys.path.insert(0, {source!r})
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from sls_py.runtime import Context, HttpRequest, MemoryDriver, execute, use_driver
from work_magic.app import work_magic

# the magic word is config: dev's default, as the local provider passes it
use_driver(MemoryDriver(), {{"config_defaults": {{"magic-word": "clonezero-token"}}}})
KEY = os.environ["BENCH_API_KEY"].encode()


async def endpoint(request):
    presented = request.headers.get("x-api-key", "").encode()
    if not hmac.compare_digest(presented, KEY):
        return Response(b'{{"message":"Forbidden"}}', 403, media_type="application/json")
    event = HttpRequest(method="POST", path="/work-magic", route="/work-magic",
                        headers={{k: [v] for k, v in request.headers.items()}},
                        body=await request.body())
    ctx = Context(request_id=str(uuid.uuid4()), function_name="work-magic", stage="dev",
                  deadline_ms=int(time.time() * 1000 + 10000), provider="bench")
    outcome = execute(work_magic, event, ctx)
    body, headers = outcome.response.encoded()
    return Response(body, outcome.response.status, headers=headers)


app = Starlette(routes=[Route("/work-magic", endpoint, methods=["POST"])])

if __name__ == "__main__":
    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_bytes(key: str) -> bytes:
    return (
        f"POST /work-magic HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {key}\r\nContent-Length: {len(BODY)}\r\n\r\n{BODY}"
    ).encode()


def first_200(
    port: int, key: str, started: float, proc: subprocess.Popen[bytes], limit: float = 60
) -> tuple[float, float]:
    """Seconds from ``started`` until the port accepts connections, and until
    POST /work-magic first answers 200 with the right body."""
    data = request_bytes(key)
    listening = 0.0
    while time.perf_counter() - started < limit:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                listening = listening or time.perf_counter() - started
                s.sendall(data)
                reply = b""
                while b"\r\n\r\n" not in reply or not reply.endswith(EXPECTED):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
                if reply.startswith(b"HTTP/1.1 200") and reply.endswith(EXPECTED):
                    return listening, time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.001)
    raise SystemExit("no 200 within the time limit")


def tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rfind(")") + 2 :].split()[1]), []).append(int(entry))
    found, todo = [pid], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def memory(pid: int) -> tuple[int, int, int]:
    """RSS and PSS (kB) summed over the process tree, and its process count."""
    rss = pss = n = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
            n += 1
        except OSError:
            continue
    return rss, pss, n


class PeakMemory(threading.Thread):
    """Samples a process tree's memory until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.stop_flag = pid, interval, threading.Event()
        self.rss = self.pss = self.procs = 0

    def sample(self) -> None:
        rss, pss, n = memory(self.pid)
        if rss > self.rss:
            self.rss, self.procs = rss, n
        self.pss = max(self.pss, pss)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.sample()
            self.stop_flag.wait(self.interval)


def wrk(port: int, key: str, connections: int, duration: float, workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(
        textwrap.dedent(
            f"""\
            wrk.method = "POST"
            wrk.body = {json.dumps(BODY)}
            wrk.headers["Content-Type"] = "application/json"
            wrk.headers["X-API-Key"] = "{key}"
            """
        )
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/work-magic",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"wrk saw {non2xx.group(1)} error responses:\n{out}")

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert rps and total, out
    return {
        "rps": float(rps.group(1)),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "requests": float(total.group(1)),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by the process tree under ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    used = 0
    for p in tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        used += int(fields[11]) + int(fields[12])
    return used / tick


def start_local(
    project: Path,
    port: int,
    stderr: int = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``sls-py run --provider local`` of ``project`` on ``port``, without hot reload."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sls_py",
            "run",
            "--provider",
            "local",
            "-p",
            str(project),
            "--port",
            str(port),
            "--no-reload",
        ],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        cwd=project,
        env=env,
    )


def start_starlette(script: Path, port: int, key: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_API_KEY": key}
    return subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=3.0, help="seconds of load per measurement"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; medians are reported"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a [tool.sls-py.providers.local] setting for (a), as TOML, e.g. --set pin_cpus=false",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    from sls_py.config import load_project
    from sls_py_local.keys import load_api_keys

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        project = workdir / "work_magic"
        shutil.copytree(APP_DIR, project, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
        if args.set:
            with open(project / "pyproject.toml", "a") as f:
                f.write("\n[tool.sls-py.providers.local]\n" + "\n".join(args.set) + "\n")
        proj = load_project(project)
        key = load_api_keys(proj.spec(), proj)[0].value
        script = workdir / "starlette_app.py"
        script.write_text(STARLETTE_APP.format(source=str(project)))

        results: dict[str, dict[str, Any]] = {"local": {}, "starlette": {}}
        procs: dict[str, subprocess.Popen[bytes]] = {}
        ports = {"local": free_port(), "starlette": free_port()}
        peaks: dict[str, PeakMemory] = {}
        try:
            for name in ("local", "starlette"):
                started = time.perf_counter()
                proc = (
                    start_local(project, ports[name])
                    if name == "local"
                    else start_starlette(script, ports[name], key)
                )
                procs[name] = proc
                listening, answered = first_200(ports[name], key, started, proc)
                results[name]["listening_ms"] = listening * 1000
                results[name]["cold_start_ms"] = answered * 1000
            # warm-up at 8 connections, with memory sampled; not during the timed runs:
            # reading smaps_rollup walks page tables and stalls the measured processes
            for name in ("local", "starlette"):
                peaks[name] = PeakMemory(procs[name].pid)
                peaks[name].start()
                wrk(ports[name], key, 8, 2, workdir)
                peaks[name].stop_flag.set()
                peaks[name].join()
            runs: dict[tuple[str, int], list[dict[str, float]]] = {}
            for _ in range(args.rounds):  # interleaved, so both see the same noise
                for connections in (1, 8):
                    for name in ("local", "starlette"):
                        before = cpu_seconds(procs[name].pid)
                        measured = wrk(ports[name], key, connections, args.duration, workdir)
                        used = cpu_seconds(procs[name].pid) - before
                        measured["cpu_us_per_request"] = used * 1e6 / measured["requests"]
                        runs.setdefault((name, connections), []).append(measured)
            for (name, connections), measured in runs.items():
                results[name][f"c{connections}"] = {
                    k: statistics.median(m[k] for m in measured) for k in measured[0]
                }
                results[name][f"c{connections}_runs"] = measured
            for name in ("local", "starlette"):
                peaks[name].sample()  # and once more after all the load
                results[name]["peak_rss_mb"] = peaks[name].rss / 1024
                results[name]["peak_pss_mb"] = peaks[name].pss / 1024
                results[name]["processes"] = peaks[name].procs
        finally:
            for proc in procs.values():
                stop(proc)

    local, ceiling = results["local"], results["starlette"]
    results["ratio"] = {f"c{c}": local[f"c{c}"]["rps"] / ceiling[f"c{c}"]["rps"] for c in (1, 8)}
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    rows = [
        ("port open (ms)", "listening_ms", None),
        ("cold start (ms)", "cold_start_ms", None),
        ("req/s, 1 connection", "c1", "rps"),
        ("p50 / p99 ms, 1 conn", "c1", "lat"),
        ("req/s, 8 connections", "c8", "rps"),
        ("p50 / p99 ms, 8 conn", "c8", "lat"),
        ("CPU us/request, 8 conn", "c8", "cpu"),
        ("peak RSS of tree (MB)", "peak_rss_mb", None),
        ("peak PSS of tree (MB)", "peak_pss_mb", None),
        ("processes at peak", "processes", None),
    ]
    print(f"{'':24} {'(a) sls-py local':>18} {'(b) starlette':>16} {'(a)/(b)':>8}")
    for label, key_, field in rows:
        cells = []
        for r in (local, ceiling):
            value = r[key_]
            if field == "rps":
                cells.append(f"{value['rps']:.0f}")
            elif field == "lat":
                cells.append(f"{value['p50_ms']:.2f} / {value['p99_ms']:.2f}")
            elif field == "cpu":
                cells.append(f"{value['cpu_us_per_request']:.0f}")
            else:
                cells.append(f"{value:.1f}" if isinstance(value, float) else str(value))
        ratio = f"{results['ratio'][key_]:.2f}x" if field == "rps" else ""
        print(f"{label:24} {cells[0]:>18} {cells[1]:>16} {ratio:>8}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
