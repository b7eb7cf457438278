"""Processes forked from the entry process (providers/local/blank.py: fork_module,
Forked): they end as ``python -m module`` would, and the parent handles them as
it handles a subprocess.Popen (poll, wait, kill, communicate with a timeout).

Each case runs in a fresh interpreter of its own: forking the test process
(which has threads) is not what the entry process does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

MODULE = """
import os, sys, threading, time, atexit

mode = sys.stdin.buffer.readline().decode().strip()
if mode == "echo":
    data = sys.stdin.buffer.read()
    sys.stdout.buffer.write(data.upper())
    print("to stderr", file=sys.stderr)
elif mode == "exit":
    sys.exit(3)
elif mode == "message":
    sys.exit("a message")
elif mode == "raise":
    raise RuntimeError("raised on purpose")
elif mode == "interrupt":  # Ctrl-C while the app imports
    raise KeyboardInterrupt
elif mode == "thread":  # the interpreter waits for a non-daemon thread, then runs atexit
    atexit.register(lambda: print("atexit ran", flush=True))
    threading.Thread(target=lambda: (time.sleep(0.2), print("thread done", flush=True))).start()
elif mode == "sleep":
    time.sleep(30)
"""

DRIVER = """
import json, os, subprocess, sys, time
from pathlib import Path
from sls_py_local.blank import start_oneshot, Forked, forkable

mode, folder = sys.argv[1], Path(sys.argv[2])
sys.path.insert(0, str(folder))
import sls_py_local.blank as blank

env = {**os.environ, "PYTHONPATH": str(folder)}
pipes = [os.pipe() for _ in range(3)]
pid = blank.fork_module("forkme", env, folder, (pipes[0][0], pipes[1][1], pipes[2][1]))
for fd in (pipes[0][0], pipes[1][1], pipes[2][1]):
    os.close(fd)
proc = Forked(pid, os.fdopen(pipes[0][1], "wb"), os.fdopen(pipes[1][0], "rb"), os.fdopen(pipes[2][0], "rb"))
result = {"forkable": forkable()}
if mode == "sleep":
    try:
        proc.communicate(b"sleep\\n", timeout=0.3)
    except subprocess.TimeoutExpired:
        result["timed_out"] = True
    result["poll_while_running"] = proc.poll()
    proc.kill()
    out, err = proc.communicate()
else:
    out, err = proc.communicate(mode.encode() + b"\\nhello\\n", timeout=20)
result.update(code=proc.returncode, out=out.decode(), err=err.decode(), wait=proc.wait(0))
print(json.dumps(result))
"""


def _run(tmp_path: Path, mode: str) -> dict:
    (tmp_path / "forkme.py").write_text(textwrap.dedent(MODULE))
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    env = {k: v for k, v in os.environ.items() if k != "SLS_PY_FORK"}  # not the caller's choice
    done = subprocess.run(
        [sys.executable, str(driver), mode, str(tmp_path)],
        capture_output=True, text=True, timeout=40, check=True, env=env,
    )
    return json.loads(done.stdout)


def test_a_forked_module_reads_and_writes_its_pipes_and_exits_zero(tmp_path: Path) -> None:
    seen = _run(tmp_path, "echo")
    assert seen["forkable"] is True  # a script started without interpreter options, on Linux
    assert (seen["code"], seen["wait"]) == (0, 0)
    assert seen["out"] == "HELLO\n" and seen["err"] == "to stderr\n"


@pytest.mark.parametrize(
    ("mode", "code", "err"),
    [
        ("exit", 3, ""),
        ("message", 1, "a message\n"),
        ("raise", 1, "RuntimeError: raised on purpose"),
        ("interrupt", 130, ""),
    ],
)
def test_a_forked_module_exits_with_its_code_as_the_interpreter_would(
    tmp_path: Path, mode: str, code: int, err: str
) -> None:
    seen = _run(tmp_path, mode)
    assert seen["code"] == code
    assert err in seen["err"]
    assert ("Traceback" in seen["err"]) == (mode == "raise")  # Ctrl-C: no traceback


def test_a_forked_module_waits_for_its_threads_and_runs_its_exit_handlers(tmp_path: Path) -> None:
    seen = _run(tmp_path, "thread")
    assert seen["code"] == 0
    assert seen["out"] == "thread done\natexit ran\n"


def test_communicate_times_out_and_kill_ends_the_child(tmp_path: Path) -> None:
    seen = _run(tmp_path, "sleep")
    assert seen["timed_out"] is True and seen["poll_while_running"] is None
    assert seen["code"] == -9  # SIGKILL, as Popen reports it
