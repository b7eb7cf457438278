"""The runtime's value classes behave as the dataclasses they replaced did."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import subprocess
import sys
from typing import Any

import pytest
from sls_py.app import (
    BucketDef,
    Cors,
    FunctionDef,
    HttpTrigger,
    QueueDef,
    QueueTrigger,
    ScheduleTrigger,
    TableDef,
    UploadTrigger,
    UsageLimits,
)
from sls_py.runtime import (
    Context,
    ErrorInfo,
    HttpRequest,
    Payload,
    QueueBatch,
    QueueMessage,
    Response,
    ScheduleEvent,
    UploadEvent,
)
from sls_py.runtime.records import FrozenRecord, Record

FROZEN = [
    BucketDef,
    Cors,
    HttpTrigger,
    QueueDef,
    QueueTrigger,
    ScheduleTrigger,
    TableDef,
    UploadTrigger,
    UsageLimits,
]
MUTABLE = [
    Context,
    ErrorInfo,
    FunctionDef,
    HttpRequest,
    Payload,
    QueueBatch,
    QueueMessage,
    Response,
    ScheduleEvent,
    UploadEvent,
]


@pytest.mark.parametrize("cls", FROZEN + MUTABLE, ids=lambda c: c.__name__)
def test_fields_are_the_init_parameters_in_order(cls: type[Record]) -> None:
    # repr, equality, positional patterns and pickling all rely on this order
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    assert params == list(cls.__match_args__)


@dataclasses.dataclass
class OldResponse:  # the dataclass sls_py.runtime.Response used to be
    status: int = 200
    body: Any = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def test_repr_and_equality_are_those_of_a_dataclass() -> None:
    for args in [(), (404, {"a": [1]}, {"x": "y"})]:
        assert repr(Response(*args)).removeprefix("Response") == repr(OldResponse(*args)).removeprefix(
            "OldResponse"
        )
    assert Response(201, "x") == Response(201, "x")
    assert Response(201, "x") != Response(201, "y")
    assert Response() != OldResponse()  # another class is never equal, as with dataclasses
    assert Response().__eq__(object()) is NotImplemented
    with pytest.raises(TypeError):
        hash(Response())
    assert vars(UploadEvent("b", "k", 1)) == {
        "bucket": "b",
        "key": "k",
        "size": 1,
        "etag": None,
        "content_type": None,
        "time": None,
    }


def test_defaults_are_fresh_per_instance() -> None:
    a, b = HttpRequest("GET", "/"), HttpRequest("GET", "/")
    a.headers["x"] = ["1"]
    assert b.headers == {}
    assert QueueBatch("q").messages is not QueueBatch("q").messages


def test_frozen_records_are_immutable_and_hashable() -> None:
    cors = Cors(origins=("https://a.example",))
    with pytest.raises(AttributeError, match="frozen"):
        cors.max_age_s = 1  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del cors.origins  # type: ignore[misc]
    assert cors == Cors(("https://a.example",))
    assert hash(cors) == hash(Cors(("https://a.example",)))
    assert len({HttpTrigger("GET", "/a"), HttpTrigger("GET", "/a"), HttpTrigger("GET", "/b")}) == 2
    assert repr(QueueDef("jobs")) == "QueueDef(name='jobs', visibility_timeout_s=30, max_receives=3)"
    assert isinstance(cors, FrozenRecord)


@pytest.mark.parametrize(
    "value",
    [
        Cors(methods=("GET",)),
        TableDef("t", sort_key="s"),
        HttpTrigger("POST", "/x", api_key=True, cors=Cors()),
        HttpRequest("GET", "/p", query={"a": ["1"]}, body=b"b"),
        QueueBatch("q", [QueueMessage("1", "m", attributes={"k": "v"})]),
        ErrorInfo("HttpError", "no", 403, details={"d": 1}),
    ],
    ids=lambda v: type(v).__name__,
)
def test_pickle_and_copy_round_trip(value: Record) -> None:
    for clone in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert clone == value
        assert type(clone) is type(value)


def test_positional_match_patterns() -> None:
    def describe(event: object) -> str:
        match event:
            case UploadEvent(bucket, key):
                return f"upload {bucket}/{key}"
            case ScheduleEvent(name, _, time):
                return f"schedule {name} at {time}"
            case Payload(value):
                return f"payload {value}"
        return "?"

    assert describe(UploadEvent("b", "k", 1)) == "upload b/k"
    assert describe(ScheduleEvent("nightly", "rate(1 day)", "T")) == "schedule nightly at T"
    assert describe(Payload(3)) == "payload 3"


def test_the_runtime_imports_neither_dataclasses_nor_typing() -> None:
    """What a function imports at cold start: the whole runtime and the AWS handler."""
    code = (
        "import sys\n"
        "heavy = {'dataclasses', 'typing', 'inspect', 'base64', 'ast'}\n"
        "before = heavy & set(sys.modules)\n"
        "import sls_py, sls_py.runtime, sls_py_aws.handler\n"
        "print(sorted(heavy & set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (out.returncode, out.stdout.strip(), out.stderr) == (0, "[]", "")
