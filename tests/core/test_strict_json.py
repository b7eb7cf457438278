"""Strict JSON in the runtime (issue #13): bodies with NaN, Infinity, overflowing
or over-long numbers, or nesting too deep are a 400 naming the problem and the
field; a result JSON cannot carry is a function error, never an invalid 200."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sls_py import Context, HttpError, HttpRequest, Response
from sls_py.errors import FunctionFailed
from sls_py.runtime import Payload, execute
from sls_py.runtime.events import dumps
from sls_py.runtime.jsonwire import InvalidJson, loads

from tests.conftest import WORK_MAGIC as WORK_MAGIC_APP
from tests.conftest import run_cli


class Pair(BaseModel):
    x: float
    y: float


def ctx() -> Context:
    return Context(
        request_id="r-1", function_name="f", stage="dev", deadline_ms=int(time.time() * 1000) + 5000
    )


def add(pair: Pair, ctx: Context) -> dict[str, float]:
    return {"sum": pair.x + pair.y}


def anything(payload: Any) -> Any:
    return payload


def parse_request(req: HttpRequest) -> Response:
    return Response.json({"got": req.json()})


def _answer(func: Any, body: bytes) -> tuple[int, Any]:
    outcome = execute(func, HttpRequest(method="POST", path="/f", body=body), ctx())
    assert outcome.response is not None, outcome.error
    raw, headers = outcome.response.encoded()
    assert headers["content-type"] == "application/json"
    return outcome.response.status, json.loads(raw)


def _refused(message: str, loc: list[Any], msg: str) -> tuple[int, Any]:
    return 400, {
        "message": message,
        "errors": [{"loc": loc, "msg": msg, "type": "json_invalid"}],
    }


FIX = "send a finite number, null or a string"


@pytest.mark.parametrize(
    ("body", "message", "loc", "msg"),
    [
        (
            b'{"x": NaN, "y": 1}',
            f"Request body is not valid JSON: NaN is not a number JSON allows (at x); {FIX}",
            ["x"],
            "NaN is not a number JSON allows",
        ),
        (
            b'{"x": 1, "y": Infinity}',
            f"Request body is not valid JSON: Infinity is not a number JSON allows (at y); {FIX}",
            ["y"],
            "Infinity is not a number JSON allows",
        ),
        (
            b'{"x": -Infinity, "y": 1}',
            f"Request body is not valid JSON: -Infinity is not a number JSON allows (at x); {FIX}",
            ["x"],
            "-Infinity is not a number JSON allows",
        ),
        (
            b'{"x": 1e999, "y": 1}',
            f"Request body is not valid JSON: 1e999 is too large for a JSON number (at x); {FIX}",
            ["x"],
            "1e999 is too large for a JSON number",
        ),
    ],
)
def test_non_finite_numbers_are_a_400_naming_the_field(
    body: bytes, message: str, loc: list[Any], msg: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert _answer(add, body) == _refused(message, loc, msg)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []  # not a function error


def test_the_field_is_found_at_any_depth() -> None:
    body = b'{"items": [{"a": 1}, {"a": [0, 2, NaN]}]}'
    assert _answer(anything, body) == _refused(
        f"Request body is not valid JSON: NaN is not a number JSON allows (at items.1.a.2); {FIX}",
        ["items", 1, "a", 2],
        "NaN is not a number JSON allows",
    )


def test_an_integer_over_pythons_digit_limit_is_a_400(caplog: pytest.LogCaptureFixture) -> None:
    body = b'{"x": 1, "y": ' + b"7" * 5000 + b"}"
    with caplog.at_level(logging.INFO):
        assert _answer(anything, body) == _refused(
            "Request body is not valid JSON: an integer of 5000 digits is longer than the "
            "4300 digits allowed (at y); send it as a string",
            ["y"],
            "an integer of 5000 digits is longer than the 4300 digits allowed",
        )
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_the_first_refused_number_is_the_one_named() -> None:
    with pytest.raises(InvalidJson, match=r"NaN is not a number JSON allows \(at a\)"):
        loads('{"a": NaN, "b": ' + "1" * 5000 + "}")
    with pytest.raises(InvalidJson, match=r"5000 digits .* \(at a\)"):
        loads('{"a": ' + "1" * 5000 + ', "b": NaN}')


def test_deep_nesting_is_a_400_not_a_recursion_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        status, body = _answer(anything, b"[" * 100_000 + b"]" * 100_000)
    assert (status, body["errors"]) == (400, [])
    assert body["message"].startswith("Request body is nested too deeply to be parsed: keep arrays")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_request_style_json_is_strict_too() -> None:
    assert _answer(parse_request, b'{"x": 1e400}')[0] == 400
    assert _answer(parse_request, b'{"x": 1.5}') == (200, {"got": {"x": 1.5}})


def test_finite_numbers_still_parse() -> None:
    assert loads(b'{"a": -1.5e300, "b": 1e-999, "c": 12, "d": [true, null]}') == {
        "a": -1.5e300,
        "b": 0.0,
        "c": 12,
        "d": [True, None],
    }


def test_invalid_json_is_both_invalid_input_and_value_error() -> None:
    with pytest.raises(ValueError, match="line 1 column 2"):
        loads("{nope")
    with pytest.raises(InvalidJson):
        loads(b"\xff\xfe{")


def nan_result(payload: Any) -> dict[str, float]:
    return {"result": float("nan")}


def nan_response(req: HttpRequest) -> Response:
    return Response.json({"result": [1.0, float("inf")]}, headers={"x-kept": "yes"})


@pytest.mark.parametrize(("func", "where"), [(nan_result, "result"), (nan_response, "result.1")])
def test_a_nan_result_is_a_function_error_not_an_invalid_200(
    func: Any, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        outcome = execute(func, HttpRequest(method="POST", path="/f", body=b"{}"), ctx())
    assert outcome.response is None  # the gateway answers 502
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.status) == ("ValueError", None)
    assert outcome.error.message == (
        "the function's result cannot be sent as JSON: Out of range float values are not "
        f"JSON compliant (at {where}); JSON has no NaN or Infinity: use a finite number, "
        "None or a string"
    )
    [logged] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert outcome.error.message in logged.getMessage()


def test_a_nan_result_of_an_invocation_is_a_function_error() -> None:
    outcome = execute(nan_result, Payload({}), ctx())
    assert outcome.error is not None and outcome.error.type == "ValueError"
    assert "cannot be sent as JSON" in outcome.error.message


def test_a_payload_parsed_elsewhere_with_nan_is_a_400() -> None:
    # a provider that parses an invocation's payload with Python's json (which
    # accepts NaN), or AppClient.invoke: the runtime checks it before the handler
    outcome = execute(add, Payload({"x": 1.0, "y": [float("-inf")]}), ctx())
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.status, outcome.error.message) == (
        "InvalidInput",
        400,
        f"Payload is not valid JSON: -Infinity is not a number JSON allows (at y.0); {FIX}",
    )


def refuse_with_nan(payload: Any) -> None:
    raise HttpError(409, "conflict", details={"score": float("nan")})


def test_error_details_json_cannot_carry_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert _answer(refuse_with_nan, b"{}") == (409, {"message": "conflict"})
    assert any("the error's details cannot be sent as JSON" in r.getMessage() for r in caplog.records)


def test_dumps_refuses_nan_and_says_where() -> None:
    with pytest.raises(ValueError, match=r"the body cannot be sent as JSON: .* \(at a\.b\)"):
        dumps({"a": {"b": float("nan")}}, "the body")
    assert dumps({"a": 1.5, "b": "NaN"}) == b'{"a":1.5,"b":"NaN"}'


# --- the CLI and the testing client, as a user runs them -----------------------------


def test_cli_payload_with_nan_is_one_clear_line(work_magic: Path) -> None:
    spell = '{"magic-word": "clonezero-token", "spell": "adder", "x": NaN, "y": 1}'
    done = run_cli("invoke", "work-magic", spell, "--project", str(work_magic))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines()[0] == (
        f"error: the payload argument is not valid JSON: NaN is not a number JSON allows (at x); {FIX}"
    )
    assert "Traceback" not in done.stderr


def test_cli_result_of_infinity_is_a_function_error_not_infinity(work_magic: Path) -> None:
    spell = '{"magic-word": "clonezero-token", "spell": "multiplier", "x": 1e308, "y": 10}'
    done = run_cli("invoke", "work-magic", spell, "--provider", "local", "--project", str(work_magic))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(
        "work-magic failed: ValueError: the function's result cannot be sent as JSON: "
    )
    assert "(at result)" in done.stderr


def test_app_client_answers_as_the_gateway_does() -> None:
    from sls_py.testing import AppClient

    client = AppClient(WORK_MAGIC_APP)
    nan = client.post("/work-magic", json={"magic-word": "m", "spell": "adder", "x": float("nan"), "y": 1})
    assert (nan.status, nan.json()["message"]) == (
        400,
        f"Request body is not valid JSON: NaN is not a number JSON allows (at x); {FIX}",
    )
    with pytest.raises(FunctionFailed, match="Payload is not valid JSON: Infinity"):
        client.invoke("work-magic", {"magic-word": "m", "spell": "adder", "x": float("inf"), "y": 1})
