"""The runtime's buckets, queues and tables on S3, SQS and DynamoDB.

Named by ``SLS_PY_RESOURCES`` as ``"sls_py_aws.resources:AwsDriver"`` (see
:mod:`sls_py_aws.handler` for the whole contract). boto3 is imported on first
use, not at import time: Lambda's Python runtime provides it, and a function
that touches no resource never pays for it. Clients are made once per
container and reused.

Table items are stored as DynamoDB attribute values through boto3's
resource layer; numbers come back as ``int`` or ``float`` (not ``Decimal``),
so items round-trip as the JSON objects the app wrote.
"""

from __future__ import annotations

import threading
from typing import Any

from sls_py.runtime.resources import ResourceError


def _json_numbers(value: Any) -> Any:
    """DynamoDB ``Decimal`` values -> int/float, recursively."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_numbers(v) for v in value]
    if isinstance(value, set):
        return sorted(_json_numbers(v) for v in value)
    return value


def _dynamo_numbers(value: Any) -> Any:
    """float -> Decimal (DynamoDB refuses floats), recursively."""
    from decimal import Decimal

    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _dynamo_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dynamo_numbers(v) for v in value]
    return value


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class AwsBucket:
    """An S3 bucket."""

    def __init__(self, client: Any, name: str, physical: str) -> None:
        self.client, self.name, self.physical = client, name, physical

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=self.physical, Key=key, Body=data, **extra)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.physical, Key=key)
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise KeyError(key) from None
            raise
        return bytes(response["Body"].read())

    def list(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.physical, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.physical, Key=key)


class AwsQueue:
    """An SQS queue, addressed by name; its URL is looked up once."""

    def __init__(self, client: Any, name: str, url: str) -> None:
        self.client, self.name, self.url = client, name, url

    def send(self, body: str) -> str:
        response = self.client.send_message(QueueUrl=self.url, MessageBody=body)
        return str(response["MessageId"])


class AwsTable:
    """A DynamoDB table with a partition key and an optional sort key."""

    def __init__(self, table: Any, name: str, key: str, sort_key: str | None) -> None:
        self.table, self.name, self.key, self.sort_key = table, name, key, sort_key

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = self.table.get_item(Key=_dynamo_numbers(key), ConsistentRead=True)
        item = response.get("Item")
        return _json_numbers(item) if item is not None else None

    def put(self, item: dict[str, Any]) -> None:
        self.table.put_item(Item=_dynamo_numbers(item))

    def delete(self, key: dict[str, Any]) -> None:
        self.table.delete_item(Key=_dynamo_numbers(key))

    def query(self, key_value: Any) -> list[dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key(self.key).eq(_dynamo_numbers(key_value)),
            "ConsistentRead": True,
        }
        while True:
            response = self.table.query(**kwargs)
            items.extend(_json_numbers(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return items  # DynamoDB returns them in sort-key order

    def scan(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"ConsistentRead": True}
        while True:
            response = self.table.scan(**kwargs)
            items.extend(_json_numbers(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return items


class AwsFunction:
    """A target of ``ctx.invoke`` (Lambda ``Invoke``, ``RequestResponse``: a function
    error comes back as the target's ErrorInfo) and ``invoke_async`` (``Event``: Lambda
    retries it as deployed, then sends it to the on-failure SQS queue)."""

    def __init__(self, client: Any, name: str, physical: str) -> None:
        self.client, self.name, self.physical = client, name, physical

    def invoke(self, payload: str) -> dict[str, Any]:
        import json

        response = self.client.invoke(
            FunctionName=self.physical, InvocationType="RequestResponse", Payload=payload.encode()
        )
        raw = response["Payload"].read()
        data = json.loads(raw) if raw else None
        if response.get("FunctionError"):
            from .handler import error_info

            data = data if isinstance(data, dict) else {}
            info = error_info(str(data.get("errorType", "")), str(data.get("errorMessage", "")))
            return {"result": None, "error": info.to_wire()}
        return {"result": data, "error": None}

    def invoke_async(self, payload: str) -> str:
        response = self.client.invoke(
            FunctionName=self.physical, InvocationType="Event", Payload=payload.encode()
        )
        return str(response.get("ResponseMetadata", {}).get("RequestId", ""))
class AwsConfig:
    """The stage's config: SSM parameters under one path, secrets decrypted."""

    def __init__(self, client: Any, path: str) -> None:
        self.client, self.path = client, path

    def read(self) -> dict[str, str]:
        values: dict[str, str] = {}
        paginator = self.client.get_paginator("get_parameters_by_path")
        pages = paginator.paginate(Path=self.path.rstrip("/"), Recursive=False, WithDecryption=True)
        for page in pages:
            for param in page.get("Parameters", []):
                values[str(param["Name"])[len(self.path) :]] = str(param["Value"])
        return values


