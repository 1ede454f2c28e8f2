"""The Slack bridge end to end, in process: ``bot.bridges.start_slack`` with real Bolt, real
HTTP on 127.0.0.1 (signed requests in HTTP mode, a WebSocket in Socket Mode), a fake Slack Web API
(tests/fakes/slack.py), a real engine with tmux and the stand-in agent."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import operator
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import App
from bot.bridges import SlackBridge, start_slack
from bot.slack import journal_payload
from core.models import TaskState
from tests.conftest import free_port, requires_tmux
from tests.fakes.slack import (
    ALICE,
    APP_TOKEN,
    BOT_TOKEN,
    CHANNEL,
    DM,
    MALLORY,
    SIGNING_SECRET,
    FakeSlack,
    block_action,
    direct_message,
    form,
    mention,
    sign,
    slash_command,
)

pytestmark = requires_tmux

ENV = {"ORCH_TEST_SLACK_BOT": BOT_TOKEN, "ORCH_TEST_SLACK_APP": APP_TOKEN, "ORCH_TEST_SLACK_SECRET": SIGNING_SECRET}


@dataclass
class Bridge:
    app: App
    slack: SlackBridge
    fake: FakeSlack
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.slack.transport.port}/slack/events"

    async def post(self, body: str, *, json_body: bool = False, headers: dict[str, str] | None = None) -> int:
        """POST as Slack does, signed unless ``headers`` say otherwise."""
        content_type = "application/json" if json_body else "application/x-www-form-urlencoded"
        sent = {"Content-Type": content_type, **(headers if headers is not None else sign(body))}
        async with self.http.post(self.url, data=body.encode(), headers=sent) as response:
            return response.status

    async def command(self, text: str, **kwargs: Any) -> int:
        return await self.post(form(slash_command(text, **kwargs)))

    async def event(self, payload: dict[str, Any]) -> int:
        return await self.post(json.dumps(payload), json_body=True)

    async def tap(self, message: Any, value: str, **kwargs: Any) -> int:
        return await self.post(form({"payload": json.dumps(block_action(message, value, **kwargs))}))


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


@pytest.fixture
async def start(
    make_app: Any, repo: Path, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Any]]:
    """Open the app with Slack enabled (HTTP mode unless told otherwise) and start the bridge."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    running: list[tuple[App, SlackBridge, aiohttp.ClientSession]] = []

    async def _start(
        *,
        policy: dict[str, Any] | None = None,
        before: Callable[[App], None] | None = None,
        fatal: Callable[[str], None] | None = None,
        **slack: Any,
    ) -> Bridge:
        settings = {
            "enabled": True, "api_base_url": fake.api_url, "mode": "http",
            "http": {"listen": "127.0.0.1", "port": free_port()}, "bot_token_env": "ORCH_TEST_SLACK_BOT",
            "app_token_env": "ORCH_TEST_SLACK_APP", "signing_secret_env": "ORCH_TEST_SLACK_SECRET",
            "allowed_user_ids": [ALICE["id"]], "allowed_channel_ids": [CHANNEL], "progress_interval_s": 0,
            "retry_base_s": 0.2, "retry_max_s": 2, **slack,
        }  # fmt: skip
        app: App = make_app(
            workspace=str(repo), slack=settings, notify={"console": False}, digest={"enabled": False},
            policy=policy or {"approval_for": [], "review_for": []},
        )  # fmt: skip
        assert app.engine.acquire()
        await app.engine.start()
        if before is not None:
            before(app)
        bridge = await start_slack(app, fatal=fatal)
        http = aiohttp.ClientSession()
        running.append((app, bridge, http))
        return Bridge(app, bridge, fake, http)

    yield _start
    for app, bridge, http in reversed(running):
        await http.close()
        await bridge.stop()
        await app.engine.stop()


