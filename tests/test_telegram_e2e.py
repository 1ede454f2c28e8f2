"""The Telegram bridge end to end: ``python -m bot --config X bot`` as a user starts it, a fake Bot API
server on 127.0.0.1 (tests/fakes/telegram.py), a scripted user, real tmux and the stand-in agent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.store import Store
from tests.conftest import ROOT, requires_tmux
from tests.fakes.telegram import ALICE, MALLORY, TOKEN, FakeTelegram, buttons_of
from tests.test_costs import add_task

pytestmark = requires_tmux

TOKEN_ENV = "ORCH_TEST_TELEGRAM_TOKEN"
SECRET_ENV = "ORCH_TEST_WEBHOOK_SECRET"
CHAT = ALICE["id"]


@dataclass
class BotProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the bot did not stop on SIGTERM within 15 s\n" + self.output()[-3000:]) from None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    server = FakeTelegram().start()
    yield server
    server.stop()


@pytest.fixture
def start_bot(
    tmp_path: Path, home: Path, config_data: dict[str, Any], fake: FakeTelegram, repo: Path
) -> Iterator[Callable[..., BotProcess]]:
    """Start the bot as a user does; ``telegram``/``top`` override the config. Stopped at teardown."""
    started: list[BotProcess] = []

    def start(*, telegram: dict[str, Any] | None = None, env: dict[str, str] | None = None, **top: Any) -> BotProcess:
        data = json.loads(json.dumps(config_data))
        data["workspace"] = str(repo)
        data.setdefault("digest", {})["enabled"] = False
        data["notify"] = {"console": True}
        data["telegram"] = {
            "enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": [CHAT],
            "poll_timeout_s": 1, "progress_interval_s": 0.2, "retry_base_s": 0.2, "retry_max_s": 1,
            "stall_after_s": 5, "exit_after_s": 60, **(telegram or {}),
        }  # fmt: skip
        for key, value in top.items():
            data[key] = value
        path = tmp_path / "bots.yaml"
        path.write_text(yaml.safe_dump(data))
        full_env = {
            **os.environ,
            "ORCHESTRA_HOME": str(home),
            TOKEN_ENV: TOKEN,
            SECRET_ENV: "s3cret-token",
            **(env or {}),
        }
        full_env.pop("TMUX", None)
        log = tmp_path / f"bot-{len(started)}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(path), "bot"],
            cwd=str(ROOT), env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        bot = BotProcess(proc, log)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        if bot.proc.poll() is None:
            bot.proc.kill()
            bot.proc.wait()


def sent_calls(fake: FakeTelegram, contains: str) -> list[Any]:
    """Successful sendMessage calls whose text contains ``contains`` (new messages only, not edits)."""
    return [c for c in fake.calls_of("sendMessage") if contains in str(c.params.get("text", ""))]


def wait_started(home: Path, task_id: str, timeout: float = 20) -> None:
    events = home / "tasks" / task_id / "events.jsonl"
    deadline = time.monotonic() + timeout
    while not (events.exists() and b'"started"' in events.read_bytes()):
        assert time.monotonic() < deadline, f"{task_id} never started"
        time.sleep(0.02)


def test_create_user_model_is_acknowledged_with_buttons_and_completes_as_a_new_message(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], repo: Path
) -> None:
    bot = start_bot()
    fake.wait_for(lambda: fake.commands, what="setMyCommands")
    assert [c["command"] for c in fake.commands][:3] == ["start", "help", "delegate"]
    fake.say("Create User model")
    [ack_call] = fake.wait_for(lambda: sent_calls(fake, "t1 · standin"), what="the acknowledgement")
    ack = ack_call.params
    # Queued or already running: the chat handler only queues the task and pokes the engine, which starts it.
    icon, _, rest = ack["text"].partition(" ")
    assert ack["parse_mode"] == "HTML" and icon in ("⏳", "🏃")
    assert rest.startswith("t1 · standin · backend\nCreate User model")
    assert [b["callback_data"] for row in ack["reply_markup"]["inline_keyboard"] for b in row] == [
        "cancel:t1",
        "peek:t1",
    ]
    [done] = fake.wait_for(lambda: fake.find(CHAT, "Tokens:"), what="the completion")
    assert done.text.startswith("✅ t1 succeeded · standin") and "user_model.py +" in done.text
    assert done.text.endswith("Log: /log t1"), "a command typed in this chat, not in a terminal"
    assert buttons_of(done) == ["log:t1", "retry:t1"]
    card = fake.messages[(CHAT, ack_call.result["message_id"])]
    assert done.message_id > card.message_id, "the completion is a new message, after the acknowledgement"
    fake.wait_for(lambda: "✅ succeeded" in card.text and card.markup is None, what="the final edit of the card")
    assert (repo / "user_model.py").exists()
    fake.tap(done, "log:t1")
    [log] = fake.wait_for(lambda: [m for m in fake.sent if m.kind == "document"], what="the log document")
    assert log.file is not None and log.file[0] == "t1-output.log" and b'"type":"result"' in log.file[1]
    fake.tap(done, "retry:t1")
    fake.wait_for(lambda: sent_calls(fake, "t2 · standin"), what="the retry's acknowledgement")
    fake.wait_for(lambda: buttons_of(done) == ["log:t1"], what="Retry removed from the summary (it works once)")
    assert fake.calls_of("editMessageReplyMarkup")
    assert bot.stop() == 0
    assert "telegram: @orchestra_test_bot is listening (polling)" in bot.output()
    assert "Log: orchestra logs t1" in bot.output(), "the console keeps the terminal command"
    assert TOKEN not in bot.output()


def test_an_approval_gated_task_starts_only_after_the_approve_button(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], home: Path
) -> None:
    start_bot(policy={"approval_for": ["devops"], "review_for": [], "approve_above_usd": None})
    fake.say("set up the GitHub Actions CI pipeline")
    [card] = fake.wait_for(lambda: fake.find(CHAT, "Needs approval"), what="the approval request")
    assert buttons_of(card) == ["approve:t1", "reject:t1", "peek:t1"]
    time.sleep(1.0)
    store = Store(home / "orchestra.db")
    try:
        assert store.get_task("t1").state == "awaiting_approval"
        assert not (home / "tasks" / "t1" / "events.jsonl").exists(), "nothing ran before the approval"
        fake.tap(card, "approve:t1")
        fake.wait_for(lambda: fake.find(CHAT, "Tokens:"), what="the completion after approval")
        fake.tap(card, "approve:t1", user={**ALICE})
        answers = fake.wait_for(lambda: fake.callback_answers[1:] and fake.callback_answers, what="two answers")
        assert str(answers[0]["text"]).startswith("✅ t1 approved")
        assert "t1 was already approved by @alice at " in str(answers[1]["text"])
        assert len(store.approvals("t1")) == 1
        fake.wait_for(lambda: "Approved by @alice at" in card.text and card.markup is None, what="card edited")
    finally:
        store.close()


def test_replying_yes_to_an_approval_request_approves_it_and_a_reply_to_a_result_follows_up(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], home: Path
) -> None:
    """What users of other bridges report: "yes" in reply to an approval request queued as a new
    task. Replying in Telegram acts on the task the message was about."""
    start_bot(policy={"approval_for": ["devops"], "review_for": [], "approve_above_usd": None})
    fake.say("set up the GitHub Actions CI pipeline")
    [card] = fake.wait_for(lambda: fake.find(CHAT, "Needs approval"), what="the approval request")
    fake.say("yes", reply_to=card.message_id)
    [done] = fake.wait_for(lambda: fake.find(CHAT, "Tokens:"), what="the completion after the reply")
    assert fake.find(CHAT, "✅ t1 approved by @alice")
    fake.say("also add a status badge", reply_to=done.message_id)
    [again] = fake.wait_for(lambda: fake.find(CHAT, "t2 · standin"), what="the follow-up's card")
    assert "Needs approval" in again.text, "a follow-up of a devops task is held for approval too"
    fake.say("ok", reply_to=again.message_id)
    fake.wait_for(lambda: len(fake.find(CHAT, "Tokens:")) == 2, timeout=30, what="the follow-up's completion")
    store = Store(home / "orchestra.db")
    try:
        tasks = {t.id: t for t in store.list_tasks()}
        assert sorted(tasks) == ["t1", "t2"], "neither reply became a task of its own"
        assert tasks["t2"].parent_id == "t1" and "also add a status badge" in tasks["t2"].text
        assert [a["decision"] for a in store.approvals("t1")] == ["approved"]
    finally:
        store.close()


def test_an_unknown_user_is_refused_once_and_learns_nothing(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], home: Path
) -> None:
    start_bot()
    fake.say("Create User model")
    fake.wait_for(lambda: fake.find(CHAT, "Tokens:"), what="alice's task")
    fake.say("/status", user=MALLORY)
    fake.say("/peek t1", user=MALLORY)
    [refusal] = fake.wait_for(lambda: fake.sent_to(MALLORY["id"]), what="the refusal")
    assert refusal.text == (
        "⛔ This bot is private. Its owner can let you in by adding your user id 666 to "
        "telegram.allowed_user_ids in bots.yaml."
    )
    fake.say("/help")  # alice's next message proves the bot went on after mallory's two
    fake.wait_for(lambda: fake.find(CHAT, "/kill"), what="alice's help")
    assert len(fake.sent_to(MALLORY["id"])) == 1 and "t1" not in refusal.text
    store = Store(home / "orchestra.db")
    try:
        refused = [a for a in store.audit_log() if a["action"] == "refused"]
        assert len(refused) == 2 and refused[0]["actor"] == "@mallory (666)"
    finally:
        store.close()


def test_every_message_arrives_exactly_once_through_429_502_and_dropped_connections(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess]
) -> None:
    fake.fail_next("*send", "429", retry_after=1)
    fake.fail_next("*send", "502", times=2)
    fake.fail_next("*send", "drop", times=2)
    start_bot()
    for text in ("/help", "@echo one", "@echo two", "/agents"):
        fake.say(text)
    fake.wait_for(lambda: len(fake.find(CHAT, "succeeded · echo")) == 2, timeout=30, what="both completions")
    fake.drop_for(1.5)
    fake.say("@echo three")
    fake.wait_for(lambda: fake.find(CHAT, "t3 succeeded · echo"), timeout=30, what="the third completion")
    time.sleep(1.0)  # anything sent twice would show up by now
    outcomes = {c.outcome for c in fake.calls if c.method in ("sendMessage", "editMessageText")}
    assert {"429", "502", "dropped", "ok"} <= outcomes, "each fault really happened"
    firsts = [m.text.splitlines()[0] if m.kind == "text" else m.text for m in fake.sent]
    heads = [call.params["text"].splitlines()[0] for call in fake.calls_of("sendMessage")]
    assert len(heads) == len(set(heads)) == len(fake.sent), f"a message arrived twice: {heads}"
    assert any(h.startswith("/start") for h in heads) and any(h.startswith("🤖 Agents") for h in heads)
    for n in (1, 2, 3):
        assert len([h for h in heads if h.startswith(f"✅ t{n} succeeded")]) == 1
        assert len([h for h in heads if f" t{n} · echo" in h]) == 1, f"one acknowledgement of t{n}: {firsts}"


def test_a_bot_killed_mid_task_sends_the_completion_once_after_restart(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], home: Path, config_data: dict[str, Any]
) -> None:
    config_data["agents"]["standin"]["env"] = {"ORCHESTRA_STANDIN_DELAY": "0.5"}
    first = start_bot()
    fake.say("Create User model")
    fake.wait_for(lambda: sent_calls(fake, "t1 · standin"), what="the acknowledgement")
    wait_started(home, "t1")
    first.kill()
    assert not (home / "tasks" / "t1" / "result.json").exists(), "killed before the task ended"
    second = start_bot()
    fake.wait_for(lambda: fake.find(CHAT, "Tokens:"), timeout=30, what="the completion after the restart")
    time.sleep(1.5)
    assert len(fake.find(CHAT, "Tokens:")) == 1
    assert len(sent_calls(fake, "t1 · standin")) == 1, "the acknowledgement was not sent again"
    store = Store(home / "orchestra.db")
    try:
        assert [t.id for t in store.list_tasks()] == ["t1"], "the redelivered update did not start a second task"
    finally:
        store.close()
    assert second.stop() == 0


def test_a_card_reaches_its_final_state_when_the_task_ended_while_the_bot_was_down(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], home: Path, config_data: dict[str, Any]
) -> None:
    config_data["agents"]["standin"]["env"] = {"ORCHESTRA_STANDIN_DELAY": "0.5"}
    first = start_bot()
    fake.say("Create User model")
    [ack] = fake.wait_for(lambda: sent_calls(fake, "t1 · standin"), what="the acknowledgement")
    card = fake.messages[(CHAT, ack.result["message_id"])]
    fake.wait_for(lambda: "🏃 Running" in card.text, what="the card showing the task running")
    first.kill()
    result = home / "tasks" / "t1" / "result.json"
    deadline = time.monotonic() + 30
    while not result.exists():
        assert time.monotonic() < deadline, "the task never finished while the bot was down"
        time.sleep(0.05)
    assert "🏃 Running" in card.text and buttons_of(card) == ["cancel:t1", "peek:t1"]
    second = start_bot()
    fake.wait_for(lambda: fake.find(CHAT, "Tokens:"), timeout=30, what="the completion after the restart")
    fake.wait_for(lambda: "✅ succeeded" in card.text and card.markup is None, what="the card's final edit")
    assert any(c.params.get("message_id") == card.message_id for c in fake.calls_of("editMessageText"))
    assert second.stop() == 0


def test_an_update_confirmed_to_telegram_but_not_handled_before_a_kill_is_handled_on_restart(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], home: Path
) -> None:
    """The window the journal closes: the updater had asked for the next offset (Telegram will
    never send the update again) and the bot was killed before handling it. The journal entry is
    what the killed bot left; the restarted bot handles it before it polls, once."""
    first = start_bot()
    fake.wait_for(lambda: fake.commands, what="the first bot up")
    first.kill()
    update_id = fake.say("Create User model")
    fake.confirm(update_id)
    store = Store(home / "orchestra.db")
    try:
        store.journal_inbound(f"telegram:{update_id}", "telegram", fake.history[update_id], time.time())
    finally:
        store.close()
    second = start_bot()
    fake.wait_for(lambda: sent_calls(fake, "t1 · standin"), what="the acknowledgement of the replayed update")
    fake.wait_for(lambda: fake.find(CHAT, "Tokens:"), timeout=30, what="its completion")
    assert second.stop() == 0
    assert "handling 1 update(s) received before the restart" in second.output()
    third = start_bot()
    fake.wait_for(lambda: len(fake.calls_of("setMyCommands")) >= 3, what="a third start")
    time.sleep(1.0)
    assert third.stop() == 0
    assert len(sent_calls(fake, "t1 · standin")) == 1 and len(fake.find(CHAT, "Tokens:")) == 1
    store = Store(home / "orchestra.db")
    try:
        assert [t.id for t in store.list_tasks()] == ["t1"]
        assert store.inbound_counts() == {"done": 1} and store.pending_inbound("telegram") == []
    finally:
        store.close()


def test_a_bot_api_that_hangs_delays_answers_but_never_stops_the_bot_taking_work(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], home: Path
) -> None:
    """Users of other bridges report one slow API call freezing the whole bot. Here sends and tap
    answers hang for 8 s: messages sent meanwhile still become tasks at once, and every answer
    arrives once when the API recovers."""
    bot = start_bot()
    fake.say("Create User model")
    [ack] = fake.wait_for(lambda: sent_calls(fake, "t1 · standin"), what="the first acknowledgement")
    card = fake.messages[(CHAT, ack.result["message_id"])]
    fake.slow_for(8, ("*send", "answerCallbackQuery"))
    began = time.monotonic()
    fake.tap(card, "peek:t1")
    fake.say("Write the changelog")
    fake.say("Add a health endpoint")
    store = Store(home / "orchestra.db")
    try:
        while len(store.list_tasks()) < 3:
            assert time.monotonic() - began < 4, "a hung Bot API call held up the next updates"
            time.sleep(0.05)
    finally:
        store.close()
    fake.wait_for(lambda: sent_calls(fake, "t3 · standin"), timeout=40, what="the answers after the API recovered")
    fake.wait_for(lambda: len(fake.find(CHAT, "Tokens:")) == 3, timeout=40, what="three completions")
    assert len(sent_calls(fake, "t2 · standin")) == 1 and len(sent_calls(fake, "t3 · standin")) == 1
    assert len(fake.calls_of("answerCallbackQuery")) == 1
    assert bot.stop() == 0


def test_a_second_poller_409_is_logged_once_and_the_bot_exits_non_zero(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess]
) -> None:
    fake.conflict_for(120)
    bot = start_bot(telegram={"stall_after_s": 2, "exit_after_s": 3})
    started = time.monotonic()
    code = bot.proc.wait(30)
    output = bot.output()
    assert code == 75, output[-2000:]
    assert time.monotonic() - started < 20
    assert output.count("409 Conflict: another process is getting this bot's updates") == 1
    assert "no successful getUpdates for 3s (last error: 409 Conflict); exiting" in output
    conflicts = [c for c in fake.calls if c.method == "getUpdates"]
    assert 1 <= len(conflicts) <= 4, "polling backed off instead of hammering the server"


def test_digest_on_demand_with_many_tasks_arrives_whole_as_text_then_the_chart(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], home: Path
) -> None:
    """17 finished tasks make a digest longer than a photo caption (1,024): nothing may be cut off."""
    store = Store(home / "orchestra.db")
    try:
        now = time.time()
        for n in range(17):
            add_task(store, now - 2000 + n, text=f"Add the REST endpoint number {n} for the orders service", cost=0.25)
    finally:
        store.close()
    start_bot()
    fake.say("/digest")
    [photo] = fake.wait_for(lambda: [m for m in fake.sent if m.kind == "photo"], what="the chart")
    body = "\n".join(m.text for m in fake.sent_to(CHAT) if m.kind == "text")
    assert body.startswith("☀️ Orchestra digest") and len(body) > 1024, body[:200]
    for line in ("✅ t17 succeeded", "Cost: ", "Top agents this month: claude", "Savings this month: "):
        assert line in body, f"{line!r} never arrived:\n{body}"
    assert photo.message_id > max(m.message_id for m in fake.sent_to(CHAT) if m.kind == "text"), "text, then the chart"
    assert photo.text.startswith("☀️ Orchestra digest") and len(photo.text) < 200
    assert all(len(c.params.get("caption", "")) <= 1024 for c in fake.calls_of("sendPhoto"))


def _answered_within(fake: FakeTelegram, text: str, contains: str, seconds: float) -> float:
    """Send ``text``; how long its answer took (failing if it took over ``seconds``)."""
    sent = time.monotonic()
    fake.say(text)
    fake.wait_for(lambda: fake.find(CHAT, contains), timeout=seconds, what=f"the answer to {text} within {seconds}s")
    return time.monotonic() - sent


def test_a_slow_route_does_not_hold_the_next_message(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], config_data: dict[str, Any]
) -> None:
    """Routing runs off the event loop: a rule that takes seconds (catastrophic backtracking, until
    routing is bounded) delays only its own task's card, not the answer to the next message."""
    config_data["routing"]["rules"] = [{"name": "slow", "pattern": "(x+x+)+y", "category": "backend"}]
    bot = start_bot()
    fake.wait_for(lambda: fake.commands, what="the bot up")
    fake.say("x" * 24)
    time.sleep(0.3)
    _answered_within(fake, "/help", "commands and buttons", 2.5)
    fake.wait_for(lambda: sent_calls(fake, "t1 · "), timeout=60, what="the slow task's card, eventually")
    assert bot.stop() == 0


