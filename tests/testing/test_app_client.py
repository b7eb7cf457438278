"""AppClient answers like the gateway: unknown routes, crashes, API keys, CORS."""

from __future__ import annotations

from pathlib import Path

import pytest
from sls_py.errors import SpecError
from sls_py.testing import AppClient

APP = """
from sls_py import App, Cors, HttpError, HttpRequest, Response, http

app = App("client-app", api_keys=["default"])
notes = app.table("notes", key="id")
jobs = app.queue("jobs")


@app.function(name="echo", triggers=[http("GET", "/echo/{word}", cors=Cors(origins=["https://a.example"]))])
def echo(request: HttpRequest) -> Response:
    return Response.json({"word": request.path_params["word"], "q": request.query})


@app.function(name="crash", triggers=[http("POST", "/crash")])
def crash(payload: dict) -> dict:
    raise RuntimeError("secret detail")


@app.function(name="secret", triggers=[http("GET", "/secret", api_key=True)])
def secret(request: HttpRequest) -> Response:
    notes.put({"id": "seen", "by": "secret"})
    jobs.send({"job": 1})
    return Response.json({"ok": True})
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "client_app.py").write_text(APP, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[tool.sls-py]\napp = "client_app:app"\n', encoding="utf-8")
    return tmp_path


def test_gateway_answers(project: Path) -> None:
    client = AppClient(project)
    unknown = client.get("/nowhere")
    crash = client.post("/crash", {})
    echo = client.get("/echo/hi", query={"q": ["1", "2"]}, headers={"Origin": "https://a.example"})
    other_origin = client.get("/echo/hi", headers={"Origin": "https://evil.example"})
    assert [(r.status, r.json()) for r in (unknown, crash, echo)] == [
        (403, {"message": "Missing Authentication Token"}),
        (502, {"message": "Internal server error"}),
        (200, {"word": "hi", "q": {"q": ["1", "2"]}}),
    ]
    assert (echo.headers["access-control-allow-origin"], echo.headers["vary"]) == (
        "https://a.example",
        "Origin",
    )
    assert "access-control-allow-origin" not in other_origin.headers
    preflight = client.request("OPTIONS", "/echo/hi", headers={"Origin": "https://a.example"})
    assert (preflight.status, preflight.headers) == (
        204,
        {
            "access-control-allow-origin": "https://a.example",
            "vary": "Origin",
            "access-control-allow-methods": "GET, OPTIONS",
            "access-control-allow-headers": "content-type, x-api-key, authorization",
            "access-control-max-age": "600",
        },
    )


def test_api_keys_are_checked_only_when_given(project: Path) -> None:
    assert AppClient(project).get("/secret").status == 200
    checked = AppClient(project, api_keys={"default": "k-1"})
    assert [
        checked.get("/secret", headers=h).status for h in ({}, {"X-API-Key": "k-2"}, {"x-api-key": "k-1"})
    ] == [
        403,
        403,
        200,
    ]
    assert checked.table("notes").get({"id": "seen"}) == {"id": "seen", "by": "secret"}
    assert checked.messages("jobs") == ['{"job":1}']
    with pytest.raises(SpecError, match="has no table 'nope'"):
        checked.table("nope")


ANY_APP = """
from sls_py import App, HttpRequest, Response, http

app = App("any-app")


@app.function(name="anything", triggers=[http("ANY", "/anything", cors=True), http("ANY", "/plain")])
def anything(request: HttpRequest) -> Response:
    return Response.json({"method": request.method})
"""


def test_options_and_cors_follow_the_provider_contract(tmp_path: Path) -> None:
    """docs/providers.md rows route.options and http.cors: an ANY route with CORS gets the
    gateway's preflight (with ANY spelled out), one without CORS gets OPTIONS itself, and
    a wildcard origin is sent with or without an Origin header."""
    (tmp_path / "any_app.py").write_text(ANY_APP, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[tool.sls-py]\napp = "any_app:app"\n', encoding="utf-8")
    client = AppClient(tmp_path)
    pre = client.request("OPTIONS", "/anything", headers={"Origin": "https://a.example"})
    assert (pre.status, pre.body, pre.headers["access-control-allow-methods"]) == (
        204,
        b"",
        "DELETE, GET, HEAD, PATCH, POST, PUT, OPTIONS",
    )
    plain = client.request("OPTIONS", "/plain")
    assert (plain.status, plain.json()) == (200, {"method": "OPTIONS"})
    no_origin = client.get("/anything")
    assert (no_origin.json(), no_origin.headers["access-control-allow-origin"]) == ({"method": "GET"}, "*")
