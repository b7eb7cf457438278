"""Strict JSON on AWS (issue #13): the Lambda package, unchanged, under AWS's own
runtime client (awslambdaric). The adapter shares the runtime with the local
provider, so the answers are the ones tests/local/gateway/test_hostile_clients.py
gets over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_runtime_support import WORK_MAGIC, LambdaProcess, TaskRoot, extract_package
from sls_py_aws.environment import lambda_environment

pytestmark = pytest.mark.slow

SPELL = '{"magic-word": "clonezero-token", "spell": "%s", "x": %s, "y": %s}'
FIX = "send a finite number, null or a string"


@pytest.fixture(scope="module")
def work_magic_root(tmp_path_factory: pytest.TempPathFactory) -> TaskRoot:
    return extract_package(WORK_MAGIC, tmp_path_factory.mktemp("wm-strict") / "task")


def _http_event(aws_event: Callable[[str], Any], body: str) -> dict[str, Any]:
    event = aws_event("apigw_rest_post_base64.json")
    event["body"] = base64.b64encode(body.encode()).decode()
    return event


def test_bodies_json_does_not_allow_and_results_it_cannot_carry(
    work_magic_root: TaskRoot,
    start_lambda: Callable[..., LambdaProcess],
    aws_event: Callable[[str], Any],
    aws_env: dict[str, str],
    cache_url: str,
) -> None:
    spec = work_magic_root.spec
    env = lambda_environment(spec, spec.function("work-magic"), names={})
    env["SLS_PY_CACHES"] = json.dumps({"spells": cache_url})  # work-magic counts casts there
    fn = start_lambda(work_magic_root.path, {**aws_env, **env})

    def http(body: str) -> tuple[int, Any]:
        answer = fn.invoke(_http_event(aws_event, body))
        assert answer.ok, fn.log()
        return answer.payload["statusCode"], json.loads(answer.payload["body"])

    assert http(SPELL % ("adder", "NaN", "1")) == (
        400,
        {
            "message": f"Request body is not valid JSON: NaN is not a number JSON allows (at x); {FIX}",
            "errors": [{"loc": ["x"], "msg": "NaN is not a number JSON allows", "type": "json_invalid"}],
        },
    )
    assert http(SPELL % ("adder", "1", "1e999"))[1]["message"] == (
        f"Request body is not valid JSON: 1e999 is too large for a JSON number (at y); {FIX}"
    )
    status, body = http(SPELL % ("adder", "1", "1" * 5000))
    assert (status, body["errors"][0]["loc"]) == (400, ["y"])
    status, body = http("[" * 50_000 + "]" * 50_000)
    assert status == 400 and body["message"].startswith("Request body is nested too deeply")
    assert "Traceback" not in fn.log() and "RecursionError" not in fn.log()

    # a result of Infinity (1e308 * 10) is a function error: API Gateway answers 502
    overflow = fn.invoke(_http_event(aws_event, SPELL % ("multiplier", "1e308", "10")))
    assert not overflow.ok
    assert overflow.payload["errorType"] == "ValueError"
    assert overflow.payload["errorMessage"].startswith(
        "the function's result cannot be sent as JSON: Out of range float values are not JSON compliant"
    )
    assert "(at result)" in overflow.payload["errorMessage"]

    # a direct invocation's payload with NaN: awslambdaric's own parser refuses it
    # before the adapter runs (the runtime checks such payloads too, for providers
    # whose parser takes NaN: tests/core/test_strict_json.py)
    direct = fn.invoke({"magic-word": "clonezero-token", "spell": "adder", "x": float("nan"), "y": 1})
    assert not direct.ok
    assert direct.payload["errorType"] == "Runtime.UnmarshalError"
