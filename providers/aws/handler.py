"""The AWS Lambda adapter: every function in an sls-py zip has the handler
``sls_py_aws.handler.handle``. It turns the AWS event into a neutral event, runs
the app's handler through :func:`sls_py.runtime.execute`, and turns the
outcome back into what the event source expects.

Environment contract (set by the deployer on each Lambda function)
===================================================================

Build it with :func:`sls_py_aws.environment.lambda_environment` (``spec``,
``fn``, ``names=`` physical-name overrides): it returns exactly these
variables with canonical JSON, plus the function's own environment, and
refuses reserved names and environments over Lambda's 4 KB.

``SLS_PY_APP``        ``"module:attr"`` of the App (``spec.app_ref``), importable
                      from the zip's root.
``SLS_PY_FUNCTION``   the function's sls-py name (``"work-magic"``), not the
                      Lambda name.
``SLS_PY_STAGE``      the stage (``"dev"``).
``SLS_PY_RESOURCES``  JSON, as in :mod:`sls_py.runtime.resources`::

                        {"driver": "sls_py_aws.resources:AwsDriver",
                         "options": {},
                         "buckets": {"uploads": "<physical bucket name>"},
                         "queues": {"jobs": "<physical queue NAME, not URL>"},
                         "tables": {"catalog": "<physical table name>"}}

                      ``options`` may hold ``region`` and ``endpoint_url``
                      (both optional; boto3's defaults otherwise). The same
                      maps are read backwards to turn an S3 bucket or an SQS
                      queue ARN in an event into the app's logical name.
``SLS_PY_CORS``       JSON, for this function's routes that have CORS::

                        {"POST /work-magic": {"origins": ["*"],
                                              "headers": ["content-type"],
                                              "methods": [], "max_age_s": 600,
                                              "allow_credentials": false}}

                      The key is ``"<METHOD> <route path as declared>"`` (for
                      REST APIs this equals the event's ``resource``).
                      Preflight ``OPTIONS`` is answered by API Gateway (MOCK
                      integration); this adapter adds
                      ``Access-Control-Allow-Origin`` (and ``-Credentials``,
                      ``Vary: Origin``) to every response of such a route,
                      errors included. With several origins it echoes the
                      request's ``Origin`` when it is one of them (and sends
                      none otherwise). What API Gateway answers itself (the
                      preflight's MOCK response, the ``DEFAULT_4XX`` /
                      ``DEFAULT_5XX`` gateway responses: a missing API key,
                      throttling, a crash's 502, a timeout's 504) carries one
                      static value: the first origin listed.
(plus the user's own environment)

Events handled
==============

- API Gateway REST proxy (v1) and HTTP API (v2) -> ``HttpRequest``; answers a
  proxy response (``statusCode``, ``headers``, ``multiValueHeaders`` when a
  header has several values, ``body``, ``isBase64Encoded`` for binary bodies).
  An ``HttpError`` or invalid input answers its status (400 for invalid input)
  as on the local provider; an unhandled exception is raised, so Lambda
  reports a function error and API Gateway answers 502.
- S3 ``ObjectCreated`` records -> one ``UploadEvent`` per record (keys
  URL-decoded, bucket mapped back to the app's name).
- EventBridge scheduled events -> ``ScheduleEvent``: ``time`` from the event,
  the schedule found by rule name: a rule named ``<schedule name>`` or
  ``...-<schedule name>`` (name rules ``spec.qualified(schedule.name)``, i.e.
  ``<app>-<stage>-<schedule name>``) matches the function's schedule trigger of
  that name; a function with one schedule matches any rule. A target with a
  constant ``Input`` may send instead ``{"sls_py_schedule": {"name": "nightly", "expression": "...",
  "payload": ..., "time": "..."}}`` (every key but ``name`` optional; with an
  ``InputTransformer``, ``"time": "<time>"`` from ``$.time`` keeps the real time).
- SQS batches -> ``QueueBatch``; answers ``{"batchItemFailures":
  [{"itemIdentifier": message_id}, ...]}`` (the event source mapping needs
  ``FunctionResponseTypes=["ReportBatchItemFailures"]``).
- Anything else is a direct invocation -> ``Payload``; returns the result.

Errors of upload, schedule, queue and direct invocations are raised, so the
invocation reports ``FunctionError``: ``errorType`` is the error's type
(``HttpError``, ``InvalidInput``, ``ValueError``, ...) and ``errorMessage`` is
the message, prefixed with ``[status] `` when the error has one
(``"[403] Wrong magic word"``). An error with ``details`` (the per-field errors
of invalid input, an ``HttpError``'s details) keeps a readable first line and
carries the whole error as JSON on a last line of its own::

    [400] Invalid request body (x: Input should be a valid integer; y: Field required)
    sls-py-error: {"details":[{"loc":["x"],...}],"message":"Invalid request body",...}

(Lambda's error payload has no other place for it: the runtime client sends
only ``errorType``, ``errorMessage`` and ``stackTrace``, and ignores attributes
of the exception.) The JSON has no raw newline, and a message that itself
has a line starting with the marker is always followed by the JSON line, so
the last marker line is always the adapter's. Details are capped at the first
:data:`MAX_DETAILS` entries. :func:`error_info` turns such a pair back into an
:class:`~sls_py.runtime.errors.ErrorInfo`.

For the deployer: with ``binaryMediaTypes = ["*/*"]`` on the REST API, binary
responses (``isBase64Encoded``) reach clients as bytes, and request bodies
then arrive base64-encoded, which this adapter decodes. API Gateway writes the
502 of an unhandled error itself, so CORS headers on it need a ``DEFAULT_5XX``
gateway response.

Import cost matters (it is cold-start time): this module imports only the
standard library and ``sls_py.runtime``; everything else is imported lazily.
"""

