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
