"""The RDS Data API driver (function side and deploy side), against botocore's
Stubber: moto's rds-data answers every statement with no records and does not
implement BeginTransaction/CommitTransaction, so the request shapes (typed
parameters, transaction ids) and the result mapping are checked against the
Data API's own service model instead (the Stubber validates every request and
response against it)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from sls_py import App, DatabaseError
from sls_py.migrations import Migration, apply_migrations
from sls_py.runtime.resources import use_driver
from sls_py_aws.cloud import Cloud
from sls_py_aws.dataapi import lambda_database
from sls_py_aws.handlers_database import deploy_database
from sls_py_aws.resources import AwsDriver

CLUSTER = "arn:aws:rds:us-east-1:123456789012:cluster:shop-dev-orders"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:shop-dev-orders-credentials-AbCdEf"
TARGET = {"resourceArn": CLUSTER, "secretArn": SECRET}


def _client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture
def stubbed() -> Any:
    """An AwsDriver whose rds-data and secretsmanager clients are stubbed."""
    driver = AwsDriver(region="us-east-1")
    data, secrets = _client("rds-data"), _client("secretsmanager")
    driver._clients.update({"rds-data": data, "secretsmanager": secrets})
    with Stubber(data) as data_stub, Stubber(secrets) as secrets_stub:
        secrets_stub.add_response(
            "describe_secret", {"ARN": SECRET}, {"SecretId": "shop-dev-orders-credentials"}
        )
        use_driver(driver, {"databases": {"orders": CLUSTER}})
        try:
            yield SimpleNamespace(data=data_stub, secrets=secrets_stub)
        finally:
            use_driver(None)
        data_stub.assert_no_pending_responses()


def statement(
    sql: str, parameters: list[dict[str, Any]] | None = None, tx: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {**TARGET, "database": "orders", "sql": sql, "includeResultMetadata": True}
    if parameters:
        out["parameters"] = parameters
    if tx:
        out["transactionId"] = tx
    return out


def test_parameters_are_typed_and_records_become_dicts(stubbed: Any) -> None:
    db = App("shop").database("orders")
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    stubbed.data.add_response(
        "execute_statement",
        {
            "columnMetadata": [
                {"name": "id", "label": "id", "typeName": "int8"},
                {"name": "price", "label": "price", "typeName": "numeric"},
                {"name": "meta", "label": "meta", "typeName": "jsonb"},
                {"name": "at", "label": "at", "typeName": "timestamp"},
                {"name": "ref", "label": "ref", "typeName": "uuid"},
                {"name": "note", "label": "note", "typeName": "text"},
                {"name": "tags", "label": "tags", "typeName": "_text"},
            ],
            "records": [
                [
                    {"longValue": 7},
                    {"stringValue": "9.50"},
                    {"stringValue": '{"legs": 4}'},
                    {"stringValue": "2026-01-02 01:04:05"},
                    {"stringValue": str(ident)},
                    {"isNull": True},
                    {"arrayValue": {"stringValues": ["a", "b"]}},
                ]
            ],
            "numberOfRecordsUpdated": 0,
        },
        statement(
            "SELECT * FROM orders WHERE id = :id AND at < :at AND price = :price AND ref = :ref "
            "AND meta @> :meta AND paid = :paid AND note IS DISTINCT FROM :note AND w = :w",
            [
                {"name": "id", "value": {"longValue": 7}},
                {
                    "name": "at",
                    "value": {"stringValue": "2026-01-02 01:04:05.000000"},
                    "typeHint": "TIMESTAMP",
                },
                {"name": "price", "value": {"stringValue": "9.50"}, "typeHint": "DECIMAL"},
                {"name": "ref", "value": {"stringValue": str(ident)}, "typeHint": "UUID"},
                {"name": "meta", "value": {"stringValue": '{"legs": 4}'}, "typeHint": "JSON"},
                {"name": "paid", "value": {"booleanValue": True}},
                {"name": "note", "value": {"isNull": True}},
                {"name": "w", "value": {"doubleValue": 1.5}},
            ],
        ),
    )
    rows = db.query(
        "SELECT * FROM orders WHERE id = :id AND at < :at AND price = :price AND ref = :ref "
        "AND meta @> :meta AND paid = :paid AND note IS DISTINCT FROM :note AND w = :w",
        {
            "w": 1.5,
            "id": 7,
            "at": when,
            "price": decimal.Decimal("9.50"),
            "ref": ident,
            "meta": {"legs": 4},
            "paid": True,
            "note": None,
        },
    )
    assert rows == [
        {
            "id": 7,
            "price": decimal.Decimal("9.50"),
            "meta": {"legs": 4},
            "at": dt.datetime(2026, 1, 2, 1, 4, 5),
            "ref": ident,
            "note": None,
            "tags": ["a", "b"],
        }
    ]
    stubbed.data.add_response(
        "execute_statement", {"numberOfRecordsUpdated": 3}, statement("DELETE FROM orders")
    )
    assert db.execute("DELETE FROM orders") == 3


def test_transactions_carry_their_id_and_roll_back_on_error(stubbed: Any) -> None:
    db = App("shop").database("orders")
    begin = {**TARGET, "database": "orders"}
    stubbed.data.add_response("begin_transaction", {"transactionId": "tx-1"}, begin)
    stubbed.data.add_response(
        "execute_statement",
        {"numberOfRecordsUpdated": 1},
        statement(
            "INSERT INTO orders (id) VALUES (:id)", [{"name": "id", "value": {"longValue": 1}}], "tx-1"
        ),
    )
    stubbed.data.add_response(
        "commit_transaction",
        {"transactionStatus": "Transaction Committed"},
        {**TARGET, "transactionId": "tx-1"},
    )
    with db.transaction():
        db.execute("INSERT INTO orders (id) VALUES (:id)", {"id": 1})

    stubbed.data.add_response("begin_transaction", {"transactionId": "tx-2"}, begin)
    stubbed.data.add_client_error(
        "execute_statement",
        "BadRequestException",
        'ERROR: duplicate key value violates unique constraint "orders_pkey"\n'
        "  Detail: Key (id)=(1) already exists.; SQLState: 23505",
        400,
        expected_params=statement("INSERT INTO orders (id) VALUES (1)", tx="tx-2"),
    )
    stubbed.data.add_response(
        "rollback_transaction",
        {"transactionStatus": "Rollback Complete"},
        {**TARGET, "transactionId": "tx-2"},
    )
    with pytest.raises(DatabaseError) as info, db.transaction():
        db.execute("INSERT INTO orders (id) VALUES (1)")
    assert (info.value.message, info.value.code) == (
        'duplicate key value violates unique constraint "orders_pkey"',
        "23505",
    )
    # after the transaction, statements carry no transaction id again
    stubbed.data.add_response(
        "execute_statement", {"records": [], "columnMetadata": []}, statement("SELECT 1")
    )
    assert db.query("SELECT 1") == []


def test_a_secret_that_cannot_be_read_is_a_database_error() -> None:
    data, secrets = _client("rds-data"), _client("secretsmanager")
    with Stubber(secrets) as stub:
        stub.add_client_error("describe_secret", "AccessDeniedException", "not allowed", 400)
        db = lambda_database(data, lambda: secrets, "orders", CLUSTER)
        with pytest.raises(
            DatabaseError, match="cannot read the credentials of database 'orders': AccessDenied"
        ):
            db.execute("SELECT 1", {})


def test_deploy_applies_migrations_through_the_data_api_in_transactions() -> None:
    """The migrations step as the deployer runs it (calls through Cloud, the one boto3 module)."""
    cloud = Cloud(region="us-east-1")
    data, secrets = _client("rds-data"), _client("secretsmanager")
    cloud._clients.update({"rds-data": data, "secretsmanager": secrets})
    names = SimpleNamespace(region="us-east-1", account="123456789012")
    driver = deploy_database(cloud, names, "shop-dev-orders", "orders")  # type: ignore[arg-type]
    table = (
        "CREATE TABLE IF NOT EXISTS sls_py_migrations (name VARCHAR(255) PRIMARY KEY, "
        "checksum VARCHAR(64) NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    first = Migration(
        "001_orders.sql", "CREATE TABLE orders (id int PRIMARY KEY);\nCREATE INDEX o ON orders (id);"
    )
    with Stubber(data) as d, Stubber(secrets) as s:
        s.add_response("describe_secret", {"ARN": SECRET}, {"SecretId": "shop-dev-orders-credentials"})
        d.add_response("execute_statement", {"numberOfRecordsUpdated": 0}, statement(table))
        d.add_response(
            "execute_statement",
            {
                "columnMetadata": [
                    {"label": "name", "typeName": "varchar"},
                    {"label": "checksum", "typeName": "varchar"},
                ],
                "records": [],
            },
            statement("SELECT name, checksum FROM sls_py_migrations"),
        )
        d.add_response("begin_transaction", {"transactionId": "tx-9"}, {**TARGET, "database": "orders"})
        d.add_response(
            "execute_statement", {}, statement("CREATE TABLE orders (id int PRIMARY KEY)", tx="tx-9")
        )
        d.add_response("execute_statement", {}, statement("CREATE INDEX o ON orders (id)", tx="tx-9"))
        d.add_response(
            "execute_statement",
            {"numberOfRecordsUpdated": 1},
            statement(
                "INSERT INTO sls_py_migrations (name, checksum) VALUES (:name, :checksum)",
                [
                    {"name": "name", "value": {"stringValue": "001_orders.sql"}},
                    {"name": "checksum", "value": {"stringValue": first.checksum}},
                ],
                "tx-9",
            ),
        )
        d.add_response("commit_transaction", {}, {**TARGET, "transactionId": "tx-9"})
        report = apply_migrations(driver, "orders", [first])
        d.assert_no_pending_responses()
    assert report.applied == ["001_orders.sql"]
    assert [c.operation for c in cloud.calls] == [
        "describe_secret",
        "execute_statement",
        "execute_statement",
        "begin_transaction",
        "execute_statement",
        "execute_statement",
        "execute_statement",
        "commit_transaction",
    ]
