"""What a hostile or broken client gets from `sls-py run` (issue #13), over raw
sockets where the case is below what an HTTP client library sends: bodies that
are not strict JSON, bodies declared too large, requests without Host, slow
clients, pipelining, and workers or templates killed under load."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sls_py.config import load_project
from sls_py.errors import ConfigError
from sls_py_local.settings import PoolSettings, pool_settings

from .support import (
    RawResponse,
    Server,
    _ResponseCollector,
    raw_request,
    run_load,
    run_server,
    wait_until,
    write_project,
)

pytestmark = pytest.mark.timeout(120)

APP = """
from __future__ import annotations

import os
import time

from pydantic import BaseModel

from sls_py import App, HttpRequest, http

app = App("hostile")


class Pair(BaseModel):
    x: float
    y: float


@app.function(name="add", triggers=[http("POST", "/add", cors=True)])
def add(pair: Pair, ctx) -> dict:
    return {"sum": pair.x + pair.y}


@app.function(name="parse", triggers=[http("POST", "/parse")])
def parse(req: HttpRequest, ctx) -> dict:
    return {"got": req.json()}


@app.function(name="nan", triggers=[http("GET", "/nan")])
def nan(req: HttpRequest, ctx) -> dict:
    return {"result": float(req.query_param("v", "nan"))}


@app.function(name="work", timeout_s=10, triggers=[http("GET", "/work"), http("POST", "/work")])
def work(req: HttpRequest, ctx) -> dict:
    time.sleep(float(req.query_param("s", "0")))
    return {"n": req.query_param("n"), "pid": os.getpid(), "ppid": os.getppid()}
"""

# short client timeouts, so that the slow-client cases take a second or two
CONFIG = """
[tool.sls-py.providers.local]
max_workers = 4
read_timeout_s = 1
keepalive_timeout_s = 2
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    project = write_project(tmp_path_factory.mktemp("hostile"), "hostile", APP, CONFIG)
    with run_server(project, "--no-reload", "--json-logs") as running:
        yield running


def _address(url: str) -> tuple[str, int]:
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()  # type: ignore[union-attr]
    return host, int(port)


def _post(path: str, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
    )


def _logs(server: Server, function: str) -> list[dict[str, object]]:
    path = server.project / ".sls-py" / "local" / "dev" / "logs" / f"{function}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- 1 and 2: bodies that are not strict JSON are the client's mistake --------------

FIX = "send a finite number, null or a string"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"x": NaN, "y": 1}', f"NaN is not a number JSON allows (at x); {FIX}"),
        (b'{"x": 1, "y": Infinity}', f"Infinity is not a number JSON allows (at y); {FIX}"),
        (b'{"x": -Infinity, "y": 1}', f"-Infinity is not a number JSON allows (at x); {FIX}"),
        (b'{"x": 1e999, "y": 1}', f"1e999 is too large for a JSON number (at x); {FIX}"),
        (
            b'{"x": 1, "y": ' + b"9" * 4301 + b"}",
            "an integer of 4301 digits is longer than the 4300 digits allowed (at y); send it as a string",
        ),
    ],
)
def test_numbers_json_does_not_allow_are_a_400_naming_the_field(
    server: Server, body: bytes, message: str
) -> None:
    [r] = raw_request(server.url, _post("/add", body))
    assert (r.status, r.json()["message"]) == (400, f"Request body is not valid JSON: {message}")
    assert r.json()["errors"][0]["loc"] in (["x"], ["y"])


def test_deep_nesting_is_a_400_and_no_function_error(server: Server) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    answers = [raw_request(server.url, _post(path, deep))[0] for path in ("/add", "/parse")]
    for r in answers:
        assert r.status == 400, r.body[:200]
        assert r.json()["message"].startswith("Request body is nested too deeply to be parsed")
    huge = raw_request(server.url, _post("/parse", b"[" + b"1" * 5000 + b"]"))[0]
    assert huge.status == 400
    # client mistakes are not function errors: no ERROR record, no traceback
    for function in ("add", "parse"):
        assert [r for r in _logs(server, function) if r["level"] == "ERROR"] == []
    assert "Traceback" not in server.output()


def test_a_nan_result_is_a_502_with_the_reason_in_the_log(server: Server) -> None:
    answers = {
        v: raw_request(server.url, b"GET /nan?v=%s HTTP/1.1\r\nHost: x\r\n\r\n" % v)[0]
        for v in (b"nan", b"inf", b"1.5")
    }
    assert {v: (r.status, r.json()) for v, r in answers.items()} == {
        b"nan": (502, {"message": "Internal server error"}),
        b"inf": (502, {"message": "Internal server error"}),
        b"1.5": (200, {"result": 1.5}),
    }
    rid = answers[b"nan"].headers["x-request-id"]

    def logged() -> list[object]:
        return [r["message"] for r in _logs(server, "nan") if r["request_id"] == rid]

    [message] = wait_until(logged, timeout=10)
    assert "the function's result cannot be sent as JSON" in str(message)
    assert "(at result)" in str(message)


