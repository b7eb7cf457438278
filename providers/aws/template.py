"""The CloudFormation template of a stage, generated from the deploy's own model.

:func:`template` takes the same :class:`~sls_py_aws.model.Resource` list the
planner and executor use (:func:`~sls_py_aws.model.desired_resources`), built
for a *symbolic* account and region (:data:`ACCOUNT`, :data:`REGION`), and
turns each resource into CloudFormation through one small function per kind
(:data:`EMITTERS`). Names, ARNs, the IAM policy and the functions'
environments are therefore exactly what ``deploy`` would create; every string
holding the symbolic account or region becomes an ``Fn::Sub`` of
``${AWS::AccountId}`` / ``${AWS::Region}``.

A new resource kind in the model needs one ``@emits("kind")`` function here;
until it has one, packaging an app that uses it fails with a message saying
so (and a test checks that every kind in :data:`~sls_py_aws.model.KINDS` has
an emitter or a reason in :data:`NOT_IN_TEMPLATE`).

What differs per account is a parameter: ``ArtifactBucket`` and ``CodeKey``
(where the pipeline uploaded the zip), one ``NoEcho`` parameter per
``${env:NAME}`` a function's environment refers to (the package holds no
secret), and a bucket name where the deploy's name would hash the account id
(app + stage + bucket longer than 50 characters).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sls_py.spec import Spec

from .handlers_compute import _mapping_params, table_keys
from .iam import POLICY_NAME
from .model import Names, Resource, unique_bucket_name

#: Stand-ins for the account id and region, as long as real ones (12
#: characters, lower case), so names shorten and hash as they do on deploy.
ACCOUNT = "9sls9acct999"
REGION = "9sls9region9"
#: ``${env:NAME}`` in a function's environment is packaged as this token.
ENV_TOKEN = "9sls9env9{}9"
_ENV_TOKEN_RE = re.compile(r"9sls9env9([A-Za-z_][A-Za-z0-9_]*)9")

ARTIFACT_BUCKET = "ArtifactBucket"
CODE_KEY = "CodeKey"

#: Kinds of the model that have no template entry, and why.
NOT_IN_TEMPLATE = {
    "deployment-bucket": "the template's code comes from the ArtifactBucket parameter",
    "migrations": "CloudFormation runs no SQL: `sls-py migrate --provider aws` applies the "
    "database's migrations through the Data API once the stack is up",
}


class Template:
    """A CloudFormation template being built: parameters, resources, outputs."""

    def __init__(self, spec: Spec, names: Names, code_key: str) -> None:
        self.spec = spec
        self.names = names
        self.parameters: dict[str, Any] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, Any] = {}
        self.methods: list[str] = []  # API methods and responses, which a deployment waits for
        self._ids: dict[tuple[str, str], str] = {}
        self._subs: dict[str, str] = {ACCOUNT: "${AWS::AccountId}", REGION: "${AWS::Region}"}
        self.parameter(
            ARTIFACT_BUCKET,
            "The S3 bucket the pipeline uploaded the package's zip to (same region as the stack).",
        )
        self.parameter(CODE_KEY, "The zip's key in ArtifactBucket.", default=code_key)
        for bucket in spec.buckets:
            self._bucket_name_parameter(bucket.name, bucket.qualified_name)

    # --- building blocks ---------------------------------------------------------

    def parameter(
        self, name: str, description: str, *, default: str | None = None, secret: bool = False
    ) -> None:
        param: dict[str, Any] = {"Type": "String", "Description": description}
        if default is not None:
            param["Default"] = default
        if secret:
            param["NoEcho"] = True
        self.parameters[name] = param

    def _bucket_name_parameter(self, logical: str, qualified: str) -> None:
        """A bucket whose deployed name hashes the account id gets its name as a parameter."""
        symbolic = unique_bucket_name(qualified, ACCOUNT)
        if symbolic == f"{qualified}-{ACCOUNT}".lower():
            return
        param = "BucketName" + _camel(logical)
        self.parameter(
            param,
            f"The name of bucket {logical!r}: what `sls-py deploy` names it in this account "
            f"({qualified[:41]}-<hash>-<account id>; see `sls-py iam-policy --account ID`).",
        )
        self._subs[symbolic] = "${" + param + "}"

    def id(self, kind: str, name: str, suffix: str = "") -> str:
        """The logical id of ``kind`` ``name`` (alphanumeric, unique, stable)."""
        key = (kind + suffix, name)
        if key not in self._ids:
            base = _camel(kind) + _camel(name) + suffix
            taken = set(self._ids.values())
            self._ids[key] = base if base not in taken else f"{base}{_short(name)}"
        return self._ids[key]

    def add(
        self,
        kind: str,
        name: str,
        cfn_type: str,
        props: dict[str, Any],
        *,
        suffix: str = "",
        depends: list[str] | None = None,
    ) -> str:
        logical = self.id(kind, name, suffix)
        entry: dict[str, Any] = {"Type": cfn_type}
        if depends:
            entry["DependsOn"] = sorted(set(depends))
        entry["Properties"] = {k: self.sub(v) for k, v in props.items() if v is not None}
        self.resources[logical] = entry
        return logical

    def ref(self, kind: str, name: str, suffix: str = "") -> dict[str, str]:
        return {"Ref": self.id(kind, name, suffix)}

    def att(self, kind: str, name: str, attribute: str, suffix: str = "") -> dict[str, list[str]]:
        return {"Fn::GetAtt": [self.id(kind, name, suffix), attribute]}

    def sub(self, value: Any) -> Any:
        """``value`` with every string holding a symbolic name turned into an ``Fn::Sub``."""
        if isinstance(value, dict):
            return {k: self.sub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.sub(v) for v in value]
        if not isinstance(value, str) or not (
            any(token in value for token in self._subs) or _ENV_TOKEN_RE.search(value)
        ):
            return value
        text = value.replace("${", "${!")  # a literal ${ in Fn::Sub is written ${!
        for token, replacement in sorted(self._subs.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(token, replacement)
        text = _ENV_TOKEN_RE.sub(lambda m: "${" + self._env_parameter(m.group(1)) + "}", text)
        return {"Fn::Sub": text}

    def _env_parameter(self, variable: str) -> str:
        name = "Env" + "".join(w.capitalize() for w in re.split(r"[^A-Za-z0-9]+", variable) if w)
        if name not in self.parameters:
            self.parameter(
                name,
                f"The value of ${{env:{variable}}} in the functions' environment "
                "(not in the package: give it when the stack is deployed).",
                secret=True,
            )
        return name

    def tags(self, tags: dict[str, str]) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]

    def function_id(self, physical: str) -> str:
        """The logical id of the function deployed as ``physical``."""
        name = next(fn.name for fn in self.spec.functions if self.names.function(fn.name) == physical)
        return self.id("function", name)

    def function_arn(self, arn: str) -> dict[str, list[str]]:
        """``Fn::GetAtt`` of the function whose ARN is ``arn``."""
        return {"Fn::GetAtt": [self.function_id(arn.rsplit(":", 1)[-1]), "Arn"]}

    def path(self, path: str) -> Any:
        """The id of the API resource at ``path``, adding the ``AWS::ApiGateway::Resource``
        of each missing segment."""
        api = self.ref("api", self.names.api)
        current: Any = self.att("api", self.names.api, "RootResourceId")
        so_far = ""
        for part in [p for p in path.split("/") if p]:
            so_far += "/" + part
            logical = self.id("path", so_far)
            if logical not in self.resources:
                self.add(
                    "path",
                    so_far,
                    "AWS::ApiGateway::Resource",
                    {"RestApiId": api, "ParentId": current, "PathPart": part},
                )
            current = {"Ref": logical}
        return current

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": f"sls-py app {self.spec.app}, stage {self.spec.stage} "
            "(written by `sls-py package`; change the app, not this file)",
            "Parameters": self.parameters,
            "Resources": self.resources,
        }
        if self.outputs:
            doc["Outputs"] = self.outputs
        return doc


def _camel(text: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", text) if p)


def _short(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:6]


# --- one emitter per kind ---------------------------------------------------------

Emitter = Callable[[Template, Resource], None]
EMITTERS: dict[str, Emitter] = {}


def emits(kind: str) -> Callable[[Emitter], Emitter]:
    """Register the template entry of a model kind."""

    def register(fn: Emitter) -> Emitter:
        EMITTERS[kind] = fn
        return fn

    return register


@emits("role")
def _role(t: Template, r: Resource) -> None:
    p = r.props
    t.add(
        "role",
        r.name,
        "AWS::IAM::Role",
        {
            "RoleName": p["name"],
            "Description": "sls-py: the functions of one app and stage",
            "AssumeRolePolicyDocument": p["trust"],
            "Policies": [{"PolicyName": POLICY_NAME, "PolicyDocument": p["policy"]}],
            "Tags": t.tags(p["tags"]),
        },
    )


@emits("bucket")
def _bucket(t: Template, r: Resource) -> None:
    t.add(
        "bucket",
        r.name,
        "AWS::S3::Bucket",
        {
            "BucketName": r.props["name"],
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
            "Tags": t.tags(r.props["tags"]),
        },
    )


@emits("table")
def _table(t: Template, r: Resource) -> None:
    attrs, schema = table_keys(r.props)
    t.add(
        "table",
        r.name,
        "AWS::DynamoDB::Table",
        {
            "TableName": r.props["name"],
            "AttributeDefinitions": attrs,
            "KeySchema": schema,
            "BillingMode": "PAY_PER_REQUEST",
            "Tags": t.tags(r.props["tags"]),
        },
    )


@emits("queue")
def _queue(t: Template, r: Resource) -> None:
    p = r.props
    t.add(
        "queue", r.name, "AWS::SQS::Queue", {"QueueName": p["dlq"], "Tags": t.tags(p["tags"])}, suffix="Dlq"
    )
    t.add(
        "queue",
        r.name,
        "AWS::SQS::Queue",
        {
            "QueueName": p["name"],
            "VisibilityTimeout": p["visibility_timeout_s"],
            "RedrivePolicy": {
                "deadLetterTargetArn": t.att("queue", r.name, "Arn", "Dlq"),
                "maxReceiveCount": p["max_receives"],
            },
            "Tags": t.tags(p["tags"]),
        },
    )


@emits("function")
def _function(t: Template, r: Resource) -> None:
    p = r.props
    log_group = t.add(
        "log-group",
        r.name,
        "AWS::Logs::LogGroup",
        {"LogGroupName": f"/aws/lambda/{p['name']}", "Tags": t.tags(p["tags"])},
    )
    t.add(
        "function",
        r.name,
        "AWS::Lambda::Function",
        {
            "FunctionName": p["name"],
            "Runtime": p["runtime"],
            "Architectures": [p["architecture"]],
            "Handler": p["handler"],
            "MemorySize": p["memory_mb"],
            "Timeout": p["timeout_s"],
            "Role": t.att("role", t.names.role, "Arn"),
            "Description": p["description"],
            "Environment": {"Variables": dict(sorted(p["environment"].items()))},
            "ReservedConcurrentExecutions": p["concurrency"],
            "Code": {"S3Bucket": {"Ref": ARTIFACT_BUCKET}, "S3Key": {"Ref": CODE_KEY}},
            "Tags": t.tags(p["tags"]),
        },
        depends=[log_group],
    )


@emits("async-config")
def _async_config(t: Template, r: Resource) -> None:
    """A called function's asynchronous retries, and its on-failure SQS queue."""
    p = r.props
    t.add(
        "async-config",
        r.name,
        "AWS::SQS::Queue",
        {"QueueName": p["dlq"], "Tags": t.tags(p["tags"])},
        suffix="Dlq",
    )
    t.add(
        "async-config",
        r.name,
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": t.function_id(p["function"])},
            "Qualifier": "$LATEST",  # what the deploy's unqualified configuration applies to
            "MaximumRetryAttempts": p["max_retries"],
            "MaximumEventAgeInSeconds": p["max_age_s"],
            "DestinationConfig": {"OnFailure": {"Destination": t.att("async-config", r.name, "Arn", "Dlq")}},
        },
    )


