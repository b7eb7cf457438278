"""The bucket watcher with real worker processes: files created by hand, written slowly,
copied in with their folder, and created by a function through the bucket interface."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sls_py.config import load_project
from sls_py.runtime import Outcome
from sls_py.ui import PlainUI
from sls_py_local.invokers import oneshot_invoker
from sls_py_local.resources import LocalDriver
from sls_py_local.services import LocalServices


async def wait_for(check: Callable[[], Any], timeout: float = 20.0, step: float = 0.02) -> Any:
    """Poll ``check`` (in a thread) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await asyncio.sleep(step)


APP = """
from sls_py import App, Context, UploadEvent, upload

app = App("watched")
drop = app.bucket("drop")
out = app.bucket("out")
seen = app.table("seen", key="key")


@app.function(name="copier", triggers=[upload("drop", prefix="in/", suffix=".txt")])
def copier(event: UploadEvent, ctx: Context) -> dict:
    out.put("copied/" + event.key, drop.get(event.key).upper())
    return {"copied": event.key}


@app.function(name="recorder", triggers=[upload("out")])
def recorder(event: UploadEvent, ctx: Context) -> dict:
    seen.put({k: v for k, v in event.__dict__.items() if k != "time"} | {"key": event.key})
    return {}
"""


def write_project(root: Path) -> None:
    (root / "watched_app").mkdir(parents=True)
    (root / "watched_app" / "__init__.py").write_text("")
    (root / "watched_app" / "app.py").write_text(APP)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "watched"
            [tool.sls-py]
            app = "watched_app.app:app"
            """
        )
    )


def test_files_by_hand_and_by_a_function_fire_their_triggers_once(tmp_path: Path) -> None:
    write_project(tmp_path)
    project = load_project(tmp_path)
    spec = project.spec()
    calls: list[tuple[str, dict[str, Any]]] = []
    real = oneshot_invoker(spec, project)

    async def invoke(function: str, event: dict[str, Any]) -> Outcome:
        calls.append((function, event))
        return await real(function, event)

    buckets = tmp_path / ".sls-py" / "local" / "dev" / "buckets"
    seen = LocalDriver(tmp_path / ".sls-py" / "local" / "dev").table("seen", "", "key", None)

    async def run() -> None:
        services = LocalServices(spec, project, invoke, ui)
        await services.start()
        try:
            # by hand, in pieces (as cp does): a half-written file must not fire
            target = buckets / "drop" / "in" / "slow.txt"
            target.parent.mkdir(parents=True)
            with open(target, "wb") as f:
                f.write(b"hello ")
                f.flush()
                await asyncio.sleep(0.05)
                f.write(b"world")
            # copied in together with its folder (the folder's watch starts late)
            staged = tmp_path / "staged" / "in" / "deep"
            staged.mkdir(parents=True)
            (staged / "a.txt").write_bytes(b"deep")
            shutil.copytree(tmp_path / "staged" / "in", buckets / "drop" / "more" / "in")
            # matching neither prefix+suffix
            (buckets / "drop" / "in" / "photo.jpg").write_bytes(b"jpg")
            (buckets / "drop" / "notes.txt").write_bytes(b"nope")
            # a folder named like a bucket the app lacks
            (buckets / "elsewhere").mkdir()
            (buckets / "elsewhere" / "in").mkdir()
            (buckets / "elsewhere" / "in" / "x.txt").write_bytes(b"x")
            await wait_for(lambda: seen.get({"key": "copied/in/slow.txt"}))
            await asyncio.sleep(1.0)  # time for any duplicate firing to show up
        finally:
            await services.stop()

    ui = PlainUI(quiet=True)
    asyncio.run(run())
    assert ui.lines[:3] == [
        f"upload {buckets}/drop/in/*.txt -> copier",
        f"upload {buckets}/out/* -> recorder",
        "not emulated locally: upload events carry a content type guessed from the key's "
        "extension; the content_type given to Bucket.put is not kept",
    ]
    fired = sorted((f, e["bucket"], e["key"]) for f, e in calls)
    assert fired == [
        ("copier", "drop", "in/slow.txt"),
        ("recorder", "out", "copied/in/slow.txt"),
    ]
    copier_event = next(e for f, e in calls if f == "copier")
    assert copier_event == {
        "type": "upload",
        "bucket": "drop",
        "key": "in/slow.txt",
        "size": 11,
        "etag": hashlib.md5(b"hello world").hexdigest(),
        "content_type": "text/plain",
        "time": copier_event["time"],
    }
    assert copier_event["time"].endswith("Z")
    assert seen.get({"key": "copied/in/slow.txt"}) == {
        "bucket": "out",
        "key": "copied/in/slow.txt",
        "size": 11,
        "etag": hashlib.md5(b"HELLO WORLD").hexdigest(),
        "content_type": "text/plain",
    }
    assert (buckets / "out" / "copied" / "in" / "slow.txt").read_bytes() == b"HELLO WORLD"
    assert not any(n.startswith(".sls-py") for _d, _s, files in os.walk(buckets) for n in files)


def test_folders_copied_in_old_files_and_overwrites(tmp_path: Path) -> None:
    write_project(tmp_path)
    project = load_project(tmp_path)
    spec = project.spec()
    calls: list[tuple[str, str, int]] = []

    async def invoke(function: str, event: dict[str, Any]) -> Outcome:
        calls.append((function, event["key"], event["size"]))
        return Outcome(result={})

    buckets = tmp_path / ".sls-py" / "local" / "dev" / "buckets"
    old = buckets / "drop" / "in" / "old.txt"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"from an earlier run")
    drop = LocalDriver(tmp_path / ".sls-py" / "local" / "dev").bucket("drop")

    async def run() -> None:
        services = LocalServices(spec, project, invoke, PlainUI(quiet=True))
        await services.start()
        try:
            # a folder tree copied in at once: every file fires
            staged = tmp_path / "staged" / "deep" / "er"
            staged.mkdir(parents=True)
            for n in range(5):
                (staged / f"{n}.txt").write_bytes(b"x" * n)
            shutil.copytree(tmp_path / "staged" / "deep", buckets / "drop" / "in" / "deep")
            await wait_for(lambda: len(calls) >= 5)
            # replacing an object fires again (as a second PUT does on S3)
            await asyncio.to_thread(drop.put, "in/deep/er/0.txt", b"replaced")
            await wait_for(lambda: len(calls) >= 6)
            await asyncio.sleep(0.5)
        finally:
            await services.stop()

    asyncio.run(run())
    assert sorted(calls[:5]) == [("copier", f"in/deep/er/{n}.txt", n) for n in range(5)]
    assert calls[5:] == [("copier", "in/deep/er/0.txt", 8)]
    # the file that was there before start never fired, though its folder changed
    assert all(key != "in/old.txt" for _f, key, _n in calls)
