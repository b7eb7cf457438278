"""Worker faults: timeouts, crashes and memory limits fail one invocation only."""

from __future__ import annotations

import json

import pytest

from .support import Server, alive, wait_until

pytestmark = pytest.mark.timeout(120)


def _log_messages(gw: Server, function: str, rid: str) -> list[str]:
    path = gw.project / ".sls-py" / "local" / "dev" / "logs" / f"{function}.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["message"] for r in records if r["request_id"] == rid]


def test_timeout_is_504_worker_killed_and_next_call_works(gw: Server) -> None:
    with gw.client() as c:
        before = c.get("/slow", params={"s": "0"}).json()["pid"]
        timed_out = c.get("/slow", params={"s": "5"})
        afterwards = [c.get("/slow", params={"s": "0.05"}) for _ in range(3)]
    assert (timed_out.status_code, timed_out.json()) == (
        504,
        {"message": "Endpoint request timed out"},
    )
    # serverless-offline once timed out every later call after the first timeout: not here
    assert [r.status_code for r in afterwards] == [200, 200, 200]
    assert all(r.json()["remaining_ms_positive"] for r in afterwards)
    wait_until(lambda: not alive(before), timeout=10)  # the timed-out worker was killed
    assert before not in {r.json()["pid"] for r in afterwards}
    rid = timed_out.headers["x-request-id"]
    messages = wait_until(lambda: _log_messages(gw, "slow", rid), timeout=10)
    assert any("timed out after 1 s" in m and "killed" in m for m in messages)


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_crashing_worker_fails_only_its_invocation(gw: Server, how: str) -> None:
    with gw.client() as c:
        before = c.get("/crash").json()["pid"]
        crashed = c.get("/crash", params={"how": how})
        after = c.get("/crash")
        other = c.get("/echo/still-fine")
    assert (crashed.status_code, crashed.json()) == (502, {"message": "Internal server error"})
    assert after.status_code == 200 and after.json()["pid"] != before
    assert other.status_code == 200
    rid = crashed.headers["x-request-id"]
    messages = wait_until(lambda: _log_messages(gw, "crash", rid), timeout=10)
    assert any("died while handling the request" in m for m in messages)


def test_memory_limit_enforced_and_worker_replaced(gw: Server) -> None:
    with gw.client() as c:
        small = c.get("/hog", params={"mb": "16"})
        too_big = c.get("/hog", params={"mb": "400"})
        again = c.get("/hog", params={"mb": "16"})
    assert small.status_code == 200 and small.json()["bytes"] == 16 * 1024 * 1024
    assert (too_big.status_code, too_big.json()) == (502, {"message": "Internal server error"})
    assert again.status_code == 200 and again.json()["pid"] != small.json()["pid"]
    rid = too_big.headers["x-request-id"]
    messages = wait_until(lambda: _log_messages(gw, "hog", rid), timeout=10)
    assert any("ran out of memory (limit 128 MB)" in m for m in messages)
