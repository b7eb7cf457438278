"""Durable local queues in SQLite, with SQS's delivery rules.

- **At least once**: :meth:`QueueStore.receive` hides the messages it returns
  for the visibility timeout; a message that is not deleted in that time (the
  consumer failed, crashed or was too slow) is delivered again.
- **Receive count**: every delivery counts; a message that becomes visible
  again after ``max_receives`` deliveries is moved to the dead-letter queue
  ``<queue>-dlq`` instead of being delivered (as SQS's redrive policy does).
- **Durable**: messages live in one SQLite file per stage (WAL, busy timeout),
  so they survive a restart and can be sent from any process (functions,
  ``sls-py send``) while the local services deliver them.

Only the standard library is used: functions load this module to send.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sls_py.runtime.events import QueueMessage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}',
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at, seq);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection fit for several processes: WAL journal, 10 s busy timeout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def dead_letter_queue(queue: str) -> str:
    """The name of ``queue``'s dead-letter queue."""
    return f"{queue}-dlq"


@dataclass(frozen=True)
class Received:
    """A delivered message and the receipt that deletes it (valid until redelivery)."""

    message: QueueMessage
    receipt: str


class QueueStore:
    """Every queue of a stage in one SQLite file. Safe across threads and processes.

    ``now`` arguments (seconds since the epoch) exist for tests; by default
    the wall clock is used.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.executescript(_SCHEMA)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def send(
        self,
        queue: str,
        body: str,
        attributes: dict[str, str] | None = None,
        *,
        delay_s: float = 0.0,
        now: float | None = None,
    ) -> str:
        """Add a message; it is visible after ``delay_s`` seconds. Returns its id."""
        if not isinstance(body, str):
            raise TypeError(f"a queue message body is text, got {type(body).__name__}")
        moment = time.time() if now is None else now
        message_id = str(uuid.uuid4())
        self._conn().execute(
            "INSERT INTO messages (id, queue, body, attributes, sent_at, visible_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (message_id, queue, body, json.dumps(attributes or {}), moment, moment + delay_s),
        )
        return message_id

    def receive(
        self,
        queue: str,
        max_messages: int,
        visibility_timeout_s: float,
        max_receives: int | None = None,
        *,
        now: float | None = None,
    ) -> list[Received]:
        """Deliver up to ``max_messages`` visible messages, oldest first, hiding them
        for ``visibility_timeout_s``. Messages already delivered ``max_receives``
        times go to the dead-letter queue instead."""
        moment = time.time() if now is None else now
        conn = self._conn()
        out: list[Received] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            if max_receives is not None:
                conn.execute(
                    "UPDATE messages SET queue = ?, receive_count = 0, receipt = NULL, "
                    "visible_at = ? WHERE queue = ? AND visible_at <= ? AND receive_count >= ?",
                    (dead_letter_queue(queue), moment, queue, moment, max_receives),
                )
            rows = conn.execute(
                "SELECT seq, id, body, attributes, receive_count FROM messages "
                "WHERE queue = ? AND visible_at <= ? ORDER BY seq LIMIT ?",
                (queue, moment, max_messages),
            ).fetchall()
            for seq, message_id, body, attributes, count in rows:
                receipt = uuid.uuid4().hex
                conn.execute(
                    "UPDATE messages SET visible_at = ?, receive_count = ?, receipt = ? "
                    "WHERE seq = ?",
                    (moment + visibility_timeout_s, count + 1, receipt, seq),
                )
                message = QueueMessage(
                    id=message_id,
                    body=body,
                    queue=queue,
                    attributes=json.loads(attributes),
                    receive_count=count + 1,
                )
                out.append(Received(message, receipt))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return out

    def delete(self, queue: str, message_id: str, receipt: str) -> bool:
        """Delete a delivered message. False when the receipt is stale (it was redelivered)."""
        cur = self._conn().execute(
            "DELETE FROM messages WHERE queue = ? AND id = ? AND receipt = ?",
            (queue, message_id, receipt),
        )
        return cur.rowcount == 1

    def release(
        self, queue: str, message_id: str, receipt: str, *, now: float | None = None
    ) -> bool:
        """Make a delivered message visible again at once (visibility timeout 0)."""
        moment = time.time() if now is None else now
        cur = self._conn().execute(
            "UPDATE messages SET visible_at = ? WHERE queue = ? AND id = ? AND receipt = ?",
            (moment, queue, message_id, receipt),
        )
        return cur.rowcount == 1

    def retry_later(
        self,
        queue: str,
        message_id: str,
        receipt: str,
        delay_s: float,
        *,
        count: bool = True,
        now: float | None = None,
    ) -> bool:
        """Make a delivered message visible again after ``delay_s``; with ``count=False``
        this delivery does not count towards ``max_receives`` (a throttled attempt)."""
        moment = time.time() if now is None else now
        cur = self._conn().execute(
            "UPDATE messages SET visible_at = ?, receive_count = receive_count - ? "
            "WHERE queue = ? AND id = ? AND receipt = ?",
            (moment + delay_s, 0 if count else 1, queue, message_id, receipt),
        )
        return cur.rowcount == 1

    def messages(self, queue: str) -> list[QueueMessage]:
        """Every message of ``queue``, in flight or not, oldest first (for tests and tools)."""
        rows = (
            self._conn()
            .execute(
                "SELECT id, body, attributes, receive_count FROM messages "
                "WHERE queue = ? ORDER BY seq",
                (queue,),
            )
            .fetchall()
        )
        return [
            QueueMessage(id=i, body=b, queue=queue, attributes=json.loads(a), receive_count=c)
            for i, b, a, c in rows
        ]

    def next_visible(self, queue: str) -> float | None:
        """When the next message of ``queue`` becomes visible (epoch seconds), or None."""
        row = (
            self._conn()
            .execute("SELECT MIN(visible_at) FROM messages WHERE queue = ?", (queue,))
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])
