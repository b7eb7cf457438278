"""Working with a deployed stage: invoke a function, read its logs, fire triggers."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from sls_py.errors import FunctionFailed, ProviderError
from sls_py.provider import Invocation, LogRecord, TriggerRequest
from sls_py.runtime.errors import ErrorInfo
from sls_py.spec import ScheduleTriggerSpec, Spec

from .cloud import Cloud

_REQUEST_ID = re.compile(r"RequestId: ([0-9a-f-]{36})")


def invoke(spec: Spec, cloud: Cloud, function: str, payload: Any, logs: bool) -> Invocation:
    """Call the deployed function with ``payload`` (a direct invocation) and wait.

    A function error becomes :attr:`Invocation.error` (type and message, and the
    HTTP status the adapter put in the message); with ``logs`` the invocation's
    log tail (the last 4 KB, as Lambda returns it) is in :attr:`Invocation.logs`.
    """
    name = spec.qualified(function)
    params: dict[str, Any] = {"FunctionName": name, "Payload": json.dumps(payload, allow_nan=False).encode()}
    if logs:
        params["LogType"] = "Tail"
    out = cloud.call("lambda", "invoke", missing_ok=True, **params)
    if out is None:
        raise ProviderError(
            f"function {function!r} is not deployed in stage {spec.stage!r} "
            f"(no Lambda function {name})",
            hint="run `sls-py deploy --provider aws` first",
        )
    body = out["Payload"].read()
    request_id = str(out.get("ResponseMetadata", {}).get("RequestId", ""))
    tail = (
        base64.b64decode(out["LogResult"]).decode("utf-8", "replace")
        if out.get("LogResult")
        else None
    )
    try:
        value = json.loads(body) if body else None
    except json.JSONDecodeError:
        value = body.decode("utf-8", "replace")
    if out.get("FunctionError"):
        error = timeout_error(function, value) or invocation_error(value)
        return Invocation(function=function, error=error, request_id=request_id, logs=tail)
    return Invocation(function=function, result=value, request_id=request_id, logs=tail)


_LAMBDA_TIMEOUT = re.compile(r"Task timed out after ([0-9.]+) seconds")


def timeout_error(function: str, value: Any) -> ErrorInfo | None:
    """The contract's timeout error (``TimeoutError``, status 504) when Lambda stopped the
    function at its timeout (``Sandbox.Timedout``: "Task timed out after 1.00 seconds")."""
    message = str(value.get("errorMessage", "")) if isinstance(value, dict) else ""
    found = _LAMBDA_TIMEOUT.search(message)
    if found is None:
        return None
    seconds = float(found.group(1))
    return ErrorInfo(
        type="TimeoutError", message=f"function {function!r} timed out after {seconds:g} s", status=504
    )


def invocation_error(value: Any) -> ErrorInfo:
    """The error of a failed invocation, from Lambda's ``errorType``/``errorMessage``
    (status and details as the adapter put them there) and ``stackTrace``."""
    from .handler import error_info

    if isinstance(value, dict):
        info = error_info(str(value.get("errorType", "Error")), str(value.get("errorMessage", "")))
        trace = value.get("stackTrace")
        if isinstance(trace, list) and trace:
            info.traceback = [str(t) for t in trace]
        return info
    return ErrorInfo(type="Error", message=str(value))


def logs(
    spec: Spec,
    cloud: Cloud,
    function: str,
    since_s: float | None,
    follow: bool,
    *,
    poll_s: float = 2.0,
) -> Iterator[LogRecord]:
    """Records of the function's CloudWatch log group, oldest first; with
    ``follow``, keep polling for new ones until interrupted."""
    group = f"/aws/lambda/{spec.qualified(function)}"
    start_ms = int((time.time() - since_s) * 1000) if since_s is not None else 0
    seen: set[str] = set()
    request_id = ""
    while True:
        params: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "interleaved": True}
        try:
            events = list(cloud.paginate("logs", "filter_log_events", "events", **params))
        except ProviderError as exc:
            if getattr(exc, "code", "") != "ResourceNotFoundException":
                raise
            events = []  # no log group yet: the function never ran
        for ev in sorted(events, key=lambda e: (e["timestamp"], e.get("eventId", ""))):
            if ev.get("eventId") in seen:
                continue
            seen.add(ev.get("eventId", ""))
            start_ms = max(start_ms, int(ev["timestamp"]))
            message = str(ev.get("message", "")).rstrip("\n")
            m = _REQUEST_ID.search(message)
            if m:
                request_id = m.group(1)
            yield LogRecord(
                time=ev["timestamp"] / 1000,
                function=function,
                message=message,
                request_id=request_id,
            )
        if not follow:
            return
        time.sleep(poll_s)


def trigger(spec: Spec, cloud: Cloud, request: TriggerRequest) -> Any:
    """Fire a trigger on the deployed stage: upload an object to the bucket
    (S3 then notifies the function), send a message to the queue (the event
    source mapping delivers it), or invoke a scheduled function with the event
    EventBridge would send for its rule."""
    from .model import Names

    names = Names(spec, cloud.account_id(), cloud.region_name)
    if request.kind == "upload":
        bucket = names.bucket(request.target)
        key = request.key or "upload"
        cloud.call("s3", "put_object", Bucket=bucket, Key=key, Body=request.data or b"")
        return {"bucket": bucket, "key": key, "size": len(request.data or b"")}
    if request.kind == "queue":
        name = names.queue(request.target)
        url = cloud.call("sqs", "get_queue_url", missing_ok=True, QueueName=name)
        if url is None:
            raise ProviderError(
                f"queue {request.target!r} is not deployed in stage {spec.stage!r}",
                hint="run `sls-py deploy --provider aws` first",
            )
        body = (request.data or b"").decode("utf-8")
        sent = cloud.call("sqs", "send_message", QueueUrl=url["QueueUrl"], MessageBody=body)
        return {"queue": name, "message_id": sent["MessageId"]}
    fn = spec.function(request.target)
    schedule = next(t for t in fn.triggers if isinstance(t, ScheduleTriggerSpec))
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": names.account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": names.region,
        "resources": [names.rule_arn(schedule.name)],
        "detail": {},
    }
    inv = invoke(spec, cloud, fn.name, event, logs=False)
    if inv.error is not None:
        raise FunctionFailed(fn.name, inv.error)
    return {"function": fn.name, "schedule": schedule.name, "result": inv.result}