class AwsDriver:
    """The runtime driver for AWS: S3 buckets, SQS queues, DynamoDB tables.

    :param region: AWS region (default: boto3's, i.e. ``AWS_REGION`` in Lambda).
    :param endpoint_url: send every call here (an emulator such as moto);
        default: boto3's, which honours ``AWS_ENDPOINT_URL``.
    """

    def __init__(self, region: str | None = None, endpoint_url: str | None = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._queue_urls: dict[str, str] = {}
        self._tables: dict[str, Any] = {}
        self._databases: dict[str, Any] = {}

    def _session_kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.region:
            out["region_name"] = self.region
        if self.endpoint_url:
            out["endpoint_url"] = self.endpoint_url
        return out

    def cache(self, name: str, physical: str) -> Any:
        """The ElastiCache Serverless cache at URL ``physical`` (``rediss://``, from
        ``SLS_PY_CACHES``, which the deploy fills in)."""
        from sls_py.runtime.cache import RedisCache

        return RedisCache(physical)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service``, made once."""
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                import boto3

                client = boto3.client(service, **self._session_kwargs())  # type: ignore[call-overload]
                self._clients[service] = client
            return client

    def bucket(self, name: str, physical: str) -> AwsBucket:
        return AwsBucket(self.client("s3"), name, physical)

    def queue(self, name: str, physical: str) -> AwsQueue:
        url = self._queue_urls.get(physical)
        if url is None:
            client = self.client("sqs")
            try:
                url = str(client.get_queue_url(QueueName=physical)["QueueUrl"])
            except Exception as exc:
                if "NonExistentQueue" in _code(exc) or "QueueDoesNotExist" in _code(exc):
                    raise ResourceError(
                        f"queue {name!r} ({physical}) does not exist: deploy the app first"
                    ) from None
                raise
            self._queue_urls[physical] = url
        return AwsQueue(self.client("sqs"), name, url)

    def function(self, name: str, physical: str) -> AwsFunction:
        with self._lock:
            client = self._clients.get("lambda-invoke")
            if client is None:
                import boto3
                from botocore.config import Config

                # a waiting call lasts as long as the target may run (900 s at most), and
                # is never re-sent by the client: that would run the target twice
                config = Config(read_timeout=905, retries={"max_attempts": 1, "mode": "standard"})
                client = boto3.client("lambda", config=config, **self._session_kwargs())
                self._clients["lambda-invoke"] = client
        return AwsFunction(client, name, physical)

    def database(self, name: str, physical: str) -> Any:
        """Database ``name`` of the Aurora cluster whose ARN is ``physical``,
        through the RDS Data API (see :mod:`sls_py_aws.dataapi`)."""
        client = self.client("rds-data")  # (takes the lock itself)
        with self._lock:
            db = self._databases.get(name)
            if db is None:
                from .dataapi import lambda_database

                db = lambda_database(client, lambda: self.client("secretsmanager"), name, physical)
                self._databases[name] = db
        return db

    def config(self, name: str, physical: str) -> AwsConfig:
        """``physical`` is the stage's parameter path, ``/<app>/<stage>/``."""
        return AwsConfig(self.client("ssm"), physical)

    def table(self, name: str, physical: str, key: str, sort_key: str | None) -> AwsTable:
        with self._lock:
            table = self._tables.get(physical)
            if table is None:
                import boto3

                resource = boto3.resource("dynamodb", **self._session_kwargs())
                table = self._tables[physical] = resource.Table(physical)
        return AwsTable(table, name, key, sort_key)
