"""Handlers for the role, storage, functions, permissions and event sources.

Each ``create`` adopts a resource that already exists under its name (an
earlier deploy stopped before recording it) instead of failing or making a
second one. AWS calls go through :class:`~sls_py_aws.executor.Ctx` (and so
through :mod:`sls_py_aws.cloud`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

from sls_py.errors import ProviderError

from . import model
from .cloud import AwsError
from .executor import Ctx, create_again, handles
from .handlers_cache import function_network
from .iam import POLICY_NAME
from .model import Resource
from .state import Entry

# --- IAM role -----------------------------------------------------------------


def _role_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    trust = json.dumps(p["trust"])
    created = ctx.tolerate(
        {"EntityAlreadyExists"},
        "iam",
        "create_role",
        RoleName=p["name"],
        AssumeRolePolicyDocument=trust,
        Description="sls-py: the functions of one app and stage",
        Tags=ctx.tag_list(p["tags"]),
    )
    if created is None:  # left by an interrupted deploy: make it ours again
        ctx.call("iam", "update_assume_role_policy", RoleName=p["name"], PolicyDocument=trust)
    ctx.call(
        "iam",
        "put_role_policy",
        RoleName=p["name"],
        PolicyName=POLICY_NAME,
        PolicyDocument=json.dumps(p["policy"]),
    )
    return {"arn": ctx.names.role_arn}


def _role_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    p = res.props
    if "trust" in changes:
        ctx.call(
            "iam",
            "update_assume_role_policy",
            RoleName=p["name"],
            PolicyDocument=json.dumps(p["trust"]),
        )
    if "policy" in changes:
        ctx.call(
            "iam",
            "put_role_policy",
            RoleName=p["name"],
            PolicyName=POLICY_NAME,
            PolicyDocument=json.dumps(p["policy"]),
        )
    if "tags" in changes:
        ctx.call("iam", "tag_role", RoleName=p["name"], Tags=ctx.tag_list(p["tags"]))
    return {}


def _role_delete(ctx: Ctx, entry: Entry) -> None:
    name = entry.props["name"]
    policies = ctx.cloud.call("iam", "list_role_policies", missing_ok=True, RoleName=name)
    if policies is None:
        return
    for policy in policies.get("PolicyNames", []):
        ctx.cloud.call(
            "iam", "delete_role_policy", missing_ok=True, RoleName=name, PolicyName=policy
        )
    attached = (
        ctx.cloud.call("iam", "list_attached_role_policies", missing_ok=True, RoleName=name) or {}
    )
    for policy in attached.get("AttachedPolicies", []):
        ctx.cloud.call(
            "iam",
            "detach_role_policy",
            missing_ok=True,
            RoleName=name,
            PolicyArn=policy["PolicyArn"],
        )
    ctx.cloud.call("iam", "delete_role", missing_ok=True, RoleName=name)


# --- buckets ------------------------------------------------------------------


def _bucket_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    name = res.props["name"]
    params: dict[str, Any] = {"Bucket": name}
    if ctx.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
    try:
        ctx.call("s3", "create_bucket", **params)
    except AwsError as exc:
        if exc.code == "BucketAlreadyExists":
            raise ProviderError(
                f"the bucket name {name} is taken by another AWS account",
                hint="bucket names are global; choose another bucket or app name",
            ) from None
        if exc.code != "BucketAlreadyOwnedByYou":
            raise
    ctx.call(
        "s3",
        "put_public_access_block",
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    ctx.call(
        "s3", "put_bucket_tagging", Bucket=name, Tagging={"TagSet": ctx.tag_list(res.props["tags"])}
    )
    return {"name": name, "arn": f"arn:aws:s3:::{name}"}


def _bucket_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    ctx.call(
        "s3",
        "put_bucket_tagging",
        Bucket=res.props["name"],
        Tagging={"TagSet": ctx.tag_list(res.props["tags"])},
    )
    return {}


def _bucket_delete(ctx: Ctx, entry: Entry) -> None:
    """Empty the bucket (a bucket must be empty to be deleted), then delete it."""
    name = entry.props["name"]
    try:
        keys = [
            {"Key": o["Key"]}
            for o in ctx.cloud.paginate("s3", "list_objects_v2", "Contents", Bucket=name)
        ]
    except AwsError as exc:
        if exc.code == "NoSuchBucket":
            return
        raise
    for i in range(0, len(keys), 1000):
        ctx.call(
            "s3",
            "delete_objects",
            Bucket=name,
            Delete={"Objects": keys[i : i + 1000], "Quiet": True},
        )
    ctx.cloud.call("s3", "delete_bucket", missing_ok=True, Bucket=name)


# --- tables -------------------------------------------------------------------


#: sls-py key types -> DynamoDB attribute types.
_ATTRIBUTE_TYPES = {"string": "S", "number": "N"}


def table_keys(p: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """A table's ``AttributeDefinitions`` and ``KeySchema`` (the deploy's and the template's)."""
    attrs = [{"AttributeName": p["key"], "AttributeType": _ATTRIBUTE_TYPES[p["key_type"]]}]
    schema = [{"AttributeName": p["key"], "KeyType": "HASH"}]
    if p["sort_key"]:
        sort_type = _ATTRIBUTE_TYPES[p["sort_key_type"]]
        attrs.append({"AttributeName": p["sort_key"], "AttributeType": sort_type})
        schema.append({"AttributeName": p["sort_key"], "KeyType": "RANGE"})
    return attrs, schema


