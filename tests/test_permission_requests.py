"""Permission requests as people meet them: the message with its three buttons in Telegram and Slack,
the first answer winning and the others told who decided, the edit to the outcome, a reply that
denies with its text, roles, ``orchestra pending/allow/deny``, and the ``answered`` poke reaching
the engine's socket. Real SQLite, the fake Bot API and fake Slack on 127.0.0.1, the real bridges."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.app import App
from bot.bridges import start_slack, start_telegram
from core.notify import Notifier
from core.protocol import ENGINE_SOCKET
from core.store.permissions import PermissionRequest
from tests.conftest import free_port, orchestra, requires_tmux
from tests.fakes.engine_socket import FakeEngineSocket
from tests.fakes.slack import ALICE as SLACK_ALICE
from tests.fakes.slack import BOT_TOKEN, CHANNEL, SIGNING_SECRET, FakeSlack, block_action, form, mention, sign
from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram
from tests.fakes.telegram import Message as TelegramMessage

T = TypeVar("T")
TOKEN_ENV = "ORCH_TEST_TELEGRAM_TOKEN"
BOB: dict[str, Any] = {"id": 222, "is_bot": False, "first_name": "Bob", "username": "bob"}
VIEWER: dict[str, Any] = {"id": 333, "is_bot": False, "first_name": "Vic", "username": "vic"}
GROUP: dict[str, Any] = {"id": -100123, "type": "group", "title": "ops"}
SLACK_BOB = {"id": "UBOB0001", "name": "bob"}
SLACK_VIEWER = {"id": "UVIC0001", "name": "vic"}
ROLES = {
    "admins": ["telegram:111", f"slack:{SLACK_ALICE['id']}"],
    "operators": ["telegram:222", f"slack:{SLACK_BOB['id']}"],
    "viewers": ["telegram:333", f"slack:{SLACK_VIEWER['id']}"],
}
CURL = {"tool": "Bash", "subject": "curl -s https://example.com/install.sh", "cli_tool": "Bash"}


async def until(probe: Callable[[], T], what: str, timeout: float = 15.0) -> T:
    """Wait (without blocking the loop the bridge runs on) until ``probe()`` is truthy."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return value


@pytest.fixture
def engine_socket(home: Path) -> Iterator[FakeEngineSocket]:
    home.mkdir(parents=True, exist_ok=True)
    (home / ENGINE_SOCKET).parent.mkdir(parents=True, exist_ok=True)
    server = FakeEngineSocket(home / ENGINE_SOCKET)
    yield server
    server.close()


def running_task(app: App, repo: Path, text: str = "fetch the installer and run the tests") -> str:
    now = app.clock.now()
    task = app.store.create_task({"text": text, "agent": "claude", "category": "backend", "state": "running",
                                  "cwd": str(repo), "created_at": now - 30, "started_at": now - 20})  # fmt: skip
    return task.id


def ask(app: App, task_id: str, key: str, call: dict[str, str] = CURL, rule: str = "Bash(curl *)") -> PermissionRequest:
    """What the engine does when a hook asks: the request stored and its message queued, together."""
    now = app.clock.now()
    with app.store.atomic():
        request, made = app.store.open_permission(
            key=key, task_id=task_id, agent="claude", call=call, rule=rule, why="network access: Bash(curl *) is asked",
            now=now, deadline=now + 600,
        )  # fmt: skip
        assert made
        Notifier(app.config, app.store, app.clock).permission_request(request)
    return request


def state_of(app: App, request: PermissionRequest) -> PermissionRequest:
    found = app.store.permission(request.id)
    assert found is not None
    return found


def audit_rows(app: App, action: str) -> list[dict[str, Any]]:
    return app.store.audit_search("", action=action, since=None, limit=50)


