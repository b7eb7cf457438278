"""Unit tests of the gateway's parts (no network, no processes)."""

from __future__ import annotations

import contextlib
import io
import json
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sls_py.config import load_project
from sls_py.errors import ConfigError
from sls_py.provider import ApiKey
from sls_py.spec import CorsSpec, UsageSpec
from sls_py_local import channel
from sls_py_local.gateway import cors_headers
from sls_py_local.keys import KeyChecker, UsageLimiter, keys_file, load_api_keys
from sls_py_local.logs import LogSink, read_logs
from sls_py_local.plugin import side_by_side
from sls_py_local.server import pool_settings
from sls_py_local.workers import PoolSettings

from .support import write_project

APP = """
from sls_py import App, HttpRequest, http

app = App("units", api_keys=["one", "two"])


@app.function(name="f", triggers=[http("GET", "/f", api_key=True)])
def f(req: HttpRequest, ctx) -> dict:
    return {}
"""


def test_api_keys_generated_once_private_and_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = load_project(write_project(tmp_path / "p", "unitsapp", APP, "", "units"))
    spec = project.spec()
    first = load_api_keys(spec, project)
    again = load_api_keys(spec, project)
    assert [k.name for k in first] == ["one", "two"]
    assert first == again and first[0].value != first[1].value and len(first[0].value) >= 40
    path = keys_file(project, "dev")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {k.name: k.value for k in first}

    monkeypatch.setenv("UNITS_KEY", "from-the-environment")
    config = '[tool.sls-py.providers.local]\napi_keys = { one = "${env:UNITS_KEY}" }\n'
    project = load_project(write_project(tmp_path / "p", "unitsapp", APP, config, "units"))
    assert load_api_keys(project.spec(), project) == [
        ApiKey("one", "from-the-environment"),
        ApiKey("two", first[1].value),
    ]


def test_corrupt_keys_file_is_a_clear_error(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path / "p", "unitsapp", APP, "", "units"))
    path = keys_file(project, "dev")
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2")
    with pytest.raises(ConfigError) as err:
        load_api_keys(project.spec(), project)
    assert err.value.hint == "delete it and new keys will be generated"


def test_key_checker_identifies_only_exact_keys() -> None:
    checker = KeyChecker([ApiKey("a", "secret-a"), ApiKey("b", "secret-b")])
    assert [
        checker.identify(v) for v in ("secret-a", "secret-b", "secret-", "secret-ab", "", None)
    ] == [
        "a",
        "b",
        None,
        None,
        None,
        None,
    ]


def test_usage_limiter_token_bucket_and_quota() -> None:
    now = [100.0]
    wall = [time.mktime((2026, 1, 31, 23, 59, 0, 0, 0, 0))]
    limiter = UsageLimiter(
        UsageSpec(rate=2, burst=2, quota=5, period="MONTH"),
        monotonic=lambda: now[0],
        wall=lambda: wall[0],
    )
    answers = [limiter.check("k") for _ in range(3)]
    assert answers == [None, None, "Too Many Requests"]
    assert limiter.check("other") is None  # buckets are per key
    now[0] += 0.5  # one token back at 2/s
    assert [limiter.check("k"), limiter.check("k")] == [None, "Too Many Requests"]
    now[0] += 10
    assert [limiter.check("k"), limiter.check("k"), limiter.check("k")] == [
        None,
        None,
        "Limit Exceeded",
    ]
    wall[0] += 3 * 86400  # a new month: the quota starts again
    now[0] += 10
    assert limiter.check("k") is None
    assert limiter.describe() == "rate 2/s, burst 2, quota 5 per month per key"
    assert not UsageLimiter(None).active and UsageLimiter(None).check("k") is None


def test_cors_headers() -> None:
    spec = CorsSpec(origins=["https://a.example"], allow_credentials=True)
    assert cors_headers(spec, "https://a.example") == [
        ("access-control-allow-origin", "https://a.example"),
        ("vary", "Origin"),
        ("access-control-allow-credentials", "true"),
    ]
    assert cors_headers(spec, "https://b.example") == [("access-control-allow-credentials", "true")]
    assert cors_headers(CorsSpec(), None) == [("access-control-allow-origin", "*")]


def test_frames_survive_any_fragmentation() -> None:
    messages = [{"id": "a", "n": 1}, {"id": "b", "text": "é" * 1000}, {}]
    data = b"".join(channel.encode(k, m) for k, m in zip((b"Q", b"R", b"L"), messages, strict=True))
    for size in (1, 3, 7, len(data)):
        got: list[tuple[bytes, Any]] = []
        decoder = channel.FrameDecoder(lambda k, m, got=got: got.append((k, m)))
        for i in range(0, len(data), size):
            decoder.feed(data[i : i + size])
        assert got == list(zip((b"Q", b"R", b"L"), messages, strict=True))


