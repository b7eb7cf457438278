"""The environment of a deployed function: the contract of :mod:`sls_py_aws.handler`
plus the function's own variables, checked against Lambda's rules.

Build-side only (not packed into the zip). The deployer sets exactly what
:func:`lambda_environment` returns, so the handler and the deployer cannot
disagree about names or JSON shapes, and the JSON is canonical (sorted keys,
no spaces) so an unchanged configuration compares equal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sls_py.config import resolve_environment
from sls_py.errors import SpecError
from sls_py.spec import FunctionSpec, Spec

DRIVER = "sls_py_aws.resources:AwsDriver"

#: Lambda's limit on the total size of a function's environment variables.
MAX_ENVIRONMENT_BYTES = 4 * 1024

#: Keys Lambda reserves (setting them fails), and keys sls-py sets itself.
RESERVED = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_REGION",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",
    }
)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def resource_names(
    spec: Spec, names: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, dict[str, str]]:
    """logical -> physical names per kind; ``names`` overrides the spec's qualified names
    (for example bucket names made globally unique by the deployer)."""
    out = {
        "buckets": {b.name: b.qualified_name for b in spec.buckets},
        "queues": {q.name: q.qualified_name for q in spec.queues},
        "tables": {t.name: t.qualified_name for t in spec.tables},
    }
    if spec.databases:  # only then: the environment of apps without one stays as it was
        out["databases"] = {d.name: d.qualified_name for d in spec.databases}
    if spec.configs:  # app.config handles: the stage's SSM path, and its defaults
        out["configs"] = {c.name: f"/{spec.app}/{spec.stage}/" for c in spec.configs}
        out["config_defaults"] = dict(spec.configs[0].defaults)
    for kind, mapping in (names or {}).items():
        out.setdefault(kind, {}).update(mapping)
    return out


def cors_rules(fn: FunctionSpec) -> dict[str, dict[str, Any]]:
    """``SLS_PY_CORS`` for ``fn``: ``"METHOD /path"`` -> the route's CORS settings."""
    return {f"{t.method} {t.path}": t.cors.model_dump() for t in fn.http_triggers() if t.cors}


def lambda_environment(
    spec: Spec,
    fn: FunctionSpec,
    *,
    names: Mapping[str, Mapping[str, str]] | None = None,
    driver_options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The ``Environment.Variables`` of ``fn``'s Lambda function.

    :param names: physical names overriding ``spec``'s qualified names, by kind
        (``{"buckets": {"uploads": "clonezero-dev-uploads-1a2b3c"}}``).
    :param driver_options: ``options`` for the AwsDriver (``region``,
        ``endpoint_url``); usually none, boto3's defaults apply in Lambda.
    :param environ: where ``${env:NAME}`` references are resolved (default:
        this process's environment).
    :raises SpecError: a reserved variable name, or more than Lambda's 4 KB.
    """
    user = resolve_environment(dict(fn.environment), dict(environ) if environ is not None else None)
    for key in sorted(user):
        if key in RESERVED or key.startswith("SLS_PY_"):
            raise SpecError(
                f"function {fn.name!r}: environment variable {key} is reserved on AWS Lambda",
                hint="rename it; Lambda and sls-py set these themselves",
            )
    resources = {
        "driver": DRIVER,
        "options": dict(driver_options or {}),
        **resource_names(spec, names),
    }
    if fn.invokes:  # the Lambda functions it may invoke (sls_py.runtime.invoke)
        resources["functions"] = {t: spec.qualified(t) for t in fn.invokes}
    env = {
        **user,
        "SLS_PY_APP": spec.app_ref,
        "SLS_PY_FUNCTION": fn.name,
        "SLS_PY_STAGE": spec.stage,
        "SLS_PY_RESOURCES": _canonical(resources),
        "SLS_PY_CORS": _canonical(cors_rules(fn)),
    }
    size = sum(len(k.encode()) + len(v.encode()) for k, v in env.items())
    if size > MAX_ENVIRONMENT_BYTES:
        raise SpecError(
            f"function {fn.name!r}: its environment is {size} bytes, over Lambda's limit of "
            f"{MAX_ENVIRONMENT_BYTES} bytes",
            hint="move large values to a bucket or a parameter store and read them at start",
        )
    return env
