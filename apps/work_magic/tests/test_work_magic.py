"""The work-magic app's tests, with sls-py's pytest fixtures.

``sls_app`` runs the functions in this process (fast); ``sls_local_server``
runs the whole app with the local provider on a free port.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sls_py.errors import FunctionFailed
from sls_py.testing import AppClient

WORD = "clonezero-token"  # the dev stage's default magic word (pyproject.toml)


def spell(name: str, x: float, y: float, word: str = WORD) -> dict[str, object]:
    return {"magic-word": word, "spell": name, "x": x, "y": y}


@pytest.mark.parametrize(
    ("name", "x", "y", "result"),
    [
        ("adder", 29, 13, 42),
        ("subtractor", 29, 13, 16),
        ("multiplier", 6, 7, 42),
        ("divider", 84, 2, 42),
        ("divider", 1, 4, 0.25),
    ],
)
def test_spells(sls_app: AppClient, name: str, x: float, y: float, result: float) -> None:
    assert sls_app.invoke("work-magic", spell(name, x, y)) == {"result": result}


def _failure(sls_app: AppClient, payload: object) -> tuple[str, int | None, str]:
    with pytest.raises(FunctionFailed) as caught:
        sls_app.invoke("work-magic", payload)
    error = caught.value.error
    return error.type, error.status, error.message


def test_divide_by_zero_is_a_400(sls_app: AppClient) -> None:
    assert _failure(sls_app, spell("divider", 1, 0)) == ("HttpError", 400, "Cannot divide by zero")


def test_unknown_spell_is_a_400_naming_the_known_ones(sls_app: AppClient) -> None:
    assert _failure(sls_app, spell("teleporter", 1, 2)) == (
        "HttpError",
        400,
        "Unknown spell 'teleporter'; known spells: adder, subtractor, multiplier, divider",
    )


def test_wrong_magic_word_is_a_403(sls_app: AppClient) -> None:
    assert _failure(sls_app, spell("adder", 1, 2, word="abracadabra")) == (
        "HttpError",
        403,
        "Wrong magic word",
    )


def test_missing_fields_are_a_400_with_details(sls_app: AppClient) -> None:
    with pytest.raises(FunctionFailed) as caught:
        sls_app.invoke("work-magic", {"spell": "adder"})
    error = caught.value.error
    assert (error.type, error.status) == ("InvalidInput", 400)
    assert sorted(tuple(d["loc"]) for d in error.details) == [("magic-word",), ("x",), ("y",)]


def test_http_post_with_api_key_and_cors(sls_app: AppClient, sls_api_keys: dict[str, str]) -> None:
    origin = {"Origin": "https://clonezero.example"}
    r = sls_app.post(
        "/work-magic",
        spell("adder", 29, 13),
        headers={"X-API-Key": sls_api_keys["default"], **origin},
    )
    assert (r.status, r.json()) == (200, {"result": 42})
    assert r.headers["access-control-allow-origin"] == "*"
    no_key = sls_app.post("/work-magic", spell("adder", 29, 13), headers=origin)
    assert (no_key.status, no_key.json(), no_key.headers["access-control-allow-origin"]) == (
        403,
        {"message": "Forbidden"},
        "*",
    )
    wrong_word = sls_app.post(
        "/work-magic",
        spell("adder", 1, 2, word="nope"),
        headers={"x-api-key": sls_api_keys["default"]},
    )
    assert (wrong_word.status, wrong_word.json()) == (403, {"message": "Wrong magic word"})
    preflight = sls_app.request(
        "OPTIONS", "/work-magic", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-methods"] == "POST, OPTIONS"


def photos(sls_app: AppClient) -> list[dict[str, Any]]:
    """The catalog's rows (the ``photos`` table of database ``catalog``), by key."""
    rows, _ = sls_app.database("catalog").execute(
        "SELECT key, size, sha256 FROM photos ORDER BY key", {}
    )
    return list(rows)


def test_catalog_upload_records_key_size_and_sha256(sls_app: AppClient) -> None:
    photo = b"\x89PNG not really a cat" * 10
    outcomes = sls_app.upload("uploads", "photos/cat.png", photo)
    assert [o.error for o in outcomes] == [None]
    assert photos(sls_app) == [
        {"key": "photos/cat.png", "size": len(photo), "sha256": hashlib.sha256(photo).hexdigest()}
    ]
    # only photos/ is catalogued
    assert sls_app.upload("uploads", "docs/readme.txt", b"hello") == []
    assert [r["key"] for r in photos(sls_app)] == ["photos/cat.png"]


