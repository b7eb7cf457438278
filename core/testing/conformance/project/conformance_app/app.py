"""The conformance app: one function per neutral behaviour the suite checks.

Only the functions whose capabilities the provider declares are declared (the
harness writes them to ``capabilities.json`` next to this file), so the spec
is never refused for a feature the suite will skip anyway.

Functions fed by upload, schedule and queue triggers record what they received
in the ``events`` table; the suite reads it back through the ``records``
function, so observing a provider needs nothing but ``invoke``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sls_py import (
    App,
    Context,
    HttpError,
    HttpRequest,
    QueueBatch,
    Response,
    ScheduleEvent,
    UploadEvent,
    http,
    queue,
    schedule,
    upload,
)


def _capabilities() -> set[str]:
    path = Path(__file__).with_name("capabilities.json")
    if not path.exists():
        from sls_py.spec import CAPABILITIES

        return set(CAPABILITIES)
    return set(json.loads(path.read_text(encoding="utf-8")))


CAPS = _capabilities()


def has(*caps: str) -> bool:
    """Whether the provider under test declares every one of ``caps``."""
    return all(c in CAPS for c in caps)


def routes(*triggers: Any) -> list[Any]:
    """``triggers`` when the provider serves HTTP, else none."""
    return list(triggers) if has("trigger.http") else []


app = App("conformance", api_keys=["conformance"] if has("trigger.http", "http.api_key") else [])


# --- payload in, result out ---------------------------------------------------


class Numbers(BaseModel):
    """The payload of ``add``."""

    x: int
    y: int
    label: str = ""


@app.function(name="add", timeout_s=10, triggers=routes(http("POST", "/add")))
def add(numbers: Numbers, ctx: Context) -> dict[str, Any]:
    """Add two numbers; also report what the context and environment say."""
    return {
        "sum": numbers.x + numbers.y,
        "label": numbers.label,
        "function": ctx.function_name,
        "stage": ctx.stage,
        "greeting": os.environ.get("CONFORMANCE_GREETING"),
        "time_left": ctx.remaining_ms() > 0,
    }


class Failure(BaseModel):
    """The payload of ``fail``: an HttpError status, or none for a crash."""

    status: int | None = None
    message: str = "failed on purpose"


@app.function(name="fail", timeout_s=10, triggers=routes(http("POST", "/fail")))
def fail(failure: Failure) -> dict[str, Any]:
    """Raise ``HttpError(status, message)``, or a plain exception without a status."""
    if failure.status is None:
        raise RuntimeError(failure.message)
    raise HttpError(failure.status, failure.message)


class Sleep(BaseModel):
    """The payload of ``slow``."""

    seconds: float


@app.function(name="slow", timeout_s=1, triggers=routes(http("POST", "/slow")))
def slow(sleep: Sleep) -> dict[str, Any]:
    """Sleep, to run into the one-second timeout."""
    time.sleep(sleep.seconds)
    return {"slept": sleep.seconds}


# --- request style, API keys, CORS --------------------------------------------

if has("trigger.http"):

    @app.function(
        name="inspect",
        timeout_s=10,
        triggers=[http("GET", "/inspect/{item}"), http("POST", "/files/{path+}")],
    )
    def inspect(request: HttpRequest) -> Response:
        """Echo what the request looked like to the handler."""
        return Response.json(
            {
                "method": request.method,
                "path": request.path,
                "route": request.route,
                "path_params": request.path_params,
                "query": request.query,
                "header": request.header("x-conformance"),
                "body": request.body.decode("utf-8", "replace"),
            },
            status=201 if request.method == "POST" else 200,
            headers={"x-conformance-reply": "yes"},
        )


if has("trigger.http", "http.api_key"):

    @app.function(name="guarded", timeout_s=10, triggers=[http("GET", "/guarded", api_key=True)])
    def guarded(request: HttpRequest) -> Response:
        """A route that needs an API key."""
        return Response.json({"guarded": True})


if has("trigger.http", "http.cors"):

    @app.function(name="shared", timeout_s=10, triggers=[http("GET", "/shared", cors=True)])
    def shared(request: HttpRequest) -> Response:
        """A route with CORS."""
        return Response.json({"shared": True})


# --- resources ----------------------------------------------------------------


class Run(BaseModel):
    """A run id that keeps one test's keys apart from another's."""

    run: str


if has("resource.bucket"):
    files = app.bucket("files")

    @app.function(name="bucket-ops", timeout_s=10)
    def bucket_ops(run: Run) -> dict[str, Any]:
        """Exercise the bucket interface and report what it answered."""
        p = f"{run.run}/"
        files.put(p + "a/1.txt", b"one")
        files.put(p + "a/2.txt", "two", content_type="text/plain")
        files.put(p + "b/3.bin", bytes(range(256)))
        seen: dict[str, Any] = {
            "get_bytes": files.get(p + "a/1.txt").decode(),
            "get_text": files.get(p + "a/2.txt").decode(),
            "binary_intact": files.get(p + "b/3.bin") == bytes(range(256)),
            "list_prefix": files.list(p + "a/"),
            "list_run": files.list(p),
        }
        files.put(p + "a/1.txt", b"one again")
        seen["overwritten"] = files.get(p + "a/1.txt").decode()
        files.delete(p + "a/1.txt")
        seen["after_delete"] = files.list(p + "a/")
        try:
            files.get(p + "a/1.txt")
            seen["get_missing"] = "found"
        except KeyError:
            seen["get_missing"] = "KeyError"
        files.delete(p + "never-existed")
        seen["delete_missing"] = "no error"
        for key in files.list(p):
            files.delete(key)
        seen["after_cleanup"] = files.list(p)
        return seen


if has("resource.table"):
    ledger = app.table("ledger", key="account", sort_key="seq", sort_key_type="number")
    events = app.table("events", key="id")

    @app.function(name="table-ops", timeout_s=10)
    def table_ops(run: Run) -> dict[str, Any]:
        """Exercise the table interface and report what it answered."""
        account = f"acct-{run.run}"
        for seq, amount in ((2, 20), (1, 10), (3, 30)):
            ledger.put({"account": account, "seq": seq, "amount": amount, "tags": ["t", seq]})
        seen: dict[str, Any] = {
            "get": ledger.get(account, 2),
            "query": ledger.query(account),
            "query_other": ledger.query(f"nobody-{run.run}"),
        }
        ledger.put({"account": account, "seq": 2, "amount": 22})
        seen["replaced"] = ledger.get(account, 2)
        ledger.delete(account, 1)
        seen["after_delete"] = [item["seq"] for item in ledger.query(account)]
        seen["get_missing"] = ledger.get(account, 1)
        ledger.delete(account, 99)
        seen["delete_missing"] = "no error"
        for item in ledger.query(account):
            ledger.delete(account, item["seq"])
        seen["after_cleanup"] = ledger.query(account)
        return seen

    class RecordsQuery(BaseModel):
        """Which records to return: ids starting with ``prefix``."""

        prefix: str

    @app.function(name="records", timeout_s=10)
    def records(query: RecordsQuery) -> list[dict[str, Any]]:
        """What the trigger functions recorded, sorted by id."""
        found = [item for item in events.scan() if str(item["id"]).startswith(query.prefix)]
        return sorted(found, key=lambda item: str(item["id"]))


if has("resource.database"):
    from sls_py import DatabaseError

    items = app.database("items", migrations="migrations")

    class DbRun(BaseModel):
        """A run id; ``fail`` leaves a DatabaseError unhandled."""

        run: str
        fail: bool = False

    @app.function(name="db-ops", timeout_s=20, triggers=routes(http("POST", "/db-ops")))
    def db_ops(req: DbRun) -> dict[str, Any]:
        """Exercise the database interface and report what it answered."""
        if req.fail:
            items.query("SELECT * FROM no_such_table_here")
        run = req.run
        insert = "INSERT INTO conformance_items (run, name, n) VALUES (:run, :name, :n)"
        seen: dict[str, Any] = {"inserted": items.execute(insert, {"run": run, "name": "a", "n": 1})}
        try:
            with items.transaction():
                items.execute(insert, {"run": run, "name": "b", "n": 2})
                raise ValueError("roll back")
        except ValueError:
            pass
        with items.transaction():
            items.execute(insert, {"run": run, "name": "c", "n": 3})
            items.execute(insert, {"run": run, "name": "d", "n": 4})
        try:
            with items.transaction():
                items.execute(insert, {"run": run, "name": "e", "n": 5})
                items.execute(insert, {"run": run, "name": "a", "n": 6})  # duplicate key
        except DatabaseError as exc:
            seen["duplicate"] = type(exc).__name__
        seen["rows"] = items.query(
            "SELECT name, n FROM conformance_items WHERE run = :run AND n >= :low ORDER BY name",
            {"run": run, "low": 0},
        )
        seen["literal"] = items.query(
            "SELECT ':not_a_param' AS text, CAST(:n AS INTEGER) + 1 AS n", {"n": 41}
        )
        seen["updated"] = items.execute(
            "UPDATE conformance_items SET n = n * 10 WHERE run = :run", {"run": run}
        )
        try:
            items.query("SELEKT 1")
        except DatabaseError as exc:
            seen["syntax_error"] = {"type": type(exc).__name__, "has_message": "SELEKT" in exc.message}
        seen["seed"] = items.query("SELECT n FROM conformance_items WHERE run = 'migrations'")
        seen["migrations"] = [
            r["name"] for r in items.query("SELECT name FROM sls_py_migrations ORDER BY name")
        ]
        return seen


if has("resource.queue"):
    jobs = app.queue("jobs")

    @app.function(name="queue-ops", timeout_s=10)
    def queue_ops(run: Run) -> dict[str, Any]:
        """Send a text and a JSON message; report the ids' shape."""
        first = jobs.send(f"text-{run.run}")
        second = jobs.send({"run": run.run, "n": 2})
        return {
            "ids_are_text": isinstance(first, str) and isinstance(second, str),
            "distinct": first != second,
        }


