"""Handlers for asynchronous invocation settings (``async-config``).

A function that another declares in ``invokes=[...]`` gets an SQS queue
``<function>-async-dlq`` and an event invoke configuration: Lambda retries a
failed asynchronous invocation :data:`~sls_py_aws.model.ASYNC_RETRIES` times and
then sends it (with the error) to that queue, its on-failure destination.
Creating adopts a queue left by an interrupted deploy; updating puts the
configuration again; deleting removes the configuration and the queue.
"""

from __future__ import annotations

from typing import Any

from .executor import Ctx, create_again, handles
from .handlers_compute import create_queue
from .model import Resource
from .state import Entry


def _async_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    made = create_queue(
        ctx, {"QueueAlreadyExists", "QueueNameExists"}, QueueName=p["dlq"], tags=p["tags"]
    )
    if made is None:
        url = ctx.call("sqs", "get_queue_url", QueueName=p["dlq"])["QueueUrl"]
    else:
        url = made["QueueUrl"]
    dlq_arn = f"arn:aws:sqs:{ctx.region}:{ctx.account}:{p['dlq']}"
    ctx.call(
        "lambda",
        "put_function_event_invoke_config",
        FunctionName=p["function"],
        MaximumRetryAttempts=p["max_retries"],
        MaximumEventAgeInSeconds=p["max_age_s"],
        DestinationConfig={"OnFailure": {"Destination": dlq_arn}},
    )
    return {"dlq_url": url, "dlq_arn": dlq_arn}


def _async_delete(ctx: Ctx, entry: Entry) -> None:
    ctx.cloud.call(
        "lambda",
        "delete_function_event_invoke_config",
        missing_ok=True,
        FunctionName=entry.props["function"],
    )
    found = ctx.cloud.call("sqs", "get_queue_url", missing_ok=True, QueueName=entry.props["dlq"])
    if found is not None:
        ctx.cloud.call("sqs", "delete_queue", missing_ok=True, QueueUrl=found["QueueUrl"])


handles("async-config", _async_create, create_again(_async_create), _async_delete)