from __future__ import annotations

import json
import os
import time

from sls_py.runtime import (
    Context,
    ErrorInfo,
    HttpRequest,
    Outcome,
    Payload,
    QueueBatch,
    QueueMessage,
    Response,
    ScheduleEvent,
    UploadEvent,
    execute,
    find_function,
    load_app,
)
from sls_py.runtime.context import make_logger
from sls_py.runtime.events import dumps

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from sls_py.runtime.events import Event

__all__ = ["ERROR_MARKER", "FunctionError", "error_info", "error_message", "handle", "to_neutral"]

_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-www-form-urlencoded",
    }
)


class FunctionError(Exception):
    """Raised to make Lambda report a function error; its class name is the error type."""

    info: ErrorInfo


_error_classes: dict[str, type[FunctionError]] = {}


def _raise(info: ErrorInfo) -> NoReturn:
    """Raise ``info`` as an exception whose class name is ``info.type``."""
    name = info.type if info.type.isidentifier() else "FunctionError"
    cls = _error_classes.get(name)
    if cls is None:
        cls = _error_classes[name] = type(name, (FunctionError,), {"__module__": "sls_py_aws"})
    exc = cls(error_message(info))
    exc.info = info
    raise exc


#: The prefix of ``errorMessage``'s last line when it carries the error as JSON.
ERROR_MARKER = "sls-py-error: "
#: At most this many ``details`` entries travel in ``errorMessage``.
MAX_DETAILS = 100
#: At most this many of them are spelled out in its readable first line.
_SUMMARY_DETAILS = 10


def _summary(info: ErrorInfo) -> str:
    """The readable part: ``"[400] Invalid request body (x: ...; y: ...)"``."""
    message = info.message
    if isinstance(info.details, list) and info.details:
        parts = []
        for d in info.details[:_SUMMARY_DETAILS]:
            if isinstance(d, dict):
                loc = ".".join(str(p) for p in d.get("loc", []))
                parts.append(f"{loc}: {d.get('msg', '')}" if loc else str(d.get("msg", d)))
            else:
                parts.append(str(d))
        more = len(info.details) - _SUMMARY_DETAILS
        if more > 0:
            parts.append(f"and {more} more")
        message += " (" + "; ".join(parts) + ")"
    return f"[{info.status}] {message}" if info.status is not None else message


