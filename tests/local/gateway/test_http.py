"""The local gateway over real HTTP: routing, API keys, CORS, error shapes."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from .support import Server, raw_request, wait_until

pytestmark = pytest.mark.timeout(120)


def _strip(headers: dict[str, str]) -> dict[str, str]:
    """Response headers without the ones that change per request."""
    return {k: v for k, v in headers.items() if k not in ("date", "x-request-id")}


def test_routes_params_query_repeated_headers(gw: Server) -> None:
    with gw.client() as c:
        r = c.get(
            "/echo/bob/",
            params=[("a", "1"), ("a", "2"), ("b", ""), ("é", "ü")],
            headers=[("X-Multi", "one"), ("X-Multi", "two"), ("X-Single", "s")],
        )
    assert r.status_code == 200
    body = r.json()
    assert {
        k: body[k] for k in ("method", "path", "route", "params", "query", "headers", "body")
    } == {
        "method": "GET",
        "path": "/echo/bob/",
        "route": "/echo/{name}",
        "params": {"name": "bob"},
        "query": {"a": ["1", "2"], "b": [""], "é": ["ü"]},
        "headers": {"x-multi": ["one", "two"], "x-single": ["s"]},
        "body": "",
    }
    assert r.headers["x-request-id"] == body["request_id"]


def test_greedy_proxy_and_static_routes(gw: Server) -> None:
    with gw.client() as c:
        greedy = c.get("/files/a/b/c.txt").json()
        post = c.post("/echo", content=b"x").json()
        other_method = c.delete("/echo/zed").json()
    assert (greedy["route"], greedy["params"]) == ("/files/{path+}", {"path": "a/b/c.txt"})
    assert (post["route"], post["params"]) == ("/echo", {})
    assert (other_method["method"], other_method["params"]) == ("DELETE", {"name": "zed"})


def test_binary_bodies_both_ways(gw: Server) -> None:
    payload = bytes(range(256)) * 3
    with gw.client() as c:
        up = c.post("/echo", content=payload, headers={"content-type": "application/octet-stream"})
        down = c.get("/binary")
    assert base64.b64decode(up.json()["body"]) == payload
    assert (down.status_code, down.headers["content-type"], down.content) == (
        200,
        "application/octet-stream",
        bytes(range(256)),
    )


def test_unknown_route_is_missing_authentication_token(gw: Server) -> None:
    with gw.client() as c:
        r = c.get("/nowhere")
        wrong_method = c.post("/binary")
    for resp in (r, wrong_method):
        assert (resp.status_code, resp.json()) == (403, {"message": "Missing Authentication Token"})


def test_api_key_required_any_case_and_checked(gw: Server) -> None:
    key = gw.keys["default"]
    with gw.client() as c:
        missing = c.get("/secret")
        wrong = c.get("/secret", headers={"x-api-key": key[:-1] + ("A" if key[-1] != "A" else "B")})
        upper = c.get("/secret", headers={"X-API-KEY": key})
        other = c.get("/secret", headers={"x-api-key": gw.keys["other"]})
    assert (missing.status_code, missing.json()) == (403, {"message": "Forbidden"})
    assert (wrong.status_code, wrong.json()) == (403, {"message": "Forbidden"})
    assert (upper.status_code, upper.json()) == (200, {"ok": True, "env": None, "own": "s3"})
    assert other.status_code == 200


def test_api_keys_file_is_private_and_stable(gw: Server, gw_project) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    path = gw_project / ".sls-py" / "local" / "dev" / "api-keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    out = subprocess.run(
        [sys.executable, "-m", "sls_py", "api-keys", "-p", str(gw_project), "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == [{"name": n, "value": gw.keys[n]} for n in ("default", "other")]
    assert set(gw.keys) == {"default", "other"} and len(set(gw.keys.values())) == 2
    url = subprocess.run(
        [sys.executable, "-m", "sls_py", "url", "-p", str(gw_project)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert url == gw.url


def test_start_up_banner_lists_routes_and_keys(gw: Server) -> None:
    out = gw.output()
    assert f"POST    {gw.url}/echo" in out
    assert f"GET     {gw.url}/secret" in out and "yes      secret" in out
    assert ".sls-py/local/dev/api-keys.json" in out


def test_cors_preflight_and_headers_on_success_and_errors(gw: Server) -> None:
    with gw.client() as c:
        pre = c.options(
            "/cors", headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"}
        )
        ok = c.get("/cors", headers={"Origin": "https://a.example"})
        foreign = c.get("/cors", headers={"Origin": "https://evil.example"})
        pre_default = c.options("/cors-boom")
        forbidden = c.post("/cors-boom")
        failed = c.post("/cors-boom", headers={"x-api-key": gw.keys["default"]})
        no_cors = c.options("/boom")
    assert (pre.status_code, _strip(dict(pre.headers))) == (
        204,
        {
            "access-control-allow-origin": "https://a.example",
            "vary": "Origin",
            "access-control-allow-credentials": "true",
            "access-control-allow-methods": "GET,OPTIONS",
            "access-control-allow-headers": "content-type,x-custom",
            "access-control-max-age": "60",
        },
    )
    assert (
        ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://a.example"
    )
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in foreign.headers
    assert pre_default.status_code == 204
    assert pre_default.headers["access-control-allow-origin"] == "*"
    assert pre_default.headers["access-control-allow-methods"] == "OPTIONS,POST"
    assert (forbidden.status_code, forbidden.headers["access-control-allow-origin"]) == (403, "*")
    assert (failed.status_code, failed.json(), failed.headers["access-control-allow-origin"]) == (
        502,
        {"message": "Internal server error"},
        "*",
    )
    assert (no_cors.status_code, no_cors.json()) == (
        403,
        {"message": "Missing Authentication Token"},
    )


def test_handler_exception_is_502_and_traceback_only_in_log(gw: Server) -> None:
    with gw.client() as c:
        r = c.get("/boom")
    assert (r.status_code, r.json()) == (502, {"message": "Internal server error"})
    assert b"kaboom" not in r.content
    rid = r.headers["x-request-id"]
    log = gw.project / ".sls-py" / "local" / "dev" / "logs" / "boom.jsonl"

    def traceback_logged() -> bool:
        if not log.exists():
            return False
        records = [json.loads(line) for line in log.read_text().splitlines()]
        return any(
            rec["request_id"] == rid
            and "kaboom-detail-only-in-logs" in rec["message"]
            and "Traceback" in rec["message"]
            for rec in records
        )

    wait_until(traceback_logged, timeout=10)


def test_response_http_cannot_carry_is_502_with_the_reason_in_the_log(gw: Server) -> None:
    with gw.client() as c:
        answers = {bad: c.get(f"/binary?bad={bad}") for bad in ("value", "name", "status")}
        after = c.get("/binary")
    for r in answers.values():
        assert (r.status_code, r.json()) == (502, {"message": "Internal server error"})
        assert "x-injected" not in r.headers
    assert (after.status_code, after.content) == (200, bytes(range(256)))  # the worker still serves
    log = gw.project / ".sls-py" / "local" / "dev" / "logs" / "binary.jsonl"
    expected = {
        answers["value"].headers["x-request-id"]: "invalid response header(s) ['x-bad']: answered 502",
        answers["name"].headers["x-request-id"]: "invalid response header(s) ['bad name']: answered 502",
        answers["status"].headers["x-request-id"]: "invalid response status 999: answered 502",
    }

    def logged() -> dict[str, str]:
        if not log.exists():
            return {}
        records = [json.loads(line) for line in log.read_text().splitlines()]
        return {r["request_id"]: r["message"] for r in records if r["request_id"] in expected}

    wait_until(lambda: logged() == expected, timeout=10)
    assert {r["level"] for r in map(json.loads, log.read_text().splitlines())} == {"ERROR"}


def test_payload_function_invalid_json_and_validation(gw: Server) -> None:
    with gw.client() as c:
        good = c.post("/add", json={"x": 2, "y": 3})
        bad_json = c.post("/add", content=b'{"x": 2,', headers={"content-type": "application/json"})
        invalid = c.post("/add", json={"x": "two"})
        text = c.post("/add", content=b"hello", headers={"content-type": "text/plain"})
        bad_utf8 = c.post(
            "/add", content=b'{"x": "\xff\xfe"}', headers={"content-type": "application/json"}
        )
    assert (good.status_code, good.json()) == (200, {"sum": 5})
    assert bad_json.status_code == 400 and bad_json.json()["message"].startswith(
        "Request body is not valid JSON"
    )
    assert invalid.status_code == 400
    assert invalid.json() == {
        "message": "Invalid request body",
        "errors": [
            {
                "loc": ["x"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "type": "int_parsing",
            },
            {"loc": ["y"], "msg": "Field required", "type": "missing"},
        ],
    }
    assert text.status_code == 400 and "not valid JSON" in text.json()["message"]
    assert bad_utf8.status_code == 400 and "not valid JSON" in bad_utf8.json()["message"]


def test_body_over_6mb_is_413(gw: Server) -> None:
    with gw.client() as c:
        big = c.post("/echo", content=b"x" * (6 * 1024 * 1024 + 1))
        limit = c.post("/echo", content=b"y" * (6 * 1024 * 1024))
    assert (big.status_code, big.json()) == (413, {"message": "Request Too Long"})
    assert (
        limit.status_code == 200 and len(base64.b64decode(limit.json()["body"])) == 6 * 1024 * 1024
    )


def test_bad_http_input_gets_clear_4xx_never_500_or_hang(gw: Server) -> None:
    host = gw.url.removeprefix("http://")
    cases = {
        "malformed request line": (b"NOT HTTP AT ALL\r\n\r\n", 400),
        "bad header": (b"GET /echo/a HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        "huge headers": (
            b"GET /echo/a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
            431,
        ),
        "many headers": (
            b"GET /echo/a HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 90) for i in range(200))
            + b"\r\n",
            431,
        ),
        "invalid utf-8 path": (b"GET /echo/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        "invalid utf-8 query": (b"GET /echo/a?q=%ff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        "raw non-utf-8 path": (b"GET /echo/\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        "huge url": (b"GET /echo/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        "bad content-length": (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            400,
        ),
    }
    for name, (data, status) in cases.items():
        responses = raw_request(gw.url, data, timeout=10)
        assert [r.status for r in responses] == [status], name
        assert "message" in responses[0].json(), name
    with gw.client() as c:
        assert c.get("/echo/healthy").status_code == 200, host


def test_pipelined_requests_answered_in_order(gw: Server) -> None:
    data = b"".join(b"GET /echo/n%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
    responses = raw_request(gw.url, data, expect=5)
    assert [r.json()["params"]["name"] for r in responses] == [f"n{i}" for i in range(5)]


def test_http10_and_connection_close(gw: Server) -> None:
    [r] = raw_request(gw.url, b"GET /echo/old HTTP/1.0\r\n\r\n")
    assert r.status == 200 and r.headers["connection"] == "close"
    [r] = raw_request(gw.url, b"GET /echo/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 200 and r.headers["connection"] == "close"
    upgrade = (
        b"GET /echo/u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    [r] = raw_request(gw.url, upgrade)  # the upgrade is ignored, the request answered
    assert r.status == 200 and r.headers["connection"] == "close"


def test_json_logs_carry_function_and_request_id(gw: Server) -> None:
    with gw.client() as c:
        rid = c.get("/echo/logme").headers["x-request-id"]

    def logged() -> list[dict[str, object]]:
        records = []
        for line in gw.output().splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                if rec.get("request_id") == rid:
                    records.append(rec)
        return records if len(records) == 2 else []

    records = wait_until(logged, timeout=10)
    assert sorted((r["function"], r["level"], r["message"]) for r in records) == [
        ("echo", "INFO", "echo /echo/logme"),
        ("echo", "INFO", "echo says hello"),
    ]


def test_sls_py_logs_reads_the_log_files(gw: Server, gw_project) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    with gw.client() as c:
        rid = c.get("/echo/cli-logs").headers["x-request-id"]

    def found() -> list[dict[str, object]]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "sls_py",
                "logs",
                "echo",
                "-p",
                str(gw_project),
                "--since",
                "5m",
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        recs = [json.loads(line) for line in out.splitlines()]
        return [r for r in recs if r["request_id"] == rid]

    records = wait_until(found, timeout=10)
    assert sorted(r["message"] for r in records) == ["echo /echo/cli-logs", "echo says hello"]


def test_functions_run_in_their_own_processes_with_their_own_env(gw: Server) -> None:
    with gw.client() as c:
        echo = c.get("/echo/env").json()
        secret = c.get("/secret", headers={"x-api-key": gw.keys["default"]}).json()
        environ = c.get("/environ").json()
    gateway_pid = gw.proc.pid
    assert echo["pid"] != gateway_pid and echo["ppid"] != gateway_pid  # forked from the template
    assert (echo["env"], echo["other_env"]) == ("echo-secret", None)
    assert (secret["env"], secret["own"]) == (None, "s3")
    assert "ONLY_ECHO" not in environ and "ONLY_SECRET" not in environ
    assert not any(v in json.dumps(environ) for v in gw.keys.values())
    assert environ["SLS_PY_FUNCTION"] == "environ" and environ["SLS_PY_STAGE"] == "dev"
    assert json.loads(environ["SLS_PY_RESOURCES"])["driver"] == "sls_py_local.resources:LocalDriver"


def test_warm_reuse_and_scale_out(gw: Server) -> None:
    import concurrent.futures

    with gw.client() as c:
        first = c.get("/slow", params={"s": "0"}).json()["pid"]
        second = c.get("/slow", params={"s": "0"}).json()["pid"]
    assert first == second  # the same warm worker served both
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        pids = list(pool.map(lambda _: _get_pid(gw, "/slow?s=0.6"), range(3)))
    assert len(set(pids)) == 3  # scaled out: one invocation per worker at a time
    assert os.getpid() not in pids


def _get_pid(gw: Server, path: str) -> int:
    with gw.client() as c:
        r = c.get(path)
    assert r.status_code == 200, r.text
    return int(r.json()["pid"])


def test_chunked_body_and_expect_100_continue(gw: Server) -> None:
    chunked = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    [r] = raw_request(gw.url, chunked)
    assert (r.status, base64.b64decode(r.json()["body"])) == (200, b"hello world")

    import socket

    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n")
        s.sendall(b"Expect: 100-continue\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"body")
        reply = b""
        while not reply.endswith(b"}"):
            reply += s.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert base64.b64decode(json.loads(reply.split(b"\r\n\r\n", 1)[1])["body"]) == b"body"