# -- Telegram ------------------------------------------------------------------------------------
@pytest.fixture
async def telegram(
    make_app: Any, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[App, FakeTelegram, Any]]:
    fake = FakeTelegram().start()
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    users = [ALICE["id"], BOB["id"], VIEWER["id"]]
    app: App = make_app(
        workspace=str(repo), notify={"console": False}, digest={"enabled": False}, roles=ROLES,
        telegram={"enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": users,
                  "allowed_chat_ids": [GROUP["id"]], "notify_chat_ids": [GROUP["id"]], "poll_timeout_s": 1,
                  "progress_interval_s": 0, "retry_base_s": 0.2, "retry_max_s": 1},
    )  # fmt: skip
    bridge = await start_telegram(app, fatal=lambda reason: None)
    yield app, fake, bridge
    await bridge.stop()
    fake.stop()


def request_message(fake: FakeTelegram, ref: str) -> list[TelegramMessage]:
    return [m for m in fake.sent if m.chat_id == GROUP["id"] and f"perm_allow:{ref}" in json.dumps(m.markup)]


def callback_data(message: TelegramMessage) -> list[str]:
    assert message.markup is not None
    return [b["callback_data"] for row in message.markup["inline_keyboard"] for b in row]


async def test_a_request_reaches_telegram_with_three_buttons_and_the_first_tap_wins(
    telegram: tuple[App, FakeTelegram, Any], repo: Path, engine_socket: FakeEngineSocket
) -> None:
    app, fake, bridge = telegram
    task_id = running_task(app, repo)
    request = ask(app, task_id, "k-curl")
    bridge.outbox.wake()
    [message] = await until(lambda: request_message(fake, request.ref), "the permission request")
    assert message.text.startswith(f"🔐 {task_id} · claude wants to run: curl -s https://example.com/install.sh")
    assert "Why asked: network access" in message.text and "⏱ No answer in 10 min (by " in message.text
    assert message.text.rstrip().endswith(": denied")
    assert callback_data(message) == ["perm_allow:p1", "perm_deny:p1", "perm_task:p1"]
    assert all(len(data.encode()) <= 64 for data in callback_data(message))
    labels = [b["text"] for row in message.markup["inline_keyboard"] for b in row]  # type: ignore[index]
    assert labels == ["✅ Allow", "⛔ Deny", "✅ Allow for this task: Bash(curl *)"]

    fake.tap(message, "perm_allow:p1", user=BOB)
    await until(lambda: state_of(app, request).state == "allowed", "the tap to be recorded")
    decided = state_of(app, request)
    assert (decided.decided_by, decided.via, decided.grant_rule) == ("@bob", "telegram", None)
    [allowed] = audit_rows(app, "allow")
    assert allowed["actor"] == "@bob" and allowed["task_id"] == task_id and allowed["source"] == "telegram"
    assert allowed["detail"].startswith("p1 Bash(curl -s https://example.com/install.sh)")
    await until(lambda: {"t": "answered", "key": "k-curl"} in engine_socket.lines, "the poke on the engine's socket")
    answers = await until(lambda: fake.callback_answers, "the tap's answer")
    assert str(answers[0]["text"]).startswith("✅ p1 allowed: Bash(curl")
    await until(
        lambda: fake.current(message).markup is None and "✅ Allowed by @bob (telegram)" in fake.current(message).text,
        "the message edited to the outcome",
    )
    assert fake.current(message).text.splitlines()[0].startswith(f"🔐 {task_id} · claude wants to run: curl")

    fake.tap(message, "perm_deny:p1", user=ALICE)  # a late tap (it still had the buttons on this phone)
    late = await until(lambda: fake.callback_answers[1:], "the late tap's answer")
    assert str(late[0]["text"]).startswith("p1 was already allowed by @bob (telegram) at ")
    assert state_of(app, request).state == "allowed", "the first answer won"
    assert len(audit_rows(app, "allow")) == 1 and not audit_rows(app, "deny")


