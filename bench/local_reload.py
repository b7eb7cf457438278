"""Benchmark: hot reload of `sls-py run --provider local`, from a save to the new code.

Starts ``python -m sls_py run --provider local -p <copy of apps/work_magic>``
(hot reload on, as by default) and keeps a client polling POST /work-magic
(keep-alive, one request every ``--interval`` ms) while it edits the app:

- **code**: a body-only change (the ``adder`` spell adds a constant), which
  keeps the spec as it is: the functions reload in place. Measured: from the
  moment the edited file is closed to the first response computed by the new code;
- **spec**: the same change plus a new function with a new route, which alters
  the spec, so ``sls-py run`` restarts itself in place. Measured: save to the
  first response from the new code on the polled route, and to the first 200
  of the new route;
- **toml**: a setting in ``pyproject.toml`` (the dev stage's ``memory_mb``),
  which alters the spec too. Measured: save to the first 200 served after the
  restarted server logged ``ready``.

Every request the client sends must get a 200 with the old or the new answer:
a failed one (another status, a refused or broken connection) is counted. A
keep-alive connection the server closed while idle (it does so when it
restarts) is reconnected and the request sent again, as HTTP clients do; those
are counted apart ("reconnects").

The floor is a fresh interpreter importing the app, ``python -c "import sys;
sys.path.insert(0, '<copy>'); import work_magic.app"``, run before every edit
(same environment, same run) and reported as a median. Not a test: numbers
depend on the machine; it prints what it found about it.

    .venv/bin/python bench/local_reload.py [--edits 7] [--interval 2]
    .venv/bin/python bench/local_reload.py --compare before=/path/to/pkgs

Each round starts a fresh copy of the app and makes one edit of each kind;
``--compare NAME=DIR`` adds a variant whose server has DIR first on PYTHONPATH
(a folder holding ``sls_py``, ``sls_py_local``, ... of another version, e.g.
symlinks into an exported commit), its rounds interleaved with this one's.
"""

from __future__ import annotations

import argparse
import http.client
import json
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

from local_gateway import APP_DIR, BODY, free_port, stop
from local_startup import floor_ms
from machine import describe, probe

#: the spell the client casts (2 + 3) and the line the code edits change
ADDER = '"adder": lambda x, y: x + y,'
NEW_ROUTE = '''

@app.function(name="bench-ping-{n}", timeout_s=10, triggers=[http("GET", "/bench-ping-{n}")])
def bench_ping_{n}(query: dict[str, str], ctx: Context) -> dict[str, int]:
    """Added by bench/local_reload.py."""
    return {{"ping": {n}}}
'''


def machine_facts(project: Path) -> dict[str, Any]:
    """What the figures depend on (bench/machine.py: CPUs, SMT siblings, load, the
    pinning decision, whether bytecode is written, the app's tree included)."""
    return probe(project)


class Poller(threading.Thread):
    """Casts the spell over a keep-alive connection until stopped; keeps every answer."""

    def __init__(self, port: int, key: str, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.port, self.key, self.interval_s = port, key, interval_s
        self.stopping = threading.Event()
        #: (monotonic time the answer arrived, its result)
        self.answers: list[tuple[float, Any]] = []
        self.failures: list[str] = []
        self.reconnects = 0
        self.lock = threading.Lock()

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        headers = {"Content-Type": "application/json", "X-API-Key": self.key}
        while not self.stopping.is_set():
            fresh = conn is None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("POST", "/work-magic", BODY, headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                conn = None
                if not fresh:  # closed by the server while idle: send it again
                    self.reconnects += 1
                    continue
                self._fail(f"{type(exc).__name__}: {exc}")
                continue
            except OSError as exc:
                conn.close()
                conn = None
                self._fail(f"{type(exc).__name__}: {exc}")
                continue
            now = time.perf_counter()
            if status != 200:
                self._fail(f"HTTP {status}: {data[:200]!r}")
            else:
                with self.lock:
                    self.answers.append((now, json.loads(data)["result"]))
            if self.interval_s:
                time.sleep(self.interval_s)
        if conn is not None:
            conn.close()

    def _fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)
        time.sleep(0.01)

    def first_answer(self, result: Any, after: float, timeout: float = 60) -> float:
        """When the first answer ``result`` came after ``after`` (perf_counter)."""
        deadline = time.perf_counter() + timeout
        seen = 0
        while time.perf_counter() < deadline:
            with self.lock:
                fresh = self.answers[seen:]
                seen = len(self.answers)
            for at, value in fresh:
                if value == result and at >= after:
                    return at
            time.sleep(0.002)
        raise SystemExit(f"no answer {result!r} within {timeout:g} s")


def save(path: Path, text: str) -> float:
    """Write ``text`` over ``path`` as an editor does; the time it was closed."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return time.perf_counter()


def first_200(port: int, path: str, timeout: float = 60) -> float:
    """When GET ``path`` first answered 200 (new connections)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.002)
    raise SystemExit(f"GET {path} did not answer 200 within {timeout:g} s")