def _table_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    attrs, schema = table_keys(p)
    made = ctx.tolerate(
        {"ResourceInUseException"},
        "dynamodb",
        "create_table",
        TableName=p["name"],
        AttributeDefinitions=attrs,
        KeySchema=schema,
        BillingMode="PAY_PER_REQUEST",
        Tags=ctx.tag_list(p["tags"]),
    )
    if made is None:  # it exists: adopt it only if its keys are the declared ones
        _check_existing_keys(ctx, p["name"], res.name, schema, attrs)
    ctx.cloud.wait("dynamodb", "table_exists", TableName=p["name"])
    return {"arn": ctx.names.table_arn(res.name)}


def _check_existing_keys(
    ctx: Ctx, physical: str, logical: str, schema: list[dict[str, str]], attrs: list[dict[str, str]]
) -> None:
    """Refuse a table of this name whose key names or types differ from the app's
    (left by an earlier deploy whose state is gone, or made by hand)."""
    table = ctx.cloud.call("dynamodb", "describe_table", TableName=physical)["Table"]
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions") or []}
    have = [(k["AttributeName"], k["KeyType"], types.get(k["AttributeName"])) for k in table["KeySchema"]]
    want_types = {a["AttributeName"]: a["AttributeType"] for a in attrs}
    want = [(k["AttributeName"], k["KeyType"], want_types[k["AttributeName"]]) for k in schema]
    if have != want:
        spell = {"S": "string", "N": "number", "B": "binary"}

        def show(keys: Sequence[tuple[str, str, str | None]]) -> str:
            return ", ".join(f"{n} ({spell.get(t or '', t)})" for n, _, t in keys)

        raise ProviderError(
            f"table {logical!r}: DynamoDB table {physical} already exists with keys "
            f"{show(have)}, but the app declares {show(want)}",
            hint=f"delete the table {physical} (its items go with it) or declare the keys it has",
        )


def _table_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    ctx.call(
        "dynamodb",
        "tag_resource",
        ResourceArn=entry.outputs["arn"],
        Tags=ctx.tag_list(res.props["tags"]),
    )
    return {}


def _table_delete(ctx: Ctx, entry: Entry) -> None:
    if ctx.cloud.call("dynamodb", "delete_table", missing_ok=True, TableName=entry.props["name"]):
        # a replacement of the same name can only be created once this one is gone
        ctx.cloud.wait("dynamodb", "table_not_exists", TableName=entry.props["name"])


# --- queues -------------------------------------------------------------------


def _queue_attributes(ctx: Ctx, res: Resource) -> dict[str, str]:
    p = res.props
    dlq_arn = f"arn:aws:sqs:{ctx.region}:{ctx.account}:{p['dlq']}"
    return {
        "VisibilityTimeout": str(p["visibility_timeout_s"]),
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": p["max_receives"]}
        ),
    }


