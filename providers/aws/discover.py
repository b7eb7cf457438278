"""Find a stage's resources on AWS by their names, when no state was recorded.

``sls-py remove`` normally deletes what the state file lists. If that file is
gone (another machine, a wiped checkout), the names alone still lead to
everything the current app would deploy: they come from app + stage. Only
read calls are made here. Things AWS deletes together with a parent (a REST
API's routes and stage, a function's permissions, a bucket's notifications)
are not looked up: deleting the parent takes them along.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .cloud import Cloud
from .handlers_database import FINDERS as DATABASE_FINDERS
from .model import Names, Resource
from .state import Entry, State

Finder = Callable[[Cloud, Names, Resource], "dict[str, Any] | None"]


def _role(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
    found = cloud.call("iam", "get_role", missing_ok=True, RoleName=res.props["name"])
    return {"arn": found["Role"]["Arn"]} if found else None


def _bucket(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
    found = cloud.call("s3", "head_bucket", missing_ok=True, Bucket=res.props["name"])
    return {"name": res.props["name"]} if found is not None else None


def _table(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
    found = cloud.call("dynamodb", "describe_table", missing_ok=True, TableName=res.props["name"])
    return {"arn": found["Table"]["TableArn"]} if found else None


def _queue(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
    main = cloud.call("sqs", "get_queue_url", missing_ok=True, QueueName=res.props["name"])
    dlq = cloud.call("sqs", "get_queue_url", missing_ok=True, QueueName=res.props["dlq"])
    if main is None and dlq is None:
        return None
    return {"url": (main or {}).get("QueueUrl"), "dlq_url": (dlq or {}).get("QueueUrl")}


def _function(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
    found = cloud.call(
        "lambda", "get_function_configuration", missing_ok=True, FunctionName=res.props["name"]
    )
    return {"arn": found["FunctionArn"]} if found else None


def _by_name(operation: str, **params: Any) -> Finder:
    def find(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
        for item in cloud.paginate("apigateway", operation, "items", **params):
            if item["name"] == res.props["name"]:
                return {"id": item["id"]}
        return None

    return find


def _schedule(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
    found = cloud.call("events", "describe_rule", missing_ok=True, Name=res.props["rule"])
    return {"arn": found["Arn"]} if found else None


def _mapping(cloud: Cloud, names: Names, res: Resource) -> dict[str, Any] | None:
    found = cloud.call(
        "lambda",
        "list_event_source_mappings",
        missing_ok=True,
        EventSourceArn=res.props["queue_arn"],
        FunctionName=res.props["function"],
    )
    mappings = (found or {}).get("EventSourceMappings", [])
    return {"uuid": mappings[0]["UUID"]} if mappings else None


FINDERS: dict[str, Finder] = {
    "role": _role,
    "bucket": _bucket,
    "deployment-bucket": _bucket,
    "table": _table,
    "queue": _queue,
    "function": _function,
    "api": _by_name("get_rest_apis"),
    "usage-plan": _by_name("get_usage_plans"),
    "api-key": _by_name("get_api_keys"),
    "schedule": _schedule,
    "event-source": _mapping,
}
FINDERS.update(DATABASE_FINDERS)


def discover(state: State, desired: list[Resource], cloud: Cloud, names: Names) -> int:
    """Record in ``state`` every resource of ``desired`` that exists on AWS.

    :return: how many were found.
    """
    found = 0
    for res in desired:
        finder = FINDERS.get(res.kind)
        outputs = finder(cloud, names, res) if finder else None
        if outputs is not None:
            state.entries[res.key] = Entry(res.kind, res.name, res.recorded_props(), outputs)
            found += 1
    return found
