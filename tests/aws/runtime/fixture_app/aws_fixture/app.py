"""An app for the AWS adapter's tests: a queue worker, a binary route, a
schedule with a payload, an unhandled error, and a probe of what got imported."""

from __future__ import annotations

import sys

from sls_py import (
    App,
    HttpRequest,
    QueueMessage,
    Response,
    ScheduleEvent,
    UploadEvent,
    http,
    queue,
    schedule,
    upload,
)

app = App("fixture")
jobs = app.queue("jobs")
done = app.queue("done")
inbox = app.bucket("inbox")
SEEN: list[str] = []


@app.function(name="worker", triggers=[queue("jobs", batch_size=10)])
def worker(message: QueueMessage) -> None:
    """Fail messages that ask for it; forward the others to ``done``."""
    data = message.json()
    if data.get("fail"):
        raise ValueError(f"message {data['n']} asked to fail")
    done.send({"done": data["n"], "attributes": message.attributes, "queue": message.queue})


@app.function(name="files", triggers=[http("GET", "/files/{proxy+}", cors=True)])
def files(request: HttpRequest) -> Response:
    """Answer binary bytes and two cookies, echoing the path parameter in a header."""
    return Response(
        status=200,
        body=b"\x89PNG\r\n\x1a\n\x00\xff",
        headers={
            "content-type": "image/png",
            "x-proxy": request.path_params.get("proxy", ""),
            "set-cookie": ["a=1; Path=/", "b=2; Path=/"],  # type: ignore[dict-item]
            # ?vary=X: the function's own Vary header
            **({"vary": request.query["vary"][0]} if "vary" in request.query else {}),
        },
    )


@app.function(
    name="tick", triggers=[schedule("rate(5 minutes)", name="tick", payload={"kind": "tick"})]
)
def tick(event: ScheduleEvent) -> dict[str, object]:
    """Echo the schedule event."""
    return {
        "schedule": event.schedule,
        "expression": event.expression,
        "time": event.time,
        "payload": event.payload,
    }


@app.function(name="boom")
def boom(payload: dict[str, object]) -> None:
    """Fail with an unhandled error."""
    raise RuntimeError(f"boom: {payload.get('why')}")


@app.function(name="where")
def where(payload, ctx):  # unannotated: no validation, so pydantic stays unloaded
    """Where the runtime was imported from, and whether boto3/typer/pluggy got loaded."""
    import sls_py
    import sls_py_aws.handler

    return {
        "sls_py": sls_py.__file__,
        "handler": sls_py_aws.handler.__file__,
        "loaded": sorted(
            m
            for m in ("boto3", "botocore", "typer", "pluggy", "rich", "pydantic")
            if m in sys.modules
        ),
        "payload": payload,
        "context": {
            "request_id": ctx.request_id,
            "function_name": ctx.function_name,
            "stage": ctx.stage,
            "memory_mb": ctx.memory_mb,
            "provider": ctx.provider,
            "deadline_in_30s": 0 < ctx.remaining_ms() <= 30_000,
        },
    }


@app.function(name="crash", triggers=[http("GET", "/crash", cors=True)])
def crash(request: HttpRequest) -> Response:
    """An HTTP function with an unhandled error: the gateway must answer 502."""
    raise RuntimeError("crashed on purpose")


@app.function(name="intake", triggers=[upload("inbox")])
def intake(event: UploadEvent) -> str:
    """Remember each key; fail keys that contain "bad"."""
    SEEN.append(f"{event.bucket}:{event.key}")
    if "bad" in event.key:
        raise ValueError(f"cannot take {event.key}")
    return event.key