def error_message(info: ErrorInfo) -> str:
    """``errorMessage`` for ``info``: ``"[403] Wrong magic word"``; with details,
    a readable first line and the error as JSON on the last (see the module doc)."""
    text = _summary(info)
    if info.details is None and "\n" + ERROR_MARKER not in text:
        return text
    details = info.details[:MAX_DETAILS] if isinstance(info.details, list) else info.details
    data = {"type": info.type, "message": info.message, "status": info.status, "details": details}
    return f"{text}\n{ERROR_MARKER}{json.dumps(data, sort_keys=True, separators=(',', ':'), default=str)}"


def error_info(error_type: str, error_message: str) -> ErrorInfo:
    """The :class:`ErrorInfo` of a Lambda ``FunctionError`` raised by this adapter
    (``errorType`` and ``errorMessage`` of Lambda's error payload)."""
    text = error_message or ""
    _, marker, last = text.rpartition("\n" + ERROR_MARKER)
    if marker:
        try:
            data = json.loads(last)
        except ValueError:
            data = None
        if (
            isinstance(data, dict)
            and isinstance(data.get("type"), str)
            and isinstance(data.get("message"), str)
            and (data.get("status") is None or type(data.get("status")) is int)
        ):
            return ErrorInfo(
                type=data["type"], message=data["message"], status=data["status"], details=data.get("details")
            )
    if text[:1] == "[" and text[1:4].isdigit() and text[4:6] == "] ":
        return ErrorInfo(type=error_type, message=text[6:], status=int(text[1:4]))
    return ErrorInfo(type=error_type, message=text)


# --- configuration from the environment, read once per container ------------------


class _Config:
    """What this container serves: the handler and the contract's maps."""

    def __init__(self) -> None:
        self.function = os.environ.get("SLS_PY_FUNCTION", "")
        self.stage = os.environ.get("SLS_PY_STAGE", "")
        resources = json.loads(os.environ.get("SLS_PY_RESOURCES") or "{}")
        self.bucket_names = {v: k for k, v in (resources.get("buckets") or {}).items()}
        self.queue_names = {v: k for k, v in (resources.get("queues") or {}).items()}
        self.cors: dict[str, dict[str, Any]] = json.loads(os.environ.get("SLS_PY_CORS") or "{}")
        self.app: Any = None
        self.handler: Any = None
        self.load_error: ErrorInfo | None = None

    def load(self) -> None:
        """Import the app and find this function's handler (errors are kept for invocations)."""
        ref = os.environ.get("SLS_PY_APP")
        if not ref:
            self.load_error = ErrorInfo(
                type="ConfigurationError", message="SLS_PY_APP is not set on this function"
            )
            return
        try:
            self.app = load_app(ref)
            self.handler = find_function(self.app, self.function)
        except Exception as exc:
            import logging

            logging.getLogger("sls_py.function").exception("cannot load app %s", ref)
            self.load_error = ErrorInfo(
                type="AppImportError", message=f"cannot load {ref}: {type(exc).__name__}: {exc}"
            )


_config: _Config | None = None


def _current() -> _Config:
    global _config
    if _config is None:
        config = _Config()
        config.load()
        _config = config
    return _config


def reset() -> None:
    """Forget the loaded app and configuration (for tests)."""
    global _config
    _config = None


# --- the entry point ------------------------------------------------------------------


def handle(event: Any, context: Any = None) -> Any:
    """Lambda's entry point for every sls-py function."""
    config = _current()
    if config.load_error is not None:
        _raise(config.load_error)
    ctx = _context(config, context)
    kind, neutral = to_neutral(event, config)
    if kind == "ignore":
        return None
    if kind == "http":
        assert isinstance(neutral, HttpRequest)
        outcome = execute(config.handler, neutral, ctx)
        return _http_response(outcome, neutral, event, config)
    if kind == "upload":
        # every record runs, then the first failure (if any) fails the invocation
        uploads = neutral if isinstance(neutral, list) else [neutral]
        outcomes = [execute(config.handler, upload, ctx) for upload in uploads]
        results = [_result(outcome) for outcome in outcomes]
        return results[0] if len(results) == 1 else results
    if kind == "queue":
        outcome = execute(config.handler, neutral, ctx)
        failed = _result(outcome) or {}
        ids = failed.get("failed", []) if isinstance(failed, dict) else []
        return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
    return _result(execute(config.handler, neutral, ctx))