# --- 3: declared sizes, Host, slow clients -----------------------------------------


def test_an_oversized_content_length_is_413_at_once(server: Server) -> None:
    # 2 bytes of a declared 100 MB: the answer comes from the head; were the body
    # waited for, this server's 1 s read timeout would answer 408 instead
    head = (
        b"POST /add HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\nContent-Length: 100000000\r\n\r\n{}"
    )
    with socket.create_connection(_address(server.url), timeout=10) as sock:
        sock.sendall(head)
        collector = _ResponseCollector()
        while not collector.done:
            chunk = sock.recv(65536)
            assert chunk, "closed without an answer"
            collector.parser.feed_data(chunk)
        # the rest of what the client sends is dropped, then the connection closes
        sock.sendall(b"x" * 65536)
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    [r] = collector.done
    assert (r.status, r.json(), r.headers["connection"]) == (
        413,
        {"message": "Request Too Long"},
        "close",
    )
    assert r.headers["access-control-allow-origin"] == "*"  # the route's CORS, as before
    assert rest == b""


def test_expect_100_continue_over_the_limit_gets_413_not_continue(server: Server) -> None:
    data = b"POST /add HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 7000000\r\n\r\n"
    [r] = raw_request(server.url, data)
    assert r.status == 413


def test_a_chunked_body_is_refused_once_it_passes_the_limit(server: Server) -> None:
    chunk = b"x" * (1 << 20)
    data = b"POST /parse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    data += b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(7))  # 7 MB, no end
    [r] = raw_request(server.url, data)
    assert (r.status, r.json()) == (413, {"message": "Request Too Long"})


def test_a_long_url_or_large_headers_are_refused_without_the_body(server: Server) -> None:
    # a declared body that never comes: answered from the head, not 408 after 1 s
    long_url = b"POST /add?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    big_head = b"POST /add HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 11000 + b"\r\nContent-Length: 10\r\n\r\n"
    assert [raw_request(server.url, data)[0].status for data in (long_url, big_head)] == [414, 431]


def test_http_1_1_without_host_is_400_and_1_0_needs_none(server: Server) -> None:
    [missing] = raw_request(server.url, b"GET /work?n=1 HTTP/1.1\r\n\r\n")
    [old] = raw_request(server.url, b"GET /work?n=2 HTTP/1.0\r\n\r\n")
    [given] = raw_request(server.url, b"GET /work?n=3 HTTP/1.1\r\nHOST: x\r\n\r\n")
    assert (missing.status, missing.json(), missing.headers["connection"]) == (
        400,
        {"message": "An HTTP/1.1 request must have a Host header"},
        "close",
    )
    assert (old.status, old.json()["n"]) == (200, "2")
    assert (given.status, given.json()["n"]) == (200, "3")


def test_a_slowloris_request_is_answered_408_and_closed(server: Server) -> None:
    """A header line every 0.2 s: each byte arrives in time, the request never
    does; the server must answer 408 before this client's 10 s are up."""
    answer = b""
    with socket.create_connection(_address(server.url), timeout=10) as sock:
        sock.sendall(b"GET /work HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.2)
        for i in range(50):
            try:
                sock.sendall(b"X-Drip-%d: y\r\n" % i)
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            answer += data
            if not data:
                break
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                answer += data
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:200]
    assert b"connection: close\r\n" in answer
    assert answer.endswith(b'{"message":"The request did not arrive within 1 s"}')


