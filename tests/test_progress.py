"""Task cards as a chat sees them while the engine reports a task's events (real store, real engine ingest)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bot.app import App
from core.commands import Commands
from core.messages import ChatRef, Inbound
from core.progress import Progress

CHAT = ChatRef("telegram", "111", private=True)


def test_the_card_shows_tokens_as_soon_as_the_first_usage_event_arrives(make_app: Any, tmp_path: Path) -> None:
    """Tokens are known seconds before any price (the price table loads, some CLIs never price):
    the card must not wait for a cost event to show what the task has used."""
    app: App = make_app(workspace=str(tmp_path))
    app.service.autostart_engine = False  # no engine yet: the task stays queued until we say
    progress = Progress(app.service, app.clock, interval_s=0, refresh_s=60, wake=lambda: None)
    app.engine.listeners.append(progress.on_event)
    commands = Commands(app.service, app.clock)
    [card] = commands.handle(Inbound(chat=CHAT, user_id="111", user_name="@alice", text="@echo hi", event_id="e1"))
    app.store.enqueue("telegram", card, chat_id="111", dedupe_key="card", ts=1.0)
    app.store.mark_delivered(app.store.outbox_queue("telegram")[-1].id, 2.0, "900")
    assert app.store.transition("t1", ["queued"], "running", started_at=time.time())
    assert app.engine.acquire()  # the engine records the runner's events (never started: no dispatch)
    now = time.time()
    app.engine.ingest({"task": "t1", "seq": 1, "ts": now, "kind": "started", "text": "", "data": {}})
    usage = {"usage": {"input_tokens": 12_345, "output_tokens": 300}}
    app.engine.ingest({"task": "t1", "seq": 2, "ts": now, "kind": "usage", "text": "", "data": usage})
    [edit] = [i for i in app.store.outbox_queue("telegram") if i.kind == "progress"]
    assert "🏃 Running" in edit.text and "12.3k in / 300 out" in edit.text, edit.text
    progress.close()
