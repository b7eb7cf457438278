"""AWS limits checked before anything is built or deployed (no network)."""

from __future__ import annotations

from sls_py.errors import SpecError
from sls_py.spec import QueueTriggerSpec, Spec

#: Lambda's longest timeout and API Gateway's longest integration timeout.
MAX_TIMEOUT_S = 900
API_GATEWAY_TIMEOUT_S = 29
MIN_MEMORY_MB = 128


def _check_length(what: str, name: str, limit: int, hint: str) -> None:
    if len(name) > limit:
        raise SpecError(
            f"{what} {name!r} is {len(name)} characters, over AWS's limit of {limit}", hint=hint
        )


def validate(spec: Spec) -> list[str]:
    """Raise :class:`SpecError` for what AWS would refuse; return warnings."""
    warnings: list[str] = []
    shorter = "use a shorter app, stage or function name"
    _check_length("IAM role name", spec.qualified("lambda"), 64, shorter)
    consumers: dict[str, list[tuple[str, float]]] = {}
    for fn in spec.functions:
        _check_length("Lambda function name", spec.qualified(fn.name), 64, shorter)
        if fn.timeout_s > MAX_TIMEOUT_S:
            raise SpecError(
                f"function {fn.name!r}: timeout_s = {fn.timeout_s:g} is over Lambda's limit "
                f"of {MAX_TIMEOUT_S} s",
                hint="split the work, or run it from a queue in smaller pieces",
            )
        if fn.memory_mb < MIN_MEMORY_MB:
            raise SpecError(
                f"function {fn.name!r}: memory_mb = {fn.memory_mb} is under Lambda's minimum "
                f"of {MIN_MEMORY_MB}",
                hint=f"use memory_mb >= {MIN_MEMORY_MB}",
            )
        if fn.http_triggers() and fn.timeout_s > API_GATEWAY_TIMEOUT_S:
            warnings.append(
                f"function {fn.name!r} has HTTP routes and timeout_s = {fn.timeout_s:g}, "
                f"but API Gateway stops waiting after {API_GATEWAY_TIMEOUT_S} s: "
                "callers get 504 before the function ends"
            )
        for t in fn.triggers:
            if t.kind == "schedule":
                _check_length(
                    "EventBridge rule name",
                    spec.qualified(t.name),
                    64,
                    shorter + " or schedule name",
                )
            if isinstance(t, QueueTriggerSpec):
                consumers.setdefault(t.queue, []).append((fn.name, fn.timeout_s))
    protected = [
        f"{t.method} {t.path}" for fn in spec.functions for t in fn.http_triggers() if t.api_key
    ]
    if protected and not spec.gateway.api_keys:
        warnings.append(
            f"route {protected[0]} requires an API key, but the stage has no api_keys: "
            "API Gateway will answer 403 to every call"
        )
    for q in spec.queues:
        _check_length("SQS queue name", q.qualified_name + "-dlq", 80, shorter + " or queue name")
        for fn_name, timeout in consumers.get(q.name, []):
            if q.visibility_timeout_s < timeout:
                raise SpecError(
                    f"queue {q.name!r}: visibility_timeout_s = {q.visibility_timeout_s} is shorter "
                    f"than the timeout of its consumer {fn_name!r} ({timeout:g} s): AWS refuses it",
                    hint=f"declare the queue with visibility_timeout_s >= {int(-(-timeout // 1))}",
                )
    for t in spec.tables:
        _check_length("DynamoDB table name", t.qualified_name, 255, shorter)
    for key in spec.gateway.api_keys:
        _check_length("API key name", spec.qualified(key), 1024, "use a shorter key name")
    return warnings