def test_a_dispatch_that_blocks_does_not_hold_the_next_message(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], tmp_path: Path
) -> None:
    """Starting a task runs git and tmux: a git that hangs for seconds (a slow disk, a huge repository)
    must not stop the bot answering; the launch runs in a worker thread."""
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    real_git = shutil.which("git")
    assert real_git is not None
    (slow / "git").write_text(f'#!/bin/sh\nsleep 4\nexec {real_git} "$@"\n')
    (slow / "git").chmod(0o755)
    bot = start_bot(env={"PATH": f"{slow}{os.pathsep}{os.environ['PATH']}"})
    fake.wait_for(lambda: fake.commands, what="the bot up")
    fake.say("Create User model")
    time.sleep(0.5)  # the engine is in the task's git baseline now
    _answered_within(fake, "/help", "commands and buttons", 2.5)
    fake.wait_for(lambda: sent_calls(fake, "t1 · standin"), what="the acknowledgement")
    fake.wait_for(lambda: fake.find(CHAT, "Tokens:"), timeout=60, what="the completion, eventually")
    assert bot.stop() == 0


def test_a_completion_whose_git_diff_blocks_does_not_hold_the_next_message(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], tmp_path: Path, config_data: dict[str, Any]
) -> None:
    """A finished task's summary runs git diff: a slow one must not stop the bot answering meanwhile."""
    slow, marker = tmp_path / "slow-bin", tmp_path / "git-is-slow-now"
    slow.mkdir()
    real_git = shutil.which("git")
    assert real_git is not None
    (slow / "git").write_text(f'#!/bin/sh\n[ -e "{marker}" ] && sleep 4\nexec {real_git} "$@"\n')
    (slow / "git").chmod(0o755)
    config_data["agents"]["standin"]["env"] = {"ORCHESTRA_STANDIN_DELAY": "0.5"}
    bot = start_bot(env={"PATH": f"{slow}{os.pathsep}{os.environ['PATH']}"}, telegram={"rate_limit_per_minute": 600})
    fake.wait_for(lambda: fake.commands, what="the bot up")
    fake.say("Create User model")
    fake.wait_for(lambda: sent_calls(fake, "t1 · standin"), what="the acknowledgement")
    marker.touch()  # from now on git is slow: the completion's summary meets it
    slowest = 0.0

    def helps() -> int:
        return len(fake.find(CHAT, "commands and buttons"))

    while not fake.find(CHAT, "Tokens:"):  # each /help while the task ends and is summarised
        answered = helps()
        sent = time.monotonic()
        fake.say("/help")
        fake.wait_for(partial(lambda n: helps() > n, answered), timeout=30, what="/help")
        slowest = max(slowest, time.monotonic() - sent)
        assert slowest < 2.5, f"/help took {slowest:.1f}s while a completion was summarised"
        time.sleep(0.5)
    assert bot.stop() == 0


