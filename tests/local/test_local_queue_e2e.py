"""Queues end to end: `sls-py send` through the CLI, real worker processes, a message that
fails until it lands in the dead-letter queue, handed over from one process to another."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from sls_py_local.queues import QueueStore
from sls_py_local.resources import LocalDriver

pytestmark = pytest.mark.slow

APP = """
from sls_py import App, Context, QueueMessage, queue

app = App("queued")
jobs = app.queue("jobs", visibility_timeout_s=2, max_receives=2)
done = app.table("done", key="n", key_type="number")


@app.function(name="handle", timeout_s=1, triggers=[queue("jobs", batch_size=5)])
def handle(message: QueueMessage, ctx: Context) -> None:
    if message.body == "bad":
        raise ValueError("bad message")
    done.put({"n": message.json()["n"], "receive_count": message.receive_count})
"""


def write_project(root: Path) -> Path:
    (root / "queued_app").mkdir(parents=True)
    (root / "queued_app" / "__init__.py").write_text("")
    (root / "queued_app" / "app.py").write_text(APP)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "queued"
            [tool.sls-py]
            app = "queued_app.app:app"
            """
        )
    )
    return root


def send(app: Path, body: str) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "sls_py", "send", "jobs", body, "--json", "--project", str(app)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def wait_until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


def test_send_delivers_with_retries_and_dead_letters(tmp_path: Path) -> None:
    app = write_project(tmp_path / "queued")
    root = app / ".sls-py" / "local" / "dev"
    done = LocalDriver(root).table("done", "", "n", None)
    store = QueueStore(root / "queues.sqlite3")

    # no run: the function runs at once in a fresh process
    out = send(app, '{"n": 1}')
    assert out == {
        "queue": "jobs",
        "message_id": out["message_id"],
        "delivered_by": "fresh processes",
        "invocations": [
            {
                "messages": [out["message_id"]],
                "failed": [],
                "function": "handle",
                "ok": True,
                "result": {"failed": []},
                "error": None,
            }
        ],
    }
    assert done.scan() == [{"n": 1, "receive_count": 1}]
    bad = send(app, "bad")
    assert bad["invocations"][0]["failed"] == [bad["message_id"]]
    assert [(m.body, m.receive_count) for m in store.messages("jobs")] == [("bad", 1)]

    # a running instance takes over the queue, including the failed message
    log = tmp_path / "services.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sls_py_local.standalone", "--project", str(app)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_until(lambda: "ready" in log.read_text().splitlines())
        out = send(app, '{"n": 2}')
        assert (out["delivered_by"], "invocations" in out) == (
            f"sls-py run (pid {proc.pid})",
            False,
        )
        wait_until(lambda: done.get({"n": 2}))
        # "bad" is received a second time by the run, fails, and is then dead-lettered
        dead = wait_until(lambda: store.messages("jobs-dlq"))
        assert [(m.id, m.body) for m in dead] == [(bad["message_id"], "bad")]
        wait_until(lambda: store.messages("jobs") == [])  # deleted once handled
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    # at least once: on a loaded machine a batch may outlast the visibility timeout and be
    # delivered again, so n=2 may have been handled twice
    rows = done.scan()
    assert [r["n"] for r in rows] == [1, 2]
    assert rows[0] == {"n": 1, "receive_count": 1}
    text = log.read_text()
    assert (
        "queue jobs -> handle (batch 5, visibility 2s, dead letters after 2 receives to jobs-dlq)"
        in text
    )
    assert f"message {bad['message_id']} failed (receive 2 of 2); goes to jobs-dlq after 2s" in text