async def test_a_mention_is_acknowledged_with_buttons_and_completes_in_its_thread(
    start: Callable[..., Any], fake: FakeSlack, repo: Path
) -> None:
    bridge: Bridge = await start()
    began = time.monotonic()
    assert await bridge.event(mention("Create User model with <b> & co", ts="1799999999.000200")) == 200
    assert time.monotonic() - began < 3, "acknowledged within Slack's 3 s"
    [card] = await fake.wait_for(lambda: fake.find("t1 · standin"), what="the acknowledgement")
    assert card.channel == CHANNEL and card.thread_ts == "1799999999.000200", "in the thread of the mention"
    assert "Create User model with &lt;b&gt; &amp; co" in card.body(), "task text escaped for mrkdwn"
    assert bridge.app.store.get_task("t1").text == "Create User model with <b> & co", "and stored as typed"
    assert card.buttons()[:2] in (["cancel:t1", "peek:t1"], [])
    [done] = await fake.wait_for(lambda: fake.find("Tokens:"), what="the completion")
    assert done.text.startswith("✅ t1 succeeded · standin") and done.thread_ts == "1799999999.000200"
    assert done.buttons() == ["log:t1", "retry:t1"] and done.text.endswith("Log: /orchestra log t1")
    await fake.wait_for(lambda: card.edits and "✅ succeeded" in card.text and not card.buttons(), what="final edit")
    assert await bridge.tap(done, "log:t1") == 200
    [log] = await fake.wait_for(lambda: fake.files, what="the log file (files upload v2)")
    assert log["filename"] == "t1-output.log" and b'"type":"result"' in log["data"]
    assert log["channel"] == CHANNEL and log["thread_ts"] == "1799999999.000200"
    assert [c.method for c in fake.calls if c.method.startswith("files.")] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert fake.calls_of("auth.test")


async def test_the_approve_button_starts_a_gated_task_once(
    start: Callable[..., Any], fake: FakeSlack, home: Path
) -> None:
    bridge: Bridge = await start(policy={"approval_for": ["devops"], "review_for": []})
    assert await bridge.command("delegate set up the GitHub Actions CI pipeline") == 200
    [card] = await fake.wait_for(lambda: fake.find("Needs approval"), what="the approval request")
    assert card.buttons() == ["approve:t1", "reject:t1", "peek:t1"]
    await asyncio.sleep(0.5)
    assert bridge.app.store.get_task("t1").state == TaskState.AWAITING_APPROVAL
    assert not (home / "tasks" / "t1" / "events.jsonl").exists(), "nothing ran before the approval"
    stale = copy.deepcopy(card)
    assert await bridge.tap(card, "approve:t1") == 200
    await fake.wait_for(lambda: fake.find("Tokens:"), what="the completion after approval")
    assert await bridge.tap(stale, "approve:t1") == 200, "a second tap, on the button as it was"
    answers = await fake.wait_for(lambda: fake.ephemerals[1:] and fake.ephemerals, what="two tap answers")
    assert answers[0]["text"].startswith("✅ t1 approved") and answers[0]["user"] == ALICE["id"]
    assert "t1 was already approved by @alice at " in answers[1]["text"]
    assert len(bridge.app.store.approvals("t1")) == 1
    await fake.wait_for(lambda: "Approved by @alice at" in card.text and not card.buttons(), what="card edited")


async def test_a_slash_command_task_completes_in_its_cards_thread_after_a_restart(
    start: Callable[..., Any], fake: FakeSlack
) -> None:
    """A slash command has no message of its own, so its card starts the thread; a restarted bot
    finds that thread in the store (not only in memory) for the completion."""
    bridge: Bridge = await start(policy={"approval_for": ["devops"], "review_for": []})
    assert await bridge.command("delegate set up the GitHub Actions CI pipeline") == 200
    [card] = await fake.wait_for(lambda: fake.find("Needs approval"), what="the approval request")
    assert card.thread_ts is None, "top level: a slash command has no message to answer"
    await bridge.slack.stop()
    restarted = await start_slack(bridge.app)
    try:
        assert await bridge.tap(card, "approve:t1") == 200, "the restarted bridge listens on the same port"
        [done] = await fake.wait_for(lambda: fake.find("Tokens:"), what="the completion")
        assert done.thread_ts == card.ts, "in the card's thread, found after the restart"
    finally:
        await restarted.stop()