def _result(outcome: Outcome) -> Any:
    if outcome.error is not None:
        _raise(outcome.error)
    return outcome.result


def _context(config: _Config, context: Any) -> Context:
    request_id = getattr(context, "aws_request_id", None)
    if not request_id:  # not under Lambda (a test calling handle directly)
        import uuid

        request_id = str(uuid.uuid4())
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    now_ms = int(time.time() * 1000)
    deadline = now_ms + int(remaining()) if callable(remaining) else now_ms + 900_000
    memory = getattr(context, "memory_limit_in_mb", None) or 128
    return Context(
        request_id=request_id,
        function_name=config.function,
        stage=config.stage,
        deadline_ms=deadline,
        memory_mb=int(memory),
        provider="aws",
        logger=make_logger(config.function, request_id),
    )


# --- AWS events -> neutral events ---------------------------------------------------


def to_neutral(event: Any, config: Any = None) -> tuple[str, Event | list[UploadEvent] | None]:
    """Classify an AWS event and convert it: ``(kind, neutral event)``.

    ``kind`` is ``http``, ``upload`` (a list of :class:`UploadEvent`),
    ``schedule``, ``queue``, ``payload`` or ``ignore`` (S3's test event).
    ``config`` supplies the physical->logical name maps (default: the environment's).
    """
    config = config or _current()
    if isinstance(event, dict):
        records = event.get("Records")
        if isinstance(records, list) and records and isinstance(records[0], dict):
            source = records[0].get("eventSource")
            if source == "aws:s3":
                return "upload", [_upload(r, config) for r in records]
            if source == "aws:sqs":
                return "queue", _queue_batch(records, config)
        if event.get("Event") == "s3:TestEvent" and "Bucket" in event:
            return "ignore", None
        if "httpMethod" in event and "requestContext" in event:
            return "http", _rest_request(event)
        if event.get("version") == "2.0" and "rawPath" in event and "requestContext" in event:
            return "http", _http_api_request(event)
        if "sls_py_schedule" in event:
            return "schedule", _schedule_from_input(event["sls_py_schedule"], config)
        if event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event":
            return "schedule", _scheduled_event(event, config)
    return "payload", Payload(event)


