"""Usage limits per key, the concurrency limit + queue (429), idle reaping, and
what the start-up output says is or is not emulated."""

from __future__ import annotations

import concurrent.futures
import os
import time
from pathlib import Path

import httpx
import pytest
from sls_py_local.settings import smt_siblings

from .support import alive, run_server, wait_until, write_project

pytestmark = pytest.mark.timeout(120)

LIMITS_APP = """
import os
import time

from sls_py import App, HttpRequest, UsageLimits, http

app = App("limits", api_keys=["a", "b"], usage=UsageLimits(rate=1, burst=3, quota=5, period="DAY"))


@app.function(name="metered", triggers=[http("GET", "/metered", api_key=True)])
def metered(req: HttpRequest, ctx) -> dict:
    return {"pid": os.getpid()}


@app.function(name="single", concurrency=1, triggers=[http("GET", "/single")])
def single(req: HttpRequest, ctx) -> dict:
    time.sleep(float(req.query_param("s", "0")))
    return {"pid": os.getpid()}
"""

LIMITS_CONFIG = """
[tool.sls-py.providers.local]
queue_size = 1
idle_timeout_s = 0.5
"""


@pytest.fixture(scope="module")
def limits(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    project = write_project(
        tmp_path_factory.mktemp("limits"), "limitsapp", LIMITS_APP, LIMITS_CONFIG, "limits"
    )
    with run_server(project, "--no-reload") as server:
        yield server


def test_usage_limits_enforced_per_key(limits) -> None:  # type: ignore[no-untyped-def]
    a, b = limits.keys["a"], limits.keys["b"]
    with limits.client() as c:
        burst = [c.get("/metered", headers={"x-api-key": a}) for _ in range(3)]
        throttled = c.get("/metered", headers={"x-api-key": a})
        other_key = c.get("/metered", headers={"x-api-key": b})
    assert [r.status_code for r in burst] == [200, 200, 200]
    assert (throttled.status_code, throttled.json()) == (429, {"message": "Too Many Requests"})
    assert other_key.status_code == 200  # each key has its own bucket
    time.sleep(2.5)  # at least two tokens back (rate 1/s)
    with limits.client() as c:
        refilled = [c.get("/metered", headers={"x-api-key": a}) for _ in range(2)]
        time.sleep(1.2)
        over_quota = c.get("/metered", headers={"x-api-key": a})
    assert [r.status_code for r in refilled] == [200, 200]  # 5 of the quota of 5 used
    assert (over_quota.status_code, over_quota.json()) == (429, {"message": "Limit Exceeded"})


def test_start_up_output_says_what_is_enforced_and_what_is_not(limits) -> None:  # type: ignore[no-untyped-def]
    out = limits.output()
    assert "usage limits (enforced): rate 1/s, burst 3, quota 5 per day per key" in out
    assert "not emulated locally: persistent usage quotas" in out


def test_concurrency_limit_and_full_queue_give_429(limits) -> None:  # type: ignore[no-untyped-def]
    def get(_: int) -> httpx.Response:
        with httpx.Client(base_url=limits.url, timeout=30) as c:
            return c.get("/single", params={"s": "1"})

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(get, range(5)))
    codes = sorted(r.status_code for r in responses)
    # one running, one queued (queue_size = 1), the rest refused
    assert codes == [200, 200, 429, 429, 429]
    assert {r.json()["message"] for r in responses if r.status_code == 429} == {"Too Many Requests"}
    assert len({r.json()["pid"] for r in responses if r.status_code == 200}) == 1  # concurrency 1
    with httpx.Client(base_url=limits.url, timeout=30) as c:
        assert c.get("/single").status_code == 200


def test_idle_workers_are_reaped(limits) -> None:  # type: ignore[no-untyped-def]
    with limits.client() as c:
        pid = c.get("/single").json()["pid"]
    wait_until(lambda: not alive(pid), timeout=15)
    with limits.client() as c:
        fresh = c.get("/single")
    assert fresh.status_code == 200 and fresh.json()["pid"] != pid


def _allowed_cpus(pid: int) -> set[int]:
    return set(os.sched_getaffinity(pid))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two or more cores")
@pytest.mark.parametrize("pin", [None, True, False])
def test_pin_cpus_keeps_gateway_and_workers_apart(tmp_path: Path, pin: bool | None) -> None:
    source = """
import os

from sls_py import App, HttpRequest, http

app = App("pinned")


@app.function(name="where", triggers=[http("GET", "/where")])
def where(req: HttpRequest, ctx) -> dict:
    return {"pid": os.getpid(), "cpus": sorted(os.sched_getaffinity(0))}
"""
    config = "" if pin is None else f"[tool.sls-py.providers.local]\npin_cpus = {str(pin).lower()}\n"
    project = write_project(tmp_path / "pinned", "pinnedapp", source, config, "pinned")
    cpus = set(os.sched_getaffinity(0))
    with run_server(project, "--no-reload") as server:
        with server.client() as c:
            worker = c.get("/where").json()
        gateway = _allowed_cpus(server.proc.pid)
    if pin is False:
        assert (gateway, set(worker["cpus"])) == (cpus, cpus)
    else:  # on by default: the gateway keeps one CPU, the workers get the other cores'
        assert len(gateway) == 1 and gateway < cpus
        # (its SMT sibling is nobody's, unless the two are the only CPUs: settings.cpu_layout)
        siblings = next(g for g in smt_siblings(sorted(cpus)) if gateway <= set(g))
        assert set(worker["cpus"]) == (cpus - set(siblings) or cpus - gateway)


_WHO = """
import os

from sls_py import App, HttpRequest, http

app = App("policy")


@app.function(name="policy", triggers=[http("GET", "/policy")])
def policy(req: HttpRequest, ctx) -> dict:
    return {"policy": os.sched_getscheduler(0)}
"""


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
@pytest.mark.parametrize("config", ["", "[tool.sls-py.providers.local]\nsched_batch = true\n"])
def test_workers_run_under_sched_batch_only_when_asked(tmp_path: Path, config: str) -> None:
    project = write_project(tmp_path / "policy", "policyapp", _WHO, config, "policy")
    with run_server(project, "--no-reload") as server:
        with server.client() as c:
            worker = c.get("/policy").json()
        gateway = os.sched_getscheduler(server.proc.pid)
    assert gateway == os.SCHED_OTHER  # only the workers yield
    assert worker == {"policy": os.SCHED_BATCH if config else os.SCHED_OTHER}
