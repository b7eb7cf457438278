"""The database handle, :name parameters, transactions and migrations, on the
in-memory (SQLite) driver; PostgreSQL itself is tested in tests/local and the
conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sls_py import App, DatabaseError
from sls_py.errors import SpecError
from sls_py.migrations import MigrationError, apply_migrations, migration_files
from sls_py.runtime.database import SqliteDatabase
from sls_py.runtime.resources import MemoryDriver, use_driver
from sls_py.runtime.sql import param_names, split_statements, to_pyformat
from sls_py.spec import DatabaseSpec


def test_named_parameters_are_found_outside_literals_comments_and_casts() -> None:
    sql = (
        "SELECT :a, ':b', \"c:d\", 1::int, $$ :e $$, $t$ :f $t$, 5 % 2, :a -- :g\n"
        "/* :h /* nested :i */ */ , E'it\\'s :j', :k_2"
    )
    assert param_names(sql) == ("a", "k_2")
    assert to_pyformat(sql) == (
        "SELECT %(a)s, ':b', \"c:d\", 1::int, $$ :e $$, $t$ :f $t$, 5 %% 2, %(a)s -- :g\n"
        "/* :h /* nested :i */ */ , E'it\\'s :j', %(k_2)s"
    )


def test_scripts_split_on_semicolons_that_end_statements() -> None:
    script = """
    -- orders; the first table
    CREATE TABLE orders (id int, note text DEFAULT ';');
    CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END $body$ LANGUAGE plpgsql;
    /* only a comment; */ ;
    INSERT INTO orders VALUES (1, 'a;b')
    """
    assert split_statements(script) == [
        "-- orders; the first table\n    CREATE TABLE orders (id int, note text DEFAULT ';')",
        "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END $body$ LANGUAGE plpgsql",
        "INSERT INTO orders VALUES (1, 'a;b')",
    ]


@pytest.fixture
def db() -> object:
    app = App("shop")
    handle = app.database("orders")
    use_driver(MemoryDriver())
    handle.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, meta TEXT)")
    yield handle
    use_driver(None)


def test_execute_and_query_with_named_parameters(db: object) -> None:
    assert db.execute("INSERT INTO orders (id, item) VALUES (:id, :item)", {"id": 1, "item": "cat"}) == 1
    n = db.execute(
        "INSERT INTO orders (id, item, meta) VALUES (:id, :item, :meta)",
        {"id": 2, "item": "dog", "meta": {"legs": 4}, "unused": "dropped"},
    )
    assert n == 1
    assert db.query("SELECT id, item, meta FROM orders ORDER BY id") == [
        {"id": 1, "item": "cat", "meta": None},
        {"id": 2, "item": "dog", "meta": '{"legs": 4}'},
    ]
    assert db.query("SELECT item FROM orders WHERE id = :id", {"id": 2}) == [{"item": "dog"}]


def test_missing_parameters_and_sql_errors_are_database_errors(db: object) -> None:
    with pytest.raises(DatabaseError, match=r"no value for parameter :item"):
        db.execute("INSERT INTO orders (id, item) VALUES (:id, :item)", {"id": 1})
    with pytest.raises(DatabaseError) as info:
        db.query("SELECT * FROM nope")
    assert str(info.value) == "database 'orders': no such table: nope"
    with pytest.raises(DatabaseError, match="parameters must be a dict"):
        db.query("SELECT 1", [1])  # type: ignore[arg-type]


def test_a_transaction_that_raises_leaves_nothing(db: object) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO orders (id, item) VALUES (1, 'cat')")
        raise RuntimeError("changed my mind")
    assert db.query("SELECT * FROM orders") == []
    with db.transaction():
        db.execute("INSERT INTO orders (id, item) VALUES (2, 'dog')")
        with pytest.raises(DatabaseError), db.transaction():  # a savepoint: only it is undone
            db.execute("INSERT INTO orders (id, item) VALUES (3, 'eel')")
            db.execute("INSERT INTO orders (id, item) VALUES (2, 'again')")  # duplicate key
    assert db.query("SELECT id FROM orders") == [{"id": 2}]


def test_a_driver_without_databases_says_so() -> None:
    class Plain:
        pass

    use_driver(Plain())  # type: ignore[arg-type]
    try:
        with pytest.raises(Exception, match="resource driver \\(Plain\\) has no databases"):
            App("x").database("orders").query("SELECT 1")
    finally:
        use_driver(None)


def _write(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def test_migrations_apply_in_order_once_and_a_failed_one_keeps_nothing(tmp_path: Path) -> None:
    spec = DatabaseSpec(name="orders", qualified_name="shop-dev-orders", migrations="migrations")
    _write(
        tmp_path / "migrations",
        {
            "002_rows.sql": "INSERT INTO orders VALUES (1, 'cat'); INSERT INTO orders VALUES (2, 'dog');",
            "001_orders.sql": "-- the table\nCREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT);",
            "notes.txt": "not a migration",
        },
    )
    driver = SqliteDatabase("orders")
    files = migration_files(tmp_path, spec)
    assert [m.name for m in files] == ["001_orders.sql", "002_rows.sql"]
    first = apply_migrations(driver, "orders", files)
    assert (first.applied, first.already) == (["001_orders.sql", "002_rows.sql"], [])
    again = apply_migrations(driver, "orders", migration_files(tmp_path, spec))
    assert (again.applied, again.already, again.changed) == ([], ["001_orders.sql", "002_rows.sql"], [])
    assert driver.execute("SELECT COUNT(*) AS n FROM orders", {})[0] == [{"n": 2}]

    _write(tmp_path / "migrations", {"003_bad.sql": "INSERT INTO orders VALUES (3, 'eel'); SELEKT;"})
    with pytest.raises(MigrationError, match=r"migration 003_bad.sql failed at statement 2: .*SELEKT"):
        apply_migrations(driver, "orders", migration_files(tmp_path, spec))
    assert driver.execute("SELECT COUNT(*) AS n FROM orders", {})[0] == [{"n": 2}]  # no row 3
    (tmp_path / "migrations" / "003_bad.sql").unlink()
    _write(tmp_path / "migrations", {"001_orders.sql": "CREATE TABLE orders (id TEXT);"})
    edited = apply_migrations(driver, "orders", migration_files(tmp_path, spec))
    assert (edited.applied, edited.changed) == ([], ["001_orders.sql"])


def test_spec_lists_databases_and_checks_names_and_folders(tmp_path: Path) -> None:
    from sls_py.config import build_spec, load_project

    (tmp_path / "pyproject.toml").write_text('[tool.sls-py]\napp = "shop:app"\n')
    (tmp_path / "migrations").mkdir()
    project = load_project(tmp_path)
    app = App("shop")
    app.database("orders", migrations="migrations")
    spec = build_spec(project, app, "dev")
    assert [d.model_dump() for d in spec.databases] == [
        {"name": "orders", "qualified_name": "shop-dev-orders", "migrations": "migrations"}
    ]
    assert spec.required_capabilities()["resource.database"] == "database 'orders'"
    bad = App("shop")
    bad.database("Orders-1")
    with pytest.raises(SpecError, match="database name 'Orders-1' is not valid"):
        build_spec(project, bad, "dev")
    missing = App("shop")
    missing.database("orders", migrations="nowhere")
    with pytest.raises(SpecError, match="migrations folder 'nowhere' does not exist"):
        build_spec(project, missing, "dev")


def test_sls_app_runs_databases_in_sqlite_with_migrations(tmp_path: Path) -> None:
    from sls_py.testing import AppClient

    (tmp_path / "pyproject.toml").write_text('[tool.sls-py]\napp = "shopdb:app"\n')
    _write(tmp_path / "migrations", {"001.sql": "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT);"})
    (tmp_path / "shopdb.py").write_text(
        "from sls_py import App\n"
        "app = App('shop')\n"
        "orders = app.database('orders', migrations='migrations')\n"
        "@app.function()\n"
        "def add(payload: dict) -> list:\n"
        "    orders.execute('INSERT INTO orders (id, item) VALUES (:id, :item)', payload)\n"
        "    return orders.query('SELECT id, item FROM orders')\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        client = AppClient(tmp_path)
        assert client.invoke("add", {"id": 1, "item": "cat"}) == [{"id": 1, "item": "cat"}]
        assert client.database("orders").execute("SELECT COUNT(*) AS n FROM orders", {})[0] == [{"n": 1}]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("shopdb", None)