def wait_for(log: Path, needle: str, count: int, timeout: float = 60) -> float:
    """When the server's output first held ``needle`` ``count`` times."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if log.read_text(errors="replace").count(needle) >= count:
            return time.perf_counter()
        time.sleep(0.002)
    raise SystemExit(f"{needle!r} not seen {count} times in the server's output:\n{log.read_text()}")


class Session:
    """One ``sls-py run`` of a fresh copy of the app, edited once in each way."""

    def __init__(self, workdir: Path, key: str, pythonpath: str, interval_s: float) -> None:
        self.project = workdir / "work_magic"
        shutil.copytree(APP_DIR, self.project, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
        self.key, self.interval_s = key, interval_s
        self.env = dict(os.environ)
        if pythonpath:
            self.env["PYTHONPATH"] = os.pathsep.join(
                p for p in (pythonpath, self.env.get("PYTHONPATH")) if p
            )
        self.log = workdir / "server.log"
        self.figures: dict[str, list[float]] = {}

    def run(self, kinds: list[str], settle_s: float, floors: list[float]) -> Poller:
        """Start the server, make the edits, stop it; the poller's record."""
        project = self.project
        module = project / "work_magic" / "app.py"
        config = project / "pyproject.toml"
        source, config_text = module.read_text(), config.read_text()
        assert ADDER in source
        # the same API key as every other session's (the keys file is copied in)
        port = free_port()
        with open(self.log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sls_py", "run", "-p", str(project), "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=project,
                env=self.env,
            )
        poller = Poller(port, self.key, self.interval_s)
        log = self.log
        try:
            wait_for(log, "ready: ", 1)
            poller.start()
            poller.first_answer(5, 0.0)
            readies, routes, offset = 1, 0, 0
            for kind in kinds:
                floors.append(floor_ms(project))
                time.sleep(settle_s / 2)
                offset += 1000
                code = source.replace(ADDER, f'"adder": lambda x, y: x + y + {offset},')
                if kind == "code":
                    saved = save(module, code)
                    at = poller.first_answer(5 + offset, saved)
                    self._add("code: save -> new code answers", at - saved)
                    wait_for(log, "reloaded: new requests go to the new code", 1)
                elif kind == "spec":
                    routes += 1
                    saved = save(module, code + "".join(NEW_ROUTE.format(n=n) for n in range(routes)))
                    at = poller.first_answer(5 + offset, saved)
                    self._add("spec: save -> new code answers", at - saved)
                    ping = first_200(port, f"/bench-ping-{routes - 1}")
                    self._add("spec: save -> new route answers", ping - saved)
                    readies += 1
                    wait_for(log, "ready: ", readies)
                elif kind == "toml":
                    saved = save(config, config_text + "\n[tool.sls-py.stages.dev]\nmemory_mb = 129\n")
                    ready = wait_for(log, "ready: ", readies + 1)
                    readies += 1
                    offset -= 1000  # the code stays as it was
                    at = poller.first_answer(5 + offset, ready)
                    self._add("toml: save -> restarted server answers", at - saved)
                time.sleep(settle_s / 2)
        finally:
            poller.stopping.set()
            poller.join(timeout=35)
            stop(proc)
        return poller

    def _add(self, name: str, seconds: float) -> None:
        self.figures.setdefault(name, []).append(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--edits", type=int, default=7, help="edits of each kind (medians)")
    parser.add_argument("--interval", type=float, default=2.0, help="ms between polls")
    parser.add_argument("--settle", type=float, default=3.0, help="s of quiet around each edit")
    parser.add_argument("--kinds", default="code,spec,toml", help="which edits, comma-separated")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another version's packages, first on PYTHONPATH (repeatable; rounds interleave)",
    )
    parser.add_argument("--keep-log", type=Path, help="append the servers' output here")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    variants = [("this", "")] + [tuple(v.split("=", 1)) for v in args.compare]

    from sls_py.config import load_project
    from sls_py_local.keys import load_api_keys

    floors: list[float] = []
    figures: dict[str, dict[str, list[float]]] = {name: {} for name, _ in variants}
    answered = dict.fromkeys(figures, 0)
    failures: dict[str, list[str]] = {name: [] for name in figures}
    reconnects = dict.fromkeys(figures, 0)
    tracebacks: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "keys" / "work_magic"
        shutil.copytree(APP_DIR, first, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
        proj = load_project(first)
        key = load_api_keys(proj.spec(), proj)[0].value
        keys = first / ".sls-py" / "local" / "dev" / "api-keys.json"
        facts = machine_facts(first)
        floors += [floor_ms(first) for _ in range(3)]  # the first compiles what it may
        for i in range(args.edits):
            for name, pythonpath in variants:
                workdir = Path(tmp) / f"{name}-{i}"
                session = Session(workdir, key, pythonpath, args.interval / 1000)
                target = session.project / ".sls-py" / "local" / "dev"
                target.mkdir(parents=True)
                shutil.copy(keys, target / keys.name)
                poller = session.run(kinds, args.settle, floors)
                for fig, values in session.figures.items():
                    figures[name].setdefault(fig, []).extend(values)
                answered[name] += len(poller.answers)
                failures[name] += poller.failures
                reconnects[name] += poller.reconnects
                output = session.log.read_text(errors="replace")
                if "Traceback" in output:
                    tracebacks.append(output[-3000:])
                if args.keep_log:
                    with open(args.keep_log, "a") as f:
                        f.write(f"--- {name}, round {i}\n{output}")
                shutil.rmtree(workdir, ignore_errors=True)
    floor = statistics.median(floors)
    print(describe(facts))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"floor (fresh interpreter importing the app): median {floor:.0f} ms of {len(floors)}")
    for name, _ in variants:
        if len(variants) > 1:
            print(f"{name}:")
        for fig, values in figures[name].items():
            ms = sorted(v * 1000 for v in values)
            med = statistics.median(ms)
            print(
                f"  {fig}: median {med:.0f} ms ({med / floor:.2f}x the floor), "
                f"min {ms[0]:.0f}, max {ms[-1]:.0f}, n={len(ms)}"
            )
        print(
            f"  requests: {answered[name]} answered 200, {len(failures[name])} failed, "
            f"{reconnects[name]} reconnects after the server closed an idle keep-alive connection"
        )
        for failure in failures[name][:5]:
            print("    failed:", failure)
    for text in tracebacks[:1]:
        print("a server printed a traceback:\n" + text)
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
