"""Benchmark: `sls-py run --provider local` against the in-process ceiling.

Measures, in one run and side by side,

(a) ``sls-py run --provider local`` serving POST /work-magic of apps/work_magic
    with an API key (gateway process + template + forked workers + the app's
    valkey-server),
(b) the same handler called in-process by a bare starlette app on uvicorn with
    uvloop and httptools (same API key check, same ``execute``), its
    ``app.cache`` in memory: the in-process ceiling, and
(b') the same, its ``app.cache`` on a real valkey-server as (a)'s is: the
    ceiling doing the same work, cache round trip included (``--ceiling-cache``),

with wrk as the load generator, in interleaved rounds (medians reported):
cold start (process start to first 200),
requests/s and p50/p99 latency at 1 and 8 connections, CPU time per request
of each process tree, peak RSS (and PSS, which counts pages shared by forked
workers once) of each process tree ((b')'s valkey-server included), peak PSS (pages shared
by forked workers counted once: the headline) and RSS of each process tree
(by kind: gateway, templates, workers, servers), sampled every 0.1 s during
a 2 s warm-up at 8 connections and once after all the runs, and the ratios
(a)/(b) and (a)/(b'). The first line says what the benchmark found about the
machine (bench/machine.py: cores, SMT siblings, load, the pinning decision,
bytecode). ``--variant`` adds servers with other settings to the same rounds,
``--wrk-on`` puts wrk on a pinned gateway's CPU or on the workers'. Not a
test: numbers depend on the machine.

    apt-get install -y wrk
    .venv/bin/python bench/local_gateway.py [--duration 3] [--rounds 3] [--json out.json]
    .venv/bin/python bench/local_gateway.py --variant 'batch=sched_batch=true' --wrk-on workers
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

from sls_py_local import procname

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



# the memory driver, but app.cache on a real server when BENCH_CACHE_URL is set
# (--ceiling-cache valkey: the ceiling pays the cache round trip too)
class Driver(MemoryDriver):

    def cache(self, name, physical):
        url = os.environ.get("BENCH_CACHE_URL")
        if not url:
            return super().cache(name, physical)
        from sls_py.runtime.cache import RedisCache

        return RedisCache(url)


# the magic word is config: dev's default, as the local provider passes it
use_driver(Driver(), {{"config_defaults": {{"magic-word": "clonezero-token"}}}})
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


KINDS = ("gateway", "templates", "workers", "servers")


#: the function processes by the name they give themselves (sls_py_local.procname)
_BY_NAME = {procname.TEMPLATE: "templates", procname.WORKER: "workers"}


def _kind(pid: int, root: int, names: dict[int, str]) -> str:
    if pid == root:
        return "gateway"
    return _BY_NAME.get(names.get(pid, ""), "servers")  # valkey-server, PostgreSQL, ...


def memory_by_kind(pid: int) -> dict[str, dict[str, int]]:
    """RSS and PSS (kB) and process count of the tree under ``pid``, by kind:
    the gateway (``pid``), function templates, workers (forked from a template),
    servers (everything else: valkey-server, PostgreSQL), and ``total``. PSS
    counts a page shared by n processes as 1/n in each: the tree's PSS is its
    real footprint, where summed RSS counts a forked worker's shared pages again."""
    procs = tree(pid)
    names: dict[int, str] = {}
    for p in procs:  # parents before children (tree() order)
        try:
            names[p] = Path(f"/proc/{p}/comm").read_text().strip()
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes()
            if names[p] not in _BY_NAME and b"sls_py_local.template" in cmdline:
                # an sls-py from before the names (--compare): a worker is a template's fork
                stat = Path(f"/proc/{p}/stat").read_text()
                parent = int(stat[stat.rfind(")") + 2 :].split()[1])
                names[p] = procname.WORKER if names.get(parent) == procname.TEMPLATE else procname.TEMPLATE
        except OSError:
            continue
    out = {k: {"rss": 0, "pss": 0, "n": 0} for k in (*KINDS, "total")}
    for p in procs:
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        rss = pss = 0
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
        for k in (_kind(p, pid, names), "total"):
            out[k]["rss"] += rss
            out[k]["pss"] += pss
            out[k]["n"] += 1
    return out