async def test_allow_for_this_task_grants_the_rule_and_a_reply_denies_with_its_text(
    telegram: tuple[App, FakeTelegram, Any], repo: Path, engine_socket: FakeEngineSocket
) -> None:
    app, fake, bridge = telegram
    task_id = running_task(app, repo)
    first = ask(app, task_id, "k1")
    bridge.outbox.wake()
    [message] = await until(lambda: request_message(fake, first.ref), "the first request")
    fake.tap(message, f"perm_task:{first.ref}", user=BOB)
    await until(lambda: state_of(app, first).state == "allowed", "allow for this task")
    assert app.store.task_grants(task_id) == ["Bash(curl *)"]
    await until(
        lambda: "✅ Allowed for this task: Bash(curl *) — by @bob (telegram)" in fake.current(message).text,
        "the outcome naming the rule",
    )

    second = ask(app, task_id, "k2", {"tool": "Bash", "subject": "git push origin main", "cli_tool": "Bash"},
                 "Bash(git push *)")  # fmt: skip
    bridge.outbox.wake()
    [asked] = await until(lambda: request_message(fake, second.ref), "the second request")
    fake.say("use a branch and open a pull request instead", user=ALICE, chat=GROUP, reply_to=asked.message_id)
    await until(lambda: state_of(app, second).state == "denied", "the reply to deny it")
    denied = state_of(app, second)
    assert denied.reason == "use a branch and open a pull request instead" and denied.decided_by == "@alice"
    await until(
        lambda: (
            "⛔ Denied by @alice (telegram): use a branch and open a pull request instead" in fake.current(asked).text
        ),
        "the outcome with the reason",
    )
    assert fake.current(asked).markup is None
    assert [line["key"] for line in engine_socket.lines] == ["k1", "k2"]
    assert not app.store.find_task("t2"), "a reply to a request never starts a task"


async def test_a_viewer_cannot_answer_and_pending_lists_what_waits(
    telegram: tuple[App, FakeTelegram, Any], repo: Path
) -> None:
    app, fake, bridge = telegram
    task_id = running_task(app, repo)
    request = ask(app, task_id, "k-viewer")
    bridge.outbox.wake()
    [message] = await until(lambda: request_message(fake, request.ref), "the request")
    fake.tap(message, "perm_allow:p1", user=VIEWER)
    [refusal] = await until(lambda: fake.callback_answers, "the viewer's answer")
    assert str(refusal["text"]).startswith("⛔ the Allow button needs the operator role; you are a viewer.")
    fake.say("/allow t1", user=VIEWER, chat=GROUP)
    await until(lambda: [m for m in fake.sent if "/allow needs the operator role" in m.text], "the command refused")
    assert state_of(app, request).state == "pending"
    assert len(audit_rows(app, "refused")) == 2

    fake.say("/pending", user=VIEWER, chat=GROUP)
    [listed] = await until(lambda: [m for m in fake.sent if m.text.startswith("🔐 Waiting for permission")], "/pending")
    assert f"p1 {task_id} · claude · Bash(curl -s https://example.com/install.sh) · waiting " in listed.text
    assert "/allow p1 / /deny p1" in listed.text
    fake.say("/status", user=VIEWER, chat=GROUP)
    [status] = await until(lambda: [m for m in fake.sent if m.text.startswith("Active (1)")], "/status")
    assert "🔐 waiting for permission: Bash(curl -s https://example.com/install.sh) · " in status.text

    fake.say("/deny t1 not on this machine", user=BOB, chat=GROUP)
    await until(lambda: state_of(app, request).state == "denied", "bob's /deny")
    assert state_of(app, request).reason == "not on this machine"
    [said] = await until(lambda: [m for m in fake.sent if m.text.startswith("⛔ p1 denied")], "the /deny answer")
    assert said.text.endswith("— not on this machine (by @bob)")
    fake.say("/allow t1", user=BOB, chat=GROUP)
    await until(
        lambda: [m for m in fake.sent if "t1 is not waiting for permission (p1 was already denied by @bob" in m.text],
        "a second answer told who decided",
    )


