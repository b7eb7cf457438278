"""The provider conformance suite: the neutral semantics every provider keeps.

Run it from a provider's own tests with a few lines::

    from sls_py.testing.conformance import ProviderConformance

    class TestMyCloud(ProviderConformance):
        provider = "mycloud"

Each test names the capabilities it checks; one the provider does not declare
(or declares as not emulated) is skipped with that reason, never passed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import ClassVar

import pytest

from ...errors import NotSupported
from ...spec import CAPABILITIES
from .cache_suite import CacheConformance
from .config_suite import ConfigConformance
from .contracts import ContractConformance
from .database import DatabaseConformance
from .harness import Harness, PluginHarness, prepare_project

JSON = {"content-type": "application/json"}


def _run_id() -> str:
    return uuid.uuid4().hex[:10]


class ProviderConformance(CacheConformance, ConfigConformance, ContractConformance, DatabaseConformance):
    """Subclass as ``Test...`` and set :attr:`provider` (or override :meth:`make_harness`).

    :attr:`exclude` maps capabilities to a reason for not checking them in
    this run (for example a feature whose server lives in another package);
    they are skipped with that reason. :attr:`known_failures` maps test names
    to a reason; they run as strict xfails. The checks of the gateway and
    runtime contract (docs/providers.md) come from :class:`ContractConformance`
    (``skip_contracts`` maps a contract row id to why this setup cannot check it).
    """

    provider: ClassVar[str] = ""
    exclude: ClassVar[Mapping[str, str]] = {}
    #: Tests the provider is known to fail, by test name, with the reason. They
    #: run as strict xfails: the run fails as soon as one passes, so the entry
    #: is removed when the provider is fixed.
    known_failures: ClassVar[Mapping[str, str]] = {}

    @pytest.fixture(autouse=True)
    def _known_failure(self, request: pytest.FixtureRequest) -> None:
        reason = self.known_failures.get(request.node.originalname)
        if reason is not None:
            request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))

    def make_harness(self) -> Harness:
        """The harness for the provider under test."""
        if not self.provider:
            raise TypeError(f"{type(self).__name__}: set `provider = NAME` or override make_harness()")
        return PluginHarness(self.provider)

    @pytest.fixture(scope="class")
    @classmethod
    def conformance(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
        """The started harness, shared by the class's tests."""
        harness = cls().make_harness()
        # an excluded capability is left out of the app too, so its resources are not deployed
        capabilities = set(harness.info().capabilities) - set(cls.exclude)
        project = prepare_project(tmp_path_factory.mktemp("conformance"), capabilities)
        harness.start(project)
        try:
            yield harness
        finally:
            harness.stop()

    def need(self, harness: Harness, *capabilities: str) -> None:
        """Skip the calling test unless the provider declares and enforces ``capabilities``."""
        info = harness.info()
        for cap in capabilities:
            if cap in self.exclude:
                pytest.skip(f"{cap} excluded from this run: {self.exclude[cap]}")
            if cap not in info.capabilities:
                pytest.skip(f"provider {info.name!r} does not declare {cap!r} ({CAPABILITIES[cap]})")
            if cap in info.not_emulated:
                pytest.skip(
                    f"provider {info.name!r} declares {cap!r} as not emulated: " + info.not_emulated[cap]
                )

    # --- deploy ------------------------------------------------------------------

    def test_unchanged_app_plans_no_steps(self, conformance: Harness) -> None:
        """After the harness deployed the app, ``plan`` has nothing left to do."""
        try:
            plan = conformance.plan()
        except NotSupported as exc:
            pytest.skip(f"no plan after deploy: {exc.message}")
        assert plan.steps == []

    # --- payload in, result out -------------------------------------------------

    def test_invoke_payload_gives_result(self, conformance: Harness) -> None:
        self.need(conformance, "invoke")
        inv = conformance.invoke("add", {"x": 29, "y": 13, "label": "talk"})
        assert inv.error is None, inv.error
        assert inv.result == {
            "sum": 42,
            "label": "talk",
            "function": "add",
            "stage": "conformance",
            "greeting": "hello from the stage",
            "time_left": True,
        }

    def test_invoke_validation_error_is_400(self, conformance: Harness) -> None:
        self.need(conformance, "invoke")
        inv = conformance.invoke("add", {"x": "twenty-nine"})
        assert inv.result is None
        assert inv.error is not None
        assert (inv.error.type, inv.error.status) == ("InvalidInput", 400)
        assert sorted(tuple(d["loc"]) for d in inv.error.details) == [("x",), ("y",)]

    def test_invoke_http_error_keeps_status(self, conformance: Harness) -> None:
        self.need(conformance, "invoke")
        for status in (403, 418, 503):
            inv = conformance.invoke("fail", {"status": status, "message": f"no {status}"})
            assert inv.error is not None
            assert (inv.error.type, inv.error.status, inv.error.message) == (
                "HttpError",
                status,
                f"no {status}",
            )

    def test_invoke_crash_is_a_function_error(self, conformance: Harness) -> None:
        self.need(conformance, "invoke")
        inv = conformance.invoke("fail", {"message": "boom"})
        assert inv.result is None
        assert inv.error is not None
        assert (inv.error.type, inv.error.status, inv.error.message) == (
            "RuntimeError",
            None,
            "boom",
        )

    def test_invoke_timeout_is_enforced(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "function.timeout")
        inv = conformance.invoke("slow", {"seconds": 3})
        assert inv.result is None
        assert inv.error is not None and inv.error.status == 504, inv.error
        after = conformance.invoke("slow", {"seconds": 0})
        assert (after.error, after.result) == (None, {"slept": 0})

    # --- HTTP -------------------------------------------------------------------

    def test_http_route_gives_invoke_result(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "trigger.http")
        payload = {"x": 2, "y": 3, "label": "web"}
        r = conformance.http("POST", "/add", JSON, b'{"x": 2, "y": 3, "label": "web"}')
        assert (r.status, r.headers.get("content-type", "").split(";")[0]) == (
            200,
            "application/json",
        )
        assert r.json() == conformance.invoke("add", payload).result

    def test_http_validation_error_is_400(self, conformance: Harness) -> None:
        self.need(conformance, "trigger.http")
        r = conformance.http("POST", "/add", JSON, b'{"x": "two"}')
        body = r.json()
        assert (r.status, body["message"]) == (400, "Invalid request body")
        assert sorted(tuple(e["loc"]) for e in body["errors"]) == [("x",), ("y",)]
        bad = conformance.http("POST", "/add", JSON, b'{"x": 2,')
        assert bad.status == 400

    def test_http_error_status_passes_through(self, conformance: Harness) -> None:
        self.need(conformance, "trigger.http")
        for status in (403, 418, 503):
            r = conformance.http("POST", "/fail", JSON, b'{"status": %d, "message": "teapot"}' % status)
            assert (r.status, r.json()) == (status, {"message": "teapot"})

    def test_http_crash_is_502_without_details(self, conformance: Harness) -> None:
        self.need(conformance, "trigger.http")
        r = conformance.http("POST", "/fail", JSON, b'{"message": "secret detail"}')
        assert (r.status, r.json()) == (502, {"message": "Internal server error"})

    def test_http_request_style(self, conformance: Harness) -> None:
        self.need(conformance, "trigger.http")
        r = conformance.http("GET", "/inspect/abc?q=1&q=2&z=", {"X-Conformance": "yes"})
        assert (r.status, r.headers.get("x-conformance-reply")) == (200, "yes")
        assert r.json() == {
            "method": "GET",
            "path": "/inspect/abc",
            "route": "/inspect/{item}",
            "path_params": {"item": "abc"},
            "query": {"q": ["1", "2"], "z": [""]},
            "header": "yes",
            "body": "",
        }
        r = conformance.http("POST", "/files/a/b/c.txt", {"content-type": "text/plain"}, b"hello")
        assert r.status == 201
        assert r.json() == {
            "method": "POST",
            "path": "/files/a/b/c.txt",
            "route": "/files/{path+}",
            "path_params": {"path": "a/b/c.txt"},
            "query": {},
            "header": None,
            "body": "hello",
        }

    def test_http_unknown_route_is_refused(self, conformance: Harness) -> None:
        self.need(conformance, "trigger.http")
        r = conformance.http("GET", "/no/such/route")
        assert r.status in (403, 404), (r.status, r.body)

    def test_http_timeout_is_504(self, conformance: Harness) -> None:
        self.need(conformance, "trigger.http", "function.timeout")
        r = conformance.http("POST", "/slow", JSON, b'{"seconds": 3}')
        assert r.status == 504, (r.status, r.body)
        again = conformance.http("POST", "/slow", JSON, b'{"seconds": 0}')
        assert (again.status, again.json()) == (200, {"slept": 0})

    def test_http_api_key_enforced(self, conformance: Harness) -> None:
        self.need(conformance, "trigger.http", "http.api_key")
        key = conformance.api_key()
        missing = conformance.http("GET", "/guarded")
        wrong = conformance.http("GET", "/guarded", {"X-API-Key": key + "x"})
        right = conformance.http("GET", "/guarded", {"x-api-key": key})
        other_case = conformance.http("GET", "/guarded", {"X-Api-Key": key})
        assert [(r.status, r.json()) for r in (missing, wrong, right, other_case)] == [
            (403, {"message": "Forbidden"}),
            (403, {"message": "Forbidden"}),
            (200, {"guarded": True}),
            (200, {"guarded": True}),
        ]

    def test_http_cors_headers(self, conformance: Harness) -> None:
        self.need(conformance, "trigger.http", "http.cors")
        origin = "https://app.example"
        r = conformance.http("GET", "/shared", {"Origin": origin})
        assert (r.status, r.json()) == (200, {"shared": True})
        assert r.headers.get("access-control-allow-origin") in ("*", origin)
        pre = conformance.http(
            "OPTIONS",
            "/shared",
            {
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert pre.status in (200, 204), (pre.status, pre.body)
        assert pre.headers.get("access-control-allow-origin") in ("*", origin)
        allowed = {m.strip().upper() for m in pre.headers.get("access-control-allow-methods", "").split(",")}
        assert "GET" in allowed, pre.headers

    # --- resources ----------------------------------------------------------------

    def test_bucket_interface(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "resource.bucket")
        run = _run_id()
        inv = conformance.invoke("bucket-ops", {"run": run})
        assert inv.error is None, inv.error
        p = f"{run}/"
        assert inv.result == {
            "get_bytes": "one",
            "get_text": "two",
            "binary_intact": True,
            "list_prefix": [p + "a/1.txt", p + "a/2.txt"],
            "list_run": [p + "a/1.txt", p + "a/2.txt", p + "b/3.bin"],
            "overwritten": "one again",
            "after_delete": [p + "a/2.txt"],
            "get_missing": "KeyError",
            "delete_missing": "no error",
            "after_cleanup": [],
        }

    def test_table_interface(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "resource.table")
        run = _run_id()
        inv = conformance.invoke("table-ops", {"run": run})
        assert inv.error is None, inv.error
        acct = f"acct-{run}"
        assert inv.result == {
            "get": {"account": acct, "seq": 2, "amount": 20, "tags": ["t", 2]},
            "query": [
                {"account": acct, "seq": 1, "amount": 10, "tags": ["t", 1]},
                {"account": acct, "seq": 2, "amount": 20, "tags": ["t", 2]},
                {"account": acct, "seq": 3, "amount": 30, "tags": ["t", 3]},
            ],
            "query_other": [],
            "replaced": {"account": acct, "seq": 2, "amount": 22},
            "after_delete": [2, 3],
            "get_missing": None,
            "delete_missing": "no error",
            "after_cleanup": [],
        }

    def test_queue_interface(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "resource.queue")
        inv = conformance.invoke("queue-ops", {"run": _run_id()})
        assert (inv.error, inv.result) == (None, {"ids_are_text": True, "distinct": True})

    # --- triggers -------------------------------------------------------------------

    def test_upload_trigger_delivers_upload_event(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "trigger.upload", "resource.bucket", "resource.table")
        import hashlib

        run = _run_id()
        data = b"conformance upload " + run.encode()
        conformance.upload("inbox", f"out/{run}.dat", b"wrong prefix")
        conformance.upload("inbox", f"in/{run}.txt", b"wrong suffix")
        conformance.upload("inbox", f"in/{run}.dat", data)
        found = conformance.wait_for_records(f"upload:in/{run}.dat", 1)
        assert found == [
            {
                "id": f"upload:in/{run}.dat",
                "bucket": "inbox",
                "key": f"in/{run}.dat",
                "size": len(data),
                "read_size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "has_time": True,
            }
        ]
        assert conformance.records(f"upload:out/{run}") == []
        assert conformance.records(f"upload:in/{run}.txt") == []

    def test_schedule_trigger_delivers_schedule_event(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "trigger.schedule", "resource.table")
        before = conformance.records("schedule:")
        conformance.fire_schedule("on-schedule")
        found = conformance.wait_for_records("schedule:", len(before) + 1)
        new = [r for r in found if r not in before]
        assert len(new) == 1, found
        record = dict(new[0])
        fired = datetime.fromisoformat(record.pop("time").replace("Z", "+00:00"))
        assert fired.utcoffset() == timedelta(0), "schedule times are in UTC"
        del record["id"]
        assert record == {
            "schedule": "tick",
            "expression": "rate(1 day)",
            "payload": {"hello": "schedule"},
        }

    def test_queue_trigger_delivers_messages(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "trigger.queue", "resource.queue", "resource.table")
        run = _run_id()
        conformance.send("jobs", f"msg-{run}-1")
        conformance.send("jobs", f"msg-{run}-2")
        found = conformance.wait_for_records(f"queue:msg-{run}", 2)
        assert found == [
            {
                "id": f"queue:msg-{run}-{n}",
                "batch_queue": "jobs",
                "message_queue": "jobs",
                "body": f"msg-{run}-{n}",
                "has_id": True,
            }
            for n in (1, 2)
        ]
        # a message a function sends through the queue interface is delivered too
        inv = conformance.invoke("queue-ops", {"run": run})
        assert inv.error is None, inv.error
        sent = conformance.wait_for_records(f"queue:text-{run}", 1)
        assert [r["body"] for r in sent] == [f"text-{run}"]

    # --- functions invoking functions (function.invoke) ---------------------------------

    def test_invoke_waits_for_the_targets_result(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "function.invoke", "resource.table")
        inv = conformance.invoke("invoker", {"mode": "sync", "x": 21})
        assert (inv.error, inv.result) == (None, {"doubled": 42, "function": "invoke-target"})
        inv = conformance.invoke("invoker", {"mode": "sync-error"})
        assert (inv.error, inv.result) == (
            None,
            {"type": "HttpError", "status": 409, "message": "refused on purpose"},
        )

    def test_invoke_refuses_undeclared_targets_and_big_payloads(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "function.invoke", "resource.table")
        inv = conformance.invoke("invoker", {"mode": "refused"})
        assert (inv.error, inv.result) == (
            None,
            [
                "function 'invoker' may not invoke 'add'",
                "the payload for 'invoke-target' is 262154 bytes, over the 262144 bytes an "
                "asynchronous invocation may carry; put the data in a bucket and pass its key instead",
            ],
        )

    def test_invoke_async_is_delivered(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "function.invoke", "resource.table")
        conformance.deliver_async()
        run = _run_id()
        inv = conformance.invoke("invoker", {"mode": "async", "run": run})
        assert inv.error is None and isinstance(inv.result["id"], str), inv
        found = conformance.wait_for_records(f"async:{run}", 1, timeout_s=60)
        # at least once: a redelivery records the same row again
        assert found == [{"id": f"async:{run}", "function": "invoke-target"}]

    def test_invoke_async_dead_letters_after_two_retries(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "function.invoke", "resource.table")
        conformance.deliver_async()
        run = _run_id()
        inv = conformance.invoke("invoker", {"mode": "async-fail", "run": run})
        assert inv.error is None, inv.error
        payload = {"run": run, "fail": True}
        deadline = time.monotonic() + 90
        while payload not in conformance.dead_letters("invoke-target"):
            assert time.monotonic() < deadline, "the failing invocation was never dead-lettered"
            time.sleep(0.3)
        attempts = conformance.records(f"attempt:{run}:")
        assert len(attempts) == 3, attempts  # the first attempt and two retries

    def test_fanout_gathers_every_chunks_result(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "function.invoke", "resource.table")
        conformance.deliver_async()
        inv = conformance.invoke("invoker", {"mode": "fanout", "n": 10, "chunk": 3, "parallel": 2})
        assert (inv.error, inv.result) == (None, [[0, 1, 4], [9, 16, 25], [36, 49, 64], [81]])
    # --- last: stopping the `run` server (the checks above share one) -----------------

    test_contract_run_stops_on_sigterm = ContractConformance.check_run_stops_on_sigterm
