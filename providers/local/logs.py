"""Function logs: forwarded to the terminal and kept per function as JSON lines.

The gateway prints each record with the function's name and request id (or
one JSON object per line with ``--json-logs``) and appends it to
``.sls-py/local/<stage>/logs/<function>.jsonl``, which ``sls-py logs`` reads.
Writes are batched and flushed every 50 ms, so a busy function
does not cost a write per log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sls_py.provider import LogRecord

from .logformat import format_record


def log_dir(state_dir: Path, stage: str) -> Path:
    """Where a stage's function logs live."""
    return state_dir / "local" / stage / "logs"


class LogSink:
    """Collects log records from workers and the gateway; writes them in batches."""

    FLUSH_AFTER_S = 0.05  # a busy function's logs cost a few writes a second, not one per line

    def __init__(
        self, directory: Path, *, json_lines: bool = False, stream: IO[str] | None = None
    ) -> None:
        self.directory = directory
        self.json_lines = json_lines
        self.stream = stream if stream is not None else sys.stderr
        self._files: dict[str, IO[str]] = {}
        self._pending_files: dict[str, list[str]] = {}
        self._pending_out: list[str] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush on ``loop`` (without a loop every record is written at once)."""
        self._loop = loop

    def emit(self, function: str, request_id: str, level: str, message: str) -> None:
        """Record one log message of ``function``."""
        line, out = format_record(function, request_id, level, message, self.json_lines)
        self.write_formatted(function, line, out)

    def write_formatted(self, function: str, lines: str, out: str) -> None:
        """Record log messages of ``function`` that :func:`format_record` formatted
        (in the worker that logged them, so the gateway's turn stays short):
        ``lines`` for the function's log file, ``out`` for the terminal."""
        self._pending_files.setdefault(function, []).append(lines)
        self._pending_out.append(out)
        if self._loop is None:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_later(self.FLUSH_AFTER_S, self.flush)

    def gateway(self, message: str) -> None:
        """A line from the gateway itself (not tied to a function)."""
        if self.json_lines:
            self._pending_out.append(
                json.dumps({"time": time.time(), "gateway": True, "message": message}) + "\n"
            )
        else:
            self._pending_out.append(message + "\n")
        if self._loop is None or not self._scheduled:
            self.flush()

    def flush(self) -> None:
        """Write everything collected so far."""
        self._scheduled = False
        for function, lines in self._pending_files.items():
            f = self._files.get(function)
            if f is None:
                path = self.directory / f"{function}.jsonl"
                f = self._files[function] = open(path, "a", encoding="utf-8")  # noqa: SIM115
            f.writelines(lines)
            f.flush()
        self._pending_files.clear()
        if self._pending_out:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("".join(self._pending_out))
                self.stream.flush()
            self._pending_out.clear()

    def close(self) -> None:
        """Flush and close the log files."""
        self.flush()
        for f in self._files.values():
            f.close()
        self._files.clear()


def _parse(line: str) -> LogRecord | None:
    try:
        data: dict[str, Any] = json.loads(line)
        return LogRecord(
            time=float(data["time"]),
            function=str(data["function"]),
            message=str(data["message"]),
            request_id=str(data.get("request_id") or ""),
        )
    except (ValueError, KeyError, TypeError):
        return None


def read_logs(
    directory: Path,
    function: str,
    since_s: float | None = None,
    follow: bool = False,
    poll_s: float = 0.2,
) -> Iterator[LogRecord]:
    """Records of ``function``, oldest first; with ``follow``, keep yielding new ones."""
    path = directory / f"{function}.jsonl"
    cutoff = time.time() - since_s if since_s is not None else None
    position = 0
    partial = ""
    while True:
        if path.exists():
            with open(path, encoding="utf-8") as f:
                f.seek(position)
                chunk = f.read()
                position = f.tell()
            text = partial + chunk
            lines = text.split("\n")
            partial = lines.pop()
            for line in lines:
                record = _parse(line)
                if record is not None and (cutoff is None or record.time >= cutoff):
                    yield record
        if not follow:
            return
        time.sleep(poll_s)