#: SQS refuses to create a queue under the name of one deleted less than 60 s
#: ago (a `sls-py remove` followed by a `deploy`); waited out for this long
QUEUE_NAME_REUSE_WAIT_S = 75.0
_sleep = time.sleep  # tests replace it


def create_queue(ctx: Ctx, tolerate: set[str], **params: Any) -> Any:
    """``sqs.create_queue`` (``None`` for an error code in ``tolerate``), waiting
    out SQS's refusal to reuse a recently deleted queue's name, and saying so."""
    deadline = time.monotonic() + QUEUE_NAME_REUSE_WAIT_S
    told = False
    while True:
        try:
            return ctx.tolerate(tolerate, "sqs", "create_queue", **params)
        except AwsError as exc:
            if not exc.code.endswith("QueueDeletedRecently") or time.monotonic() > deadline:
                raise
            if not told:
                ctx.note(
                    f"SQS does not reuse the name {params['QueueName']} until 60 s after "
                    "that queue was deleted: waiting"
                )
                told = True
            _sleep(5)


def _queue_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    dlq = create_queue(ctx, set(), QueueName=p["dlq"], tags=p["tags"])["QueueUrl"]
    attrs = _queue_attributes(ctx, res)
    made = create_queue(
        ctx,
        {"QueueAlreadyExists", "QueueNameExists"},
        QueueName=p["name"],
        Attributes=attrs,
        tags=p["tags"],
    )
    if made is None:
        url = ctx.call("sqs", "get_queue_url", QueueName=p["name"])["QueueUrl"]
        ctx.call("sqs", "set_queue_attributes", QueueUrl=url, Attributes=attrs)
    else:
        url = made["QueueUrl"]
    return {"url": url, "dlq_url": dlq, "arn": ctx.names.queue_arn(res.name)}


def _queue_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    url = entry.outputs["url"]
    if {"visibility_timeout_s", "max_receives"} & set(changes):
        ctx.call(
            "sqs", "set_queue_attributes", QueueUrl=url, Attributes=_queue_attributes(ctx, res)
        )
    if "tags" in changes:
        ctx.call("sqs", "tag_queue", QueueUrl=url, Tags=res.props["tags"])
    return {}


def _queue_delete(ctx: Ctx, entry: Entry) -> None:
    for name in (entry.props["name"], entry.props["dlq"]):
        found = ctx.cloud.call("sqs", "get_queue_url", missing_ok=True, QueueName=name)
        if found is not None:
            ctx.cloud.call("sqs", "delete_queue", missing_ok=True, QueueUrl=found["QueueUrl"])


# --- functions ----------------------------------------------------------------


def _code(ctx: Ctx, function: str) -> dict[str, Any]:
    """The ``Code`` argument: the zip itself, or a key in the deployment bucket."""
    pkg = ctx.package
    if pkg is None:
        raise ProviderError("internal error: no package built for the function's code")
    if pkg.size <= model.DIRECT_UPLOAD_LIMIT:
        return {"ZipFile": pkg.data}
    bucket = ctx.names.deployment_bucket
    digest = base64.b64decode(pkg.code_sha256).hex()
    key = f"{function}/{digest}.zip"
    if key not in ctx.cache:
        ctx.call("s3", "put_object", Bucket=bucket, Key=key, Body=pkg.data)
        ctx.cache[key] = True
    return {"S3Bucket": bucket, "S3Key": key}


def _config(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "Runtime": p["runtime"],
        "Role": p["role"],
        "Handler": p["handler"],
        "Description": p["description"],
        "Timeout": p["timeout_s"],
        "MemorySize": p["memory_mb"],
        "Environment": {"Variables": p["environment"]},
    }


def _function_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    name = p["name"]
    existing = ctx.cloud.call(
        "lambda", "get_function_configuration", missing_ok=True, FunctionName=name
    )
    if existing is not None:  # an earlier deploy stopped before recording it
        return _function_update(
            ctx, res, Entry(res.kind, res.name, {}), ["code", "config", "concurrency", "tags", "vpc"]
        )
    params = {
        **_config(p),
        **function_network(ctx, p),
        "FunctionName": name,
        "Code": _code(ctx, name),
        "Architectures": [p["architecture"]],
        "Tags": p["tags"],
        "Publish": False,
    }
    # A new role takes a few seconds to reach Lambda; AWS says so, and a retry succeeds.
    ctx.cloud.retry(
        lambda: ctx.call("lambda", "create_function", **params), when="cannot be assumed"
    )
    ctx.cloud.wait("lambda", "function_active_v2", FunctionName=name)
    if p["concurrency"] is not None:
        ctx.call(
            "lambda",
            "put_function_concurrency",
            FunctionName=name,
            ReservedConcurrentExecutions=p["concurrency"],
        )
    return {"arn": ctx.names.function_arn(res.name)}