def test_a_photo_uploaded_again_replaces_its_row(sls_app: AppClient) -> None:
    sls_app.upload("uploads", "photos/cat.png", b"first")
    sls_app.upload("uploads", "photos/cat.png", b"second, larger")
    assert photos(sls_app) == [
        {"key": "photos/cat.png", "size": 14, "sha256": hashlib.sha256(b"second, larger").hexdigest()}
    ]


def test_nightly_report_summarises_the_catalog(sls_app: AppClient) -> None:
    sls_app.upload("uploads", "photos/a.jpg", b"a" * 10)
    sls_app.upload("uploads", "photos/b.jpg", b"b" * 30)
    outcome = sls_app.fire_schedule("nightly-report", at=datetime(2026, 1, 2, 2, 0, tzinfo=UTC))
    assert (outcome.error, outcome.result) == (
        None,
        {"report": "catalog/2026-01-02.json", "photos": 2},
    )
    report = json.loads(sls_app.bucket("reports").get("catalog/2026-01-02.json"))
    assert report.pop("generated_at")
    assert report == {
        "schedule_time": "2026-01-02T02:00:00+00:00",
        "photos": 2,
        "total_bytes": 40,
        "largest": "photos/b.jpg",
        "kind": "catalog-summary",
    }


@pytest.mark.slow
def test_work_magic_over_http_on_the_local_provider(sls_local_server: object) -> None:
    from sls_py.testing import LocalServer

    assert isinstance(sls_local_server, LocalServer)
    key = sls_local_server.api_key("default")
    r = sls_local_server.post(
        "/work-magic", json=spell("adder", 29, 13), headers={"x-api-key": key}
    )
    assert (r.status_code, r.json()) == (200, {"result": 42})
    r = sls_local_server.post("/work-magic", json=spell("adder", 29, 13))
    assert (r.status_code, r.json()) == (403, {"message": "Forbidden"})
    r = sls_local_server.post(
        "/work-magic", json=spell("divider", 1, 0), headers={"x-api-key": key}
    )
    assert (r.status_code, r.json()) == (400, {"message": "Cannot divide by zero"})


def test_spells_are_counted_in_the_cache(sls_app: AppClient) -> None:
    before = sls_app.invoke("spell-counts", {})
    assert set(before) == {"adder", "subtractor", "multiplier", "divider"}
    sls_app.invoke("work-magic", spell("adder", 1, 2))
    sls_app.invoke("work-magic", spell("adder", 3, 4))
    sls_app.invoke("work-magic", spell("divider", 8, 2))
    with pytest.raises(FunctionFailed):  # a failed cast is not counted
        sls_app.invoke("work-magic", spell("divider", 1, 0))
    after = sls_app.invoke("spell-counts", {})
    assert after == {**before, "adder": before["adder"] + 2, "divider": before["divider"] + 1}


def test_the_magic_word_is_config(sls_app: AppClient) -> None:
    """Dev's default magic word (pyproject.toml) until one is set; a set one wins at once."""
    assert sls_app.invoke("work-magic", spell("adder", 1, 2)) == {"result": 3}
    sls_app.set_config("magic-word", "abracadabra")
    with pytest.raises(FunctionFailed, match="Wrong magic word"):
        sls_app.invoke("work-magic", spell("adder", 1, 2))
    assert sls_app.invoke("work-magic", spell("adder", 1, 2, word="abracadabra")) == {"result": 3}
    sls_app.set_config("magic-word", None)
    assert sls_app.invoke("work-magic", spell("adder", 1, 2)) == {"result": 3}


@pytest.mark.slow
def test_config_set_changes_the_magic_word_of_a_running_server(sls_local_server: object) -> None:
    """`sls-py config set magic-word ... --secret` reaches the warm workers of a running
    `sls-py run` within the handle's 5 s TTL: no restart, no deploy."""
    from sls_py.testing import LocalServer

    assert isinstance(sls_local_server, LocalServer)
    headers = {"x-api-key": sls_local_server.api_key("default")}

    def cast(word: str) -> int:
        r = sls_local_server.post("/work-magic", json=spell("adder", 29, 13, word=word), headers=headers)
        return int(r.status_code)

    assert cast(WORD) == 200
    sls_local_server._cli("config", "set", "magic-word", "abracadabra", "--secret")
    try:
        _check_live_change(sls_local_server, cast)
    finally:  # the server is shared by the module's tests: back to dev's default
        sls_local_server._cli("config", "unset", "magic-word")