def _body(event: dict[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if event.get("isBase64Encoded"):
        import base64  # only binary bodies need it: not imported at cold start

        return base64.b64decode(body)
    return body.encode("utf-8") if isinstance(body, str) else dumps(body, "the event's body")


def _rest_request(event: dict[str, Any]) -> HttpRequest:
    """API Gateway REST API proxy integration (payload format 1.0)."""
    headers: dict[str, list[str]] = {}
    multi = event.get("multiValueHeaders") or {}
    for name, values in multi.items():
        headers.setdefault(name.lower(), []).extend(str(v) for v in values or [])
    for name, value in (event.get("headers") or {}).items():
        if name.lower() not in headers and value is not None:
            headers[name.lower()] = [str(value)]
    query: dict[str, list[str]] = {}
    for name, values in (event.get("multiValueQueryStringParameters") or {}).items():
        query[name] = [str(v) for v in values or []]
    for name, value in (event.get("queryStringParameters") or {}).items():
        if name not in query and value is not None:
            query[name] = [str(value)]
    ctx = event.get("requestContext") or {}
    return HttpRequest(
        method=str(event.get("httpMethod") or ctx.get("httpMethod") or "GET").upper(),
        path=event.get("path") or ctx.get("path") or "/",
        route=event.get("resource") or ctx.get("resourcePath") or "",
        path_params={k: str(v) for k, v in (event.get("pathParameters") or {}).items()},
        query=query,
        headers=headers,
        body=_body(event),
        source_ip=str((ctx.get("identity") or {}).get("sourceIp") or ""),
    )


def _http_api_request(event: dict[str, Any]) -> HttpRequest:
    """API Gateway HTTP API (payload format 2.0)."""
    from urllib.parse import parse_qs

    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {}
    headers = {k.lower(): [str(v)] for k, v in (event.get("headers") or {}).items()}
    cookies = event.get("cookies")
    if cookies:
        headers["cookie"] = ["; ".join(cookies)]
    raw_query = event.get("rawQueryString") or ""
    if raw_query:
        query = parse_qs(raw_query, keep_blank_values=True)
    else:
        params = event.get("queryStringParameters") or {}
        query = {k: str(v).split(",") for k, v in params.items()}
    route_key = str(event.get("routeKey") or "")
    route = route_key.split(" ", 1)[1] if " " in route_key else ""
    return HttpRequest(
        method=str(http.get("method") or "GET").upper(),
        path=event.get("rawPath") or http.get("path") or "/",
        route=route,
        path_params={k: str(v) for k, v in (event.get("pathParameters") or {}).items()},
        query=query,
        headers=headers,
        body=_body(event),
        source_ip=str(http.get("sourceIp") or ""),
    )


def _upload(record: dict[str, Any], config: Any) -> UploadEvent:
    """One S3 event record; the key arrives URL-encoded (``my+photo.jpg``)."""
    from urllib.parse import unquote_plus

    s3 = record.get("s3") or {}
    bucket = (s3.get("bucket") or {}).get("name", "")
    obj = s3.get("object") or {}
    return UploadEvent(
        bucket=config.bucket_names.get(bucket, bucket),
        key=unquote_plus(obj.get("key", "")),
        size=int(obj.get("size") or 0),
        etag=obj.get("eTag") or obj.get("etag"),
        content_type=None,
        time=record.get("eventTime"),
    )


def _queue_batch(records: list[dict[str, Any]], config: Any) -> QueueBatch:
    """An SQS batch; the queue is named by the last part of its ARN."""
    physical = str(records[0].get("eventSourceARN", "")).rsplit(":", 1)[-1]
    messages = []
    for r in records:
        attrs = r.get("attributes") or {}
        user_attrs = {
            k: str(v.get("stringValue"))
            for k, v in (r.get("messageAttributes") or {}).items()
            if isinstance(v, dict) and v.get("stringValue") is not None
        }
        messages.append(
            QueueMessage(
                id=str(r.get("messageId", "")),
                body=str(r.get("body", "")),
                queue=config.queue_names.get(physical, physical),
                attributes=user_attrs,
                receive_count=int(attrs.get("ApproximateReceiveCount") or 1),
            )
        )
    return QueueBatch(queue=config.queue_names.get(physical, physical), messages=messages)


def _schedules(config: Any) -> list[tuple[str, str, Any]]:
    """(name, expression, payload) of this function's schedule triggers."""
    fn = getattr(getattr(config, "app", None), "functions", {}).get(getattr(config, "function", ""))
    out = []
    for index, trig in enumerate(getattr(fn, "triggers", []) or []):
        if type(trig).__name__ == "ScheduleTrigger":
            name = trig.name or f"{config.function}-schedule-{index}"
            out.append((name, trig.expression, trig.payload))
    return out


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _scheduled_event(event: dict[str, Any], config: Any) -> ScheduleEvent:
    """An EventBridge ``Scheduled Event``; the schedule is found from the rule's name."""
    rule = ""
    for arn in event.get("resources") or []:
        if ":rule/" in str(arn):
            rule = str(arn).rsplit("/", 1)[-1]
            break
    known = _schedules(config)
    match = [s for s in known if rule == s[0] or rule.endswith("-" + s[0])]
    if not match and len(known) == 1:
        match = known
    name, expression, payload = max(match, key=lambda s: len(s[0])) if match else (rule, "", None)
    return ScheduleEvent(
        schedule=name,
        expression=expression,
        time=str(event.get("time") or _now_iso()),
        payload=payload,
    )


def _schedule_from_input(data: Any, config: Any) -> ScheduleEvent:
    """The deployer's constant ``Input``: ``{"sls_py_schedule": {"name": ...}}``."""
    data = data if isinstance(data, dict) else {"name": str(data)}
    name = str(data.get("name") or "")
    known = {s[0]: s for s in _schedules(config)}
    _, expression, payload = known.get(name, (name, "", None))
    time_value = str(data.get("time") or "")
    if not time_value or time_value.startswith("<"):  # an InputTransformer placeholder
        time_value = _now_iso()
    return ScheduleEvent(
        schedule=name,
        expression=str(data.get("expression") or expression),
        time=time_value,
        payload=data.get("payload", payload),
    )


# --- neutral outcome -> proxy response --------------------------------------------------


def _cors_headers(config: Any, request: HttpRequest) -> dict[str, str]:
    rules = config.cors
    rule = rules.get(f"{request.method} {request.route}") or rules.get(f"ANY {request.route}")
    if not rule:
        return {}
    origins = list(rule.get("origins") or [])
    origin = request.header("origin")
    credentials = bool(rule.get("allow_credentials"))
    out: dict[str, str] = {}
    if "*" in origins and not credentials:
        out["access-control-allow-origin"] = "*"
    elif origin and ("*" in origins or origin in origins):
        # several origins: echo the request's when it is one of them
        out["access-control-allow-origin"] = origin
        out["vary"] = "Origin"
    elif len(origins) == 1 and not origin:
        out["access-control-allow-origin"] = origins[0]
    else:
        # not allowed (or no Origin with several allowed): no CORS headers, but the
        # answer depended on Origin, so a cache must not reuse it for another origin
        return {"vary": "Origin"}
    if credentials:
        out["access-control-allow-credentials"] = "true"
    return out


def _is_text(content_type: str) -> bool:
    """Whether a body of this type goes out as text (else base64, isBase64Encoded)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml"))


def _http_response(
    outcome: Outcome, request: HttpRequest, event: dict[str, Any], config: Any
) -> dict[str, Any]:
    if outcome.response is None:
        # an unhandled error: Lambda reports it and API Gateway answers 502
        _raise(outcome.error or ErrorInfo(type="FunctionError", message="no response"))
    response = outcome.response
    multi = {
        k.lower(): [str(x) for x in v]
        for k, v in response.headers.items()
        if isinstance(v, list | tuple)
    }
    single = Response(
        status=response.status,
        body=response.body,
        headers={k: v for k, v in response.headers.items() if not isinstance(v, list | tuple)},
    )
    raw, headers = single.encoded()
    for name, value in _cors_headers(config, request).items():
        if name == "vary" and headers.get("vary"):
            listed = {v.strip().lower() for v in headers["vary"].split(",")}
            if "origin" not in listed and "*" not in listed:
                headers["vary"] += ", Origin"
        else:
            headers.setdefault(name, value)
    content_type = headers.get("content-type", "")
    binary = not _is_text(content_type)
    if not binary:
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            binary = True
    if binary:
        import base64

        body = base64.b64encode(raw).decode("ascii")
    out: dict[str, Any] = {"statusCode": response.status, "headers": headers}
    if event.get("version") == "2.0":
        cookies = multi.pop("set-cookie", [])
        for name, values in multi.items():
            headers[name] = ",".join(values)
        if cookies:
            out["cookies"] = cookies
    elif multi:
        out["multiValueHeaders"] = multi
    out["body"] = body
    out["isBase64Encoded"] = binary
    return out


def _setup_logging() -> None:
    """Let INFO records of functions reach CloudWatch (Lambda's root logger is WARNING)."""
    import logging  # awslambdaric has loaded it; this module need not

    if not os.environ.get("AWS_LAMBDA_LOG_LEVEL"):
        logging.getLogger("sls_py").setLevel(logging.INFO)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    # Inside Lambda: logging as functions expect it, and the app loaded during
    # init (which runs before the first event, with a full CPU).
    _setup_logging()
    if os.environ.get("SLS_PY_APP"):
        _current()