@pytest.mark.parametrize("forgery", ["signature", "stale", "tampered"])
async def test_forged_stale_or_tampered_requests_get_401_and_run_nothing(
    start: Callable[..., Any], fake: FakeSlack, forgery: str
) -> None:
    bridge: Bridge = await start()
    body = form(slash_command("delegate Create User model"))
    if forgery == "signature":
        headers = sign(body, secret="not-the-signing-secret")
    elif forgery == "stale":
        headers = sign(body, timestamp=int(time.time()) - 10 * 60)
    else:
        headers = sign(body)
        body = body.replace("Create+User+model", "rm+-rf+%2F")
    assert await bridge.post(body, headers=headers) == 401
    assert await bridge.post(body, headers={}) == 401, "unsigned too"
    await asyncio.sleep(0.3)
    assert bridge.app.store.list_tasks() == []
    assert not fake.messages and not fake.ephemerals


async def test_an_unknown_user_gets_an_ephemeral_refusal_and_an_audit_entry(
    start: Callable[..., Any], fake: FakeSlack
) -> None:
    bridge: Bridge = await start()
    assert await bridge.command("status", user=MALLORY) == 200
    [refusal] = await fake.wait_for(lambda: fake.ephemerals, what="the refusal")
    assert refusal["user"] == MALLORY["id"] and refusal["channel"] == CHANNEL
    assert refusal["text"] == (
        f"⛔ This bot is private. Its owner can let you in by adding your user id {MALLORY['id']} to "
        "slack.allowed_user_ids in bots.yaml."
    )
    assert await bridge.command("help") == 200  # alice's answer proves mallory's was handled first
    await fake.wait_for(lambda: [e for e in fake.ephemerals if "/orchestra kill" in e["text"]], what="alice's help")
    assert not fake.messages, "neither the refusal nor the help was a channel message"
    refused = [a for a in bridge.app.store.audit_log() if a["action"] == "refused"]
    assert len(refused) == 1 and refused[0]["actor"] == f"@mallory ({MALLORY['id']})"


async def test_a_429_retry_after_pauses_delivery_and_the_message_arrives_once(
    start: Callable[..., Any], fake: FakeSlack
) -> None:
    bridge: Bridge = await start()
    fake.fail_next("chat.postMessage", 429, retry_after=1)
    fake.fail_next("chat.postMessage", 500)
    started = time.monotonic()
    assert await bridge.event(direct_message("agents")) == 200
    [agents] = await fake.wait_for(lambda: fake.find("🤖 Agents"), what="the answer after 429 and 500")
    assert time.monotonic() - started >= 1.0, "Retry-After was honoured"
    assert [c.status for c in fake.calls if c.method == "chat.postMessage"] == [429, 500, 200]
    assert agents.channel == DM and agents.thread_ts is None, "DMs are not threaded"
    await asyncio.sleep(0.5)
    assert len(fake.find("🤖 Agents")) == 1


async def test_direct_messages_answer_in_the_dm_and_bots_are_ignored(
    start: Callable[..., Any], fake: FakeSlack
) -> None:
    bridge: Bridge = await start()
    assert await bridge.event(direct_message("status", bot_id="BOTHER01", event_id="EvBot")) == 200
    assert await bridge.event(direct_message("status", event_id="EvAlice")) == 200
    [answer] = await fake.wait_for(lambda: fake.find("No tasks yet"), what="the status answer")
    assert answer.channel == DM and answer.thread_ts is None
    assert await bridge.event(direct_message("status", event_id="EvAlice")) == 200, "Slack retried the event"
    await asyncio.sleep(0.5)
    assert len(fake.messages) == 1, "the bot's message and the retried event were not answered"