def _check_live_change(sls_local_server: Any, cast: Any) -> None:
    import time

    deadline = time.monotonic() + 20
    while cast("abracadabra") != 200 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert (cast("abracadabra"), cast(WORD)) == (200, 403)
    while "changed: magic-word" not in sls_local_server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "config of stage dev changed: magic-word (functions see it within 5 s, no restart)" in (
        sls_local_server.output()
    )
    assert "abracadabra" not in sls_local_server.output()  # the secret is never logged
    listing = sls_local_server._cli("config", "list")
    assert listing == "magic-word\t********\t(secret)\n"


def test_nightly_report_counts_a_large_catalog_in_chunks(sls_app: AppClient) -> None:
    """120 photos: three count-chunk invocations of at most 50 keys each, added up."""
    from work_magic.app import CHUNK

    catalog = sls_app.database("catalog")
    for n in range(120):
        catalog.execute(
            "INSERT INTO photos VALUES (:key, :size, '-', '2026-01-01T00:00:00+00:00')",
            {"key": f"photos/{n:03}.jpg", "size": n + 1},
        )
    chunks: list[list[str]] = []
    original = sls_app.run

    def run(function: str, event: object) -> object:
        if function == "count-chunk":
            chunks.append(event.payload["items"])  # type: ignore[attr-defined]
        return original(function, event)  # type: ignore[arg-type]

    sls_app.run = run  # type: ignore[method-assign]
    outcome = sls_app.fire_schedule("nightly-report", at=datetime(2026, 1, 3, 2, 0, tzinfo=UTC))
    assert (outcome.error, outcome.result) == (None, {"report": "catalog/2026-01-03.json", "photos": 120})
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, 120 - 2 * CHUNK]
    report = json.loads(sls_app.bucket("reports").get("catalog/2026-01-03.json"))
    assert (report["photos"], report["total_bytes"], report["largest"]) == (
        120,
        sum(range(1, 121)),
        "photos/119.jpg",
    )


@pytest.mark.slow
def test_nightly_report_fans_out_on_the_local_provider(sls_local_server: object) -> None:
    """The schedule fired by hand on a running ``sls-py run``: count-chunk runs in its
    own worker pool, delivered through the local queues, and the counts come back."""
    import subprocess
    import sys
    import time

    from sls_py.testing import LocalServer

    assert isinstance(sls_local_server, LocalServer)
    root = sls_local_server.project
    shots = root / ".sls-py" / "local" / "dev" / "buckets" / "uploads" / "photos"
    shots.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "sls_py", "trigger", "upload", "uploads", "--project", str(root)]
    for name, size in (("a.jpg", 3), ("b.jpg", 7)):
        (root / name).write_bytes(b"x" * size)
        done = subprocess.run([*argv, str(root / name), "--key", f"photos/{name}"], capture_output=True)
        assert done.returncode == 0, done.stderr
    import psycopg
    from sls_py_local.postgres import postgres_connection

    conn = postgres_connection(root / ".sls-py", "dev")
    url = conn.url("catalog")
    deadline = time.monotonic() + 60
    # `ready` does not wait for PostgreSQL (a route that does not use it does not
    # either): the server may still be starting on a busy machine
    while "PostgreSQL ready" not in sls_local_server.output():
        assert time.monotonic() < deadline, "PostgreSQL never became ready"
        time.sleep(0.1)
    with psycopg.connect(url, password=conn.password(), autocommit=True) as db:
        # the run catalogues the uploads in its own time, in its PostgreSQL server
        while (rows := db.execute("SELECT key, size FROM photos ORDER BY key").fetchall()) != [
            ("photos/a.jpg", 3),
            ("photos/b.jpg", 7),
        ]:
            assert time.monotonic() < deadline, f"the uploads were never catalogued: {rows}"
            time.sleep(0.1)
    fired = subprocess.run(
        [sys.executable, "-m", "sls_py", "trigger", "schedule", "nightly-report", "--json",
         "--project", str(root)],
        capture_output=True, text=True, timeout=120,
    )
    assert fired.returncode == 0, fired.stderr
    assert '"photos": 2' in fired.stdout, fired.stdout
    assert "async invoke from nightly-report (attempt 1 of 3) -> count-chunk ok" in sls_local_server.output()
