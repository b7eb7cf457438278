"""Build: what the stage should look like on AWS, worked out without any network.

:func:`desired_resources` turns a :class:`~sls_py.spec.Spec` (plus the account
id, region and the built package's hash) into a list of :class:`Resource`:
plain data, one entry per thing a deploy creates, in dependency order. The
planner compares that list with the recorded state and with AWS; the
executor creates, updates and deletes by ``kind``.

Names come from app + stage (``clonezero-dev-work-magic``), so two stages never
share anything, and a resource that a crashed deploy created but did not record
is found again by its name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sls_py.schedules import parse_schedule
from sls_py.spec import (
    HttpTriggerSpec,
    QueueTriggerSpec,
    ScheduleTriggerSpec,
    Spec,
    UploadTriggerSpec,
)

from .databases import database_resources
from .databases import physical as database_physical
from .iam import role_policy, trust_policy
from .network import network_resources

#: Kinds in the order they are created; deletion runs in reverse.
KINDS = (
    "role",
    "deployment-bucket",
    "bucket",
    "table",
    "database-secret",
    "database",
    "database-instance",
    "migrations",
    "queue",
    "network",
    "cache",
    "function",
    "async-config",
    "api",
    "permission",
    "route",
    "cors",
    "gateway-response",
    "stage",
    "usage-plan",
    "api-key",
    "notification",
    "schedule",
    "event-source",
)
RANK = {kind: i for i, kind in enumerate(KINDS)}

HANDLER = "sls_py_aws.handler.handle"
#: The methods an ``ANY`` route answers, as a CORS preflight lists them.
ANY_EXPANDED = {"ANY": ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")}
DEFAULT_RUNTIME = "python3.12"
DEFAULT_ARCHITECTURE = "x86_64"
#: Zips larger than this go to Lambda through a deployment bucket.
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
#: Lambda's limit on a function's unzipped code.
UNZIPPED_LIMIT = 250 * 1024 * 1024
#: Retries of a failed asynchronous invocation (AWS's default and maximum: 2).
ASYNC_RETRIES = 2
#: How long Lambda keeps an asynchronous invocation it could not run yet (6 h, the maximum).
ASYNC_MAX_AGE_S = 21600
TAG_APP = "sls-py:app"
TAG_STAGE = "sls-py:stage"


@dataclass(frozen=True)
class Resource:
    """One thing a deploy manages: ``kind`` (see :data:`KINDS`), a logical
    ``name`` (what the plan prints) and its desired ``props`` (plain JSON data).

    ``secret_props`` names props whose values must never be written to the
    state file or printed (a function's resolved environment).
    """

    kind: str
    name: str
    props: dict[str, Any]
    secret_props: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    def recorded_props(self) -> dict[str, Any]:
        """The props as written to the state file: secrets replaced by digests."""
        out = dict(self.props)
        for name in self.secret_props:
            value = out.get(name)
            if isinstance(value, dict):
                out[name] = {k: "sha256:" + _digest(v)[:16] for k, v in sorted(value.items())}
        return out


@dataclass(frozen=True)
class Target:
    """Where and as whom: account, region, and the package to deploy."""

    account: str
    region: str
    code_sha256: str = ""
    code_size: int = 0


@dataclass
class Names:
    """Physical names and ARNs of a stage's resources."""

    spec: Spec
    account: str
    region: str
    extra: dict[str, str] = field(default_factory=dict)

    def function(self, name: str) -> str:
        return self.spec.qualified(name)

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function(name)}"

    def log_group(self, name: str) -> str:
        return f"/aws/lambda/{self.function(name)}"

    @property
    def role(self) -> str:
        return self.spec.qualified("lambda")

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.role}"

    @property
    def api(self) -> str:
        return f"{self.spec.app}-{self.spec.stage}"

    @property
    def usage_plan(self) -> str:
        return self.spec.qualified("usage")

    def api_key(self, name: str) -> str:
        return self.spec.qualified(name)

    def bucket(self, logical: str) -> str:
        """A globally unique, lower-case bucket name of at most 63 characters."""
        qualified = next(b.qualified_name for b in self.spec.buckets if b.name == logical)
        return unique_bucket_name(qualified, self.account)

    @property
    def deployment_bucket(self) -> str:
        return unique_bucket_name(self.spec.qualified("deploys"), self.account)

    def queue(self, logical: str) -> str:
        return next(q.qualified_name for q in self.spec.queues if q.name == logical)

    def queue_arn(self, logical: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{self.queue(logical)}"

    def dlq(self, logical: str) -> str:
        return self.queue(logical) + "-dlq"

    def async_dlq(self, function: str) -> str:
        """The on-failure queue of ``function``'s asynchronous invocations."""
        return f"{self.function(function)}-async-dlq"

    def async_dlq_arn(self, function: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{self.async_dlq(function)}"

    def table(self, logical: str) -> str:
        return next(t.qualified_name for t in self.spec.tables if t.name == logical)

    def table_arn(self, logical: str) -> str:
        return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{self.table(logical)}"

    def rule(self, schedule: str) -> str:
        return self.spec.qualified(schedule)

    def rule_arn(self, schedule: str) -> str:
        return f"arn:aws:events:{self.region}:{self.account}:rule/{self.rule(schedule)}"

    def tags(self) -> dict[str, str]:
        return {TAG_APP: self.spec.app, TAG_STAGE: self.spec.stage}


def unique_bucket_name(qualified: str, account: str) -> str:
    """``qualified-account``, shortened with a hash when over S3's 63 characters."""
    name = f"{qualified}-{account}".lower()
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = 63 - len(account) - len(digest) - 2
    return f"{qualified[:keep].rstrip('-')}-{digest}-{account}".lower()


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def digest(value: Any) -> str:
    """A stable hash of plain data."""
    return _digest(value)


def physical_names(names: Names) -> dict[str, dict[str, str]]:
    """The physical names the functions' resource handles use, by kind."""
    spec = names.spec
    return {
        "buckets": {b.name: names.bucket(b.name) for b in spec.buckets},
        "queues": {q.name: names.queue(q.name) for q in spec.queues},
        "tables": {t.name: names.table(t.name) for t in spec.tables},
        **({"databases": database_physical(names)} if spec.databases else {}),
    }


def settings(spec: Spec) -> dict[str, Any]:
    """The AWS provider settings with defaults."""
    raw = spec.provider_settings("aws")
    return {
        "region": raw.get("region"),
        "runtime": str(raw.get("runtime", DEFAULT_RUNTIME)),
        "architecture": str(raw.get("architecture", DEFAULT_ARCHITECTURE)),
        "include_dependencies": bool(raw.get("include_dependencies", True)),
        "wheel_dir": raw.get("wheel_dir"),
    }


def desired_resources(
    spec: Spec,
    target: Target,
    environments: dict[str, dict[str, str]],
    *,
    project_root: Path | None = None,
) -> list[Resource]:
    """Everything the stage should have, in creation order.

    :param environments: each function's whole environment (from
        :func:`sls_py_aws.environment.lambda_environment`: its own variables,
        resolved, plus the handler's contract).
    :param project_root: where the databases' migration folders are (``None``:
        no migrations, as when ``remove`` looks for what may exist).
    """
    names = Names(spec, target.account, target.region)
    conf = settings(spec)
    tags = names.tags()
    out: list[Resource] = []
    add = out.append

    add(
        Resource(
            "role",
            names.role,
            {
                "name": names.role,
                "trust": trust_policy(),
                "policy": role_policy(spec, names),
                "tags": tags,
            },
        )
    )
    if target.code_size > DIRECT_UPLOAD_LIMIT:
        add(
            Resource(
                "deployment-bucket",
                names.deployment_bucket,
                {"name": names.deployment_bucket, "tags": tags},
            )
        )
    for b in spec.buckets:
        add(Resource("bucket", b.name, {"name": names.bucket(b.name), "tags": tags}))
    for t in spec.tables:
        add(
            Resource(
                "table",
                t.name,
                {
                    "name": names.table(t.name),
                    "key": t.key,
                    "sort_key": t.sort_key,
                    # DynamoDB fixes a key's type (S or N) at creation: a change replaces the table
                    "key_type": t.key_type,
                    "sort_key_type": t.sort_key_type if t.sort_key else None,
                    "tags": tags,
                },
            )
        )
    out.extend(database_resources(spec, names, project_root))  # see .databases
    for q in spec.queues:
        add(
            Resource(
                "queue",
                q.name,
                {
                    "name": names.queue(q.name),
                    "dlq": names.dlq(q.name),
                    "visibility_timeout_s": q.visibility_timeout_s,
                    "max_receives": q.max_receives,
                    "tags": tags,
                },
            )
        )

    out.extend(network_resources(spec, names))  # VPC and ElastiCache (see .network)

    for fn in spec.functions:
        add(
            Resource(
                "function",
                fn.name,
                {
                    "name": names.function(fn.name),
                    "runtime": conf["runtime"],
                    "architecture": conf["architecture"],
                    "handler": HANDLER,
                    "memory_mb": fn.memory_mb,
                    "timeout_s": int(-(-fn.timeout_s // 1)),
                    "role": names.role_arn,
                    "description": fn.description[:256],
                    "environment": dict(environments.get(fn.name, {})),
                    "concurrency": fn.concurrency,
                    "code_sha256": target.code_sha256,
                    "tags": tags,
                    "vpc": bool(spec.caches),  # in the stage's network (see .network)
                },
                secret_props=("environment",),
            )
        )

    for callee in sorted({t for fn in spec.functions for t in fn.invokes}):
        # asynchronous invocations: retried twice, then sent to an SQS dead-letter queue
        add(
            Resource(
                "async-config",
                callee,
                {
                    "function": names.function(callee),
                    "dlq": names.async_dlq(callee),
                    "max_retries": ASYNC_RETRIES,
                    "max_age_s": ASYNC_MAX_AGE_S,
                    "tags": tags,
                },
            )
        )

    http = [(fn.name, t) for fn in spec.functions for t in fn.http_triggers()]
    for fn_name in dict.fromkeys(f for f, _ in http):
        add(
            Resource(
                "permission",
                f"{fn_name}/sls-py-api",
                {
                    "function": names.function(fn_name),
                    "statement_id": "sls-py-api",
                    "principal": "apigateway.amazonaws.com",
                    "source": {"api": names.api},
                },
            )
        )
    uploads = [
        (fn, t) for fn in spec.functions for t in fn.triggers if isinstance(t, UploadTriggerSpec)
    ]
    for fn_name, bucket in dict.fromkeys((fn.name, t.bucket) for fn, t in uploads):
        add(
            Resource(
                "permission",
                f"{fn_name}/sls-py-s3-{bucket}",
                {
                    "function": names.function(fn_name),
                    "statement_id": f"sls-py-s3-{bucket}",
                    "principal": "s3.amazonaws.com",
                    "source": {
                        "arn": f"arn:aws:s3:::{names.bucket(bucket)}",
                        "account": target.account,
                    },
                },
            )
        )
    schedules = [
        (fn, t) for fn in spec.functions for t in fn.triggers if isinstance(t, ScheduleTriggerSpec)
    ]
    for fn, t in schedules:
        add(
            Resource(
                "permission",
                f"{fn.name}/sls-py-events-{t.name}",
                {
                    "function": names.function(fn.name),
                    "statement_id": f"sls-py-events-{t.name}",
                    "principal": "events.amazonaws.com",
                    "source": {"arn": names.rule_arn(t.name)},
                },
            )
        )

    if http:
        # binary responses reach clients as bytes; the adapter decodes base64 bodies
        add(Resource("api", names.api, {"name": names.api, "binary": ["*/*"], "tags": tags}))
        routes: list[dict[str, Any]] = []
        cors_paths: dict[str, Any] = {}
        for fn_name, t in sorted(http, key=lambda ft: (ft[1].path, ft[1].method)):
            route = {
                "method": t.method,
                "path": t.path,
                "function": names.function(fn_name),
                "function_arn": names.function_arn(fn_name),
                "api_key": t.api_key,
            }
            routes.append(route)
            add(Resource("route", f"{t.method} {t.path}", route))
            if t.cors is not None and t.method != "OPTIONS":
                entry = cors_paths.setdefault(t.path, {"cors": t.cors.model_dump(), "methods": []})
                entry["methods"].append(t.method)
        explicit_options = {t.path for _, t in http if t.method == "OPTIONS"}
        for path in explicit_options:  # the app answers preflights there itself
            cors_paths.pop(path, None)
        for path, entry in cors_paths.items():
            cors = entry["cors"]
            methods = cors["methods"] or sorted(
                {m for method in entry["methods"] for m in ANY_EXPANDED.get(method, (method,))}
                | {"OPTIONS"}
            )  # a preflight lists real methods: ANY is not one a browser knows
            add(
                Resource(
                    "cors",
                    path,
                    {
                        "path": path,
                        "origin": cors["origins"][0] if cors["origins"] else "*",
                        "headers": ",".join(cors["headers"]),
                        "methods": ",".join(methods),
                        "max_age_s": cors["max_age_s"],
                        "credentials": cors["allow_credentials"],
                    },
                )
            )
        if cors_paths:  # errors API Gateway answers itself carry CORS headers too
            # (one static value per API: the first origin; the adapter echoes any listed one)
            origins = next(iter(cors_paths.values()))["cors"]["origins"] or ["*"]
            for response in ("DEFAULT_4XX", "DEFAULT_5XX"):
                add(
                    Resource("gateway-response", response, {"type": response, "origin": origins[0]})
                )
        add(
            Resource(
                "stage",
                spec.stage,
                {
                    "stage": spec.stage,
                    "routes": digest([routes, sorted(cors_paths)]),
                    "cors": digest([cors_paths, bool(cors_paths)]),
                    "tags": tags,
                },
            )
        )
        if spec.gateway.api_keys:
            usage = spec.gateway.usage
            add(
                Resource(
                    "usage-plan",
                    names.usage_plan,
                    {
                        "name": names.usage_plan,
                        "stage": spec.stage,
                        "rate": usage.rate if usage else None,
                        "burst": usage.burst if usage else None,
                        "quota": usage.quota if usage else None,
                        "period": usage.period if usage else None,
                        "tags": tags,
                    },
                )
            )
            for key in spec.gateway.api_keys:
                add(Resource("api-key", key, {"name": names.api_key(key), "tags": tags}))

    by_bucket: dict[str, list[dict[str, Any]]] = {}
    for fn, t in uploads:
        by_bucket.setdefault(t.bucket, []).append(
            {
                "function_arn": names.function_arn(fn.name),
                "prefix": t.prefix,
                "suffix": t.suffix,
            }
        )
    for bucket, configs in by_bucket.items():
        add(
            Resource("notification", bucket, {"bucket": names.bucket(bucket), "functions": configs})
        )
    for fn, t in schedules:
        add(
            Resource(
                "schedule",
                t.name,
                {
                    "rule": names.rule(t.name),
                    "expression": parse_schedule(t.expression).aws(),
                    "enabled": t.enabled,
                    "function_arn": names.function_arn(fn.name),
                    "tags": tags,
                },
            )
        )
    for fn in spec.functions:
        for t in fn.triggers:
            if isinstance(t, QueueTriggerSpec):
                add(
                    Resource(
                        "event-source",
                        f"{fn.name}<-{t.queue}",
                        {
                            "function": names.function(fn.name),
                            "queue_arn": names.queue_arn(t.queue),
                            "batch_size": t.batch_size,
                        },
                    )
                )
    return out


def is_http(trigger: object) -> bool:
    """Whether a trigger is an HTTP route."""
    return isinstance(trigger, HttpTriggerSpec)