# --- triggers: record what arrived --------------------------------------------

if has("trigger.upload", "resource.bucket", "resource.table"):
    inbox = app.bucket("inbox")

    @app.function(
        name="on-upload", timeout_s=10, triggers=[upload("inbox", prefix="in/", suffix=".dat")]
    )
    def on_upload(event: UploadEvent, ctx: Context) -> dict[str, Any]:
        """Record the upload event and what reading the object gave."""
        data = inbox.get(event.key)
        record = {
            "id": f"upload:{event.key}",
            "bucket": event.bucket,
            "key": event.key,
            "size": event.size,
            "read_size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "has_time": bool(event.time),
        }
        events.put(record)
        return record


if has("trigger.schedule", "resource.table"):

    @app.function(
        name="on-schedule",
        timeout_s=10,
        triggers=[schedule("rate(1 day)", name="tick", payload={"hello": "schedule"})],
    )
    def on_schedule(event: ScheduleEvent, ctx: Context) -> dict[str, Any]:
        """Record the schedule event."""
        record = {
            "id": f"schedule:{ctx.request_id}",
            "schedule": event.schedule,
            "expression": event.expression,
            "payload": event.payload,
            "time": event.time,
        }
        events.put(record)
        return record


if has("trigger.queue", "resource.queue", "resource.table"):

    @app.function(name="on-queue", timeout_s=10, triggers=[queue("jobs", batch_size=5)])
    def on_queue(batch: QueueBatch) -> None:
        """Record every message of the batch."""
        for message in batch.messages:
            events.put(
                {
                    "id": f"queue:{message.body}",
                    "batch_queue": batch.queue,
                    "message_queue": message.queue,
                    "body": message.body,
                    "has_id": bool(message.id),
                }
            )