async def test_requests_acknowledged_but_not_handled_before_a_kill_are_handled_on_start(
    start: Callable[..., Any], fake: FakeSlack
) -> None:
    """What a bot killed right after ``ack()`` leaves: journalled requests that Slack will not send
    again. The next start handles them before it listens; a task one of them already created is
    not created twice."""
    mentioned = mention("Create User model", event_id="EvKilled")
    command = slash_command("status")

    def killed_bot_left(app: App) -> None:
        now = time.time()
        app.store.journal_inbound("slack:EvKilled", "slack", {"kind": "event", "body": mentioned}, now)
        key = f"slack:{command['trigger_id']}"
        app.store.journal_inbound(key, "slack", {"kind": "command", "body": command}, now + 0.001)

    bridge: Bridge = await start(before=killed_bot_left)
    [card] = await fake.wait_for(lambda: fake.find("t1 · standin"), what="the mention's acknowledgement")
    assert card.thread_ts == "1799999999.000200"
    await fake.wait_for(lambda: [e for e in fake.ephemerals if "t1" in e["text"]], what="the status answer")
    await fake.wait_for(lambda: fake.find("Tokens:"), what="the completion")
    assert await bridge.event(mentioned) == 200, "Slack retries the event: already handled"
    await asyncio.sleep(0.5)
    assert [t.id for t in bridge.app.store.list_tasks()] == ["t1"]
    assert len(fake.find("t1 · standin")) == 1
    assert bridge.app.store.pending_inbound("slack") == []
    kept = json.dumps(journal_payload("command", slash_command("status")))
    assert "legacy" not in kept and "hooks.slack" not in kept, "no verification token, no response_url"
    assert json.loads(kept)["body"]["trigger_id"].startswith("trigger-")


async def test_socket_mode_acks_envelopes_and_answers(start: Callable[..., Any], fake: FakeSlack) -> None:
    bridge: Bridge = await start(mode="socket")
    assert bridge.slack.transport.port is None, "no HTTP server in socket mode"
    assert fake.calls_of("apps.connections.open")
    await fake.envelope("slash_commands", slash_command("status"), "env-1")
    ack = await fake.acked("env-1")
    assert ack == {"envelope_id": "env-1"}
    await fake.wait_for(lambda: [e for e in fake.ephemerals if "No tasks yet" in e["text"]], what="the answer")
    await fake.envelope("events_api", mention("@echo hello from socket mode", event_id="EvSock"), "env-2")
    await fake.acked("env-2")
    [done] = await fake.wait_for(lambda: fake.find("t1 succeeded · echo"), what="the completion")
    assert done.thread_ts == "1799999999.000200"


async def test_a_dropped_socket_mode_connection_comes_back_and_keeps_answering(
    start: Callable[..., Any], fake: FakeSlack
) -> None:
    reasons: list[str] = []
    bridge: Bridge = await start(mode="socket", exit_after_s=5, fatal=reasons.append)
    transport = bridge.slack.transport
    assert transport.connected()
    assert await fake.drop_sockets() == 1
    await fake.wait_for(lambda: len(fake.calls_of("apps.connections.open")) >= 2, what="a new connection")
    await fake.wait_for(transport.connected, what="connected again")
    await fake.envelope("slash_commands", slash_command("status"), "env-after-drop")
    await fake.acked("env-after-drop")
    await fake.wait_for(lambda: fake.ephemerals, what="the answer after the reconnect")
    assert reasons == []


