"""The store on a real SQLite file: migrations, WAL, compare-and-set transitions, outbox."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.messages import Outbound, OutKind
from core.models import TaskState
from core.store import MIGRATIONS, Store


def make(tmp_path: Path) -> Store:
    return Store(tmp_path / "o.db")


def new_task(store: Store, text: str = "x") -> str:
    return store.create_task({"text": text, "agent": "a", "category": "backend", "state": "queued", "cwd": "/",
                              "created_at": 1.0}).id  # fmt: skip


def test_migrations_apply_once_and_wal(tmp_path: Path) -> None:
    store = make(tmp_path)
    assert store.applied_migrations() == [name for name, _ in MIGRATIONS]
    store.close()
    again = make(tmp_path)  # reopening applies nothing twice
    assert again.applied_migrations() == [name for name, _ in MIGRATIONS]
    mode = sqlite3.connect(tmp_path / "o.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_short_ids_and_transition_is_compare_and_set(tmp_path: Path) -> None:
    store = make(tmp_path)
    assert [new_task(store) for _ in range(3)] == ["t1", "t2", "t3"]
    assert store.transition("t1", [TaskState.QUEUED], TaskState.RUNNING)
    assert not store.transition("t1", [TaskState.QUEUED], TaskState.RUNNING)  # second writer loses
    assert store.get_task("t1").state == TaskState.RUNNING


def test_two_connections_share_one_state(tmp_path: Path) -> None:
    a, b = make(tmp_path), make(tmp_path)
    new_task(a)
    assert b.transition("t1", ["queued"], "running")
    assert not a.transition("t1", ["queued"], "cancelled")
    assert a.get_task("t1").state == TaskState.RUNNING


def test_events_are_idempotent(tmp_path: Path) -> None:
    store = make(tmp_path)
    new_task(store)
    assert store.add_event("t1", 1, 1.0, "text", "hi", {})
    assert not store.add_event("t1", 1, 1.0, "text", "hi", {})
    assert store.task_field("t1", "last_seq") == 1
    assert len(store.events("t1")) == 1


def test_outbox_dedupes_and_claims_once(tmp_path: Path) -> None:
    store = make(tmp_path)
    done = Outbound("done", kind=OutKind.COMPLETION, task_id="t1")
    assert store.enqueue("console", done, dedupe_key="k", ts=1.0)
    assert not store.enqueue("console", done, dedupe_key="k", ts=2.0)
    [note] = store.outbox_queue("console")
    assert store.mark_delivered(note.id, 3.0, None)
    assert not store.mark_delivered(note.id, 4.0, None)
    assert store.outbox_queue("console") == []


def test_cost_median_estimate(tmp_path: Path) -> None:
    store = make(tmp_path)
    for i, cost in enumerate([0.1, 0.3, 0.2]):
        store.record_cost({"task_id": f"t{i}", "ts": float(i), "agent": "claude", "category": "tests",
                           "cost_usd": cost, "source": "cli"})  # fmt: skip
    assert store.median_cost("claude", "tests") == (0.2, 3)
    assert store.median_cost("claude", "docs") == (None, 0)
