"""Functions invoking functions on the local provider: the function's side.

:meth:`sls_py_local.resources.LocalDriver.function` returns a
:class:`LocalFunction`, which ``ctx.invoke`` / ``ctx.invoke_async`` call
(see :mod:`sls_py.runtime.invoke`):

- **asynchronous**: the payload is a message of the stage's durable SQLite
  queue ``sls-py-invoke-<target>`` (:mod:`.queues`); the local services deliver
  it to the target's worker pool, retry it (:data:`MAX_RECEIVES` attempts in all,
  as AWS's two retries) and then move it to ``sls-py-invoke-<target>-dlq``.
  When nothing serves the stage (the caller runs under ``sls-py invoke`` or
  ``sls-py trigger`` alone), a thread of the calling process delivers it at
  once in a fresh process, with the same retries, while the caller lives (so
  a fan-out under ``sls-py invoke`` completes); what it did not finish waits
  in the queue for the next ``sls-py run``.
- **waiting**, inside ``sls-py run``: a POST to the run's internal invoke
  endpoint (``SLS_PY_INVOKE_URL``, on 127.0.0.1 only, with the run's generated
  token ``SLS_PY_INVOKE_TOKEN``; see :mod:`.invoke_server`), which runs the
  target on its pool, so its concurrency limit holds (429 when full);
- **waiting**, elsewhere (``sls-py invoke``): ``python -m sls_py_local.invoking``
  runs the target once in a fresh process, as ``sls-py invoke`` would.

Standard library only at import: this module is loaded inside functions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # sqlite3 is not needed to read the names below (sls-py run's start)
    from .queues import QueueStore

INVOKE_URL_ENV = "SLS_PY_INVOKE_URL"
INVOKE_TOKEN_ENV = "SLS_PY_INVOKE_TOKEN"
#: attempts of an asynchronous invocation before it is dead-lettered (AWS: 1 + 2 retries)
MAX_RECEIVES = 3


def invoke_queue(function: str) -> str:
    """The queue holding the asynchronous invocations of ``function``."""
    return f"sls-py-invoke-{function}"


class LocalFunction:
    """A function another function may invoke, as the local driver hands it out."""

    def __init__(self, name: str, store: QueueStore) -> None:
        self.name, self.store = name, store

    def invoke_async(self, payload: str) -> str:
        source = os.environ.get("SLS_PY_FUNCTION", "")
        message_id = self.store.send(invoke_queue(self.name), payload, {"source": source})
        if not os.environ.get(INVOKE_URL_ENV) and not _served(self.store):
            import threading

            threading.Thread(target=_deliver_here, args=(self.name, self.store), daemon=True).start()
        return message_id

    def invoke(self, payload: str) -> dict[str, Any]:
        url = os.environ.get(INVOKE_URL_ENV)
        if url:
            return _over_http(url, os.environ.get(INVOKE_TOKEN_ENV, ""), self.name, payload)
        return _in_new_process(self.name, payload)


def _served(store: QueueStore) -> bool:
    """Whether a ``sls-py run`` (or the standalone services) delivers this stage's queues."""
    from .runfile import running_instance

    return running_instance(store.path.parent, wait_s=0) is not None


#: seconds before the first retry of a failed asynchronous invocation (doubled after)
RETRY_DELAY_S = 0.5


def _deliver_here(target: str, store: QueueStore) -> None:
    """Deliver the queued invocations of ``target`` in fresh processes, with retries,
    until its queue is empty.

    Each asynchronous call made with no server delivering starts one such thread, and
    each drains the whole queue: a message is delivered even when the thread started
    for it finds the queue momentarily empty or meets a transient store error."""
    import time

    queue = invoke_queue(target)
    errors = 0
    while True:
        try:
            got = store.receive(queue, 1, 905, MAX_RECEIVES)
        except Exception as exc:  # e.g. a busy SQLite file: try again, a few times
            errors += 1
            if errors > 20:
                sys.stderr.write(f"sls-py: cannot deliver invocations of {target!r}: {exc}\n")
                return
            time.sleep(0.1)
            continue
        if not got:
            return
        message, receipt = got[0].message, got[0].receipt
        try:
            failed = bool(_in_new_process(target, message.body).get("error"))
        except Exception:
            failed = True
        if not failed:
            store.delete(queue, message.id, receipt)
            continue
        if message.receive_count >= MAX_RECEIVES:
            store.retry_later(queue, message.id, receipt, 0.0)  # dead-lettered on next receive
            continue
        delay = RETRY_DELAY_S * 2 ** (message.receive_count - 1)
        store.retry_later(queue, message.id, receipt, delay)
        time.sleep(delay)


def _over_http(url: str, token: str, target: str, payload: str) -> dict[str, Any]:
    """POST the payload to the running server's internal invoke endpoint."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{url}/invoke/{target}",
        data=payload.encode("utf-8"),
        method="POST",
        headers={
            "authorization": f"Bearer {token}",
            "x-sls-py-source": os.environ.get("SLS_PY_FUNCTION", ""),
            "content-type": "application/json",
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(request, timeout=900) as response:
            outcome: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"the local invoke endpoint refused the call: {exc.read().decode()}") from None
    return outcome


def _in_new_process(target: str, payload: str) -> dict[str, Any]:
    """Run ``target`` once in a fresh process (no ``sls-py run`` in this process tree)."""
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "sls_py_local.invoking", target],
        input=payload.encode("utf-8"),
        capture_output=True,
        env=env,
        cwd=os.environ.get("SLS_PY_PROJECT") or None,
        check=False,
    )
    sys.stderr.write(proc.stderr.decode("utf-8", "replace"))
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"invoking {target!r} in a new process failed (exit {proc.returncode})")
    outcome: dict[str, Any] = json.loads(proc.stdout)
    return outcome


def _main() -> int:
    """``python -m sls_py_local.invoking TARGET`` (payload on stdin): run the target
    of the calling function once, print its outcome as JSON."""
    from sls_py.config import load_project

    from .oneshot import invoke_once

    target = sys.argv[1]
    project = load_project(os.environ["SLS_PY_PROJECT"])
    spec = project.spec(os.environ["SLS_PY_STAGE"])
    inv = invoke_once(spec, project, target, {"type": "payload", "payload": json.loads(sys.stdin.read())})
    if inv.logs:
        sys.stderr.write(inv.logs)
    error = inv.error.to_wire() if inv.error is not None else None
    sys.stdout.write(json.dumps({"result": inv.result, "error": error}))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
