"""SQS-like delivery of the local queue store, on a controlled clock (no sleeps)."""

from __future__ import annotations

from pathlib import Path

from sls_py.runtime.events import QueueMessage
from sls_py.runtime.resources import Queue, use_driver
from sls_py_local.queues import QueueStore
from sls_py_local.resources import LocalDriver


def test_visibility_timeout_hides_then_redelivers(tmp_path: Path) -> None:
    store = QueueStore(tmp_path / "q.sqlite3")
    a = store.send("jobs", "a", now=100.0)
    b = store.send("jobs", "b", now=100.0)
    first = store.receive("jobs", 10, visibility_timeout_s=30, now=101.0)
    assert [r.message for r in first] == [
        QueueMessage(id=a, body="a", queue="jobs", attributes={}, receive_count=1),
        QueueMessage(id=b, body="b", queue="jobs", attributes={}, receive_count=1),
    ]
    assert store.receive("jobs", 10, 30, now=130.9) == []  # still in flight
    again = store.receive("jobs", 1, 30, now=131.0)  # batch size respected
    assert [(r.message.id, r.message.receive_count) for r in again] == [(a, 2)]
    # the first receipt of a is stale now: deleting with it does nothing
    assert store.delete("jobs", a, first[0].receipt) is False
    assert store.delete("jobs", a, again[0].receipt) is True
    assert [m.id for m in store.messages("jobs")] == [b]


def test_dead_letter_after_max_receives(tmp_path: Path) -> None:
    store = QueueStore(tmp_path / "q.sqlite3")
    mid = store.send("jobs", "poison", now=0.0)
    counts = []
    for t in (1.0, 12.0, 23.0):
        got = store.receive("jobs", 10, 10, max_receives=3, now=t)
        counts.append([r.message.receive_count for r in got])
    assert counts == [[1], [2], [3]]
    # the fourth delivery would exceed max_receives: moved to jobs-dlq instead
    assert store.receive("jobs", 10, 10, max_receives=3, now=34.0) == []
    assert store.messages("jobs") == []
    assert store.messages("jobs-dlq") == [
        QueueMessage(id=mid, body="poison", queue="jobs-dlq", attributes={}, receive_count=0)
    ]
    dlq = store.receive("jobs-dlq", 10, 10, now=35.0)
    assert [r.message.body for r in dlq] == ["poison"]


def test_release_makes_a_message_visible_at_once(tmp_path: Path) -> None:
    store = QueueStore(tmp_path / "q.sqlite3")
    store.send("jobs", "x", now=0.0)
    (r,) = store.receive("jobs", 1, 300, now=1.0)
    assert store.release("jobs", r.message.id, r.receipt, now=2.0)
    assert [x.message.receive_count for x in store.receive("jobs", 1, 300, now=2.0)] == [2]


def test_messages_survive_a_restart_and_cross_processes(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    store = QueueStore(path)
    store.send("jobs", "kept", {"source": "test"}, now=0.0)
    inflight = store.send("jobs", "in flight", now=0.0)
    store.receive("jobs", 1, 60, now=1.0)  # "kept" is in flight when we "crash"
    store.close()
    del store
    reopened = QueueStore(path)
    assert [m.body for m in reopened.messages("jobs")] == ["kept", "in flight"]
    got = reopened.receive("jobs", 10, 60, now=2.0)
    assert [(r.message.body, r.message.receive_count) for r in got] == [("in flight", 1)]
    assert got[0].message.id == inflight
    # the unacknowledged one comes back after its visibility timeout
    got = reopened.receive("jobs", 10, 60, now=61.0)
    assert [(r.message.body, r.message.attributes, r.message.receive_count) for r in got] == [
        ("kept", {"source": "test"}, 2)
    ]


def test_queue_handle_sends_into_the_store(tmp_path: Path) -> None:
    driver = LocalDriver(root=str(tmp_path))
    use_driver(driver)
    try:
        mid = Queue("jobs").send({"n": 1})
    finally:
        use_driver(None)
    assert QueueStore(tmp_path / "queues.sqlite3").messages("jobs") == [
        QueueMessage(id=mid, body='{"n":1}', queue="jobs", attributes={}, receive_count=0)
    ]