def test_a_second_bot_refuses_to_start_and_the_running_one_keeps_working(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], home: Path
) -> None:
    first = start_bot()
    fake.wait_for(lambda: fake.commands, what="the first bot up")
    second = start_bot()
    code = second.proc.wait(30)
    assert code == 1, second.output()[-2000:]
    lines = [line for line in second.output().splitlines() if line.strip()]
    assert lines == [f"orchestra: a bot is already running for {home} (pid {first.proc.pid})"]
    assert first.proc.poll() is None, "the running bot was stopped:\n" + first.output()[-2000:]
    assert "SIGTERM" not in first.output()
    fake.say("/status")
    fake.wait_for(lambda: fake.find(CHAT, "No tasks yet"), what="the first bot still answering")
    assert (home / "engine.lock").read_text().split() == [str(first.proc.pid), "bot"]
    assert first.stop() == 0
    assert "SIGTERM received: stopping" in first.output()


def test_a_stalled_long_poll_is_restarted_and_the_bot_recovers(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess]
) -> None:
    fake.hang_updates()
    bot = start_bot(telegram={"stall_after_s": 2})
    deadline = time.monotonic() + 20
    while "the update loop stalled" not in bot.output():
        assert time.monotonic() < deadline and bot.proc.poll() is None, bot.output()[-2000:]
        time.sleep(0.1)
    fake.hang_updates(False)
    fake.say("/help")
    fake.wait_for(lambda: fake.find(CHAT, "/kill"), timeout=20, what="an answer after the restart")
    assert bot.output().count("the update loop stalled") == 1
    assert bot.stop() == 0