async def test_in_telegram_the_request_answers_the_task_s_card(
    telegram: tuple[App, FakeTelegram, Any], repo: Path
) -> None:
    """The phone shows the question under the task it is about (a reply to the task's card)."""
    from core.messages import Outbound, OutKind

    app, fake, bridge = telegram
    task_id = running_task(app, repo)
    app.store.enqueue(
        "telegram", Outbound(f"⏳ {task_id} running", kind=OutKind.ACK, task_id=task_id),
        chat_id=str(GROUP["id"]), dedupe_key="card-1", ts=app.clock.now(),
    )  # fmt: skip
    bridge.outbox.wake()
    [card] = await until(lambda: [m for m in fake.sent if m.text.startswith(f"⏳ {task_id} running")], "the card")
    request = ask(app, task_id, "k-thread")
    bridge.outbox.wake()
    [message] = await until(lambda: request_message(fake, request.ref), "the request")
    assert message.reply_to == card.message_id


async def test_run_time_rules_are_admin_only_and_judge_the_next_question(
    telegram: tuple[App, FakeTelegram, Any], repo: Path
) -> None:
    """``/permissions allow RULE``: an operator is refused; an admin's rule is audited and, over
    bots.yaml's lists, decides what a running task's hook asks next (the engine judges asks with it)."""
    app, fake, _bridge = telegram
    fake.say("/permissions allow Bash(curl *)", user=BOB, chat=GROUP)
    await until(lambda: [m for m in fake.sent if "/permissions needs the admin role" in m.text], "the refusal")
    assert app.store.permission_rules()["allow"] == []
    fake.say("/permissions allow Bash(curl *)", user=ALICE, chat=GROUP)
    await until(lambda: [m for m in fake.sent if "is now in the run-time allow list" in m.text], "the admin's rule")
    assert app.store.permission_rules()["allow"] == ["Bash(curl *)"]
    assert [r["detail"] for r in audit_rows(app, "permissions")] == ["allow Bash(curl *)"]
    fake.say("/permissions", user=VIEWER, chat=GROUP)
    await until(lambda: [m for m in fake.sent if "allow: Bash(curl *)" in m.text], "the list, for anyone")
    policy = app.config.permission_policy("claude", "backend", str(repo), app.store.permission_rules())
    from core.permissions.call import ToolCall

    assert policy.judge(ToolCall("Bash", "curl -s https://example.com")).verdict == "allow"
    assert policy.judge(ToolCall("Bash", "sudo curl x")).verdict == "deny", "a deny of bots.yaml still wins"
    fake.say("/permissions allow Bash(", user=ALICE, chat=GROUP)
    await until(lambda: [m for m in fake.sent if "is not a rule" in m.text], "a bad rule in one line")
    fake.say("/permissions remove Bash(curl *)", user=ALICE, chat=GROUP)
    await until(lambda: [m for m in fake.sent if "is no longer a run-time rule" in m.text], "removed")
    assert app.store.permission_rules()["allow"] == []


# -- Slack ---------------------------------------------------------------------------------------
SLACK_ENV = {"ORCH_TEST_SLACK_BOT": BOT_TOKEN, "ORCH_TEST_SLACK_SECRET": SIGNING_SECRET}