async def test_a_socket_mode_connection_that_never_comes_back_makes_the_bot_exit(
    start: Callable[..., Any], fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """slack-sdk reconnects for ever; a bot that cannot reach Slack for exit_after_s asks to exit
    (exit 75 from ``orchestra bot``) so its supervisor restarts it, rather than sit deaf."""
    reasons: list[str] = []
    bridge: Bridge = await start(mode="socket", exit_after_s=2, fatal=reasons.append)
    fake.fail_next("apps.connections.open", 500, times=1000)
    began = time.monotonic()
    await fake.drop_sockets()
    await fake.wait_for(lambda: reasons, timeout=20, what="the watchdog giving up")
    assert 2 <= time.monotonic() - began < 15
    assert reasons == ["slack: no Socket Mode connection for 2s; exiting so the supervisor restarts the bot"]
    assert not bridge.slack.transport.connected()
    assert "slack: no Socket Mode connection" in caplog.text


async def test_a_mention_in_a_tasks_thread_acts_on_that_task(start: Callable[..., Any], fake: FakeSlack) -> None:
    """Slack's replies are threads: "@Orchestra yes" in an approval request's thread approves it;
    text in a finished task's thread follows it up in the same session, never a stray new task."""
    bridge: Bridge = await start(policy={"approval_for": ["devops"], "review_for": []})
    root = "1799999999.000500"
    assert await bridge.event(mention("set up the GitHub Actions CI pipeline", ts=root, event_id="EvRoot")) == 200
    [card] = await fake.wait_for(lambda: fake.find("Needs approval"), what="the approval request")
    assert card.thread_ts == root

    def in_thread(text: str, n: int) -> dict[str, Any]:
        payload = mention(text, ts=f"1799999999.00060{n}", event_id=f"EvThread{n}")
        payload["event"]["thread_ts"] = root
        return payload

    assert await bridge.event(in_thread("yes", 1)) == 200
    [done] = await fake.wait_for(lambda: fake.find("Tokens:"), what="the completion after the reply")
    assert done.thread_ts == root
    assert await bridge.event(in_thread("also add a status badge", 2)) == 200
    [again] = await fake.wait_for(lambda: fake.find("t2 · standin"), what="the follow-up's card")
    assert again.thread_ts == root and "Needs approval" in again.text
    tasks = {t.id: t for t in bridge.app.store.list_tasks()}
    assert sorted(tasks) == ["t1", "t2"] and tasks["t2"].parent_id == "t1"
    assert [a["decision"] for a in bridge.app.store.approvals("t1")] == ["approved"]


@pytest.mark.parametrize(
    ("body", "json_body"),
    [
        ('{"type": "event_callback", "event": ', True),
        ("payload=%7Bnot-json", False),
        ("[1, 2]", True),
        ('{"type": "event_callback", "event": "oops"}', True),
        ("payload=" + urllib.parse.quote('{"type": "block_actions", "actions": [5], "user": "U1"}'), False),
    ],
    ids=["truncated-json", "payload-not-json", "json-not-an-object", "event-not-an-object", "action-not-an-object"],
)
async def test_malformed_bodies_get_401_unsigned_and_400_signed_without_a_traceback(
    start: Callable[..., Any], fake: FakeSlack, caplog: pytest.LogCaptureFixture, body: str, json_body: bool
) -> None:
    bridge: Bridge = await start()
    caplog.set_level(logging.INFO)
    assert await bridge.post(body, json_body=json_body, headers={}) == 401, "unsigned: refused before parsing"
    bad_stamp = {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}
    assert await bridge.post(body, json_body=json_body, headers=bad_stamp) == 401, "a timestamp that is no number"
    assert await bridge.post(body, json_body=json_body) == 400, "signed but not a Slack payload"
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.exc_info]
    assert await bridge.command("status") == 200, "and the bridge still answers"
    await fake.wait_for(lambda: fake.ephemerals, what="the status answer")
    assert bridge.app.store.list_tasks() == []


async def test_a_strangers_request_is_logged_in_one_bounded_line_and_big_bodies_get_413(
    start: Callable[..., Any], fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    bridge: Bridge = await start()
    caplog.set_level(logging.DEBUG, logger="slack_bolt")
    caplog.set_level(logging.INFO)
    command = slash_command("delegate the secret plan " + "x" * 900_000)
    body = form(command)
    assert 900_000 < len(body) < 1024 * 1024
    before = len(caplog.text)
    assert await bridge.post(body, headers=sign(body, secret="forged")) == 401
    logged = caplog.text[before:]
    assert len(logged) < 300 and logged.count("\n") <= 1, logged[:500]
    assert "secret plan" not in logged and "hooks.slack" not in logged, "neither the text nor the response_url"
    huge = form(slash_command("x" * 1_200_000))
    assert await bridge.post(huge) == 413, "signed or not, too big: refused on its Content-Length"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 50_000

    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign("")}
    async with bridge.http.post(bridge.url, data=chunks(), headers=headers) as response:
        assert response.status == 413, "no Content-Length: refused once the body passes the limit"
    assert "Traceback" not in caplog.text
    assert bridge.app.store.list_tasks() == [] and not fake.messages and not fake.ephemerals


