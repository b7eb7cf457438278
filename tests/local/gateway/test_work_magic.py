"""The example app's POST /work-magic through `sls-py run`, with its API key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .support import run_server

pytestmark = pytest.mark.timeout(120)

APP = Path(__file__).resolve().parents[3] / "apps" / "work_magic"


def test_work_magic_with_api_key(tmp_path: Path) -> None:
    project = tmp_path / "work_magic"
    shutil.copytree(APP, project, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
    spell = {"magic-word": "clonezero-token", "spell": "multiplier", "x": 6, "y": 7}
    with run_server(project, "--no-reload") as server:
        key = server.keys["default"]
        with server.client() as c:
            ok = c.post("/work-magic", json=spell, headers={"x-api-key": key})
            no_key = c.post("/work-magic", json=spell)
            wrong_word = c.post(
                "/work-magic", json={**spell, "magic-word": "please"}, headers={"x-api-key": key}
            )
            by_zero = c.post(
                "/work-magic",
                json={**spell, "spell": "divider", "y": 0},
                headers={"x-api-key": key},
            )
            invalid = c.post("/work-magic", json={"spell": "adder"}, headers={"x-api-key": key})
            preflight = c.options("/work-magic", headers={"Origin": "https://app.example"})
    assert (ok.status_code, ok.json(), ok.headers["access-control-allow-origin"]) == (
        200,
        {"result": 42},
        "*",
    )
    assert (no_key.status_code, no_key.json()) == (403, {"message": "Forbidden"})
    assert (wrong_word.status_code, wrong_word.json()) == (403, {"message": "Wrong magic word"})
    assert (by_zero.status_code, by_zero.json()) == (400, {"message": "Cannot divide by zero"})
    assert invalid.status_code == 400
    assert [e["loc"] for e in invalid.json()["errors"]] == [["magic-word"], ["x"], ["y"]]
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "OPTIONS,POST"


def test_the_issue_13_reproduction_is_a_400(tmp_path: Path) -> None:
    """`curl -d '{"magic-word":"clonezero-token","spell":"adder","x":NaN,"y":1}'` answered
    200 `{"result":NaN}`; NaN as a string, which pydantic reads as a float, too."""
    project = tmp_path / "work_magic"
    shutil.copytree(APP, project, ignore=shutil.ignore_patterns(".sls-py", "__pycache__"))
    with run_server(project, "--no-reload") as server, server.client() as c:
        headers = {"x-api-key": server.keys["default"], "content-type": "application/json"}
        literal = c.post(
            "/work-magic",
            content=b'{"magic-word":"clonezero-token","spell":"adder","x":NaN,"y":1}',
            headers=headers,
        )
        text = c.post(
            "/work-magic",
            content=b'{"magic-word":"clonezero-token","spell":"adder","x":"NaN","y":1}',
            headers=headers,
        )
    assert (literal.status_code, literal.json()["errors"][0]["loc"]) == (400, ["x"])
    assert literal.json()["message"].startswith(
        "Request body is not valid JSON: NaN is not a number JSON allows (at x)"
    )
    assert (text.status_code, text.json()) == (
        400,
        {
            "message": "Invalid request body",
            "errors": [{"loc": ["x"], "msg": "Input should be a finite number", "type": "finite_number"}],
        },
    )
