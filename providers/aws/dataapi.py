"""``app.database`` on AWS: Aurora PostgreSQL through the RDS Data API.

The function calls the Data API over HTTPS (boto3's ``rds-data`` client), so
it needs no VPC and no connection pool. The same class serves the deployer
(migrations at deploy time, calls through :class:`~sls_py_aws.cloud.Cloud`)
and the function (calls through a boto3 client made on first use): both hand
it a ``call(operation, **params)``.

- ``:name`` parameters go to the Data API as they are, each value as a typed
  ``SqlParameter``: ``None`` -> ``isNull``, ``bool``, ``int`` (``longValue``),
  ``float``, ``str``, ``bytes`` (``blobValue``), ``Decimal`` / ``datetime`` /
  ``date`` / ``time`` / ``UUID`` as strings with a ``typeHint`` (datetimes in
  UTC), ``dict``/``list`` as JSON text with ``typeHint=JSON``.
- Results come with ``includeResultMetadata``: each record becomes a dict keyed
  by column name; ``numeric`` -> ``Decimal``, ``json``/``jsonb`` parsed,
  ``timestamp``/``date``/``time`` -> ``datetime`` objects, ``uuid`` -> ``UUID``,
  as psycopg gives them locally.
- ``db.transaction()`` is ``BeginTransaction``, then every statement of that
  thread carries the ``transactionId``, then ``CommitTransaction`` or
  ``RollbackTransaction``.
- Errors (``BadRequestException`` with PostgreSQL's text and ``SQLState: ...``)
  become :class:`~sls_py.runtime.DatabaseError`.

Standard library only at import: this module is packed into the Lambda zip.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

from sls_py.runtime.database import DatabaseError

#: The secret of a database cluster is named after it (see sls_py_aws.databases).
SECRET_SUFFIX = "-credentials"
_SQLSTATE = re.compile(r"SQLState:\s*([0-9A-Z]{5})")


def error_from(code: str, message: str, database: str) -> DatabaseError:
    """A Data API error as a :class:`DatabaseError` (PostgreSQL's text, its SQLSTATE)."""
    state = _SQLSTATE.search(message)
    text = message.split("\n", 1)[0].split("; SQLState", 1)[0].strip()
    text = text.removeprefix("ERROR: ").strip()
    if code and code != "BadRequestException":
        text = f"{code}: {text}"
    return DatabaseError(text, code=state.group(1) if state else "", database=database)


def to_parameter(name: str, value: Any) -> dict[str, Any]:
    """One ``SqlParameter`` for the Data API."""
    import datetime as dt
    import decimal
    import uuid

    if value is None:
        return {"name": name, "value": {"isNull": True}}
    if isinstance(value, bool):
        return {"name": name, "value": {"booleanValue": value}}
    if isinstance(value, int):
        return {"name": name, "value": {"longValue": value}}
    if isinstance(value, float):
        return {"name": name, "value": {"doubleValue": value}}
    if isinstance(value, str):
        return {"name": name, "value": {"stringValue": value}}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"name": name, "value": {"blobValue": bytes(value)}}
    hinted: tuple[str, str] | None = None
    if isinstance(value, decimal.Decimal):
        hinted = ("DECIMAL", str(value))
    elif isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        hinted = ("TIMESTAMP", value.isoformat(sep=" ", timespec="microseconds"))
    elif isinstance(value, dt.date):
        hinted = ("DATE", value.isoformat())
    elif isinstance(value, dt.time):
        hinted = ("TIME", value.isoformat(timespec="microseconds"))
    elif isinstance(value, uuid.UUID):
        hinted = ("UUID", str(value))
    elif isinstance(value, dict | list | tuple):
        hinted = ("JSON", json.dumps(value))
    if hinted is None:
        raise DatabaseError(f"parameter :{name}: cannot send a {type(value).__name__} value")
    return {"name": name, "value": {"stringValue": hinted[1]}, "typeHint": hinted[0]}


def _array(value: dict[str, Any]) -> list[Any]:
    for key in ("booleanValues", "longValues", "doubleValues", "stringValues"):
        if key in value:
            return list(value[key])
    return [_array(v) for v in value.get("arrayValues", [])]