@emits("permission")
def _permission(t: Template, r: Resource) -> None:
    p = r.props
    source = p["source"]
    props: dict[str, Any] = {
        "FunctionName": {"Ref": t.function_id(p["function"])},
        "Action": "lambda:InvokeFunction",
        "Principal": p["principal"],
    }
    if "api" in source:
        api_id = t.id("api", source["api"])
        props["SourceArn"] = {
            "Fn::Sub": f"arn:aws:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{api_id}}}/*"
        }
    else:
        # a constructed ARN, not a Ref: the bucket's notification needs this permission first
        props["SourceArn"] = source["arn"]
        if "account" in source:
            props["SourceAccount"] = source["account"]
    t.add("permission", r.name, "AWS::Lambda::Permission", props)


@emits("notification")
def _notification(t: Template, r: Resource) -> None:
    """Set on the bucket itself, after the permissions that let S3 invoke the functions."""
    bucket = t.resources[t.id("bucket", r.name)]
    configs, needs = [], []
    for f in r.props["functions"]:
        config: dict[str, Any] = {
            "Event": "s3:ObjectCreated:*",
            "Function": t.function_arn(f["function_arn"]),
        }
        rules = [{"Name": n, "Value": f[n]} for n in ("prefix", "suffix") if f[n]]
        if rules:
            config["Filter"] = {"S3Key": {"Rules": rules}}
        configs.append(config)
        fn_name = next(
            fn.name for fn in t.spec.functions if t.names.function_arn(fn.name) == f["function_arn"]
        )
        needs.append(t.id("permission", f"{fn_name}/sls-py-s3-{r.name}"))
    bucket["Properties"]["NotificationConfiguration"] = {"LambdaConfigurations": configs}
    bucket["DependsOn"] = sorted({*bucket.get("DependsOn", []), *needs})