def _function_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    p = res.props
    name = p["name"]
    config_changed = bool(set(changes) - {"code", "concurrency", "tags"})
    network = function_network(ctx, p, leaving="vpc" in changes)
    if "code" in changes or "architecture" in changes:
        ctx.call(
            "lambda",
            "update_function_code",
            FunctionName=name,
            Architectures=[p["architecture"]],
            **_code(ctx, name),
        )
        ctx.cloud.wait("lambda", "function_updated_v2", FunctionName=name)
    if config_changed:
        ctx.cloud.retry(
            lambda: ctx.call(
                "lambda",
                "update_function_configuration",
                FunctionName=name,
                **{**_config(p), **network},
            ),
            when="cannot be assumed",
        )
        ctx.cloud.wait("lambda", "function_updated_v2", FunctionName=name)
    if "concurrency" in changes:
        if p["concurrency"] is None:
            ctx.cloud.call(
                "lambda", "delete_function_concurrency", missing_ok=True, FunctionName=name
            )
        else:
            ctx.call(
                "lambda",
                "put_function_concurrency",
                FunctionName=name,
                ReservedConcurrentExecutions=p["concurrency"],
            )
    if "tags" in changes:
        ctx.call(
            "lambda", "tag_resource", Resource=ctx.names.function_arn(res.name), Tags=p["tags"]
        )
    return {"arn": ctx.names.function_arn(res.name)}


def _function_delete(ctx: Ctx, entry: Entry) -> None:
    name = entry.props["name"]
    ctx.cloud.call("lambda", "delete_function", missing_ok=True, FunctionName=name)
    ctx.cloud.call("logs", "delete_log_group", missing_ok=True, logGroupName=f"/aws/lambda/{name}")


# --- permissions (who may invoke a function) ----------------------------------


def _source(ctx: Ctx, p: dict[str, Any]) -> dict[str, str]:
    src = p["source"]
    if "api" in src:
        api_id = ctx.state.output(f"api:{src['api']}", "id")
        if not api_id:
            raise ProviderError(f"internal error: REST API {src['api']} is not recorded yet")
        return {"SourceArn": f"arn:aws:execute-api:{ctx.region}:{ctx.account}:{api_id}/*"}
    out = {"SourceArn": src["arn"]}
    if "account" in src:
        out["SourceAccount"] = src["account"]
    return out


def _permission_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    source = _source(ctx, p)
    policy = ctx.cloud.call("lambda", "get_policy", missing_ok=True, FunctionName=p["function"])
    statements = json.loads(policy["Policy"])["Statement"] if policy else []
    for st in statements:
        if st.get("Sid") != p["statement_id"]:
            continue
        if (
            source["SourceArn"] in json.dumps(st)
            and st.get("Principal", {}).get("Service") == p["principal"]
        ):
            return {
                "source_arn": source["SourceArn"]
            }  # already there (moto would accept a duplicate)
        ctx.call(
            "lambda", "remove_permission", FunctionName=p["function"], StatementId=p["statement_id"]
        )
    ctx.call(
        "lambda",
        "add_permission",
        FunctionName=p["function"],
        StatementId=p["statement_id"],
        Action="lambda:InvokeFunction",
        Principal=p["principal"],
        **source,
    )
    return {"source_arn": source["SourceArn"]}


def _permission_delete(ctx: Ctx, entry: Entry) -> None:
    ctx.cloud.call(
        "lambda",
        "remove_permission",
        missing_ok=True,
        FunctionName=entry.props["function"],
        StatementId=entry.props["statement_id"],
    )


# --- bucket notifications, schedules, queue event sources ----------------------