def memory(pid: int) -> tuple[int, int, int]:
    """RSS and PSS (kB) summed over the process tree, and its process count."""
    total = memory_by_kind(pid)["total"]
    return total["rss"], total["pss"], total["n"]


def format_memory(by_kind: dict[str, dict[str, int]]) -> str:
    """``PSS 61.6 MB (RSS 120.5 MB, 6 processes): gateway 30.1, ... servers 3.2``."""
    total = by_kind["total"]
    parts = ", ".join(
        f"{k} {by_kind[k]['pss'] / 1024:.1f} ({by_kind[k]['n']})" for k in KINDS if by_kind[k]["n"]
    )
    return (
        f"PSS {total['pss'] / 1024:.1f} MB (RSS {total['rss'] / 1024:.1f} MB, "
        f"{total['n']} processes); PSS by kind, MB (processes): {parts}"
    )


class PeakMemory(threading.Thread):
    """Samples a process tree's memory until stopped; keeps the peaks (and the
    breakdown by kind at the peak of PSS)."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.stop_flag = pid, interval, threading.Event()
        self.rss = self.pss = self.procs = 0
        self.by_kind: dict[str, dict[str, int]] = {}

    def sample(self) -> None:
        by_kind = memory_by_kind(self.pid)
        rss, pss, n = (by_kind["total"][k] for k in ("rss", "pss", "n"))
        if rss > self.rss:
            self.rss = rss
        if pss > self.pss:
            self.pss, self.procs, self.by_kind = pss, n, by_kind

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.sample()
            self.stop_flag.wait(self.interval)


def wrk(
    port: int,
    key: str,
    connections: int,
    duration: float,
    workdir: Path,
    cpus: set[int] | None = None,
) -> dict[str, float]:
    """wrk's figures for ``duration`` s at ``connections``; ``cpus``: where wrk runs."""
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
            *(["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []),
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


def start_starlette(
    script: Path, port: int, key: str, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_API_KEY": key, **(extra or {})}
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


def parse_variant(text: str) -> tuple[str, list[str], dict[str, str]]:
    """``NAME=ITEM;ITEM``: each ITEM a ``[tool.sls-py.providers.local]`` line
    (``pin_cpus=false``) or, with a leading ``$``, an environment variable for that
    server (``$PYTHONDONTWRITEBYTECODE=``: empty, so bytecode is written)."""
    name, _, items = text.partition("=")
    if not name or not items:
        raise SystemExit(f"--variant {text!r}: expected NAME=SETTING;... (e.g. unpinned=pin_cpus=false)")
    settings, env = [], {}
    for item in filter(None, (i.strip() for i in items.split(";"))):
        if item.startswith("$"):
            var, _, value = item[1:].partition("=")
            env[var] = value
        else:
            settings.append(item)
    return name, settings, env


def gateway_cpus(pid: int) -> set[int]:
    """The CPUs the gateway may run on (one when pinned)."""
    return set(os.sched_getaffinity(pid))


def cache_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A valkey-server (the one ``sls-py run`` would pick) on a free port, for
    ``--ceiling-cache valkey``."""
    from sls_py_local.caches import server_binary

    port = free_port()
    proc = subprocess.Popen(
        [server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    raise SystemExit("the ceiling's valkey-server did not start")


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
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=ITEM;...",
        help="another sls-py server measured in the same rounds: settings lines and $ENV=VALUE, "
        "e.g. --variant 'unpinned=pin_cpus=false' --variant 'bytecode=$PYTHONDONTWRITEBYTECODE='",
    )
    parser.add_argument(
        "--wrk-on",
        choices=("any", "gateway", "workers"),
        default="any",
        help="run wrk on a pinned gateway's CPU or on the workers' CPUs (default: where the OS puts it)",
    )
    parser.add_argument(
        "--ceiling-cache",
        choices=("both", "memory", "valkey"),
        default="both",
        help="(b)'s app.cache: in memory (b), on a real valkey-server like (a)'s (b'), or both "
        "(default: two ceilings measured in the same rounds)",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import describe, probe, write_json
    from sls_py.config import load_project
    from sls_py_local.keys import load_api_keys

    facts = probe(APP_DIR)
    print(describe(facts), flush=True)
    variants = [("local", list(args.set), {})] + [parse_variant(v) for v in args.variant]
    ceilings = {"memory": ["starlette"], "valkey": ["starlette_valkey"]}.get(
        args.ceiling_cache, ["starlette", "starlette_valkey"]
    )
    names = [v[0] for v in variants] + ceilings
    if len(set(names)) != len(names):
        raise SystemExit("--variant names must differ from each other and from local, starlette*")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        projects: dict[str, Path] = {}
        envs: dict[str, dict[str, str] | None] = {}
        for name, settings, env in variants:
            project = workdir / name / "work_magic"
            shutil.copytree(APP_DIR, project, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
            if settings:
                with open(project / "pyproject.toml", "a") as f:
                    f.write("\n[tool.sls-py.providers.local]\n" + "\n".join(settings) + "\n")
            projects[name] = project
            envs[name] = {**os.environ, **env} if env else None
        keys: dict[str, str] = {}
        for name, project in projects.items():  # each project has keys of its own
            proj = load_project(project)
            keys[name] = load_api_keys(proj.spec(), proj)[0].value
        key = keys["local"]
        for name in ceilings:
            keys[name] = key
        script = workdir / "starlette_app.py"
        script.write_text(STARLETTE_APP.format(source=str(projects["local"])))

        results: dict[str, dict[str, Any]] = {n: {} for n in names}
        procs: dict[str, subprocess.Popen[bytes]] = {}
        ports = {n: free_port() for n in names}
        peaks: dict[str, PeakMemory] = {}
        wrk_cpus: dict[str, set[int] | None] = {}
        ceiling_cache: subprocess.Popen[bytes] | None = None
        logs: dict[str, int] = {}

        def log_file(name: str) -> int:
            """The server's stderr, shown when it fails to start."""
            fd = os.open(workdir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            logs[name] = fd
            return fd

        try:
            ceiling_env: dict[str, dict[str, str]] = {"starlette": {}}
            if "starlette_valkey" in ceilings:
                ceiling_cache, url = cache_server(workdir)
                ceiling_env["starlette_valkey"] = {"BENCH_CACHE_URL": url}
            for name in names:
                started = time.perf_counter()
                proc = (
                    start_starlette(script, ports[name], key, ceiling_env[name])
                    if name in ceilings
                    else start_local(
                        projects[name], ports[name], stderr=log_file(name), env=envs[name]
                    )
                )
                procs[name] = proc
                try:
                    listening, answered = first_200(ports[name], keys[name], started, proc)
                except SystemExit as exc:
                    log = workdir / f"{name}.log"
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise SystemExit(f"{name}: {exc}\n{tail}") from None
                results[name]["listening_ms"] = listening * 1000
                results[name]["cold_start_ms"] = answered * 1000
                every = set(os.sched_getaffinity(0))
                mine = gateway_cpus(proc.pid)
                results[name]["gateway_cpus"] = sorted(mine)
                wrk_cpus[name] = None
                if name not in ceilings and args.wrk_on != "any" and mine != every:
                    wrk_cpus[name] = mine if args.wrk_on == "gateway" else every - mine
            # warm-up at 8 connections, with memory sampled; not during the timed runs:
            # reading smaps_rollup walks page tables and stalls the measured processes
            for name in names:
                peaks[name] = PeakMemory(procs[name].pid)
                peaks[name].start()
                wrk(ports[name], keys[name], 8, 2, workdir, wrk_cpus[name])
                peaks[name].stop_flag.set()
                peaks[name].join()
            runs: dict[tuple[str, int], list[dict[str, float]]] = {}
            for _ in range(args.rounds):  # interleaved, so all see the same noise
                for connections in (1, 8):
                    for name in names:
                        # (b')'s valkey-server is not its child: its CPU is counted too, as (a)'s is
                        pids = [procs[name].pid] + (
                            [ceiling_cache.pid]
                            if name == "starlette_valkey" and ceiling_cache is not None
                            else []
                        )
                        before = sum(cpu_seconds(p) for p in pids)
                        measured = wrk(
                            ports[name], keys[name], connections, args.duration, workdir, wrk_cpus[name]
                        )
                        used = sum(cpu_seconds(p) for p in pids) - before
                        measured["cpu_us_per_request"] = used * 1e6 / measured["requests"]
                        measured["load"] = os.getloadavg()[0]
                        runs.setdefault((name, connections), []).append(measured)
            for (name, connections), measured in runs.items():
                results[name][f"c{connections}"] = {
                    k: statistics.median(m[k] for m in measured) for k in measured[0]
                }
                results[name][f"c{connections}_runs"] = measured
            for name in names:
                peaks[name].sample()  # and once more after all the load
                results[name]["peak_rss_mb"] = peaks[name].rss / 1024
                results[name]["peak_pss_mb"] = peaks[name].pss / 1024
                results[name]["processes"] = peaks[name].procs
                results[name]["memory_by_kind_kb"] = peaks[name].by_kind
        finally:
            for proc in procs.values():
                stop(proc)
            if ceiling_cache is not None:
                stop(ceiling_cache)
            for fd in logs.values():
                os.close(fd)

    short = {"starlette": "(b)", "starlette_valkey": "(b')"}
    ratios = {
        f"{name}/{short[ceiling]}": {
            f"c{c}": results[name][f"c{c}"]["rps"] / results[ceiling][f"c{c}"]["rps"] for c in (1, 8)
        }
        for name in names
        if name not in ceilings
        for ceiling in ceilings
    }
    facts["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report: dict[str, Any] = {
        **results,
        "ratio": ratios.get("local/(b)"),
        "ratio_same_work": ratios.get("local/(b')"),
        "ratios": ratios,
        "machine": facts,
        "variants": {n: {"settings": s_, "env": e} for n, s_, e in variants},
        "wrk_on": args.wrk_on,
        "ceiling_cache": args.ceiling_cache,
    }
    rows = [
        ("port open (ms)", "listening_ms", None),
        ("cold start (ms)", "cold_start_ms", None),
        ("req/s, 1 connection", "c1", "rps"),
        ("p50 / p99 ms, 1 conn", "c1", "lat"),
        ("req/s, 8 connections", "c8", "rps"),
        ("p50 / p99 ms, 8 conn", "c8", "lat"),
        ("CPU us/request, 8 conn", "c8", "cpu"),
        ("peak PSS of tree (MB)", "peak_pss_mb", None),
        ("peak RSS of tree (MB)", "peak_rss_mb", None),
        ("processes at PSS peak", "processes", None),
    ]
    labels = {
        "local": "(a) sls-py local",
        "starlette": "(b) starlette",
        "starlette_valkey": "(b') +valkey",
    }
    print(
        f"load average {os.getloadavg()[0]:.1f} after the runs; wrk on {args.wrk_on}; "
        f"(b)'s cache: {args.ceiling_cache}"
    )
    header = "".join(f" {labels.get(n, n):>18}" for n in names)
    width = max(12, *(len(n) for n in ratios))
    print(f"{'':24}{header}" + "".join(f" {n:>{width}}" for n in ratios))
    for label, key_, field in rows:
        cells = []
        for name in names:
            value = results[name][key_]
            if field == "rps":
                cells.append(f"{value['rps']:.0f}")
            elif field == "lat":
                cells.append(f"{value['p50_ms']:.2f} / {value['p99_ms']:.2f}")
            elif field == "cpu":
                cells.append(f"{value['cpu_us_per_request']:.0f}")
            else:
                cells.append(f"{value:.1f}" if isinstance(value, float) else str(value))
        extra = "".join(f" {r[key_]:>{width - 1}.2f}x" for r in ratios.values()) if field == "rps" else ""
        print(f"{label:24}" + "".join(f" {c:>18}" for c in cells) + extra)
    for name in names:
        peak = format_memory(results[name]["memory_by_kind_kb"])
        print(f"memory at peak, {labels.get(name, name)}: {peak}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
