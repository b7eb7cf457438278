"""Benchmark: app.cache on the local provider.

1. ``cache.get`` round trip from a warm worker of ``sls-py run``: a function
   times N ``cache.get`` calls inside one invocation (the handle, the local
   driver, valkey-py, the socket, valkey-server), against the same N gets made
   with valkey-py directly from this plain process on the same server (and
   with redis-py too, when it is installed), in the same run, interleaved.
2. Cold start: ``sls-py run`` of a small app that declares a cache against the
   same app without it: process start -> first 200 of a route that does not
   use the cache; and valkey-server's own start (spawn -> answers PING) here.

    .venv/bin/python bench/local_cache.py [--rounds 7] [--gets 2000] [--starts 7]

Not a test: figures depend on the machine; it prints what it found about it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_gateway import free_port, start_local, stop

APP = """
import time
from sls_py import App, http

app = App("cachebench")
kv = app.cache("kv") if WITH_CACHE else None


@app.function(name="ping", triggers=[http("GET", "/ping")])
def ping(query: dict, ctx) -> dict:
    return {"ok": True}


@app.function(name="gets", timeout_s=60, triggers=[http("POST", "/gets")])
def gets(payload: dict, ctx) -> dict:
        # the same functions with and without a cache: the cold starts differ by the cache only
        key, n = payload["key"], payload["n"]
        kv.get(key)  # connected already after the first round; this one warms the handle
        started = time.perf_counter_ns()
        for _ in range(n):
            kv.get(key)
        return {"ns": (time.perf_counter_ns() - started) / n}
"""


def write_app(root: Path, with_cache: bool, local: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[tool.sls-py]\napp = "benchapp:app"\n\n[tool.sls-py.providers.local]\n{local}\n'
    )
    (root / "benchapp.py").write_text(APP.replace("WITH_CACHE", str(with_cache)))
    return root


def machine() -> str:
    """Cores, SMT siblings, load, whether bytecode can be written: read next to the figures."""
    try:
        siblings = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list").read_text().strip()
    except OSError:
        siblings = "unknown"
    import sls_py

    pycache = Path(sls_py.__file__).parent / "__pycache__"
    writable = not sys.dont_write_bytecode and os.access(
        pycache if pycache.exists() else pycache.parent, os.W_OK
    )
    return (
        f"machine: {os.cpu_count()} cores, cpu0 SMT siblings {siblings}, "
        f"load average {os.getloadavg()[0]:.2f}, bytecode writable: {writable}, "
        f"Python {sys.version.split()[0]}"
    )


def wait_200(url: str, proc: subprocess.Popen[bytes], started: float, limit: float = 60) -> float:
    while time.perf_counter() - started < limit:
        if proc.poll() is not None:
            raise SystemExit(f"sls-py run exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.002)
    raise SystemExit("no 200 in time")


def cache_url(project: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "sls_py", "cache", "url", "--show-password", "-p", str(project)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def direct_ns(module: str, url: str, key: str, n: int) -> float:
    """valkey-py or redis-py from this process: ns per get (connected, warmed)."""
    mod = __import__(module)
    client = mod.from_url(url)
    client.get(key)
    started = time.perf_counter_ns()
    for _ in range(n):
        client.get(key)
    took = (time.perf_counter_ns() - started) / n
    client.close()
    return took


def round_trip(rounds: int, gets: int, tmp: Path, local: str = "") -> dict[str, float]:
    project = write_app(tmp / f"rt{len(local)}", with_cache=True, local=local)
    port = free_port()
    proc = start_local(project, port)
    try:
        wait_200(f"http://127.0.0.1:{port}/ping", proc, time.perf_counter())
        url = cache_url(project)
        key = "bench:key"
        import valkey

        valkey.Valkey.from_url(url).set(key, secrets.token_bytes(64))
        baselines = ["valkey"] + (["redis"] if _has("redis") else [])
        samples: dict[str, list[float]] = {"worker": [], **{b: [] for b in baselines}}
        body = json.dumps({"key": key, "n": gets}).encode()
        for i in range(rounds + 1):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/gets", data=body, method="POST")
            with urllib.request.urlopen(req, timeout=60) as r:
                worker = json.loads(r.read())["ns"]
            direct = {b: direct_ns(b, url, key, gets) for b in baselines}
            if i == 0:
                continue  # the first round warms the worker's connection and imports
            samples["worker"].append(worker)
            for b in baselines:
                samples[b].append(direct[b])
        return {k: statistics.median(v) for k, v in samples.items()}
    finally:
        stop(proc)


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def cold_starts(starts: int, tmp: Path) -> dict[str, float]:
    from sls_py_local.caches import CacheServer, server_binary, server_spec
    from sls_py_local.servers import Supervisor

    projects = {"no cache": write_app(tmp / "plain", False), "cache": write_app(tmp / "cached", True)}
    times: dict[str, list[float]] = {name: [] for name in projects}
    server_start: list[float] = []
    binary = server_binary()
    for i in range(starts):
        for name, project in projects.items():
            port = free_port()
            started = time.perf_counter()
            proc = start_local(project, port)
            try:
                times[name].append(wait_200(f"http://127.0.0.1:{port}/ping", proc, started))
            finally:
                stop(proc)
        server = CacheServer("bench", tmp / f"server-{i}", free_port(), secrets.token_urlsafe(16))
        sup = Supervisor(server_spec(server, binary))
        started = time.perf_counter()
        sup.start()
        sup.wait_ready()
        server_start.append(time.perf_counter() - started)
        sup.stop()
    out = {name: statistics.median(v) * 1000 for name, v in times.items()}
    out["server start"] = statistics.median(server_start) * 1000
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="round-trip measurements (after one warm-up)")
    parser.add_argument("--gets", type=int, default=2000, help="gets per measurement")
    parser.add_argument("--starts", type=int, default=7, help="cold starts per variant (interleaved)")
    args = parser.parse_args(argv)
    print(machine())
    with tempfile.TemporaryDirectory(prefix="sls-py-bench-cache-") as tmp:
        rt = round_trip(args.rounds, args.gets, Path(tmp))
        print(f"cache.get round trip, median of {args.rounds} x {args.gets} gets:")
        for name, ns in rt.items():
            label = "warm worker (Cache handle)" if name == "worker" else f"{name}-py direct, plain process"
            print(f"  {label:<36} {ns / 1000:7.1f} us/get")
        for base in (k for k in rt if k != "worker"):
            print(f"  ratio worker / {base}-py direct: {rt['worker'] / rt[base]:.2f}x (goal <= 1.2x)")
        cs = cold_starts(args.starts, Path(tmp))
        print(f"cold start of sls-py run, median of {args.starts} (first 200 of GET /ping):")
        print(
            f"  no cache declared: {cs['no cache']:.0f} ms; cache declared: {cs['cache']:.0f} ms; "
            f"difference {cs['cache'] - cs['no cache']:+.0f} ms"
        )
        print(f"  valkey-server's own start (spawn -> PING answered): {cs['server start']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
