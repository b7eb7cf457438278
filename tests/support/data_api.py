"""A local RDS Data API endpoint backed by a real PostgreSQL server, for tests.

moto emulates the RDS control plane (clusters, instances) but not the Data
API's data plane: its ``ExecuteStatement`` runs no SQL and answers with canned
records, and ``BeginTransaction`` is not implemented. So the AWS conformance
harness points boto3's ``rds-data`` client (``AWS_ENDPOINT_URL_RDS_DATA``) at
this server instead: it speaks the Data API's REST-JSON wire protocol
(``/Execute``, ``/BeginTransaction``, ``/CommitTransaction``,
``/RollbackTransaction``) and runs each statement on the local provider's
PostgreSQL server (:mod:`sls_py_local.postgres`), so the deployed function's
Data API driver, under awslambdaric, runs real SQL.

What it does not check: the secret (any ``secretArn`` is accepted) and the
cluster ARN (every cluster is this one server); databases are created on
first use. Typed parameters and results follow the Data API's documented
shapes; type names are PostgreSQL's (``int4``, ``jsonb``, ...), as Aurora's are.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sls_py.runtime.sql import to_pyformat
from sls_py_local.postgres import PostgresServer


def _param(p: dict[str, Any]) -> Any:
    from psycopg.types.json import Jsonb

    value, hint = p["value"], p.get("typeHint")
    if value.get("isNull"):
        return None
    for key in ("booleanValue", "longValue", "doubleValue"):
        if key in value:
            return value[key]
    if "blobValue" in value:
        return base64.b64decode(value["blobValue"])
    text = value.get("stringValue")
    convert = {
        "DECIMAL": decimal.Decimal,
        "TIMESTAMP": dt.datetime.fromisoformat,
        "DATE": dt.date.fromisoformat,
        "TIME": dt.time.fromisoformat,
        "UUID": uuid.UUID,
        "JSON": lambda t: Jsonb(json.loads(t)),
    }.get(hint or "")
    return convert(text) if convert else text


def _field(value: Any) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes | memoryview):
        return {"blobValue": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime):
        return {"stringValue": value.replace(tzinfo=None).isoformat(sep=" ")}
    if isinstance(value, dict):
        return {"stringValue": json.dumps(value)}
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return {"arrayValue": {"stringValues": value}}
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return {"arrayValue": {"longValues": value}}
        return {"stringValue": json.dumps(value)}
    return {"stringValue": str(value)}


class DataApiServer:
    """The endpoint on 127.0.0.1 (free port), over the given started server
    (``lazy``: a server not started yet, started by the first request, so a test
    module that never calls the Data API never starts PostgreSQL)."""

    def __init__(self, postgres: PostgresServer, lazy: bool = False) -> None:
        self.postgres = postgres
        self.lazy = lazy
        self.started = not lazy
        self.lock = threading.Lock()
        self.transactions: dict[str, Any] = {}
        self.known: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                status, answer, error = outer.handle(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def _connect(self, database: str) -> Any:
        import psycopg

        with self.lock:
            if not self.started:
                self.postgres.start()
                self.postgres.wait_ready([])
                self.started = True
            if database not in self.known:
                self.postgres.create_databases([database])
                self.known.add(database)
        return psycopg.connect(**self.postgres._connect_args(database), autocommit=True)

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        import psycopg

        try:
            if path == "/BeginTransaction":
                conn = self._connect(body["database"])
                conn.execute("BEGIN")
                tx = uuid.uuid4().hex
                self.transactions[tx] = conn
                return 200, {"transactionId": tx}, ""
            if path in ("/CommitTransaction", "/RollbackTransaction"):
                conn = self.transactions.pop(body["transactionId"])
                commit = path == "/CommitTransaction"
                conn.execute("COMMIT" if commit else "ROLLBACK")
                conn.close()
                status = "Transaction Committed" if commit else "Rollback Complete"
                return 200, {"transactionStatus": status}, ""
            if path == "/Execute":
                return 200, self._execute(body), ""
            return 404, {"message": f"no such operation {path}"}, "NotFoundException"
        except psycopg.Error as exc:
            diag = exc.diag
            text = f"ERROR: {diag.message_primary or exc}; SQLState: {exc.sqlstate or ''}"
            return 400, {"message": text}, "BadRequestException"
        except KeyError as exc:
            return 400, {"message": f"unknown transaction {exc}"}, "BadRequestException"

    def _execute(self, body: dict[str, Any]) -> dict[str, Any]:
        tx = body.get("transactionId")
        conn = self.transactions[tx] if tx else self._connect(body["database"])
        params = {p["name"]: _param(p) for p in body.get("parameters") or []}
        try:
            with conn.cursor() as cur:
                cur.execute(to_pyformat(body["sql"]) if params else body["sql"], params or None)
                if cur.description is None:
                    return {"numberOfRecordsUpdated": max(cur.rowcount, 0)}
                columns = [
                    {
                        "name": d.name,
                        "label": d.name,
                        "typeName": getattr(conn.adapters.types.get(d.type_code), "name", "unknown"),
                    }
                    for d in cur.description
                ]
                records = [[_field(v) for v in row] for row in cur.fetchall()]
                return {"numberOfRecordsUpdated": 0, "records": records, "columnMetadata": columns}
        finally:
            if not tx:
                conn.close()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        for conn in self.transactions.values():
            conn.close()
        if self.lazy:  # started here: stopped here
            self.postgres.stop()

    def apply_migrations(self, project: Path, stage: str | None = None) -> None:
        """Apply the migrations of every database ``project`` declares on the server
        behind the endpoint, as deploy does through the Data API, and empty their
        tables (the server is shared by the tests using it)."""
        from sls_py.config import load_project
        from sls_py.migrations import apply_migrations, migration_files
        from sls_py.runtime.database import MIGRATIONS_TABLE
        from sls_py_local.database import LocalDatabase

        self._connect("postgres").close()  # started, if lazy
        for db in load_project(project).spec(stage).databases:
            self._connect(db.name).close()  # created
            driver = LocalDatabase(db.name, self.postgres.connection.options())
            apply_migrations(driver, db.name, migration_files(project, db))
            tables = driver.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> :kept",
                {"kept": MIGRATIONS_TABLE},
            )[0]
            for row in tables or []:
                driver.execute(f'DELETE FROM "{row["tablename"]}"', {})
            driver._local.conn.close()


def start_data_api(root: Path) -> tuple[PostgresServer, DataApiServer]:
    """A PostgreSQL server under ``root`` and a Data API endpoint in front of it."""
    postgres = PostgresServer(root)
    postgres.start()
    postgres.wait_ready([])
    return postgres, DataApiServer(postgres)