def test_raw_frames_carry_bodies_as_bytes_between_json_frames() -> None:
    class Name(str):  # not marshallable as such: sent as the plain str
        pass

    body = bytes(range(256)) * 3  # not UTF-8, not base64: exactly these bytes
    meta = {"id": "r1", "event": {"raw_headers": [(b"H", b"v"), (b"h", b"w")], "n": 1.5, "none": None}}
    data = (
        channel.encode(b"L", {"id": "r1", "message": "before"})
        + channel.encode_raw(channel.RAW_REQUEST, meta, body)
        + channel.encode_raw(channel.RAW_RESULT, {"id": Name("r1"), "logs": ["é\n", "é\n"]}, b"")
        + channel.encode(b"R", {"id": "r2"})
    )
    expected = [
        (b"L", {"id": "r1", "message": "before"}),
        (b"B", {**meta, "raw": body}),
        (b"S", {"id": "r1", "logs": ["é\n", "é\n"], "raw": b""}),
        (b"R", {"id": "r2"}),
    ]
    for size in (1, 5, len(data)):
        got: list[tuple[bytes, Any]] = []
        decoder = channel.FrameDecoder(lambda k, m, got=got: got.append((k, m)))
        for i in range(0, len(data), size):
            decoder.feed(data[i : i + size])
        assert got == expected
    assert type(got[2][1]["id"]) is str


def test_frame_reader_reads_whole_frames_from_a_pipe() -> None:
    import os

    r, w = os.pipe()
    frames = [channel.encode(b"Q", {"n": i, "pad": "x" * (i * 40000)}) for i in range(3)]
    os.write(w, frames[0] + frames[1][:10])
    reader = channel.FrameReader(r)
    assert reader.read() == (b"Q", {"n": 0, "pad": ""})
    import threading

    writer = threading.Thread(
        target=lambda: (channel.write_all(w, frames[1][10:] + frames[2]), os.close(w))
    )
    writer.start()
    assert [reader.read(), reader.read(), reader.read()] == [
        (b"Q", {"n": 1, "pad": "x" * 40000}),
        (b"Q", {"n": 2, "pad": "x" * 80000}),
        None,
    ]
    writer.join()
    os.close(r)


def test_log_sink_writes_files_and_read_logs_filters(tmp_path: Path) -> None:
    out = io.StringIO()
    sink = LogSink(tmp_path, stream=out)
    sink.emit("fn", "0123456789abcdef", "INFO", "line one\nline two")
    sink.emit("other", "", "ERROR", "elsewhere")
    sink.close()
    assert out.getvalue() == (
        "[fn] 01234567 INFO  line one\n"
        "[fn] 01234567 INFO  line two\n"
        "[other] -        ERROR elsewhere\n"
    )
    records = list(read_logs(tmp_path, "fn"))
    assert [(r.function, r.request_id, r.message) for r in records] == [
        ("fn", "0123456789abcdef", "line one\nline two")
    ]
    old = {
        "time": time.time() - 3600,
        "function": "fn",
        "request_id": "",
        "level": "INFO",
        "message": "old",
    }
    with open(tmp_path / "fn.jsonl", "a") as f:
        f.write(json.dumps(old) + "\n")
    assert [r.message for r in read_logs(tmp_path, "fn", since_s=60)] == ["line one\nline two"]
    assert [r.message for r in read_logs(tmp_path, "fn")] == ["line one\nline two", "old"]
    assert list(read_logs(tmp_path, "missing")) == []


