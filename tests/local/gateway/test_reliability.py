"""Reliability under load: every request answered once and correctly, faults
(crash, timeout, out of memory, hot reload) contained to their own requests."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from .support import Server, run_load, run_server

pytestmark = pytest.mark.timeout(180)


def _echo_request(conn: int, i: int) -> tuple[bytes, Callable[[int, bytes], str | None]]:
    """A POST /echo whose body names it; the check wants exactly that body back."""
    tag = f"c{conn}-r{i}".encode()
    data = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(tag), tag)
    )

    def check(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"{tag.decode()}: status {status} {body[:200]!r}"
        got = base64.b64decode(json.loads(body)["body"])
        return None if got == tag else f"{tag.decode()}: answered with {got!r}"

    return data, check


def test_10k_requests_at_32_connections_all_correct(gw: Server) -> None:
    result = run_load(gw.url, connections=32, per_connection=320, make=_echo_request)
    assert result.wrong == []
    assert result.ok == result.sent == 32 * 320


def test_faults_under_load_are_contained(reload_project: Path) -> None:
    module = reload_project / "gwapp.py"
    source = module.read_text()
    with run_server(reload_project) as server:
        faults: dict[str, tuple[int, object]] = {}

        def fault(name: str, path: str) -> None:
            r = httpx.get(server.url + path, timeout=60)
            faults[name] = (r.status_code, r.json())

        def inject() -> None:
            time.sleep(0.3)
            threads = [
                threading.Thread(target=fault, args=("crash", "/crash?how=kill")),
                threading.Thread(target=fault, args=("exit", "/crash?how=exit")),
                threading.Thread(target=fault, args=("timeout", "/slow?s=5")),
                threading.Thread(target=fault, args=("oom", "/hog?mb=400")),
            ]
            for t in threads:
                t.start()
            module.write_text(source.replace('VERSION = "v1"', 'VERSION = "v2"'))
            for t in threads:
                t.join()
            deadline = time.monotonic() + 60  # bounded: a reload that never comes fails
            while httpx.get(server.url + "/version", timeout=60).json()["version"] != "v2":
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            time.sleep(0.3)  # and a little more load on the new workers
            done.set()

        done = threading.Event()
        injector = threading.Thread(target=inject)
        injector.start()
        result = run_load(
            server.url, 32, 50, _echo_request, keep_going=lambda: not done.is_set()
        )  # the load goes on until every fault was answered and the reload is done
        injector.join()

        assert result.wrong == []  # no request lost, failed or answered twice
        assert result.ok == result.sent
        assert faults == {
            "crash": (502, {"message": "Internal server error"}),
            "exit": (502, {"message": "Internal server error"}),
            "timeout": (504, {"message": "Endpoint request timed out"}),
            "oom": (502, {"message": "Internal server error"}),
        }
        # each template group swaps to the new code on its own; the gateway says "reloaded"
        # once every pool has, which can be a little after /version answers v2
        deadline = time.monotonic() + 60
        while "reloaded: new requests go to the new code" not in (out := server.output()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert "reloaded: new requests go to the new code" in out, out[-3000:]
        with server.client() as c:  # healthy afterwards, on the new code
            assert c.get("/version").json()["version"] == "v2"
            assert c.get("/crash").status_code == 200
            assert c.get("/slow", params={"s": "0"}).status_code == 200
            assert c.get("/hog", params={"mb": "8"}).status_code == 200
        after = run_load(server.url, connections=8, per_connection=50, make=_echo_request)
        assert (after.ok, after.sent, after.wrong) == (400, 400, [])
