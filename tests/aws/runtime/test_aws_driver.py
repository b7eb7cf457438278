"""AwsDriver against a real moto server over HTTP, through the runtime's
neutral Bucket/Queue/Table handles exactly as a function uses them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from sls_py.runtime import Bucket, Queue, ResourceError, Table, use_driver
from sls_py_aws.resources import AwsDriver

pytestmark = pytest.mark.slow


@pytest.fixture
def driver(aws_env: dict[str, str], suffix: str) -> Iterator[AwsDriver]:
    """An AwsDriver installed for logical names files/jobs/items/events -> moto resources."""
    names = {
        "buckets": {"files": f"drv-{suffix}-files"},
        "queues": {"jobs": f"drv-{suffix}-jobs"},
        "tables": {"items": f"drv-{suffix}-items", "events": f"drv-{suffix}-events"},
    }
    boto3.client("s3").create_bucket(Bucket=names["buckets"]["files"])
    boto3.client("sqs").create_queue(QueueName=names["queues"]["jobs"])
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName=names["tables"]["items"],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.create_table(
        TableName=names["tables"]["events"],
        KeySchema=[
            {"AttributeName": "user", "KeyType": "HASH"},
            {"AttributeName": "at", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "user", "AttributeType": "S"},
            {"AttributeName": "at", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    drv = AwsDriver(region="us-east-1", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    drv.names = names  # type: ignore[attr-defined]
    use_driver(drv, names)
    yield drv
    use_driver(None)


def test_bucket_put_get_list_delete(driver: AwsDriver) -> None:
    files = Bucket("files")
    files.put("photos/b.jpg", b"\x00\x01binary")
    files.put("photos/a.txt", "text é", content_type="text/plain")
    files.put("other/c.txt", "c")
    assert files.get("photos/b.jpg") == b"\x00\x01binary"
    assert files.get("photos/a.txt") == "text é".encode()
    assert files.list("photos/") == ["photos/a.txt", "photos/b.jpg"]
    assert files.list() == ["other/c.txt", "photos/a.txt", "photos/b.jpg"]
    physical = driver.names["buckets"]["files"]  # type: ignore[attr-defined]
    head = boto3.client("s3").head_object(Bucket=physical, Key="photos/a.txt")
    assert head["ContentType"] == "text/plain"
    files.delete("photos/b.jpg")
    files.delete("never/existed")
    assert files.list("photos/") == ["photos/a.txt"]
    with pytest.raises(KeyError):
        files.get("photos/b.jpg")


def test_queue_send_resolves_the_url_once(driver: AwsDriver) -> None:
    calls: list[str] = []
    driver.client("sqs").meta.events.register(
        "before-call.sqs.*", lambda model, **_: calls.append(model.name)
    )
    jobs = Queue("jobs")
    first = jobs.send({"n": 1})
    second = jobs.send("plain")
    assert calls == ["GetQueueUrl", "SendMessage", "SendMessage"]
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=driver.names["queues"]["jobs"])["QueueUrl"]  # type: ignore[attr-defined]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted((m["MessageId"], m["Body"]) for m in got) == sorted(
        [(first, json.dumps({"n": 1}, separators=(",", ":"))), (second, "plain")]
    )


def test_missing_queue_is_a_resource_error(aws_env: dict[str, str]) -> None:
    drv = AwsDriver(endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    use_driver(drv, {"queues": {"gone": "drv-never-created"}})
    try:
        with pytest.raises(
            ResourceError, match="queue 'gone' \\(drv-never-created\\) does not exist"
        ):
            Queue("gone").send("x")
    finally:
        use_driver(None)


def test_table_round_trips_json_items(driver: AwsDriver) -> None:
    items = Table("items", key="id")
    item: dict[str, Any] = {
        "id": "a",
        "size": 3,
        "ratio": 0.25,
        "tags": ["x", "y"],
        "meta": {"deep": {"n": 1.5, "ok": True}, "none": None},
    }
    items.put(item)
    items.put({"id": "b", "size": 10})
    assert items.get("a") == item
    assert items.get("missing") is None
    assert sorted(i["id"] for i in items.scan()) == ["a", "b"]
    items.delete("a")
    items.delete("a")
    assert items.get("a") is None
    with pytest.raises(ResourceError, match="has no 'id' attribute"):
        items.put({"size": 1})


def test_table_with_sort_key_queries_in_order(driver: AwsDriver) -> None:
    events = Table("events", key="user", sort_key="at", sort_key_type="number")
    for at in (30, 10, 20):
        events.put({"user": "ann", "at": at, "what": f"e{at}"})
    events.put({"user": "bob", "at": 5, "what": "other"})
    assert events.query("ann") == [
        {"user": "ann", "at": 10, "what": "e10"},
        {"user": "ann", "at": 20, "what": "e20"},
        {"user": "ann", "at": 30, "what": "e30"},
    ]
    assert events.get("bob", 5) == {"user": "bob", "at": 5, "what": "other"}
    events.delete("ann", 20)
    assert [e["at"] for e in events.query("ann")] == [10, 30]


def test_driver_is_named_by_the_environment(
    aws_env: dict[str, str], suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SLS_PY_RESOURCES path a deployed function takes (driver built from JSON)."""
    bucket = f"drv-{suffix}-env"
    boto3.client("s3").create_bucket(Bucket=bucket)
    monkeypatch.setenv(
        "SLS_PY_RESOURCES",
        json.dumps(
            {
                "driver": "sls_py_aws.resources:AwsDriver",
                "options": {},
                "buckets": {"files": bucket},
            }
        ),
    )
    use_driver(None)
    try:
        Bucket("files").put("k.txt", "from env")
    finally:
        use_driver(None)
    body = boto3.client("s3").get_object(Bucket=bucket, Key="k.txt")["Body"].read()
    assert body == b"from env"