async def test_slack_shows_the_same_buttons_and_the_first_tap_wins(
    make_app: Any, repo: Path, monkeypatch: pytest.MonkeyPatch, engine_socket: FakeEngineSocket
) -> None:
    import aiohttp

    for key, value in SLACK_ENV.items():
        monkeypatch.setenv(key, value)
    async with FakeSlack() as fake:
        fake.users.update({SLACK_BOB["id"]: SLACK_BOB["name"], SLACK_VIEWER["id"]: SLACK_VIEWER["name"]})
        port = free_port()
        app: App = make_app(
            workspace=str(repo), notify={"console": False}, digest={"enabled": False}, roles=ROLES,
            slack={"enabled": True, "api_base_url": fake.api_url, "mode": "http",
                   "http": {"listen": "127.0.0.1", "port": port}, "bot_token_env": "ORCH_TEST_SLACK_BOT",
                   "signing_secret_env": "ORCH_TEST_SLACK_SECRET", "progress_interval_s": 0,
                   "allowed_user_ids": [u["id"] for u in (SLACK_ALICE, SLACK_BOB, SLACK_VIEWER)],
                   "allowed_channel_ids": [CHANNEL], "notify_channel_ids": [CHANNEL]},
        )  # fmt: skip
        bridge = await start_slack(app)
        http = aiohttp.ClientSession()
        url = f"http://127.0.0.1:{port}/slack/events"

        async def tap(message: Any, value: str, user: dict[str, str]) -> None:
            body = form({"payload": json.dumps(block_action(message, value, user=user))})
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
            async with http.post(url, data=body.encode(), headers=headers) as response:
                assert response.status == 200

        try:
            task_id = running_task(app, repo)
            request = ask(app, task_id, "k-slack")
            bridge.outbox.wake()
            [message] = await fake.wait_for(lambda: fake.find("wants to run"), what="the request in Slack")
            assert message.text.startswith(
                f"🔐 {task_id} · claude wants to run: curl -s https://example.com/install.sh"
            )
            assert message.buttons() == ["perm_allow:p1", "perm_deny:p1", "perm_task:p1"]
            as_first_shown = copy.deepcopy(message)  # alice's phone still shows the buttons
            await tap(message, "perm_deny:p1", SLACK_VIEWER)
            [refused] = await fake.wait_for(lambda: fake.ephemerals, what="the viewer's refusal")
            assert refused["text"].startswith("⛔ the Deny button needs the operator role")
            assert state_of(app, request).state == "pending"
            await tap(message, "perm_allow:p1", SLACK_BOB)
            await until(lambda: state_of(app, request).state == "allowed", "bob's tap")
            assert state_of(app, request).via == "slack"
            await fake.wait_for(
                lambda: "✅ Allowed by @bob (slack)" in message.text and not message.buttons(), what="the edit"
            )
            await tap(as_first_shown, "perm_deny:p1", SLACK_ALICE)
            late = await fake.wait_for(lambda: fake.ephemerals[2:], what="the late tap's answer")
            assert late[0]["text"].startswith("p1 was already allowed by @bob (slack) at ")
            await until(lambda: engine_socket.lines, "the poke")
            assert engine_socket.lines == [{"t": "answered", "key": "k-slack"}]

            second = ask(app, task_id, "k-slack-2", {"tool": "WebFetch", "subject": "https://pypi.org/simple/"}, "")
            bridge.outbox.wake()
            [asked] = await fake.wait_for(lambda: fake.find("wants to fetch"), what="the second request")
            assert asked.buttons() == ["perm_allow:p2", "perm_deny:p2", "perm_task:p2"]
            payload = mention("deny use the local index", ts="1799999999.000950", event_id="EvDeny")
            payload["event"]["thread_ts"] = asked.ts  # in the request's thread
            body = json.dumps(payload)
            headers = {"Content-Type": "application/json", **sign(body)}
            async with http.post(url, data=body.encode(), headers=headers) as response:
                assert response.status == 200
            await until(lambda: state_of(app, second).state == "denied", "the reply in the thread")
            assert state_of(app, second).reason == "use the local index"
            await fake.wait_for(lambda: "⛔ Denied by @alice (slack): use the local index" in asked.text, what="edit")
        finally:
            await http.close()
            await bridge.stop()


