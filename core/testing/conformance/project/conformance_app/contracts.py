"""The conformance app's functions for the gateway and runtime *contract* checks.

Each block serves one or more rows of the contract tables in
``docs/providers.md`` (the row ids are named in the comments); the tests are in
:mod:`sls_py.testing.conformance.contracts`. Imported at the end of ``app.py``
so the functions join the same ``app``; like there, a function is declared only
when the provider declares the capabilities it needs.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from pydantic import BaseModel
from sls_py import (
    Cors,
    HttpRequest,
    QueueBatch,
    Response,
    UploadEvent,
    UsageLimits,
    http,
    queue,
    upload,
)

from .app import app, has

#: The origin the route with its own CORS settings allows (``http.cors-route``).
OWN_ORIGIN = "https://own.example"

if has("trigger.http", "http.cors"):
    # http.cors-gateway: every `cors=True` route gets these settings (the core copies
    # them into the route's `cors`); a provider must not invent its own defaults
    app.cors = Cors(headers=["content-type", "x-api-key", "x-conformance"], max_age_s=300)

if has("trigger.http", "http.api_key", "http.usage_limits"):
    # http.rate-limit: a small token bucket per key (1 request/s, burst 3). Tests that
    # use the API key make at most two requests in a row, so only that test is refused.
    app.usage = UsageLimits(rate=1, burst=3)


def _echo(request: HttpRequest) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.path,
        "route": request.route,
        "path_params": request.path_params,
    }


# --- routes: route.any, route.head, route.options, route.precedence ----------------

if has("trigger.http"):

    @app.function(
        name="routes",
        timeout_s=10,
        triggers=[
            http("ANY", "/anything"),
            http("GET", "/prec/fixed"),
            http("GET", "/prec/{name}"),
            http("GET", "/deep/{first}/tail"),
            http("GET", "/deep/{rest+}"),
        ],
    )
    def routes_echo(request: HttpRequest) -> Response:
        """Echo the route that matched, with a header of its own."""
        return Response.json(_echo(request), headers={"x-route": request.route})

    @app.function(name="respond", timeout_s=10, triggers=[http("POST", "/respond")])
    def respond(request: HttpRequest) -> Response:
        """http.response: answer the shape the request asks for."""
        kind = request.json()["kind"]
        if kind == "text":
            return Response(status=200, body="plain text")
        if kind == "bytes":
            return Response(status=200, body=bytes([0, 1, 2, 255]))
        if kind == "json":
            return Response.json({"kind": "json"}, status=202)
        return Response(
            status=207,
            body="<p>typed</p>",
            headers={"Content-Type": "text/html", "X-Custom": "kept"},
        )


if has("trigger.http", "http.cors"):

    @app.function(name="any-shared", timeout_s=10, triggers=[http("ANY", "/anything-shared", cors=True)])
    def any_shared(request: HttpRequest) -> Response:
        """route.options: an ANY route with CORS (OPTIONS is the gateway's preflight)."""
        return Response.json(_echo(request))

    @app.function(
        name="own-cors",
        timeout_s=10,
        triggers=[
            http(
                "GET",
                "/own-cors",
                cors=Cors(
                    origins=[OWN_ORIGIN],
                    headers=["x-own"],
                    methods=["GET"],
                    max_age_s=60,
                    allow_credentials=True,
                ),
            )
        ],
    )
    def own_cors(request: HttpRequest) -> Response:
        """http.cors-route: a route with CORS settings of its own."""
        return Response.json({"own": True})


if has("trigger.http", "http.api_key", "http.cors"):

    @app.function(
        name="guarded-shared",
        timeout_s=10,
        triggers=[http("GET", "/guarded-shared", api_key=True, cors=True)],
    )
    def guarded_shared(request: HttpRequest) -> Response:
        """http.cors: the gateway's own 403 on a CORS route carries CORS headers too."""
        return Response.json({"guarded": True})


# --- function.memory, function.concurrency --------------------------------------


class Allocation(BaseModel):
    """How many MB ``hog`` allocates."""

    mb: int


if has("trigger.http"):

    @app.function(name="hog", timeout_s=10, memory_mb=128, triggers=[http("POST", "/hog")])
    def hog(allocation: Allocation) -> dict[str, Any]:
        """function.memory: allocate ``mb`` MB with a 128 MB limit."""
        block = bytearray(allocation.mb * 1024 * 1024)
        return {"allocated": len(block) // (1024 * 1024)}


class Turn(BaseModel):
    """One call of ``solo``: which run, which call, how long to take."""

    run: str
    n: int
    seconds: float


if has("trigger.http", "function.concurrency", "resource.table"):
    from .app import events

    @app.function(name="solo", timeout_s=10, concurrency=1, triggers=[http("POST", "/solo")])
    def solo(turn: Turn) -> dict[str, Any]:
        """function.concurrency: record when each call started and ended."""
        started = time.time_ns() // 1000
        time.sleep(turn.seconds)
        ended = time.time_ns() // 1000
        events.put({"id": f"solo:{turn.run}:{turn.n}", "start_us": started, "end_us": ended})
        return {"n": turn.n}


# --- upload.event, queue.redelivery, queue.batch-size, delivery.after-write ---------

if has("trigger.upload", "resource.bucket", "resource.table"):
    from .app import events, inbox

    @app.function(name="on-upload-meta", timeout_s=10, triggers=[upload("inbox", prefix="meta/")])
    def on_upload_meta(event: UploadEvent) -> None:
        """upload.event: record the event's etag, time and content type as given."""
        data = inbox.get(event.key)
        events.put(
            {
                "id": f"upload-meta:{event.key}",
                "key": event.key,
                "size": event.size,
                "etag": event.etag,
                "md5": hashlib.md5(data).hexdigest(),
                "time": event.time,
                "content_type": event.content_type,
            }
        )


if has("trigger.queue", "resource.queue", "resource.table"):
    from .app import events

    app.queue("retry", visibility_timeout_s=2, max_receives=2)

    @app.function(name="on-retry", timeout_s=2, triggers=[queue("retry", batch_size=2)])
    def on_retry(batch: QueueBatch) -> list[str]:
        """queue.redelivery, queue.batch-size: record each delivery; a body containing
        ``fail`` fails on its first receive (its id is returned as failed)."""
        failed = []
        for message in batch.messages:
            events.put(
                {
                    "id": f"retry:{message.body}:{message.receive_count}",
                    "batch_len": len(batch.messages),
                }
            )
            if "fail" in message.body and message.receive_count == 1:
                failed.append(message.id)
        return failed


class Run(BaseModel):
    """A run id that keeps one test's keys apart from another's."""

    run: str


if has("trigger.queue", "trigger.upload", "resource.queue", "resource.bucket", "resource.table"):
    from .app import events, inbox, jobs

    @app.function(name="write-and-look", timeout_s=10)
    def write_and_look(run: Run) -> dict[str, Any]:
        """delivery.after-send/-put: look right after each write whether its trigger ran
        (a provider that delivers inside ``send``/``put`` is seen every time)."""
        jobs.send(f"look-{run.run}")
        after_send = events.get(f"queue:look-{run.run}") is not None
        inbox.put(f"in/look-{run.run}.dat", b"looked")
        after_put = events.get(f"upload:in/look-{run.run}.dat") is not None
        return {"queue_delivered_inside_send": after_send, "upload_delivered_inside_put": after_put}