# --- caches (suite: CacheConformance) ----------------------------------------------


class CacheCall(BaseModel):
    """One cache call: ``op`` on ``key`` (``value``, ``ttl_s``, ``times`` as it needs)."""

    op: str
    key: str
    value: str = ""
    ttl_s: float | None = None
    times: int = 1


if has("resource.cache"):
    kv = app.cache("kv")

    @app.function(name="cache-ops", timeout_s=10)
    def cache_ops(run: Run) -> dict[str, Any]:
        """Exercise the cache interface and report what it answered."""
        p = f"{run.run}:"
        kv.set(p + "text", "héllo")
        kv.set(p + "bytes", bytes(range(256)))
        seen: dict[str, Any] = {
            "get_text": kv.get(p + "text").decode(),
            "binary_intact": kv.get(p + "bytes") == bytes(range(256)),
            "get_missing": kv.get(p + "missing"),
            "incr": [kv.incr(p + "n"), kv.incr(p + "n"), kv.incr(p + "n", 5)],
            "counter_as_bytes": kv.get(p + "n").decode(),
            "ttl_without_expiry": kv.ttl(p + "n"),
            "ttl_missing": kv.ttl(p + "missing"),
            "expire_missing": kv.expire(p + "missing", 30),
            "expire": kv.expire(p + "n", 30),
        }
        ttl = kv.ttl(p + "n")
        seen["ttl_after_expire"] = ttl is not None and 0 < ttl <= 30
        kv.set(p + "brief", "x", ttl_s=60)
        ttl = kv.ttl(p + "brief")
        seen["ttl_of_set"] = ttl is not None and 0 < ttl <= 60
        kv.set_json(p + "json", {"a": [1, 2], "b": "ü"})
        seen["json_raw"] = kv.get(p + "json").decode()
        seen["json"] = kv.get_json(p + "json")
        seen["delete"] = [kv.delete(p + "text"), kv.delete(p + "text")]
        seen["after_delete"] = kv.get(p + "text")
        for key in ("bytes", "n", "brief", "json"):
            kv.delete(p + key)
        return seen

    @app.function(name="cache-call", timeout_s=10)
    def cache_call(call: CacheCall) -> dict[str, Any]:
        """One cache call, for tests that span invocations (expiry, concurrent incr)."""
        if call.op == "set":
            kv.set(call.key, call.value, ttl_s=call.ttl_s)
            return {"ok": True}
        if call.op == "get":
            value = kv.get(call.key)
            return {"value": value.decode() if value is not None else None}
        if call.op == "incr":
            return {"values": [kv.incr(call.key) for _ in range(call.times)]}
        raise HttpError(400, f"unknown op {call.op!r}")
