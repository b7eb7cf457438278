"""The runtime: handler styles, events, errors, and the wire forms."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pydantic import BaseModel
from sls_py import (
    Context,
    HttpError,
    HttpRequest,
    QueueBatch,
    QueueMessage,
    Response,
    ScheduleEvent,
    UploadEvent,
)
from sls_py.runtime import Outcome, Payload, event_from_wire, execute, signature_of


class Pair(BaseModel):
    x: int
    y: int


def ctx() -> Context:
    return Context(
        request_id="r-1", function_name="f", stage="dev", deadline_ms=int(time.time() * 1000) + 5000
    )


def add(pair: Pair, ctx: Context) -> dict[str, int]:
    return {"sum": pair.x + pair.y}


def echo_request(req: HttpRequest) -> Response:
    return Response.json(
        {
            "method": req.method,
            "route": req.route,
            "params": req.path_params,
            "q": req.query,
            "h": req.header("X-Thing"),
            "body": req.text,
        },
        status=201,
        headers={"X-Reply": "yes"},
    )


def refuse(payload: dict[str, Any], ctx: Context) -> None:
    raise HttpError(418, "I'm a teapot", details={"why": "tea"})


def crash(payload: Any) -> None:
    raise RuntimeError("boom")


def on_upload(event: UploadEvent, ctx: Context) -> str:
    return f"{event.bucket}/{event.key}:{event.size}"


def on_schedule(event: ScheduleEvent) -> str:
    return event.time


def per_message(message: QueueMessage, ctx: Context) -> None:
    if message.json()["bad"]:
        raise ValueError("bad message")


def per_batch(batch: QueueBatch) -> list[str]:
    return [m.id for m in batch.messages if m.body == "fail"]


def test_signatures() -> None:
    styles = [
        signature_of(f).style for f in (add, echo_request, on_upload, on_schedule, per_message, per_batch)
    ]
    assert styles == ["payload", "request", "upload", "schedule", "message", "queue"]
    assert signature_of(echo_request).wants_context is False


def test_payload_style_validates_into_the_annotated_type() -> None:
    assert execute(add, Payload({"x": 29, "y": 13}), ctx()) == Outcome(result={"sum": 42})


def test_invalid_payload_is_a_400_with_details() -> None:
    outcome = execute(add, Payload({"x": "many"}), ctx())
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.status) == ("InvalidInput", 400)
    assert [e["loc"] for e in outcome.error.details] == [["x"], ["y"]]


def test_same_payload_over_http_gives_the_same_result() -> None:
    req = HttpRequest(method="POST", path="/add", body=b'{"x": 29, "y": 13}')
    outcome = execute(add, req, ctx())
    assert outcome.response is not None
    assert outcome.response.encoded() == (b'{"sum":42}', {"content-type": "application/json"})


def test_invalid_json_over_http_is_a_400() -> None:
    outcome = execute(add, HttpRequest(method="POST", path="/add", body=b"{nope"), ctx())
    assert outcome.response is not None and outcome.response.status == 400
    assert json.loads(outcome.response.encoded()[0])["message"].startswith("Request body is not valid JSON")


def test_request_style_sees_the_whole_request() -> None:
    req = HttpRequest(
        method="PUT",
        path="/items/7",
        route="/items/{id}",
        path_params={"id": "7"},
        query={"tag": ["a", "b"]},
        headers={"x-thing": ["one", "two"]},
        body=b"hello",
    )
    outcome = execute(echo_request, req, ctx())
    assert outcome.response is not None
    body, headers = outcome.response.encoded()
    assert outcome.response.status == 201
    assert headers == {"x-reply": "yes", "content-type": "application/json"}
    assert json.loads(body) == {
        "method": "PUT",
        "route": "/items/{id}",
        "params": {"id": "7"},
        "q": {"tag": ["a", "b"]},
        "h": "one",
        "body": "hello",
    }


def test_http_error_status_passes_through() -> None:
    direct = execute(refuse, Payload({}), ctx())
    assert direct.error is not None and (direct.error.status, direct.error.message) == (418, "I'm a teapot")
    over_http = execute(refuse, HttpRequest(method="GET", path="/"), ctx())
    assert over_http.response is not None
    assert over_http.response.status == 418
    assert json.loads(over_http.response.encoded()[0]) == {
        "message": "I'm a teapot",
        "details": {"why": "tea"},
    }


def test_unhandled_error_is_a_function_error_without_response() -> None:
    outcome = execute(crash, HttpRequest(method="GET", path="/"), ctx())
    assert outcome.response is None and outcome.error is not None
    assert (outcome.error.type, outcome.error.message, outcome.error.status) == ("RuntimeError", "boom", None)
    assert "RuntimeError: boom" in outcome.error.traceback[-1]


def test_events_reach_event_handlers() -> None:
    up = UploadEvent(bucket="uploads", key="photos/a.jpg", size=3)
    assert execute(on_upload, up, ctx()).result == "uploads/photos/a.jpg:3"
    tick = ScheduleEvent(schedule="nightly", expression="cron(0 2 * * ? *)", time="2026-01-01T02:00:00+00:00")
    assert execute(on_schedule, tick, ctx()).result == "2026-01-01T02:00:00+00:00"


def test_wrong_event_kind_is_refused_clearly() -> None:
    outcome = execute(on_upload, Payload({}), ctx())
    assert outcome.error is not None
    assert outcome.error.message == "function 'f' takes upload events, not a payload"


def test_queue_messages_fail_one_by_one() -> None:
    batch = QueueBatch(
        queue="jobs",
        messages=[QueueMessage(id=str(i), body=json.dumps({"bad": i == 1})) for i in range(3)],
    )
    assert execute(per_message, batch, ctx()).result == {"failed": ["1"]}
    batch2 = QueueBatch(
        queue="jobs", messages=[QueueMessage(id="a", body="ok"), QueueMessage(id="b", body="fail")]
    )
    assert execute(per_batch, batch2, ctx()).result == {"failed": ["b"]}


@pytest.mark.parametrize(
    "event",
    [
        Payload({"a": [1, 2]}),
        HttpRequest(
            method="POST", path="/x", query={"a": ["1", "2"]}, headers={"h": ["v"]}, body=b"\x00\xff"
        ),
        UploadEvent(bucket="b", key="k", size=1, etag="e"),
        ScheduleEvent(schedule="s", expression="rate(1 day)", time="t", payload={"p": 1}),
        QueueBatch(queue="q", messages=[QueueMessage(id="1", body="x", receive_count=2)]),
    ],
)
def test_events_survive_the_wire(event: Any) -> None:
    assert event_from_wire(json.loads(json.dumps(event.to_wire()))) == event


def test_outcome_survives_the_wire() -> None:
    outcome = execute(refuse, HttpRequest(method="GET", path="/"), ctx())
    again = Outcome.from_wire(json.loads(json.dumps(outcome.to_wire())))
    assert again.error == outcome.error
    assert again.response is not None and outcome.response is not None
    assert again.response.encoded() == outcome.response.encoded()


def test_remaining_time_comes_from_the_deadline() -> None:
    c = Context(request_id="r", function_name="f", stage="dev", deadline_ms=int(time.time() * 1000) + 3000)
    assert 2000 < c.remaining_ms() <= 3000
    assert c.get_remaining_time_in_millis() <= 3000


def test_table_key_types_are_checked_alike_on_every_provider() -> None:
    from sls_py.runtime import MemoryDriver, ResourceError, Table, use_driver

    use_driver(MemoryDriver())
    try:
        ledger = Table("ledger", key="account", sort_key="seq", sort_key_type="number")
        ledger.put({"account": "a", "seq": 2, "amount": 5})
        ledger.put({"account": "a", "seq": 1, "amount": 7})
        assert [r["seq"] for r in ledger.query("a")] == [1, 2]
        with pytest.raises(ResourceError) as err:
            ledger.put({"account": "a", "seq": "3"})
        assert str(err.value) == "table 'ledger': 'seq' is a number key, got str '3'"
        with pytest.raises(ResourceError):
            ledger.get(7, 1)
    finally:
        use_driver(None)


def test_plain_json_payloads_need_no_pydantic_and_wrong_types_are_still_refused() -> None:
    """A handler taking ``dict``, ``list``, ``str``, ``int``, ``float`` or ``bool``
    gets its payload without pydantic being imported (a worker's first call would
    pay ~100 ms for it); a payload of another type is still pydantic's 400."""
    import subprocess
    import sys

    code = """
import json, sys
from sls_py.runtime.dispatch import _validate
got = [_validate(dict, {"a": 1}), _validate(list, [1]), _validate(str, "s"), _validate(int, 3),
       _validate(float, 2), _validate(bool, True)]
print(json.dumps([got, "pydantic" in sys.modules]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got, imported = json.loads(done.stdout)
    assert got == [{"a": 1}, [1], "s", 3, 2.0, True] and imported is False
    from sls_py.runtime.dispatch import InvalidInput, _validate

    assert _validate(float, 2) == 2.0 and type(_validate(float, 2)) is float
    for annotation, wrong in ((dict, [1]), (list, {"a": 1}), (int, "x"), (bool, "maybe")):
        with pytest.raises(InvalidInput):
            _validate(annotation, wrong)
    assert _validate(int, "5") == 5  # lax coercion, as pydantic does it