def from_field(field: dict[str, Any], type_name: str) -> Any:
    """A result field as Python, by its column's PostgreSQL type."""
    if field.get("isNull"):
        return None
    if "arrayValue" in field:
        return _array(field["arrayValue"])
    for key in ("booleanValue", "longValue", "doubleValue", "blobValue"):
        if key in field:
            return field[key]
    text = field.get("stringValue")
    if text is None:
        return None
    kind = type_name.lower()
    if kind in ("json", "jsonb"):
        return json.loads(text)
    if kind == "numeric":
        import decimal

        return decimal.Decimal(text)
    if kind in ("timestamp", "timestamptz", "date", "time"):
        import datetime as dt

        parse: Any = {"date": dt.date, "time": dt.time}.get(kind, dt.datetime)
        try:
            return parse.fromisoformat(text)
        except ValueError:
            return text
    if kind == "uuid":
        import uuid

        return uuid.UUID(text)
    return text


Call = Callable[..., dict[str, Any]]


class DataApiDatabase:
    """One database of an Aurora cluster, through the Data API.

    :param call: ``call(operation, **params)`` -> the response; raises
        :class:`DatabaseError` (the caller turns its SDK's errors into it).
    :param secret_arn: a callable giving the secret's full ARN (looked up once).
    """

    def __init__(
        self, call: Call, name: str, cluster_arn: str, secret_arn: Callable[[], str], database: str
    ) -> None:
        self.call, self.name, self.cluster_arn, self.database = call, name, cluster_arn, database
        self._secret_arn = secret_arn
        self._local = threading.local()

    def _target(self) -> dict[str, Any]:
        return {"resourceArn": self.cluster_arn, "secretArn": self._secret_arn()}

    def execute(self, sql: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, int]:
        request: dict[str, Any] = {
            **self._target(),
            "database": self.database,
            "sql": sql,
            "includeResultMetadata": True,
        }
        if params:
            request["parameters"] = [to_parameter(k, v) for k, v in params.items()]
        tx = getattr(self._local, "tx", None)
        if tx:
            request["transactionId"] = tx
        response = self.call("execute_statement", **request)
        count = int(response.get("numberOfRecordsUpdated") or 0)
        if "records" not in response:
            return None, count
        columns = response.get("columnMetadata") or []
        names = [c.get("label") or c.get("name") or f"column{i}" for i, c in enumerate(columns)]
        types = [str(c.get("typeName") or "") for c in columns]
        rows = [
            {names[i]: from_field(f, types[i]) for i, f in enumerate(record)}
            for record in response["records"]
        ]
        return rows, len(rows) or count

    def begin(self) -> None:
        response = self.call("begin_transaction", **self._target(), database=self.database)
        self._local.tx = str(response["transactionId"])

    def _end(self, operation: str) -> None:
        tx = getattr(self._local, "tx", None)
        self._local.tx = None
        if tx:
            self.call(operation, **self._target(), transactionId=tx)

    def commit(self) -> None:
        self._end("commit_transaction")

    def rollback(self) -> None:
        self._end("rollback_transaction")


def secret_name(cluster_arn: str) -> str:
    """The name of the secret holding a cluster's credentials."""
    return cluster_arn.rsplit(":", 1)[-1] + SECRET_SUFFIX


def lambda_database(client: Any, secrets: Callable[[], Any], name: str, cluster_arn: str) -> DataApiDatabase:
    """The function-side database: ``client`` is a boto3 ``rds-data`` client;
    ``secrets()`` gives a ``secretsmanager`` client, used once to find the
    secret's full ARN (it ends with a suffix AWS picks)."""
    found: list[str] = []
    lock = threading.Lock()

    def call(operation: str, **params: Any) -> dict[str, Any]:
        try:
            return dict(getattr(client, operation)(**params))
        except Exception as exc:
            error = getattr(exc, "response", {}).get("Error", {})
            if not error:
                raise
            raise error_from(str(error.get("Code", "")), str(error.get("Message", "")), name) from None

    def secret_arn() -> str:
        with lock:
            if not found:
                try:
                    found.append(str(secrets().describe_secret(SecretId=secret_name(cluster_arn))["ARN"]))
                except Exception as exc:
                    error = getattr(exc, "response", {}).get("Error", {})
                    if not error:
                        raise
                    raise DatabaseError(
                        f"cannot read the credentials of database {name!r}: "
                        f"{error.get('Code')}: {error.get('Message')}",
                        database=name,
                    ) from None
            return found[0]

    return DataApiDatabase(call, name, cluster_arn, secret_arn, name)