@emits("schedule")
def _schedule(t: Template, r: Resource) -> None:
    p = r.props
    t.add(
        "schedule",
        r.name,
        "AWS::Events::Rule",
        {
            "Name": p["rule"],
            "ScheduleExpression": p["expression"],
            "State": "ENABLED" if p["enabled"] else "DISABLED",
            "Description": "sls-py schedule",
            "Targets": [{"Id": "sls-py", "Arn": t.function_arn(p["function_arn"])}],
            "Tags": t.tags(p["tags"]),
        },
    )


@emits("event-source")
def _event_source(t: Template, r: Resource) -> None:
    p = r.props
    queue = next(q.name for q in t.spec.queues if t.names.queue_arn(q.name) == p["queue_arn"])
    t.add(
        "event-source",
        r.name,
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": t.att("queue", queue, "Arn"),
            "FunctionName": {"Ref": t.function_id(p["function"])},
            "Enabled": True,
            **_mapping_params(p),
        },
    )


# --- the whole template -------------------------------------------------------------


def template(spec: Spec, desired: list[Resource], code_key: str) -> dict[str, Any]:
    """The CloudFormation template (as data) creating ``desired``, which must have
    been built for :data:`ACCOUNT` and :data:`REGION`."""
    t = Template(spec, Names(spec, ACCOUNT, REGION), code_key)
    for res in desired:
        if res.kind in NOT_IN_TEMPLATE:
            continue
        emit = EMITTERS.get(res.kind)
        if emit is None:
            from sls_py.errors import ProviderError

            raise ProviderError(
                f"internal error: resource kind {res.kind!r} has no CloudFormation template entry",
                hint="add an @emits function for it in sls_py_aws/template.py",
            )
        emit(t, res)
    return t.document()


# the API Gateway and database kinds register themselves from their own modules
from . import template_api, template_cache, template_database  # noqa: E402, F401
