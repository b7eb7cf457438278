"""Benchmark: ``app.database`` on the local provider.

1. **Query cost**: ``db.query`` of one row by primary key, timed inside a warm
   worker of ``sls-py run`` (the handler loops N times and reports each
   call's time), against psycopg called directly from a plain Python process
   with the same SQL and the same server, in the same run; rounds interleaved,
   medians of per-call times reported, ratio = worker / plain.
2. **Cold start**: ``sls-py run`` of an app without a database against the same
   app with one (the same three HTTP functions, so as many template processes;
   only ``app.database(...)`` differs), started alternately: time from process
   start to the first 200 of ``GET /ping`` (a function that does not touch the
   database), and, for the database app, to the first 200 of ``GET /one``
   (which needs PostgreSQL); next to the PostgreSQL server's own start (start
   to answering) measured alone.

    .venv/bin/python bench/local_database.py [--rounds 5] [--n 2000] [--starts 5]

Prints what it found about the machine (cores, SMT siblings, load average,
whether bytecode can be written) next to the figures; ``--json PATH`` writes
the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

APP = """
import time

from sls_py import App, http

app = App("benchdb")
DB = "__DB__"
if DB:
    items = app.database("items", migrations="migrations")
SQL = "SELECT id, name FROM items WHERE id = :id"


def query() -> list:
    return items.query(SQL, {"id": 1}) if DB else [{"id": 1, "name": "one row"}]


# the same three routes with and without a database (each HTTP function has its own
# template process, so both variants start as many): only the declaration differs


@app.function(name="ping", triggers=[http("GET", "/ping")])
def ping(payload: dict, ctx) -> dict:
    return {"pong": True}


@app.function(name="one", triggers=[http("GET", "/one")])
def one(payload: dict, ctx) -> list:
    return query()


@app.function(name="loop", timeout_s=120, triggers=[http("POST", "/loop")])
def loop(payload: dict, ctx) -> list:
    out = []
    for _ in range(int(payload["n"])):
        t = time.perf_counter_ns()
        query()
        out.append(time.perf_counter_ns() - t)
    return out
"""

PLAIN = """
import json, sys, time
import psycopg
from sls_py import App
from sls_py.runtime.resources import use_driver
from sls_py_local.resources import LocalDriver

o = json.loads(sys.argv[1])
conn = psycopg.connect(host=o["host"], port=o["port"], user=o["user"],
                       password=open(o["password_file"]).read().strip(), dbname="items", autocommit=True)
sql = "SELECT id, name FROM items WHERE id = %(id)s"
use_driver(LocalDriver(sys.argv[3], postgres=o), {"databases": {"items": "items"}})
db = App("plain").database("items")
for _ in range(200):
    conn.execute(sql, {"id": 1}).fetchall()
    db.query("SELECT id, name FROM items WHERE id = :id", {"id": 1})
direct, handle = [], []
for _ in range(int(sys.argv[2])):  # interleaved, one call each
    t = time.perf_counter_ns()
    conn.execute(sql, {"id": 1}).fetchall()
    direct.append(time.perf_counter_ns() - t)
    t = time.perf_counter_ns()
    db.query("SELECT id, name FROM items WHERE id = :id", {"id": 1})
    handle.append(time.perf_counter_ns() - t)
print(json.dumps([direct, handle]))
"""


def machine() -> dict[str, Any]:
    """What this machine is like, for the figures' context."""
    siblings = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
    pycache = ROOT / "core" / "__pycache__"
    return {
        "cores": os.cpu_count(),
        "smt_siblings_of_cpu0": siblings.read_text().strip() if siblings.exists() else "unknown",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "bytecode_writable": not sys.dont_write_bytecode
        and os.access(pycache if pycache.exists() else ROOT / "core", os.W_OK),
        "python": sys.version.split()[0],
        "euid": os.geteuid(),
    }


