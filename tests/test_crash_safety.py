"""Crash safety: SIGKILL the bot 20 times at random moments while tasks run and messages go out.

The bot is started as a user starts it (``python -m bot ... bot``) against the fake Bot API, with
real tmux and the stand-in agent. Agents run in tmux, not in the bot, so they go on while it is
down; each restart catches up from the task files and the outbox.

Every message the user sent becomes exactly one task, whenever the kill landed: each update is
journalled before Telegram hears it was received and handled again on the next start if the kill
came first (the delegation is found by the update's id, so it is never created twice).

What "exactly once" means for notifications: the store holds one row per notification (its dedupe key is
unique) and every row is delivered. Telegram's sendMessage is not idempotent, so a kill after
Telegram accepted a message but before the bot recorded it as sent makes the next bot send it
again: the README's at-least-once window. With one chat, delivery is in order and one message
at a time, so each kill can repeat at most one message: duplicates are bounded by the kills
that landed in that window, and none is a second notification row.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from core.models import TaskState
from core.store import Store
from tests.conftest import ROOT, requires_tmux
from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram

pytestmark = requires_tmux

KILLS = 20
TOKEN_ENV = "ORCH_TEST_TELEGRAM_TOKEN"


def _start(cfg: Path, home: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ORCHESTRA_HOME": str(home), TOKEN_ENV: TOKEN}
    env.pop("TMUX", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(cfg), "bot"],
        cwd=str(ROOT), env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _bot_idle(home: Path, updates: int) -> bool:
    """Every update the user sent was handled by some bot (so no more tasks are coming)."""
    conn = sqlite3.connect(home / "orchestra.db")
    try:
        return bool(conn.execute("SELECT count(*) FROM inbound WHERE state = 'done'").fetchone()[0] >= updates)
    finally:
        conn.close()


def test_twenty_sigkills_lose_and_duplicate_nothing(
    tmp_path: Path, home: Path, config_data: dict[str, Any], repo: Path
) -> None:
    seed = int(os.environ.get("ORCH_CRASH_SEED") or time.time())
    rng = random.Random(seed)
    fake = FakeTelegram().start()
    data = json.loads(json.dumps(config_data))
    data["workspace"] = str(repo)
    data.setdefault("digest", {})["enabled"] = False
    data["notify"] = {"console": False}
    data["agents"]["standin"]["env"] = {"ORCHESTRA_STANDIN_DELAY": "0.1"}
    data["telegram"] = {
        "enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": [ALICE["id"]],
        "notify_chat_ids": [ALICE["id"]], "poll_timeout_s": 1, "progress_interval_s": 0.2,
        "retry_base_s": 0.1, "retry_max_s": 0.5,
        "rate_limit_per_minute": 600,  # the test sends ~80 a minute; the limiter counts send times
    }  # fmt: skip
    cfg = tmp_path / "bots.yaml"
    cfg.write_text(yaml.safe_dump(data))
    log = tmp_path / "bot.log"
    said = 0
    proc: subprocess.Popen[bytes] | None = None
    try:
        for round_ in range(KILLS):
            proc = _start(cfg, home, log)
            for _ in range(rng.randint(1, 2)):
                said += 1
                fake.say(f"@standin write helper number {said}")
            if rng.random() < 0.3:
                fake.say("/status")
            time.sleep(rng.uniform(0.3, 2.5))  # sometimes before the bot is up, sometimes mid-delivery
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL, f"round {round_}: the bot died on its own (seed {seed})"
        proc = _start(cfg, home, log)
        store = Store(home / "orchestra.db")
        try:
            deadline = time.monotonic() + 90
            while True:
                tasks = store.list_tasks(limit=1000)
                busy = [t.id for t in tasks if not t.state.finished]
                backlog = store.outbox_queue("telegram")
                if len(tasks) >= said and not busy and not backlog and _bot_idle(home, len(fake.history)):
                    break
                assert time.monotonic() < deadline, (
                    f"seed {seed}: {len(tasks)}/{said} tasks, busy {busy}, {len(backlog)} unsent\n"
                    + log.read_text(errors="replace")[-3000:]
                )
                time.sleep(0.2)
            time.sleep(1.0)  # anything still to be sent twice would show up by now
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0

            # Every task has exactly one result: it finished, once, and says so once in the store.
            assert {t.state for t in tasks} == {TaskState.SUCCEEDED}, f"seed {seed}"
            texts = [t.text for t in tasks]
            assert len(texts) == len(set(texts)), "a message started two tasks"
            lost = sorted({f"write helper number {n}" for n in range(1, said + 1)} - set(texts))
            assert not lost, f"seed {seed}: {len(lost)} messages never became a task: {lost}"
            assert store.inbound_counts() == {"done": len(fake.history)}, f"seed {seed}: every update handled once"
        finally:
            store.close()
        conn = sqlite3.connect(home / "orchestra.db")
        try:  # rows with a chat: the engine's channel-wide notification is fanned out to each chat
            rows = conn.execute(
                "SELECT task_id, kind, dedupe_key, sent_at FROM outbox"
                " WHERE channel = 'telegram' AND chat_id IS NOT NULL"
            ).fetchall()
        finally:
            conn.close()
        keys = [row[2] for row in rows]
        assert len(keys) == len(set(keys)), f"seed {seed}: a notification was queued twice"
        completions = collections.Counter(row[0] for row in rows if row[1] == "completion")
        missing = sorted({t.id for t in tasks} - set(completions))
        assert not missing, f"seed {seed}: no completion queued for {missing}"
        assert set(completions.values()) == {1}, f"seed {seed}: {completions}"
        assert all(row[3] is not None for row in rows), f"seed {seed}: every queued message was delivered"

        # On the wire: every completion arrived; a repeat only from the at-least-once window.
        heads = [str(c.params.get("text", "")).split("\n")[0] for c in fake.calls_of("sendMessage")]
        for task in tasks:
            got = [h for h in heads if h.startswith(f"✅ {task.id} succeeded")]
            assert 1 <= len(got) <= 2, f"{task.id} completion arrived {len(got)} times (seed {seed})"
        repeats = sum(n - 1 for n in collections.Counter(heads).values() if n > 1)
        assert repeats <= KILLS, f"{repeats} repeated messages from {KILLS} kills (seed {seed})"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        fake.stop()
