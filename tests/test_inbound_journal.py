"""The inbound journal: a chat update is kept from receipt until handled, and handling it again
(after a crash between the two) creates nothing twice.

The store half runs on a real SQLite file; the command half on a real service with tmux and the
stand-in agent. The transports' halves (an update journalled by a killed bot, handled on the next
start) are in tests/test_telegram_e2e.py and tests/test_slack.py, and the whole of it under 20
SIGKILLs in tests/test_crash_safety.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
import yaml

from bot.app import App
from core.commands import Commands
from core.messages import ChatRef, Inbound, OutKind, Tap
from core.store import INBOUND_ATTEMPTS, MIGRATIONS, Store
from tests.conftest import orchestra, requires_tmux

CHAT = ChatRef("telegram", "111", private=True)


def message(text: str, event_id: str) -> Inbound:
    return Inbound(chat=CHAT, user_id="111", user_name="@alice", text=text, message_id="5", event_id=event_id)


def test_an_update_is_pending_from_receipt_until_handled_then_never_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "orchestra.db")
    assert store.journal_inbound("telegram:7", "telegram", {"update_id": 7, "message": {"text": "hi"}}, 1.0)
    assert not store.journal_inbound("telegram:7", "telegram", {"update_id": 7}, 2.0), "a redelivery is known"
    assert store.pending_inbound("telegram") == [("telegram:7", {"update_id": 7, "message": {"text": "hi"}})]
    assert store.pending_inbound("slack") == []
    assert store.begin_inbound("telegram:7", "telegram", 3.0)
    assert store.pending_inbound("telegram"), "still pending while it is handled: a kill now replays it"
    store.finish_inbound("telegram:7", 4.0)
    assert store.pending_inbound("telegram") == []
    assert not store.begin_inbound("telegram:7", "telegram", 5.0), "handled once, never again"
    assert store.inbound_counts() == {"done": 1}
    row = store.db.execute("SELECT payload FROM inbound WHERE key = 'telegram:7'").fetchone()
    assert row == (None,), "the message text is not kept once handled"


def test_an_update_that_keeps_killing_the_bot_is_given_up_after_a_few_starts(tmp_path: Path) -> None:
    store = Store(tmp_path / "orchestra.db")
    store.journal_inbound("slack:Ev1", "slack", {"kind": "event", "body": {}}, 1.0)
    for attempt in range(INBOUND_ATTEMPTS):
        assert store.begin_inbound("slack:Ev1", "slack", 2.0 + attempt), f"attempt {attempt + 1}"
    assert not store.begin_inbound("slack:Ev1", "slack", 10.0)
    assert store.pending_inbound("slack") == [] and store.inbound_counts() == {"failed": 1}


def test_an_update_never_journalled_is_journalled_when_handled(tmp_path: Path) -> None:
    store = Store(tmp_path / "orchestra.db")
    assert store.begin_inbound("telegram:9", "telegram", 1.0)
    store.finish_inbound("telegram:9", 2.0)
    assert not store.begin_inbound("telegram:9", "telegram", 3.0)


def test_pruning_forgets_handled_updates_and_keeps_pending_ones(tmp_path: Path) -> None:
    store = Store(tmp_path / "orchestra.db")
    store.journal_inbound("telegram:1", "telegram", {"update_id": 1}, 10.0)
    store.journal_inbound("telegram:2", "telegram", {"update_id": 2}, 10.0)
    store.finish_inbound("telegram:1", 11.0)
    store.claim_once("telegram:111:5:retry", "telegram:1", 10.0)
    assert store.prune_inbound(before=100.0) == 2
    assert [key for key, _ in store.pending_inbound("telegram")] == ["telegram:2"]


def test_a_one_shot_claim_holds_for_its_update_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "orchestra.db")
    assert store.claim_once("k", "telegram:1", 1.0)
    assert store.claim_once("k", "telegram:1", 2.0), "the same update handled again carries on"
    assert not store.claim_once("k", "telegram:2", 3.0), "a second tap does not"
    assert store.claim_once("anon", "", 1.0) and not store.claim_once("anon", "", 2.0)


def test_updates_handled_before_the_upgrade_stay_handled(tmp_path: Path) -> None:
    """A store from before the journal: its handled update ids become handled journal entries."""
    path = tmp_path / "orchestra.db"
    db = sqlite_utils.Database(sqlite3.connect(str(path), isolation_level=None))
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    for name, apply in MIGRATIONS[:4]:
        apply(db)
        db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, 0)", [name])
    db.execute("INSERT INTO inbound_seen (key, ts) VALUES ('telegram:41', 5.0), ('slack:Ev9', 6.0)")
    db.conn.close()
    store = Store(path)
    assert "005_inbound_journal" in store.applied_migrations()
    assert not store.begin_inbound("telegram:41", "telegram", 7.0)
    assert not store.begin_inbound("slack:Ev9", "slack", 7.0)
    assert store.begin_inbound("telegram:42", "telegram", 7.0)


# -- handling an update again creates nothing twice --------------------------------------------
@pytest.fixture
async def chat_app(make_app: Any, repo: Path) -> AsyncIterator[App]:
    app: App = make_app(workspace=str(repo), policy__approval_for=[], policy__review_for=[])
    assert app.engine.acquire()
    await app.engine.start()
    yield app
    await app.engine.stop()


@requires_tmux
async def test_a_delegation_handled_twice_makes_one_task_and_the_same_answer(chat_app: App) -> None:
    commands = Commands(chat_app.service, chat_app.clock)
    first = commands.handle(message("Create User model", "telegram:100"))
    again = commands.handle(message("Create User model", "telegram:100"))
    assert [t.id for t in chat_app.store.list_tasks()] == ["t1"]
    assert [a.kind for a in again] == [OutKind.ACK] and again[0].task_id == first[0].task_id == "t1"
    audit = [row["action"] for row in chat_app.store.audit_log() if row["task_id"] == "t1"]
    assert audit.count("delegate") == 1, "one delegation in the audit"
    other = commands.handle(message("Create User model", "telegram:101"))
    assert other[0].task_id == "t2", "the same text sent again is a new task"


@requires_tmux
async def test_a_retry_tap_handled_twice_retries_once(chat_app: App) -> None:
    commands = Commands(chat_app.service, chat_app.clock)
    commands.handle(message("Create User model", "telegram:200"))
    await chat_app.engine.wait_finished("t1", timeout=30)

    def retry_tap(event_id: str) -> Inbound:
        return Inbound(chat=CHAT, user_id="111", user_name="@alice", tap=Tap("retry", "t1", "77"), event_id=event_id)

    first = commands.handle(retry_tap("telegram:201"))
    replay = commands.handle(retry_tap("telegram:201"))
    second_tap = commands.handle(retry_tap("telegram:202"))
    assert [t.id for t in chat_app.store.list_tasks()] == ["t2", "t1"]
    acks = [a.task_id for a in first + replay if a.kind == OutKind.ACK]
    assert acks == ["t2", "t2"], "the replayed tap finds the retry it made"
    assert any("already retried" in a.text for a in second_tap if a.kind == OutKind.TOAST)


def test_doctor_shows_updates_waiting_for_the_next_bot_start(
    tmp_path: Path, home: Path, config_data: dict[str, Any]
) -> None:
    data = {**config_data, "telegram": {"enabled": True, "token_env": "ORCH_TEST_DOCTOR_TOKEN"}}
    cfg = tmp_path / "bots.yaml"
    cfg.write_text(yaml.safe_dump(data))
    store = Store(home / "orchestra.db")
    store.journal_inbound("telegram:1", "telegram", {"update_id": 1}, 1.0)
    store.journal_inbound("telegram:2", "telegram", {"update_id": 2}, 1.0)
    store.finish_inbound("telegram:2", 2.0)
    store.close()
    out = orchestra("doctor", config=cfg, env={"ORCHESTRA_HOME": str(home), "ORCH_TEST_DOCTOR_TOKEN": "123:abc"})
    [line] = [line for line in out.stdout.splitlines() if line.split()[1:2] == ["inbound"]]
    assert line.split(None, 2)[2] == "1 handled · 1 waiting · handled when `orchestra bot` starts"
    assert "123:abc" not in out.stdout + out.stderr
