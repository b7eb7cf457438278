"""Conformance checks of the gateway and runtime *contract* (docs/providers.md).

Every row of the contract tables in ``docs/providers.md`` has an id
(``http.no-route``, ``queue.redelivery``, ...); every test here names the rows
it checks with :func:`contract`, and a test of sls-py's own suite keeps the two
lists equal. The checks compare whole answers (status, body, content type and
the headers that matter), so a provider that guessed an answer differently from
the contract fails.

:class:`ContractConformance` is mixed into
:class:`~sls_py.testing.conformance.ProviderConformance`; a provider runs these
checks with the rest of the suite. A row a provider's *test setup* cannot
reach (an emulator that does not route requests, say) goes in
``skip_contracts = {"row.id": "why"}`` of the test class and is skipped with
that reason; a capability the provider does not declare, or declares as not
emulated, is skipped as everywhere in the suite.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

import pytest

from .harness import Harness, HttpResult, PluginHarness

F = TypeVar("F", bound=Callable[..., Any])

JSON = {"content-type": "application/json"}
#: API Gateway's (and so every provider's) request payload limit, in bytes.
MAX_BODY = 6 * 1024 * 1024
#: Every method an ``ANY`` route answers (and a preflight for it lists, with OPTIONS).
ANY_METHODS = {"DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"}
#: The statuses a preflight may answer with: 204 (no content), or 200 where the
#: platform fixes it (API Gateway's MOCK integration, on the aws provider).
PREFLIGHT_STATUSES = (200, 204)
#: The origin the conformance app's ``/own-cors`` route allows.
OWN_ORIGIN = "https://own.example"
_UTC_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def contract(*rows: str) -> Callable[[F], F]:
    """Mark a test as the check of contract rows ``rows`` (ids from docs/providers.md)."""

    def mark(test: F) -> F:
        test.contract_rows = rows  # type: ignore[attr-defined]
        return test

    return mark


def contract_rows(cls: type) -> dict[str, list[str]]:
    """Contract row id -> the names of the tests of ``cls`` that check it."""
    out: dict[str, list[str]] = {}
    for name in dir(cls):
        if not name.startswith("test_"):
            continue
        for row in getattr(getattr(cls, name), "contract_rows", ()):
            out.setdefault(row, []).append(name)
    return out


def _run_id() -> str:
    return uuid.uuid4().hex[:10]


def content_type(r: HttpResult) -> str:
    """The media type of a response, without parameters, in lower case."""
    return r.headers.get("content-type", "").split(";")[0].strip().lower()


def answer(r: HttpResult) -> tuple[int, str, Any]:
    """``(status, media type, parsed JSON body)``: a JSON answer as one value to compare."""
    try:
        body: Any = r.json()
    except ValueError:
        body = r.body
    return r.status, content_type(r), body


def listed(r: HttpResult, header: str, upper: bool = False) -> set[str]:
    """The items of a comma-separated header (``access-control-allow-methods``)."""
    items = {v.strip() for v in r.headers.get(header, "").split(",") if v.strip()}
    return {v.upper() if upper else v.lower() for v in items}


def gateway_message(status: int, message: str) -> tuple[int, str, Any]:
    """What the gateway answers itself: ``status``, JSON ``{"message": message}``."""
    return status, "application/json", {"message": message}


NO_ROUTE = gateway_message(403, "Missing Authentication Token")
FORBIDDEN = gateway_message(403, "Forbidden")
CRASHED = gateway_message(502, "Internal server error")
TIMED_OUT = gateway_message(504, "Endpoint request timed out")
TOO_LARGE = gateway_message(413, "Request Too Long")
THROTTLED = gateway_message(429, "Too Many Requests")
#: What ``write-and-look`` answers when no trigger ran inside ``send`` or ``put``.
INSIDE_NOTHING = {"queue_delivered_inside_send": False, "upload_delivered_inside_put": False}


class ContractConformance:
    """The contract checks; mixed into ``ProviderConformance``."""

    #: Contract rows this test setup cannot check, by row id, with the reason.
    skip_contracts: ClassVar[Mapping[str, str]] = {}

    def need(self, harness: Harness, *capabilities: str) -> None:  # pragma: no cover
        """Skip unless the provider declares and enforces ``capabilities`` (the suite's)."""
        raise NotImplementedError

    def row(self, harness: Harness, row: str, *capabilities: str) -> None:
        """Skip the calling test if ``row`` cannot be checked here, or a capability is missing."""
        if row in self.skip_contracts:
            pytest.skip(f"contract {row} is not checked in this setup: {self.skip_contracts[row]}")
        self.need(harness, *capabilities)

    # --- the gateway's answers ------------------------------------------------------

    @contract("http.result")
    def test_contract_payload_result(self, conformance: Harness) -> None:
        self.row(conformance, "http.result", "trigger.http")
        r = conformance.http("POST", "/add", JSON, b'{"x": 2, "y": 3}')
        assert answer(r) == (
            200,
            "application/json",
            {
                "sum": 5,
                "label": "",
                "function": "add",
                "stage": "conformance",
                "greeting": "hello from the stage",
                "time_left": True,
            },
        )

    @contract("http.no-route")
    def test_contract_no_route(self, conformance: Harness) -> None:
        self.row(conformance, "http.no-route", "trigger.http")
        for method, path in (("GET", "/no/such/route"), ("DELETE", "/add"), ("POST", "/add/more")):
            r = conformance.http(method, path, JSON, b"{}")
            assert answer(r) == NO_ROUTE, (method, path)

    @contract("http.api-key")
    def test_contract_api_key(self, conformance: Harness) -> None:
        self.row(conformance, "http.api-key", "trigger.http", "http.api_key")
        key = conformance.api_key()
        refused = [
            conformance.http("GET", "/guarded"),
            conformance.http("GET", "/guarded", {"x-api-key": ""}),
            conformance.http("GET", "/guarded", {"x-api-key": key[:-1]}),
            conformance.http("GET", "/guarded", {"x-api-key": key.swapcase()}),
            conformance.http("GET", "/guarded", {"authorization": f"Bearer {key}"}),
            conformance.http("GET", f"/guarded?x-api-key={key}"),
        ]
        assert [answer(r) for r in refused] == [FORBIDDEN] * len(refused)
        ok = conformance.http("GET", "/guarded", {"X-API-KEY": key})
        assert answer(ok) == (200, "application/json", {"guarded": True})

    @contract("http.validation")
    def test_contract_validation_error(self, conformance: Harness) -> None:
        self.row(conformance, "http.validation", "trigger.http")
        status, media, body = answer(conformance.http("POST", "/add", JSON, b'{"x": "two"}'))
        assert (status, media, sorted(body)) == (400, "application/json", ["errors", "message"])
        assert body["message"] == "Invalid request body"
        assert sorted((e["loc"], e["type"], sorted(e)) for e in body["errors"]) == [
            (["x"], "int_parsing", ["loc", "msg", "type"]),
            (["y"], "missing", ["loc", "msg", "type"]),
        ]

    @contract("http.bad-json")
    def test_contract_bad_json(self, conformance: Harness) -> None:
        self.row(conformance, "http.bad-json", "trigger.http")
        status, media, body = answer(conformance.http("POST", "/add", JSON, b'{"x": 2,'))
        assert (status, media, body.get("errors")) == (400, "application/json", []), body
        assert sorted(body) == ["errors", "message"]
        assert body["message"].startswith("Request body is not valid JSON: "), body

    @contract("http.http-error")
    def test_contract_http_error(self, conformance: Harness) -> None:
        self.row(conformance, "http.http-error", "trigger.http")
        r = conformance.http("POST", "/fail", JSON, b'{"status": 418, "message": "teapot"}')
        assert answer(r) == (418, "application/json", {"message": "teapot"})

    @contract("http.crash")
    def test_contract_crash(self, conformance: Harness) -> None:
        self.row(conformance, "http.crash", "trigger.http")
        r = conformance.http("POST", "/fail", JSON, b'{"message": "secret detail"}')
        assert answer(r) == CRASHED
        assert b"secret detail" not in r.body

    @contract("http.timeout")
    def test_contract_timeout(self, conformance: Harness) -> None:
        self.row(conformance, "http.timeout", "trigger.http", "function.timeout")
        assert answer(conformance.http("POST", "/slow", JSON, b'{"seconds": 3}')) == TIMED_OUT

    @contract("http.too-large")
    def test_contract_body_too_large(self, conformance: Harness) -> None:
        self.row(conformance, "http.too-large", "trigger.http")
        label = "a" * (MAX_BODY // 2)
        fits = conformance.http("POST", "/add", JSON, b'{"x": 1, "y": 2, "label": "%s"}' % label.encode())
        assert (fits.status, fits.json()["sum"]) == (200, 3)
        over = b'{"x": 1, "y": 2, "label": "' + b"a" * MAX_BODY + b'"}'
        assert answer(conformance.http("POST", "/add", JSON, over)) == TOO_LARGE

    @contract("http.rate-limit")
    def test_contract_usage_limits(self, conformance: Harness) -> None:
        """The app allows 1 request/s, burst 3, per key: a quick series runs into 429."""
        self.row(conformance, "http.rate-limit", "trigger.http", "http.api_key", "http.usage_limits")
        key = {"x-api-key": conformance.api_key()}
        answers = []
        for _ in range(30):
            answers.append(answer(conformance.http("GET", "/guarded", key)))
            if answers[-1][0] != 200:
                break
        assert answers[-1] == THROTTLED, answers
        assert 1 <= len(answers) - 1 <= 8, f"{len(answers) - 1} requests passed a burst of 3"
        # the bucket refills at the rate: a request passes again (wait for a full bucket,
        # so the tests after this one are not refused)
        deadline = time.monotonic() + 10
        while answer(conformance.http("GET", "/guarded", key))[0] != 200:
            assert time.monotonic() < deadline, "the key stayed refused after 10 s"
            time.sleep(0.25)
        time.sleep(2.5)

    # --- CORS -------------------------------------------------------------------------

    @contract("http.cors")
    def test_contract_cors_headers(self, conformance: Harness) -> None:
        self.row(conformance, "http.cors", "trigger.http", "http.cors")
        origin = {"origin": "https://app.example"}
        for headers in (origin, {}):
            r = conformance.http("GET", "/shared", headers)
            assert answer(r) == (200, "application/json", {"shared": True})
            assert r.headers.get("access-control-allow-origin") == "*", (headers, r.headers)
            assert "access-control-allow-credentials" not in r.headers
        plain = conformance.http("POST", "/add", {**JSON, **origin}, b'{"x": 1, "y": 1}')
        assert plain.status == 200
        assert "access-control-allow-origin" not in plain.headers, "a route without CORS"
        if "http.api_key" in conformance.info().capabilities:
            refused = conformance.http("GET", "/guarded-shared", origin)
            assert answer(refused) == FORBIDDEN
            assert refused.headers.get("access-control-allow-origin") == "*", refused.headers

    @contract("http.cors-gateway", "http.preflight")
    def test_contract_preflight_gateway_settings(self, conformance: Harness) -> None:
        self.row(conformance, "http.cors-gateway", "trigger.http", "http.cors")
        pre = conformance.http(
            "OPTIONS",
            "/shared",
            {
                "origin": "https://app.example",
                "access-control-request-method": "GET",
                "access-control-request-headers": "x-conformance",
            },
        )
        assert (pre.status in PREFLIGHT_STATUSES, pre.body) == (True, b""), pre
        assert (
            pre.headers.get("access-control-allow-origin"),
            listed(pre, "access-control-allow-methods", upper=True),
            listed(pre, "access-control-allow-headers"),
            pre.headers.get("access-control-max-age"),
            pre.headers.get("access-control-allow-credentials"),
        ) == ("*", {"GET", "OPTIONS"}, {"content-type", "x-api-key", "x-conformance"}, "300", None)
        no_cors = conformance.http("OPTIONS", "/add", {"origin": "https://app.example"})
        assert answer(no_cors) == NO_ROUTE

    @contract("http.cors-route")
    def test_contract_route_cors_settings(self, conformance: Harness) -> None:
        self.row(conformance, "http.cors-route", "trigger.http", "http.cors")
        own = conformance.http("GET", "/own-cors", {"origin": OWN_ORIGIN})
        assert answer(own) == (200, "application/json", {"own": True})
        assert (
            own.headers.get("access-control-allow-origin"),
            own.headers.get("access-control-allow-credentials"),
            "origin" in listed(own, "vary"),
        ) == (OWN_ORIGIN, "true", True), own.headers
        other = conformance.http("GET", "/own-cors", {"origin": "https://other.example"})
        assert other.status == 200
        assert "access-control-allow-origin" not in other.headers, other.headers
        pre = conformance.http(
            "OPTIONS", "/own-cors", {"origin": OWN_ORIGIN, "access-control-request-method": "GET"}
        )
        assert (pre.status in PREFLIGHT_STATUSES, pre.body) == (True, b""), pre
        assert (
            pre.headers.get("access-control-allow-origin"),
            listed(pre, "access-control-allow-methods", upper=True),
            listed(pre, "access-control-allow-headers"),
            pre.headers.get("access-control-max-age"),
            pre.headers.get("access-control-allow-credentials"),
        ) == (OWN_ORIGIN, {"GET"}, {"x-own"}, "60", "true")

    # --- routes -----------------------------------------------------------------------

    @contract("route.any")
    def test_contract_route_any(self, conformance: Harness) -> None:
        self.row(conformance, "route.any", "trigger.http")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            r = conformance.http(method, "/anything", JSON, b"{}")
            assert answer(r) == (
                200,
                "application/json",
                {"method": method, "path": "/anything", "route": "/anything", "path_params": {}},
            )
            assert r.headers.get("x-route") == "/anything"

    @contract("route.head")
    def test_contract_route_head(self, conformance: Harness) -> None:
        self.row(conformance, "route.head", "trigger.http")
        r = conformance.http("HEAD", "/anything")
        assert (r.status, r.headers.get("x-route"), r.body) == (200, "/anything", b"")
        assert content_type(r) == "application/json"
        refused = conformance.http("HEAD", "/prec/fixed")
        assert (refused.status, refused.body) == (403, b""), "HEAD is not GET"

    @contract("route.options")
    def test_contract_route_options(self, conformance: Harness) -> None:
        self.row(conformance, "route.options", "trigger.http")
        r = conformance.http("OPTIONS", "/anything")
        assert answer(r) == (
            200,
            "application/json",
            {"method": "OPTIONS", "path": "/anything", "route": "/anything", "path_params": {}},
        )
        if "http.cors" not in conformance.info().capabilities:
            return
        pre = conformance.http(
            "OPTIONS",
            "/anything-shared",
            {"origin": "https://app.example", "access-control-request-method": "PUT"},
        )
        assert (pre.status in PREFLIGHT_STATUSES, pre.body) == (True, b""), pre
        assert listed(pre, "access-control-allow-methods", upper=True) == {*ANY_METHODS, "OPTIONS"}
        assert pre.headers.get("access-control-allow-origin") == "*"
        put = conformance.http("PUT", "/anything-shared", {"origin": "https://app.example"})
        assert (put.status, put.json()["method"]) == (200, "PUT")
        assert put.headers.get("access-control-allow-origin") == "*"

    @contract("route.param", "route.greedy", "route.precedence")
    def test_contract_route_matching(self, conformance: Harness) -> None:
        self.row(conformance, "route.precedence", "trigger.http")
        cases = {
            "/prec/fixed": ("/prec/fixed", {}),
            "/prec/other": ("/prec/{name}", {"name": "other"}),
            "/deep/a/tail": ("/deep/{first}/tail", {"first": "a"}),
            "/deep/a": ("/deep/{rest+}", {"rest": "a"}),
            "/deep/a/b/c.txt": ("/deep/{rest+}", {"rest": "a/b/c.txt"}),
        }
        seen = {}
        for path in cases:
            r = conformance.http("GET", path)
            assert r.status == 200, (path, r.status, r.body)
            body = r.json()
            seen[path] = (body["route"], body["path_params"])
        assert seen == cases
        assert answer(conformance.http("GET", "/prec/a/b")) == NO_ROUTE, "{name} is one segment"
        assert answer(conformance.http("GET", "/deep")) == NO_ROUTE, "{name+} needs a segment"

    @contract("http.response")
    def test_contract_response_encoding(self, conformance: Harness) -> None:
        self.row(conformance, "http.response", "trigger.http")

        def ask(kind: str) -> HttpResult:
            return conformance.http("POST", "/respond", JSON, b'{"kind": "%s"}' % kind.encode())

        text, raw, data, typed = ask("text"), ask("bytes"), ask("json"), ask("typed")
        assert (text.status, text.headers.get("content-type"), text.body) == (
            200,
            "text/plain; charset=utf-8",
            b"plain text",
        )
        assert (raw.status, raw.headers.get("content-type"), raw.body) == (
            200,
            "application/octet-stream",
            bytes([0, 1, 2, 255]),
        )
        assert answer(data) == (202, "application/json", {"kind": "json"})
        assert (typed.status, typed.headers.get("content-type"), typed.body) == (
            207,
            "text/html",
            b"<p>typed</p>",
        )
        assert typed.headers.get("x-custom") == "kept"

    # --- functions --------------------------------------------------------------------

    @contract("invoke.timeout")
    def test_contract_invoke_timeout_error(self, conformance: Harness) -> None:
        self.row(conformance, "invoke.timeout", "invoke", "function.timeout")
        error = conformance.invoke("slow", {"seconds": 3}).error
        assert error is not None
        assert (error.type, error.status) == ("TimeoutError", 504), error
        assert error.message.startswith("function 'slow' timed out after 1 s"), error.message

    @contract("function.memory")
    def test_contract_memory_limit(self, conformance: Harness) -> None:
        """``hog`` has 128 MB: 1 GB fails like a crash, and the next call works."""
        self.row(conformance, "function.memory", "trigger.http", "function.memory")
        assert answer(conformance.http("POST", "/hog", JSON, b'{"mb": 1024}')) == CRASHED
        after = conformance.http("POST", "/hog", JSON, b'{"mb": 1}')
        assert answer(after) == (200, "application/json", {"allocated": 1})

    @contract("function.concurrency")
    def test_contract_concurrency_limit(self, conformance: Harness) -> None:
        """``solo`` has concurrency 1: three calls at once never overlap (or are refused)."""
        self.row(
            conformance, "function.concurrency", "trigger.http", "function.concurrency", "resource.table"
        )
        run = _run_id()

        def call(n: int) -> HttpResult:
            body = b'{"run": "%s", "n": %d, "seconds": 0.6}' % (run.encode(), n)
            return conformance.http("POST", "/solo", JSON, body)

        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(call, range(3)))
        served = [n for n, r in enumerate(results) if r.status == 200]
        for n, r in enumerate(results):
            assert answer(r) in ((200, "application/json", {"n": n}), THROTTLED), answer(r)
        assert served, "no call was served"
        records = conformance.wait_for_records(f"solo:{run}:", len(served))
        spans = sorted((rec["start_us"], rec["end_us"]) for rec in records)
        assert len(spans) == len(served), records
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two calls of a function with concurrency 1 overlapped: {spans}"

    # --- events and delivery ------------------------------------------------------------

    @contract("upload.event")
    def test_contract_upload_event_fields(self, conformance: Harness) -> None:
        self.row(conformance, "upload.event", "invoke", "trigger.upload", "resource.bucket", "resource.table")
        run = _run_id()
        data = b"meta " + run.encode()
        conformance.upload("inbox", f"meta/{run}.bin", data)
        found = conformance.wait_for_records(f"upload-meta:meta/{run}.bin", 1)
        assert len(found) == 1, found
        record = found[0]
        assert _UTC_ISO.match(str(record.pop("time"))), "time: ISO 8601 in UTC, ending in Z"
        content = record.pop("content_type")
        assert content is None or isinstance(content, str), content
        md5 = hashlib.md5(data).hexdigest()
        assert record == {
            "id": f"upload-meta:meta/{run}.bin",
            "key": f"meta/{run}.bin",
            "size": len(data),
            "etag": md5,
            "md5": md5,
        }

    @contract("queue.redelivery", "queue.batch-size")
    def test_contract_queue_redelivery(self, conformance: Harness) -> None:
        """A failed id comes back (receive count 2) after the visibility timeout; the
        others are delivered once; no batch is larger than ``batch_size`` (2)."""
        self.row(
            conformance, "queue.redelivery", "invoke", "trigger.queue", "resource.queue", "resource.table"
        )
        run = _run_id()
        for body in ("ok-1", "ok-2", "ok-3", "fail"):
            conformance.send("retry", f"{run}-{body}")
        found = conformance.wait_for_records(f"retry:{run}-", 5, timeout_s=30)
        assert sorted(r["id"] for r in found) == [
            f"retry:{run}-fail:1",
            f"retry:{run}-fail:2",
            f"retry:{run}-ok-1:1",
            f"retry:{run}-ok-2:1",
            f"retry:{run}-ok-3:1",
        ]
        assert all(1 <= r["batch_len"] <= 2 for r in found), found

    def _write_and_look(self, conformance: Harness, what: str) -> tuple[Any, int]:
        """Invoke ``write-and-look``: what it saw right after writing, and how many
        deliveries of its ``what`` (``send`` or ``put``) arrived later."""
        run = _run_id()
        inv = conformance.invoke("write-and-look", {"run": run})
        if inv.error is not None:
            return inv.error, 0
        prefix = f"queue:look-{run}" if what == "send" else f"upload:in/look-{run}.dat"
        return inv.result, len(conformance.wait_for_records(prefix, 1))

    @contract("delivery.after-send")
    def test_contract_delivery_after_send(self, conformance: Harness) -> None:
        self.row(
            conformance,
            "delivery.after-send",
            "invoke",
            "trigger.queue",
            "trigger.upload",
            "resource.queue",
            "resource.bucket",
            "resource.table",
        )
        seen, delivered = self._write_and_look(conformance, "send")
        assert seen == INSIDE_NOTHING, "a queue trigger ran inside `send`"
        assert delivered == 1, "the message was never delivered"

    @contract("delivery.after-put")
    def test_contract_delivery_after_put(self, conformance: Harness) -> None:
        self.row(
            conformance,
            "delivery.after-put",
            "invoke",
            "trigger.queue",
            "trigger.upload",
            "resource.queue",
            "resource.bucket",
            "resource.table",
        )
        seen, delivered = self._write_and_look(conformance, "put")
        assert seen == INSIDE_NOTHING, "an upload trigger ran inside `put`"
        assert delivered == 1, "the object's upload trigger never ran"

    # --- run ----------------------------------------------------------------------------

    @contract("run.sigterm")
    def check_run_stops_on_sigterm(self, conformance: Harness) -> None:
        """SIGTERM to ``sls-py run`` ends it with exit code 0 and no process left behind.

        ``ProviderConformance`` runs it last, as ``test_contract_run_stops_on_sigterm``
        (the HTTP checks after it would have to start the server again).
        """
        self.row(conformance, "run.sigterm")
        if not isinstance(conformance, PluginHarness) or conformance.deployed_url is not None:
            pytest.skip("the app is deployed: no `sls-py run` process to stop")
        if not conformance.provider.implements("sls_py_run"):
            pytest.skip(f"provider {conformance.provider_name!r} does not implement `run`")
        conformance.ensure_server()
        server = conformance.server
        assert server is not None
        proc = server.proc
        os.kill(proc.pid, signal.SIGTERM)  # the main process only: it must stop the rest
        try:
            code = proc.wait(20)
        finally:
            server.stop()
            conformance.server = None  # the next HTTP check starts a fresh server
        assert code == 0, f"exit code {code} after SIGTERM; output:\n{server.text()[-2000:]}"
        deadline = time.monotonic() + 5
        left = True
        while left and time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                left = False
            else:
                time.sleep(0.1)
        if left:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        assert not left, "processes of the server were still running 5 s after it exited"