def test_idle_connections_are_closed(server: Server) -> None:
    with socket.create_connection(_address(server.url), timeout=10) as silent:
        assert silent.recv(100) == b""  # never sent a byte: closed after keepalive_timeout_s
    with socket.create_connection(_address(server.url), timeout=10) as kept:
        kept.sendall(b"GET /work?n=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        collector = _ResponseCollector()
        while not collector.done:
            collector.parser.feed_data(kept.recv(65536))
        assert collector.done[0].status == 200
        assert kept.recv(100) == b""  # kept alive, then idle: closed too


def test_a_slow_function_is_not_the_clients_timeout(server: Server) -> None:
    [r] = raw_request(server.url, b"GET /work?s=1.5&n=slow HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (r.status, r.json()["n"]) == (200, "slow")


# --- 4: pipelining, and processes killed under load --------------------------------


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    requests = b"".join(
        b"GET /work?n=%d&s=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (i, b"0.02" if i % 3 else b"0")
        for i in range(40)
    )
    answers = raw_request(server.url, requests + _post("/parse", b'{"last": true}'), expect=41)
    assert [r.status for r in answers] == [200] * 41
    assert [r.json()["n"] for r in answers[:40]] == [str(i) for i in range(40)]
    assert answers[40].json() == {"got": {"last": True}}


def _work_request(path: bytes) -> Callable[[int, int], tuple[bytes, Callable[[int, bytes], str | None]]]:
    def make(conn: int, i: int) -> tuple[bytes, Callable[[int, bytes], str | None]]:
        tag = f"c{conn}-{i}"
        data = b"GET %s&n=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (path, tag.encode())

        def check(status: int, body: bytes) -> str | None:
            if status == 200 and json.loads(body)["n"] == tag:
                seen.append(json.loads(body))
                return None
            statuses.append(status)
            return f"{tag}: {status} {body[:100]!r}"

        return data, check

    seen: list[dict[str, object]] = []
    statuses: list[int] = []
    make.seen, make.statuses = seen, statuses  # type: ignore[attr-defined]
    return make


def test_sigkill_of_one_worker_under_load_fails_only_its_request(server: Server) -> None:
    make = _work_request(b"/work?s=0.05")
    killed: list[int] = []

    def kill_one() -> None:
        wait_until(lambda: len(make.seen) >= 20, timeout=30)  # type: ignore[attr-defined]
        pid = int(make.seen[-1]["pid"])  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_one)
    killer.start()
    result = run_load(server.url, connections=4, per_connection=40, make=make)
    killer.join()
    failed = make.statuses  # type: ignore[attr-defined]
    print(f"SIGKILL of worker {killed}: {result.sent} requests, {len(failed)} failed {failed}")
    # one worker runs one invocation at a time: at most that one request fails, with 502
    assert result.sent == 4 * 40
    assert failed in ([], [502])
    assert result.ok == result.sent - len(failed)
    assert killed and all(int(r["pid"]) != killed[0] for r in make.seen[-20:])  # type: ignore[attr-defined]


def _one_answer(url: str, data: bytes) -> list[RawResponse | str]:
    """Send one request that asks to close; every response up to the close (or the
    reason there was none)."""
    collector = _ResponseCollector()
    try:
        with socket.create_connection(_address(url), timeout=20) as sock:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                collector.parser.feed_data(chunk)
    except OSError as exc:
        return [*collector.done, f"{type(exc).__name__}: {exc}"]
    return list(collector.done)


def test_requests_in_flight_when_the_template_dies(server: Server) -> None:
    [first] = raw_request(server.url, b"GET /work?n=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    template = int(first.json()["ppid"])
    answers: dict[int, list[RawResponse | str]] = {}

    def call(i: int) -> None:
        data = b"GET /work?s=1&n=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i
        answers[i] = _one_answer(server.url, data)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]  # 4 workers: 2 wait
    for t in threads:
        t.start()
    time.sleep(0.3)
    os.kill(template, signal.SIGKILL)
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a request hangs"
    outcome = {
        i: [a if isinstance(a, str) else (a.status, a.json().get("n", a.json())) for a in got]
        for i, got in sorted(answers.items())
    }
    print(f"template {template} killed with 6 requests in flight or queued: {outcome}")
    for i, got in outcome.items():
        assert got in ([(200, str(i))], [(502, {"message": "Internal server error"})]), got
    # the function goes on, on a new template
    after = wait_until(
        lambda: (
            (r := raw_request(server.url, b"GET /work?n=9 HTTP/1.1\r\nHost: x\r\n\r\n"))
            and r[0].status == 200
            and r[0].json()
        ),
        timeout=30,
    )
    assert int(after["ppid"]) != template


def test_client_timeouts_are_local_settings(tmp_path: Path) -> None:
    config = "[tool.sls-py.providers.local]\nread_timeout_s = 2.5\nkeepalive_timeout_s = 0\n"
    spec = load_project(write_project(tmp_path / "p", "hostile", APP, config)).spec()
    assert pool_settings(spec) == PoolSettings(read_timeout_s=2.5, keepalive_timeout_s=0.0)
    config = '[tool.sls-py.providers.local]\nread_timeout_s = "soon"\n'
    bad = load_project(write_project(tmp_path / "q", "hostile", APP, config)).spec()
    with pytest.raises(ConfigError) as err:
        pool_settings(bad)
    assert (err.value.message, err.value.hint) == (
        "[tool.sls-py.providers.local] read_timeout_s = 'soon' is not a non-negative number",
        "for example: read_timeout_s = 10.0",
    )
