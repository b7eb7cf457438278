"""Fan-out: split work into asynchronous invocations and gather their results.

``report = app.fanout("count-chunk")`` declares the fan-out and the table it
owns (``sls-py-fanout``: key ``job``, sort key ``index``). In a handler that
declares ``invokes=["count-chunk"]``::

    counts = report.map(keys, ctx, chunk=50, parallel=4)

sends ``count-chunk`` one chunk of ``keys`` per invocation (``invoke_async``:
at least once, retried), at most ``parallel`` at a time, and returns the
chunks' results in chunk order. The worker is an ordinary payload-style
function (``def count_chunk(keys: list[str], ctx)``): the runtime sees the
fan-out envelope, validates the chunk into the worker's annotation, and
records the result (or the error) in the table, where ``map`` finds it. A chunk
delivered twice records the same row twice; rows of a job are deleted once
it has been gathered.

Standard library only (it runs inside functions).
"""

from __future__ import annotations

import time

from .dispatch import FANOUT_KEY
from .resources import Table

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .context import Context

#: The table every fan-out of an app records its chunks' results in.
TABLE = "sls-py-fanout"


class FanoutFailed(Exception):
    """A chunk's worker failed, or the results did not arrive in time."""


def _table() -> Table:
    return Table(TABLE, "job", "index", sort_key_type="number")


def record_chunk(envelope: dict[str, Any], result: Any = None, error: Any = None) -> None:
    """Record a worker's result (or error) for its chunk (called by dispatch)."""
    meta = envelope[FANOUT_KEY]
    row: dict[str, Any] = {"job": meta["job"], "index": meta["index"], "result": result}
    if error is not None:
        row["error"] = error
    _table().put(row)


class Fanout:
    """A fan-out over function ``worker`` (see the module docs)."""

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
        """Run ``worker`` over ``items`` in chunks of ``chunk``, at most ``parallel``
        chunks at a time; return the chunks' results in order.

        Raises :class:`FanoutFailed` when a chunk's worker failed, or when fewer
        than ``margin_ms`` milliseconds of this invocation are left before every
        result has arrived (use a longer timeout, larger chunks or more
        parallelism).
        """
        if chunk < 1 or parallel < 1:
            raise ValueError("chunk and parallel must be at least 1")
        import uuid

        todo = list(items)
        chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
        job = uuid.uuid4().hex
        table = _table()
        results: dict[int, Any] = {}
        in_flight: set[int] = set()
        sent = 0
        pause = 0.02
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
                        error = row["error"]
                        raise FanoutFailed(
                            f"chunk {index} of {len(chunks)} failed in {self.worker!r}: "
                            f"{error.get('type')}: {error.get('message')}"
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