def test_a_missing_token_is_one_line_and_exit_1(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    bot = start_bot(telegram={"token_env": "ORCH_TEST_NO_SUCH_TOKEN"})
    assert bot.proc.wait(30) == 1
    assert "orchestra: telegram.token_env: the environment variable ORCH_TEST_NO_SUCH_TOKEN is not set" in bot.output()
    assert "Traceback" not in bot.output()


def test_sigterm_stops_a_bot_still_trying_to_reach_the_bot_api(start_bot: Callable[..., BotProcess]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens here once the probe is closed
    bot = start_bot(telegram={"api_base_url": f"http://127.0.0.1:{closed}"})
    deadline = time.monotonic() + 20
    while "cannot reach the Bot API" not in bot.output():
        assert time.monotonic() < deadline and bot.proc.poll() is None, bot.output()[-2000:]
        time.sleep(0.1)
    started = time.monotonic()
    assert bot.stop() == 0
    assert time.monotonic() - started < 5, "SIGTERM is honoured while the connection is retried"


def test_webhook_mode_checks_the_secret_token(fake: FakeTelegram, start_bot: Callable[..., BotProcess]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = {"url": "https://bot.example.com/tg", "listen": "127.0.0.1", "port": port, "path": "tg",
            "secret_env": SECRET_ENV}  # fmt: skip
    bot = start_bot(telegram={"mode": "webhook", "webhook": hook})
    fake.wait_for(lambda: fake.webhook, what="setWebhook")
    assert fake.webhook["url"] == "https://bot.example.com/tg" and fake.webhook["secret_token"] == "s3cret-token"
    update = {"update_id": 1, "message": {"message_id": 5, "date": 1, "chat": {"id": CHAT, "type": "private"},
              "from": ALICE, "text": "/help"}}  # fmt: skip
    assert post_update(port, update, "wrong") == 403
    assert post_update(port, update, "s3cret-token") == 200
    fake.wait_for(lambda: fake.find(CHAT, "/kill"), what="the help reply")
    assert len(fake.sent) == 1
    assert not fake.calls_of("getUpdates", None), "no polling in webhook mode"
    assert bot.stop() == 0


@pytest.mark.parametrize("trouble", ["delivery", "taken"])
def test_a_webhook_telegram_cannot_use_is_noticed_and_the_bot_exits_75(
    fake: FakeTelegram, start_bot: Callable[..., BotProcess], trouble: str
) -> None:
    """The webhook's "deaf but healthy": Telegram cannot reach us (it says why in getWebhookInfo,
    with updates piling up), or another process set its own webhook with our token."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = {"url": "https://bot.example.com/tg", "listen": "127.0.0.1", "port": port, "path": "tg",
            "secret_env": SECRET_ENV, "check_every_s": 0.3}  # fmt: skip
    bot = start_bot(telegram={"mode": "webhook", "webhook": hook, "exit_after_s": 2})
    fake.wait_for(lambda: fake.webhook, what="setWebhook")
    fake.wait_for(lambda: len(fake.calls_of("getWebhookInfo")) >= 2, what="the watchdog asking")
    time.sleep(0.5)
    assert bot.proc.poll() is None, "a healthy webhook keeps the bot up\n" + bot.output()[-2000:]
    if trouble == "delivery":
        fake.webhook_trouble = {"last_error_date": int(time.time()) + 1, "pending_update_count": 3,
                                "last_error_message": "Connection timed out"}  # fmt: skip
        expected = "Telegram cannot deliver to the webhook: Connection timed out (3 update(s) waiting)"
    else:
        fake.webhook["url"] = "https://someone-else.example.com/hook"
        expected = "the webhook is https://someone-else.example.com/hook, not https://bot.example.com/tg"
    assert bot.proc.wait(20) == 75, bot.output()[-3000:]
    out = bot.output()
    assert expected in out and out.count(expected) <= 2, "said once when it started, once on exit"
    assert "exiting so the supervisor restarts the bot" in out


def post_update(port: int, update: dict[str, Any], secret: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/tg",
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
