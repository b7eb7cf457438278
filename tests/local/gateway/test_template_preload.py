"""The template imports the resource driver's module (and the clients of the
resources the app declares) before it forks a second worker, so the workers
from the second on share it instead of each importing a private copy
(template.preload_clients). The cache client is loaded before ``ready``."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

from .support import run_server, write_project

SOURCE = """
import sys
import time

from sls_py import App, HttpRequest, http

app = App("preload")
counts = app.cache("counts")
FIRST = []


@app.function(name="where", triggers=[http("GET", "/where")])
def where(req: HttpRequest, ctx) -> dict:
    if not FIRST:  # what this worker had imported before its first call
        FIRST.append(("sls_py_local.resources" in sys.modules, "valkey" in sys.modules))
    time.sleep(0.5)  # long enough for a concurrent request to need a second worker
    counts.incr("calls")
    return {"pid": __import__("os").getpid(), "had_driver": FIRST[0][0], "had_client": FIRST[0][1]}
"""


def test_workers_from_the_second_on_inherit_the_resource_driver(tmp_path: Path) -> None:
    config = "[tool.sls-py.providers.local]\nmax_workers = 2\n"
    project = write_project(tmp_path / "preload", "preloadapp", SOURCE, config, "preload")
    with run_server(project, "--no-reload") as server:
        with server.client() as c:
            first = c.get("/where").json()  # the worker forked at start, before the preload
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda _: server.client().get("/where").json(), range(2)))
    assert (first["had_driver"], first["had_client"]) == (False, True)
    later = [r for r in replies if r["pid"] != first["pid"]]
    assert later, f"no second worker was started: {replies}"
    assert all((r["had_driver"], r["had_client"]) == (True, True) for r in later)