async def test_approve_and_reject_words_in_a_tasks_thread_decide_it(start: Callable[..., Any], fake: FakeSlack) -> None:
    """ "@Orchestra approve" in an approval request's thread approves that task (it was a usage
    error), and "@Orchestra reject too broad" rejects the next one, keeping the reason."""
    bridge: Bridge = await start(policy={"approval_for": ["devops"], "review_for": []})
    roots = ["1799999999.000700", "1799999999.000800"]
    for n, root in enumerate(roots):
        task = f"t{n + 1} · "
        assert await bridge.event(mention(f"set up the GitHub Actions CI pipeline {n}", ts=root, event_id=task)) == 200
        await fake.wait_for(partial(fake.find, task), what=f"{task}'s approval request")

    def in_thread(text: str, root: str, n: int) -> dict[str, Any]:
        payload = mention(text, ts=f"1799999999.00090{n}", event_id=f"EvWord{n}")
        payload["event"]["thread_ts"] = root
        return payload

    assert await bridge.event(in_thread("approve", roots[0], 1)) == 200
    [approved] = await fake.wait_for(lambda: fake.find("t1 approved by @alice"), what="the approval")
    assert approved.thread_ts == roots[0]
    assert await bridge.event(in_thread("reject too broad", roots[1], 2)) == 200
    [rejected] = await fake.wait_for(lambda: fake.find("t2 rejected by @alice"), what="the rejection")
    assert rejected.text == "✖ t2 rejected by @alice: too broad" and rejected.thread_ts == roots[1]
    assert not fake.find("Usage") and not [e for e in fake.ephemerals if "Usage" in e["text"]]
    assert [(a["decision"], a["reason"]) for a in bridge.app.store.approvals("t2")] == [("rejected", "too broad")]
    assert sorted(t.id for t in bridge.app.store.list_tasks()) == ["t1", "t2"], "no word became a task"


NOTIFY = "CNOTIFY01"


async def test_an_approval_request_for_a_task_started_in_slack_reaches_the_notify_channels(
    start: Callable[..., Any], fake: FakeSlack
) -> None:
    """Completions reached notify_channel_ids and so did a CLI task's approval request, but not
    that of a task started in Slack. The channel it came from still gets one card, not two."""
    bridge: Bridge = await start(
        policy={"approval_for": ["devops"], "review_for": []}, notify_channel_ids=[CHANNEL, NOTIFY]
    )
    assert await bridge.event(mention("set up the GitHub Actions CI pipeline", ts="1799999999.000900")) == 200
    [request] = await fake.wait_for(lambda: fake.find("needs approval", channel=NOTIFY), what="the notify channel's")
    assert request.text.startswith("🔐 t1 needs approval") and request.buttons() == [
        "approve:t1",
        "reject:t1",
        "peek:t1",
    ]
    assert "orchestra approve" not in request.text, "a chat gets buttons, not the terminal's commands"
    await asyncio.sleep(0.5)
    assert [m.text.split("\n")[0] for m in fake.messages if m.channel == CHANNEL] == ["🔐 t1 · standin · devops"]
    bridge.app.service.delegate("set up the GitHub Actions deploy")  # from the CLI, as before
    for channel in (CHANNEL, NOTIFY):
        await fake.wait_for(partial(fake.find, "t2 needs approval", channel=channel), what="the CLI task's request")