def write_project(root: Path, with_db: bool, settings: str = "") -> Path:
    (root / "benchdb").mkdir(parents=True)
    (root / "benchdb" / "__init__.py").write_text("")
    (root / "benchdb" / "app.py").write_text(APP.replace("__DB__", "yes" if with_db else ""))
    (root / "migrations").mkdir()
    (root / "migrations" / "001.sql").write_text(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\n"
        "INSERT INTO items VALUES (1, 'one row');\n"
    )
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""
        [project]
        name = "benchdb"
        version = "0.1.0"
        [tool.sls-py]
        app = "benchdb.app:app"
        [tool.sls-py.providers.local]
        max_workers = 1
        """)
        + settings
    )
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(project: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "sls_py", "run", "-p", str(project), "--port", str(port), "--no-reload"]
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(url: str, data: bytes | None = None, timeout: float = 120) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_200(url: str, started: float, limit: float = 90) -> float:
    while time.perf_counter() - started < limit:
        status, _ = get(url, timeout=10)
        if status == 200:
            return time.perf_counter() - started
        time.sleep(0.005)
    raise SystemExit(f"{url} never answered 200")


def cold_starts(with_db: Path, without: Path, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"no_db_ping": [], "db_ping": [], "db_one": []}
    for _ in range(runs):
        for name, project in (("no_db", without), ("db", with_db)):
            port = free_port()
            started = time.perf_counter()
            proc = start(project, port)
            try:
                out[f"{name}_ping"].append(wait_200(f"http://127.0.0.1:{port}/ping", started))
                if name == "db":
                    out["db_one"].append(wait_200(f"http://127.0.0.1:{port}/one", started))
            finally:
                stop(proc)
    return out


def server_alone(project: Path, runs: int) -> list[float]:
    """The PostgreSQL server's own start (start to answering), the data folder kept."""
    from sls_py_local.postgres import PostgresServer, postgres_root

    times = []
    for _ in range(runs):
        srv = PostgresServer(postgres_root(project / ".sls-py", "dev"))
        started = time.perf_counter()
        srv.start()
        srv.wait_ready([])
        times.append(time.perf_counter() - started)
        srv.stop()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000, help="queries per round and side")
    parser.add_argument("--starts", type=int, default=5, help="cold starts per variant")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--local-settings",
        default="",
        help="extra [tool.sls-py.providers.local] lines for the worker, e.g. 'sched_batch = false'",
    )
    args = parser.parse_args()
    from sls_py_local.postgres import postgres_connection

    tmp = Path(tempfile.mkdtemp(prefix="sls-py-bench-db-"))
    try:
        with_db = write_project(tmp / "with-db", True, args.local_settings.replace(";", "\n") + "\n")
        without = write_project(tmp / "without-db", False)
        print(json.dumps({"machine": machine(), "local_settings": args.local_settings}))
        # warm-up start: initdb, migrations
        port = free_port()
        proc = start(with_db, port)
        worker: list[int] = []
        plain: list[int] = []
        handle: list[int] = []
        rounds = []
        handle_rounds = []
        try:
            wait_200(f"http://127.0.0.1:{port}/one", time.perf_counter(), 120)
            conn = postgres_connection(with_db / ".sls-py", "dev").options()
            body = json.dumps({"n": 200}).encode()
            get(f"http://127.0.0.1:{port}/loop", body)  # warm the worker
            for _ in range(args.rounds):
                status, raw = get(f"http://127.0.0.1:{port}/loop", json.dumps({"n": args.n}).encode())
                assert status == 200, raw
                w = json.loads(raw)
                p, h = json.loads(
                    subprocess.run(
                        [sys.executable, "-c", PLAIN, json.dumps(conn), str(args.n), str(tmp)],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
                worker += w
                plain += p
                handle += h
                rounds.append(statistics.median(w) / statistics.median(p))
                handle_rounds.append(statistics.median(h) / statistics.median(p))
        finally:
            stop(proc)
        query = {
            "worker_db_query_us_median": statistics.median(worker) / 1000,
            "plain_psycopg_us_median": statistics.median(plain) / 1000,
            "ratio_median": statistics.median(worker) / statistics.median(plain),
            "ratio_per_round": [round(r, 3) for r in rounds],
            "handle_in_plain_process_us_median": statistics.median(handle) / 1000,
            "handle_ratio_median": statistics.median(handle) / statistics.median(plain),
            "handle_ratio_per_round": [round(r, 3) for r in handle_rounds],
            "worker_p99_us": sorted(worker)[int(len(worker) * 0.99)] / 1000,
            "plain_p99_us": sorted(plain)[int(len(plain) * 0.99)] / 1000,
        }
        print(json.dumps({"query": query}))
        starts = cold_starts(with_db, without, args.starts)
        alone = server_alone(with_db, args.starts)
        cold = {k: round(statistics.median(v) * 1000, 1) for k, v in starts.items()}
        cold["postgres_alone_ms"] = round(statistics.median(alone) * 1000, 1)
        cold["raw_s"] = {k: [round(x, 3) for x in v] for k, v in {**starts, "postgres_alone": alone}.items()}
        print(json.dumps({"cold_start_ms_median": cold}))
        print(json.dumps({"machine_after": machine()["load_average"]}))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"machine": machine(), "query": query, "cold": cold}, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