def test_pool_settings_from_config(tmp_path: Path) -> None:
    config = "[tool.sls-py.providers.local]\nqueue_size = 4\nidle_timeout_s = 2.5\n"
    project = load_project(write_project(tmp_path / "p", "unitsapp", APP, config, "units"))
    assert pool_settings(project.spec()) == PoolSettings(queue_size=4, idle_timeout_s=2.5)
    bad = load_project(
        write_project(
            tmp_path / "q", "unitsapp", APP, '[tool.sls-py.providers.local]\nqueue_size = "x"\n'
        )
    )
    with pytest.raises(ConfigError) as err:
        pool_settings(bad.spec())
    assert "queue_size" in err.value.message and err.value.hint == "for example: queue_size = 256"
    unpinned = load_project(
        write_project(
            tmp_path / "r", "unitsapp", APP, "[tool.sls-py.providers.local]\npin_cpus = false\n"
        )
    )
    assert pool_settings(unpinned.spec()) == PoolSettings(pin_cpus=False)
    wrong = load_project(
        write_project(
            tmp_path / "s", "unitsapp", APP, '[tool.sls-py.providers.local]\npin_cpus = "yes"\n'
        )
    )
    with pytest.raises(ConfigError) as err:
        pool_settings(wrong.spec())
    assert (
        err.value.message == "[tool.sls-py.providers.local] pin_cpus = 'yes' is not true or false"
    )
    unbatched = load_project(
        write_project(
            tmp_path / "t", "unitsapp", APP, "[tool.sls-py.providers.local]\nsched_batch = true\n"
        )
    )
    assert pool_settings(unbatched.spec()) == PoolSettings(sched_batch=True)
    wrong = load_project(
        write_project(
            tmp_path / "u", "unitsapp", APP, "[tool.sls-py.providers.local]\nsched_batch = 1\n"
        )
    )
    with pytest.raises(ConfigError) as err:
        pool_settings(wrong.spec())
    assert err.value.message == (
        "[tool.sls-py.providers.local] sched_batch = 1 is not true or false"
    )
    assert err.value.hint.startswith("sched_batch = true")


def test_url_without_a_running_server_is_a_clear_error(tmp_path: Path) -> None:
    from sls_py.errors import ProviderError
    from sls_py_local.plugin import sls_py_url

    project = load_project(write_project(tmp_path / "p", "unitsapp", APP, "", "units"))
    with pytest.raises(ProviderError) as err:
        sls_py_url(spec=project.spec(), project=project)
    assert err.value.message == "no local server is running for stage 'dev'"
    assert err.value.hint == "start one with `sls-py run` (it prints its URL too)"


def test_read_logs_follow_yields_new_records(tmp_path: Path) -> None:
    import threading

    sink = LogSink(tmp_path, stream=io.StringIO())
    sink.emit("fn", "r1", "INFO", "first")
    records = read_logs(tmp_path, "fn", follow=True, poll_s=0.01)
    assert next(records).message == "first"

    def later() -> None:
        time.sleep(0.1)
        sink.emit("fn", "r2", "INFO", "second")

    writer = threading.Thread(target=later)
    writer.start()
    second = next(records)  # blocks until the record is written
    writer.join()
    sink.close()
    assert (second.request_id, second.message) == ("r2", "second")


def test_invalid_port_is_a_clear_error(tmp_path: Path) -> None:
    from sls_py.provider import RunOptions
    from sls_py.ui import PlainUI
    from sls_py_local.server import serve

    project = load_project(write_project(tmp_path / "p", "unitsapp", APP, "", "units"))
    with pytest.raises(ConfigError) as err:
        serve(project.spec(), project, RunOptions(port=70000), PlainUI(io.StringIO()))
    assert err.value.message == "--port 70000 is not a TCP port"


def test_side_by_side_exits_its_managers_at_the_same_time() -> None:
    """A one-off command's servers stop together: each exit waits at a barrier the
    other must reach too, which times out (BrokenBarrierError) if they run one
    after the other."""
    barrier = threading.Barrier(2, timeout=10)
    order: list[str] = []

    @contextlib.contextmanager
    def server(name: str) -> Iterator[None]:
        order.append(f"enter {name}")
        yield
        barrier.wait()
        order.append(f"exit {name}")

    with side_by_side(server("cache"), server("database")):
        order.append("block")
    assert order[:3] == ["enter cache", "enter database", "block"]
    assert sorted(order[3:]) == ["exit cache", "exit database"]


def test_side_by_side_unwinds_in_reverse_order_when_the_block_raises() -> None:
    order: list[str] = []

    @contextlib.contextmanager
    def server(name: str, fail_exit: bool = False) -> Iterator[None]:
        try:
            yield
        finally:
            order.append(f"exit {name}")
            if fail_exit:
                raise OSError(f"{name} did not stop")

    with pytest.raises(ValueError, match="in the block"), side_by_side(server("cache"), server("db")):
        raise ValueError("in the block")
    assert order == ["exit db", "exit cache"]
    order.clear()
    # an exit that fails: the other still exits, and its error is not lost (as nested `with`)
    with pytest.raises(OSError, match="db did not stop"), side_by_side(server("cache"), server("db", True)):
        raise ValueError("in the block")
    assert order == ["exit db", "exit cache"]
    with pytest.raises(OSError, match="db did not stop"), side_by_side(server("cache"), server("db", True)):
        pass