async def test_buttons_in_a_notify_channel_work_there_and_every_refusal_says_why(
    start: Callable[..., Any], fake: FakeSlack
) -> None:
    """A notify channel that is not in allowed_channel_ids got buttons that answered a bare "Not
    allowed."; its taps from allowed users now work, and a refusal says who or where and what to add."""
    bridge: Bridge = await start(policy={"approval_for": ["devops"], "review_for": []}, notify_channel_ids=[NOTIFY])
    bridge.app.service.delegate("set up the GitHub Actions CI pipeline")
    [request] = await fake.wait_for(lambda: fake.find("t1 needs approval", channel=NOTIFY), what="the request")
    assert await bridge.tap(request, "approve:t1", user=MALLORY) == 200
    [stranger] = await fake.wait_for(lambda: fake.ephemerals, what="the stranger's answer")
    assert stranger["user"] == MALLORY["id"] and stranger["text"] == (
        f"⛔ This bot is private. Its owner can let you in by adding your user id {MALLORY['id']} to "
        "slack.allowed_user_ids in bots.yaml."
    )
    assert bridge.app.store.get_task("t1").state == TaskState.AWAITING_APPROVAL
    assert await bridge.tap(request, "approve:t1") == 200
    [_, answer] = await fake.wait_for(lambda: fake.ephemerals[1:] and fake.ephemerals, what="alice's tap answer")
    assert answer["text"].startswith("✅ t1 approved") and answer["channel"] == NOTIFY
    await fake.wait_for(lambda: "Approved by @alice" in request.text and not request.buttons(), what="card edited")
    assert await bridge.event(mention("status", channel=NOTIFY, event_id="EvNotify")) == 200
    [elsewhere] = await fake.wait_for(lambda: fake.ephemerals[2:], what="the refusal of a mention there")
    assert elsewhere["text"] == (
        f"⛔ This chat is not allowed to use the bot: its owner can add its id {NOTIFY} to "
        "slack.allowed_channel_ids in bots.yaml."
    ), "taps are welcome where the buttons are; commands only in allowed channels"


async def test_slash_commands_speak_slack_and_answer_the_asker_alone_or_in_the_tasks_thread(
    start: Callable[..., Any], fake: FakeSlack
) -> None:
    """Help and usage were in Telegram's syntax ("/status — ...", "Usage: /approve ID", "Plain text
    is a task") and every answer was a channel message. Now they say /orchestra and @Orchestra;
    help, status, cost and errors reach only the asker; an answer about a task goes in its thread."""
    bridge: Bridge = await start(policy={"approval_for": ["devops"], "review_for": []})
    for n, text in enumerate(["help", "status", "cost", "approve", "peek t9"]):
        assert await bridge.command(text) == 200
        await fake.wait_for(partial(operator.getitem, fake.ephemerals, slice(n, None)), what=f"the answer to {text}")
    help_, status, cost, usage, unknown = (e["text"] for e in fake.ephemerals)
    assert all(e["user"] == ALICE["id"] and e["channel"] == CHANNEL for e in fake.ephemerals)
    assert "/orchestra status — running, queued and recent tasks" in help_
    assert "/orchestra budget [day|month|task AMOUNT] — the budgets; admins change one: /orchestra budget day" in help_
    assert "@Orchestra TEXT" in help_ and "Plain text is a task" not in help_
    assert not [line for line in help_.splitlines() if line.startswith("/") and not line.startswith("/orchestra ")]
    assert status.startswith("No tasks yet") and cost.startswith("💰")
    assert usage == "⚠️ Usage: /orchestra approve ID (e.g. /orchestra approve t3)"
    assert unknown == "⚠️ There is no task 't9'. /orchestra status lists them."
    assert not fake.messages, "nothing went to the channel"

    root = "1799999999.001000"
    assert await bridge.event(mention("set up the GitHub Actions CI pipeline", ts=root, event_id="EvCI")) == 200
    await fake.wait_for(lambda: fake.find("t1 · standin"), what="the approval request")
    assert await bridge.command("approve t1") == 200
    [approved] = await fake.wait_for(lambda: fake.find("t1 approved by @alice"), what="the approval")
    assert approved.channel == CHANNEL and approved.thread_ts == root, "in the task's thread"


async def test_malformed_http_is_one_log_line_without_a_traceback(
    start: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A request aiohttp cannot even frame (a bad Content-Length, Content-Length with chunking) was
    logged at ERROR with a traceback quoting it."""
    bridge: Bridge = await start()
    caplog.set_level(logging.INFO)
    head = b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
    for raw in (
        head + b"Content-Length: secret-words\r\n\r\n",
        head + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.slack.transport.port)
        writer.write(raw)
        await writer.drain()
        assert (await asyncio.wait_for(reader.read(200), 5)).startswith(b"HTTP/1.0 400")
        writer.close()
    await asyncio.sleep(0.2)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.slack.http")]
    assert len(lines) == 2 and all(line.startswith("slack: HTTP 400 for a malformed request") for line in lines)
    assert "Traceback" not in caplog.text and "secret-words" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