def _notification_put(ctx: Ctx, res: Resource) -> dict[str, Any]:
    configs = []
    for i, f in enumerate(res.props["functions"]):
        rules = [{"Name": n, "Value": f[n]} for n in ("prefix", "suffix") if f[n]]
        config: dict[str, Any] = {
            "Id": f"sls-py-{i}",
            "LambdaFunctionArn": f["function_arn"],
            "Events": ["s3:ObjectCreated:*"],
        }
        if rules:
            config["Filter"] = {"Key": {"FilterRules": rules}}
        configs.append(config)
    ctx.call(
        "s3",
        "put_bucket_notification_configuration",
        Bucket=res.props["bucket"],
        NotificationConfiguration={"LambdaFunctionConfigurations": configs},
    )
    return {}


def _notification_delete(ctx: Ctx, entry: Entry) -> None:
    ctx.cloud.call(
        "s3",
        "put_bucket_notification_configuration",
        missing_ok=True,
        Bucket=entry.props["bucket"],
        NotificationConfiguration={},
    )


def _schedule_put(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    out = ctx.call(
        "events",
        "put_rule",
        Name=p["rule"],
        ScheduleExpression=p["expression"],
        State="ENABLED" if p["enabled"] else "DISABLED",
        Description="sls-py schedule",
        Tags=ctx.tag_list(p["tags"]),
    )
    ctx.call(
        "events",
        "put_targets",
        Rule=p["rule"],
        Targets=[{"Id": "sls-py", "Arn": p["function_arn"]}],
    )
    return {"arn": out["RuleArn"]}


def _schedule_delete(ctx: Ctx, entry: Entry) -> None:
    rule = entry.props["rule"]
    ctx.cloud.call("events", "remove_targets", missing_ok=True, Rule=rule, Ids=["sls-py"])
    ctx.cloud.call("events", "delete_rule", missing_ok=True, Name=rule)


def _mapping_params(p: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "BatchSize": p["batch_size"],
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }
    if p["batch_size"] > 10:  # SQS requires a batching window above 10 messages
        params["MaximumBatchingWindowInSeconds"] = 1
    return params


def _mapping_create(ctx: Ctx, res: Resource) -> dict[str, Any]:
    p = res.props
    found = ctx.call(
        "lambda",
        "list_event_source_mappings",
        EventSourceArn=p["queue_arn"],
        FunctionName=p["function"],
    ).get("EventSourceMappings", [])
    if found:  # one exists already (moto would happily make a second): reuse it
        uuid = found[0]["UUID"]
        ctx.call("lambda", "update_event_source_mapping", UUID=uuid, **_mapping_params(p))
        for extra in found[1:]:
            ctx.cloud.call(
                "lambda", "delete_event_source_mapping", missing_ok=True, UUID=extra["UUID"]
            )
        return {"uuid": uuid}
    made = ctx.call(
        "lambda",
        "create_event_source_mapping",
        EventSourceArn=p["queue_arn"],
        FunctionName=p["function"],
        Enabled=True,
        **_mapping_params(p),
    )
    return {"uuid": made["UUID"]}


def _mapping_update(ctx: Ctx, res: Resource, entry: Entry, changes: list[str]) -> dict[str, Any]:
    ctx.call(
        "lambda",
        "update_event_source_mapping",
        UUID=entry.outputs["uuid"],
        **_mapping_params(res.props),
    )
    return {}


def _mapping_delete(ctx: Ctx, entry: Entry) -> None:
    ctx.cloud.call(
        "lambda", "delete_event_source_mapping", missing_ok=True, UUID=entry.outputs["uuid"]
    )


handles("role", _role_create, _role_update, _role_delete)
handles("bucket", _bucket_create, _bucket_update, _bucket_delete)
handles("deployment-bucket", _bucket_create, _bucket_update, _bucket_delete)
handles("table", _table_create, _table_update, _table_delete)
handles("queue", _queue_create, _queue_update, _queue_delete)
handles("function", _function_create, _function_update, _function_delete)
handles("permission", _permission_create, create_again(_permission_create), _permission_delete)
handles(
    "notification",
    lambda ctx, res: _notification_put(ctx, res),
    create_again(_notification_put),
    _notification_delete,
)
handles("schedule", _schedule_put, create_again(_schedule_put), _schedule_delete)
handles("event-source", _mapping_create, _mapping_update, _mapping_delete)
