"""Invoking declared targets from a handler, and fan-out (README: "Fan-out, invoking
functions, long work"; the provider's side: docs/providers.md).

The provider lists a function's targets under ``"functions"`` in
``SLS_PY_RESOURCES``; its driver's ``function(name, physical)`` returns a handle
with ``invoke(json) -> {"result", "error"}`` and ``invoke_async(json) -> id``.
Standard library only (it runs inside functions).
"""

from __future__ import annotations

import time

from .dispatch import FANOUT_KEY
from .errors import ErrorInfo, InvokeError, undeclared_target
from .resources import Table, _current

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .context import Context

#: Largest payload of an invocation that waits (AWS: 6 MB) and of an asynchronous one (256 KB).
SYNC_LIMIT = 6 * 1024 * 1024
ASYNC_LIMIT = 256 * 1024
#: The table a fan-out records its chunks' results in.
TABLE = "sls-py-fanout"


class InvokeFailed(Exception):
    """The invoked function ran and failed; ``error`` is its :class:`ErrorInfo`."""

    def __init__(self, function: str, error: ErrorInfo) -> None:
        status = f" (status {error.status})" if error.status else ""
        super().__init__(f"function {function!r} failed: {error.type}{status}: {error.message}")
        self.function = function
        self.error = error


class FanoutFailed(Exception):
    """A chunk's worker failed, or the results did not arrive in time."""


def _handle(source: str, target: str, payload: Any, limit: int, kind: str) -> tuple[Any, str]:
    driver, names = _current()
    physical = (names.get("functions") or {}).get(target)
    if physical is None:
        raise undeclared_target(source, target)
    make = getattr(driver, "function", None)
    if make is None:
        raise InvokeError(f"the provider's driver ({type(driver).__name__}) cannot invoke functions")
    from .events import dumps

    data = dumps(payload)
    if len(data) > limit:
        raise InvokeError(
            f"the payload for {target!r} is {len(data)} bytes, over the {limit} bytes an "
            f"{kind} invocation may carry; put the data in a bucket and pass its key instead"
        )
    return make(target, physical), data.decode("utf-8")


def invoke(source: str, target: str, payload: Any = None) -> Any:
    """Invoke ``target`` from ``source`` and wait: its result, or :class:`InvokeFailed`."""
    handle, data = _handle(source, target, payload, SYNC_LIMIT, "invocation that waits")
    outcome = handle.invoke(data)
    if outcome.get("error"):
        raise InvokeFailed(target, ErrorInfo.from_wire(outcome["error"]))
    return outcome.get("result")


def invoke_async(source: str, target: str, payload: Any = None) -> str:
    """Queue an invocation of ``target`` (at least once, retried, then dead-lettered)."""
    handle, data = _handle(source, target, payload, ASYNC_LIMIT, "asynchronous")
    return str(handle.invoke_async(data))


def record_chunk(envelope: dict[str, Any], result: Any = None, error: Any = None) -> None:
    """Record a fan-out worker's result (or error) for its chunk (called by dispatch)."""
    meta = envelope[FANOUT_KEY]
    row = {"job": meta["job"], "index": meta["index"], "result": result}
    if error is not None:
        row["error"] = error
    _table().put(row)


def _table() -> Table:
    return Table(TABLE, "job", "index", sort_key_type="number")


class Fanout:
    """A fan-out over function ``worker``: see :meth:`map`."""

    def __init__(self, worker: str) -> None:
        self.worker = worker

    def map(
        self,
        items: Iterable[Any],
        ctx: Context,
        *,
        chunk: int = 100,
        parallel: int = 10,
        margin_ms: int = 1000,
    ) -> list[Any]:
        """Invoke ``worker`` asynchronously on chunks of ``chunk`` items, at most
        ``parallel`` at a time, and return the chunks' results in order (gathered
        from the table :data:`TABLE`, whose rows of this job are then deleted).

        Raises :class:`FanoutFailed` when a chunk's worker failed, or when less than
        ``margin_ms`` of this invocation is left before every result has arrived.
        """
        if chunk < 1 or parallel < 1:
            raise ValueError("chunk and parallel must be at least 1")
        import uuid

        todo = list(items)
        chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
        job, table = uuid.uuid4().hex, _table()
        results: dict[int, Any] = {}
        in_flight: set[int] = set()
        sent, pause = 0, 0.02
        try:
            while len(results) < len(chunks):
                while sent < len(chunks) and len(in_flight) < parallel:
                    envelope = {FANOUT_KEY: {"job": job, "index": sent}, "items": chunks[sent]}
                    ctx.invoke_async(self.worker, envelope)
                    in_flight.add(sent)
                    sent += 1
                for row in table.query(job):
                    index = int(row["index"])
                    if index not in in_flight:
                        continue
                    if row.get("error"):
                        e = row["error"]
                        raise FanoutFailed(
                            f"chunk {index} of {len(chunks)} failed in {self.worker!r}: "
                            f"{e.get('type')}: {e.get('message')}"
                        )
                    results[index] = row.get("result")
                    in_flight.discard(index)
                if len(results) == len(chunks):
                    break
                if ctx.remaining_ms() < margin_ms:
                    raise FanoutFailed(
                        f"fan-out over {self.worker!r}: {len(results)} of {len(chunks)} chunks "
                        "done when this invocation ran out of time; give it a longer timeout, "
                        "or use larger chunks or more parallelism"
                    )
                time.sleep(pause)
                pause = min(pause * 1.5, 0.5)
        finally:
            for row in table.query(job):
                table.delete(job, row["index"])
        return [results[i] for i in range(len(chunks))]

    def __repr__(self) -> str:
        return f"Fanout({self.worker!r})"