# -- the terminal --------------------------------------------------------------------------------
def test_the_cli_lists_allows_and_denies_with_one_line_errors(
    make_app: Any, repo: Path, tmp_path: Path, home: Path, engine_socket: FakeEngineSocket
) -> None:
    app: App = make_app(workspace=str(repo), notify={"console": True})
    task_id = running_task(app, repo)
    first = ask(app, task_id, "cli-1")
    second = ask(app, task_id, "cli-2", {"tool": "WebFetch", "subject": "https://pypi.org/simple/", "cli_tool": "x"},
                 "WebFetch(https://pypi.org/*)")  # fmt: skip
    config, env = tmp_path / "bots.yaml", {"ORCHESTRA_HOME": str(home)}

    listed = orchestra("pending", config=config, env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith(f"p1 {task_id} · claude · Bash(curl -s https://example.com/install.sh) · waiting ")
    assert lines[1].startswith(f"p2 {task_id} · claude · WebFetch(https://pypi.org/simple/) · waiting ")
    assert "times out in 10 min" in lines[0] or "times out in 9m" in lines[0]
    rows = json.loads(orchestra("pending", "--json", config=config, env=env).stdout)
    assert [(r["ref"], r["task"], r["state"]) for r in rows] == [("p1", task_id, "pending"), ("p2", task_id, "pending")]

    status = orchestra("status", config=config, env=env).stdout
    assert "🔐 waiting for permission: Bash(curl -s https://example.com/install.sh) · " in status
    shown = orchestra("show", task_id, config=config, env=env).stdout
    assert "🔐 waiting for permission: Bash(curl" in shown and "orchestra allow p1 [--task]" in shown
    [active] = json.loads(orchestra("status", "--json", config=config, env=env).stdout)["active"]
    assert active["waiting_for_permission"]["ref"] == "p1"

    allowed = orchestra("allow", task_id, config=config, env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.startswith(f"✅ p1 allowed: Bash(curl -s https://example.com/install.sh) ({task_id})")
    assert "has 1 more waiting" in allowed.stdout, "a task with two open requests says so and answers the oldest"
    denied = orchestra("deny", "p2", "--reason", "use the local index", config=config, env=env)
    assert denied.returncode == 0, denied.stderr
    said = denied.stdout.strip()
    assert said == f"⛔ p2 denied: WebFetch(https://pypi.org/simple/) ({task_id}) — use the local index"
    assert (state_of(app, first).state, state_of(app, second).reason) == ("allowed", "use the local index")
    assert [line["key"] for line in engine_socket.lines if line["t"] == "answered"] == ["cli-1", "cli-2"]
    assert [r["source"] for r in audit_rows(app, "allow") + audit_rows(app, "deny")] == ["cli", "cli"]

    for args, expected in (
        (("allow", "p1"), "orchestra: p1 was already allowed by "),
        (("allow", task_id), f"orchestra: {task_id} is not waiting for permission (p2 was already denied by "),
        (("deny", "t99"), "orchestra: unknown task 't99'"),
        (("allow", "p99"), "orchestra: there is no permission request p99"),
        (("deny", "soon"), "orchestra: 'soon' names no task or permission request"),
        (("pending", "t99"), "orchestra: unknown task 't99'"),
    ):
        out = orchestra(*args, config=config, env=env)
        assert out.returncode == 1 and out.stdout == "", (args, out.stdout)
        assert out.stderr.startswith(expected) and len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
    assert orchestra("pending", config=config, env=env).stdout.strip() == "no agent is waiting for permission"


def test_the_card_shows_the_wait_and_the_completion_lists_the_refusals(make_app: Any, repo: Path) -> None:
    from core.permission_text import refusals
    from core.progress import render_card

    app: App = make_app(workspace=str(repo))
    task_id = running_task(app, repo)
    request = ask(app, task_id, "card")
    text, _ = render_card(app.service, app.service.get(task_id), app.clock.now() + 125)
    assert "\n🔐 waiting for permission: Bash(curl -s https://example.com/install.sh) · 2m" in text
    app.service.answer_permission(request.ref, "deny", actor="@bob", source="telegram", reason="not today")
    text, _ = render_card(app.service, app.service.get(task_id), app.clock.now())
    assert "waiting for permission" not in text

    now = app.clock.now()
    rm = {"tool": "Bash", "subject": "rm -rf /"}
    app.store.open_permission(key="policy", task_id=task_id, agent="claude", call=rm, rule="", why="Bash(rm -rf /)",
                              now=now, deadline=now, state="denied", decided_by="policy", via="policy")  # fmt: skip
    late = ask(app, task_id, "late", {"tool": "WebFetch", "subject": "https://pypi.org/"}, "WebFetch")
    app.store.decide_permission(late.id, "timed_out", by="orchestra", via="timeout", now=now + 600)
    assert refusals(app.store.task_permissions(task_id)) == [
        {"call": "Bash(curl -s https://example.com/install.sh)", "state": "denied", "by": "denied by @bob",
         "reason": "not today"},
        {"call": "Bash(rm -rf /)", "state": "denied", "by": "by policy", "reason": ""},
        {"call": "WebFetch(https://pypi.org/)", "state": "timed_out", "by": "no answer in 10 min", "reason": ""},
    ]  # fmt: skip


# -- with the real engine ------------------------------------------------------------------------
@requires_tmux
async def test_the_engine_hears_a_tap_and_answers_the_waiting_hook(
    make_app: Any, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole loop on the loopback fakes: a hook's ``ask`` on the real engine's socket, the request
    in the fake Telegram, a tap, and the answer on the hook's connection; then a reply that denies."""
    from core.permissions.call import ToolCall
    from core.permissions.hook import ask_message

    fake = FakeTelegram().start()
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    app: App = make_app(
        workspace=str(repo), notify={"console": False}, digest={"enabled": False}, roles=ROLES,
        agents__sleeper={"kind": "command", "command": "sleep", "args": ["30"], "max_concurrent": 1},
        telegram={"enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV,
                  "allowed_user_ids": [ALICE["id"], BOB["id"]], "allowed_chat_ids": [GROUP["id"]],
                  "notify_chat_ids": [GROUP["id"]], "poll_timeout_s": 1, "progress_interval_s": 0},
    )  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    bridge = await start_telegram(app, fatal=lambda reason: None)
    try:
        task_id = app.service.delegate("wait a while", agent="sleeper").task.id
        await until(lambda: app.store.get_task(task_id).state == "running", "the task to run", timeout=20)

        async def hook(key: str, command: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_unix_connection(str(app.home / ENGINE_SOCKET))
            line = ask_message(task_id, key, ToolCall("Bash", command, cli_tool="Bash"), "Bash(curl *)", "network")
            writer.write((json.dumps(line) + "\n").encode())
            await writer.drain()
            return reader, writer

        reader, writer = await hook("hook-1", "curl -s https://example.com/a")
        [message] = await until(lambda: request_message(fake, "p1"), "the request from the engine")
        tapped = time.monotonic()
        fake.tap(message, "perm_allow:p1", user=BOB)
        answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
        took_ms = (time.monotonic() - tapped) * 1000
        print(f"tap Allow -> the hook's answer: {took_ms:.0f} ms (fake Bot API long poll included)")
        assert answer == {"t": "answer", "key": "hook-1", "allow": True, "reason": ""}
        writer.close()

        reader, writer = await hook("hook-2", "curl -s https://example.com/b")
        [second] = await until(lambda: request_message(fake, "p2"), "the second request")
        fake.say("no, use the vendored copy", user=ALICE, chat=GROUP, reply_to=second.message_id)
        answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert (answer["allow"], answer["reason"]) == (False, "use the vendored copy")
        writer.close()
        await until(
            lambda: "⛔ Denied by @alice (telegram): use the vendored copy" in fake.current(second).text, "edit"
        )
    finally:
        await bridge.stop()
        with contextlib.suppress(Exception):
            app.service.cancel(task_id)
        await app.engine.stop()
        fake.stop()
