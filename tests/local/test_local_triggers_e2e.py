"""End to end with the example app, through the CLI in subprocesses: sls-py trigger with
and without a running instance, a photo copied by hand into the watched bucket folder."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sls_py_local.resources import LocalDriver

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    target = tmp_path / "work_magic"
    shutil.copytree(
        REPO / "apps" / "work_magic",
        target,
        ignore=shutil.ignore_patterns(".sls-py", "__pycache__", "tests"),
    )
    return target


def photo(path: Path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def cli(app: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sls_py", *args, "--project", str(app)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=app.parent,
    )


def cli_json(app: Path, *args: str) -> Any:
    proc = cli(app, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def state(app: Path) -> LocalDriver:
    return LocalDriver(app / ".sls-py" / "local" / "dev")


def catalog(app: Path) -> list[dict[str, Any]]:
    """The catalog's rows (table ``photos`` of database ``catalog``) in the stage's
    PostgreSQL server: the running one, or one started here for the query."""
    import psycopg
    from psycopg.rows import dict_row
    from sls_py_local.postgres import PostgresServer, postgres_root

    server = PostgresServer(postgres_root(app / ".sls-py", "dev"))
    started = server.own(wait=False)  # nobody runs it now: run it for the query
    try:
        if started:
            server.start()
            server.wait_ready(["catalog"])
        else:
            server.wait_answering()
        conn = server.connection
        with psycopg.connect(
            conn.url("catalog"), password=conn.password(), autocommit=True, row_factory=dict_row
        ) as db:
            return db.execute("SELECT key, size, sha256, uploaded_at FROM photos ORDER BY key").fetchall()
    finally:
        server.stop()


def test_triggers_without_a_running_instance_run_functions_in_fresh_processes(
    app_dir: Path, tmp_path: Path
) -> None:
    data = photo(tmp_path / "photo.jpg", 3000, seed=1)
    out = cli_json(
        app_dir,
        "trigger",
        "upload",
        "uploads",
        str(tmp_path / "photo.jpg"),
        "--key",
        "photos/a.jpg",
    )
    entry = out["invocations"][0]["result"]
    assert out == {
        "bucket": "uploads",
        "key": "photos/a.jpg",
        "size": 3000,
        "etag": hashlib.md5(data).hexdigest(),
        "path": str(
            app_dir / ".sls-py" / "local" / "dev" / "buckets" / "uploads" / "photos" / "a.jpg"
        ),
        "functions": ["catalog-upload"],
        "delivered_by": "fresh processes",
        "invocations": [
            {
                "function": "catalog-upload",
                "ok": True,
                "result": {
                    "key": "photos/a.jpg",
                    "size": 3000,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "uploaded_at": entry["uploaded_at"],
                },
                "error": None,
            }
        ],
    }
    assert catalog(app_dir) == [
        {**entry, "uploaded_at": datetime.fromisoformat(entry["uploaded_at"])}
    ]

    # outside photos/: stored, fires nothing
    out = cli_json(
        app_dir, "trigger", "upload", "uploads", str(tmp_path / "photo.jpg"), "--key", "misc/a.jpg"
    )
    assert (out["functions"], out["invocations"]) == ([], [])

    before = datetime.now(UTC).strftime("%Y-%m-%d")
    out = cli_json(app_dir, "trigger", "schedule", "nightly-report")
    day = out["invocations"][0]["result"]["report"][len("catalog/") : -len(".json")]
    assert day in {before, datetime.now(UTC).strftime("%Y-%m-%d")}
    assert out == {
        "function": "nightly-report",
        "delivered_by": "fresh processes",
        "invocations": [
            {
                "schedule": "nightly",
                "function": "nightly-report",
                "ok": True,
                "result": {"report": f"catalog/{day}.json", "photos": 1},
                "error": None,
            }
        ],
    }
    report = json.loads(state(app_dir).bucket("reports").get(f"catalog/{day}.json"))
    assert report == {
        "generated_at": report["generated_at"],
        "schedule_time": report["schedule_time"],
        "photos": 1,
        "total_bytes": 3000,
        "largest": "photos/a.jpg",
        "kind": "catalog-summary",
    }
    assert report["schedule_time"].startswith(day)


def test_unsafe_keys_get_a_clear_error_not_a_traceback(app_dir: Path, tmp_path: Path) -> None:
    photo(tmp_path / "photo.jpg", 10, seed=2)
    for key in ("../../evil.jpg", "/etc/evil.jpg", "photos\\..\\evil.jpg"):
        proc = cli(
            app_dir, "trigger", "upload", "uploads", str(tmp_path / "photo.jpg"), "--key", key
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: object key"), proc.stderr
        assert "hint: pass --key with a relative key" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (app_dir / ".sls-py" / "local" / "evil.jpg").exists()
    assert not list(app_dir.parent.glob("**/evil.jpg"))


def wait_until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


def test_a_running_instance_delivers_uploads_by_hand_and_cli_triggers(
    app_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "services.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sls_py_local.standalone",
                "--project",
                str(app_dir),
                "--clock",
                "2026-03-04T12:00:00Z@1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
        )
    try:
        wait_until(lambda: "ready" in log.read_text().splitlines())
        run = json.loads((app_dir / ".sls-py" / "local" / "dev" / "run.json").read_text())
        assert run["pid"] == proc.pid
        # a photo copied in by hand
        hand = photo(tmp_path / "hand.jpg", 5000, seed=3)
        photos = app_dir / ".sls-py" / "local" / "dev" / "buckets" / "uploads" / "photos"
        photos.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "hand.jpg", photos / "by-hand.jpg")
        # and one through the CLI, which the running instance fires
        cli_data = photo(tmp_path / "cli.jpg", 1000, seed=4)
        out = cli_json(
            app_dir,
            "trigger",
            "upload",
            "uploads",
            str(tmp_path / "cli.jpg"),
            "--key",
            "photos/cli.jpg",
        )
        assert (out["delivered_by"], "invocations" in out) == (
            f"sls-py run (pid {proc.pid})",
            False,
        )
        rows = wait_until(lambda: (r := catalog(app_dir)) and len(r) == 2 and r)
        assert [(r["key"], r["size"], r["sha256"]) for r in rows] == [
            ("photos/by-hand.jpg", 5000, hashlib.sha256(hand).hexdigest()),
            ("photos/cli.jpg", 1000, hashlib.sha256(cli_data).hexdigest()),
        ]
        # the schedule fired now by the running instance, on its simulated clock
        out = cli_json(app_dir, "trigger", "schedule", "nightly-report")
        assert out == {
            "function": "nightly-report",
            "delivered_by": f"sls-py run (pid {proc.pid})",
            "invocations": [
                {
                    "schedule": "nightly",
                    "function": "nightly-report",
                    "ok": True,
                    "result": {"report": "catalog/2026-03-04.json", "photos": 2},
                    "error": None,
                }
            ],
        }
        report = json.loads(state(app_dir).bucket("reports").get("catalog/2026-03-04.json"))
        assert (report["photos"], report["total_bytes"], report["largest"]) == (
            2,
            6000,
            "photos/by-hand.jpg",
        )
        assert report["schedule_time"].startswith("2026-03-04T12:0")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()
    text = log.read_text()
    assert "upload uploads/photos/by-hand.jpg -> catalog-upload ok" in text
    assert "upload uploads/photos/cli.jpg -> catalog-upload ok" in text
    assert text.count("-> catalog-upload ok") == 2, "each photo fired exactly once"
    assert not (app_dir / ".sls-py" / "local" / "dev" / "run.json").exists()
    # nothing fires on its own once stopped: a later trigger runs in fresh processes
    out = cli_json(app_dir, "trigger", "schedule", "nightly-report")
    assert out["delivered_by"] == "fresh processes"