# --- functions invoking functions (function.invoke) ------------------------------

if has("function.invoke", "resource.table"):
    from sls_py import InvokeError, InvokeFailed

    squares = app.fanout("square-chunk")

    @app.function(name="square-chunk", timeout_s=10)
    def square_chunk(numbers: list[int]) -> list[int]:
        """A fan-out worker: the squares of its chunk."""
        return [n * n for n in numbers]

    class Call(BaseModel):
        """What ``invoke-target`` is asked to do."""

        run: str = ""
        x: int = 0
        status: int | None = None
        record: bool = False
        fail: bool = False

    @app.function(name="invoke-target", timeout_s=10)
    def invoke_target(call: Call, ctx: Context) -> dict[str, Any]:
        """Answer, fail with a status, record an asynchronous call, or fail every attempt."""
        if call.fail:
            events.put({"id": f"attempt:{call.run}:{ctx.request_id}"})
            raise RuntimeError("fails on purpose")
        if call.status is not None:
            raise HttpError(call.status, "refused on purpose")
        if call.record:
            events.put({"id": f"async:{call.run}", "function": ctx.function_name})
        return {"doubled": call.x * 2, "function": ctx.function_name}

    class Invoking(BaseModel):
        """The payload of ``invoker``."""

        mode: str
        run: str = ""
        x: int = 0
        n: int = 0
        chunk: int = 1
        parallel: int = 1

    @app.function(name="invoker", timeout_s=60, invokes=["invoke-target", "square-chunk"])
    def invoker(p: Invoking, ctx: Context) -> Any:
        """Invoke ``invoke-target`` (waiting or not) or fan out over ``square-chunk``."""
        if p.mode == "sync":
            return ctx.invoke("invoke-target", {"x": p.x})
        if p.mode == "sync-error":
            try:
                ctx.invoke("invoke-target", {"status": 409})
            except InvokeFailed as exc:
                return {"type": exc.error.type, "status": exc.error.status, "message": exc.error.message}
        if p.mode == "refused":
            refused = []
            for call in (
                lambda: ctx.invoke("add", {"x": 1, "y": 2}),
                lambda: ctx.invoke_async("invoke-target", {"run": "x" * (256 * 1024)}),
            ):
                try:
                    call()
                except InvokeError as exc:
                    refused.append(str(exc).split(":")[0])
            return refused
        if p.mode == "async":
            return {"id": ctx.invoke_async("invoke-target", {"run": p.run, "record": True})}
        if p.mode == "async-fail":
            return {"id": ctx.invoke_async("invoke-target", {"run": p.run, "fail": True})}
        if p.mode == "fanout":
            return squares.map(range(p.n), ctx, chunk=p.chunk, parallel=p.parallel)
        raise HttpError(400, f"unknown mode {p.mode}")
# --- config (resource.config): read at call time ----------------------------------

if has("resource.config"):
    settings = app.config("settings", ttl_s=1)

    class ConfigQuery(BaseModel):
        """Which key to read, and the default to give ``get`` (none: no default)."""

        key: str
        default: str | None = None
        has_default: bool = False

    @app.function(name="config-read", timeout_s=10, triggers=routes(http("POST", "/config-read")))
    def config_read(query: ConfigQuery) -> dict[str, Any]:
        """What ``settings.get(key[, default])`` answers, and which process answered."""
        args = (query.key, query.default) if query.has_default else (query.key,)
        return {"value": settings.get(*args), "pid": os.getpid()}


# the functions of the contract checks (sls_py.testing.conformance.contracts) join this app
from . import contracts  # noqa: E402, F401
