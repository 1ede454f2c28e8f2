"""Hostile input, fuzzed with Hypothesis through every inbound surface.

Random and hostile text, commands and button payloads go through the command layer, Telegram's
and Slack's inbound conversion and the CLI's argument parser. Nothing may raise, no shell may
run (a sentinel file that shell syntax in the input would create never appears), every error a
user sees is one line, and the store stays consistent. The engine lock is held but the engine is
not started, so delegated tasks stay queued and nothing runs an agent.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Update

from bot.app import App
from bot.cli import build_parser, main
from bot.slack_messages import action_to_inbound, event_to_inbound, slash_to_inbound
from bot.telegram_messages import to_inbound
from core.commands import COMMANDS, Commands
from core.messages import ChatRef, Inbound, OutKind, Tap
from core.models import TaskState
from tests.conftest import requires_tmux

pytestmark = requires_tmux

SENTINEL = Path("/tmp/orchestra-fuzz-sentinel")
SHELLISH = [
    f"$(touch {SENTINEL})", f"`touch {SENTINEL}`", f"; touch {SENTINEL}", f"| touch {SENTINEL}",
    f"&& touch {SENTINEL}", "\x00", "\u202e", "%s%n", "{task}", "{task_file}", "../../etc/passwd", "t99999999999999999",
    "<b>", "*_`", "\n/kill", "@standin", "@nobody", "/" * 50, "é" * 5000,
]  # fmt: skip
hostile_text = st.one_of(
    st.text(max_size=300), st.sampled_from(SHELLISH), st.lists(st.sampled_from(SHELLISH)).map(" ".join)
)
command_line = st.builds(
    lambda name, args: f"/{name} {args}",
    st.sampled_from([c.name for c in COMMANDS] + ["nope", "KILL", "Status"]),
    hostile_text,
)
ACTIONS = ["approve", "reject", "cancel", "retry", "peek", "log", "screen", "kill", "keep", "", "x" * 70]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def fuzz_app(make_app: Any, repo: Path) -> Iterator[App]:
    app: App = make_app(workspace=str(repo))
    assert app.engine.acquire()  # held, never started: delegated tasks stay queued
    SENTINEL.unlink(missing_ok=True)
    yield app
    app.engine.release()
    assert not SENTINEL.exists(), "some input reached a shell"


def _check_answers(answers: list[Any]) -> None:
    for out in answers:
        if out.text.startswith(("⚠️", "⛔")) or out.kind == OutKind.TOAST:
            assert "\n" not in out.text.strip() and "Traceback" not in out.text, out.text


def _check_store(app: App) -> None:
    conn = sqlite3.connect(app.store.path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        states = {row[0] for row in conn.execute("SELECT state FROM tasks")}
    finally:
        conn.close()
    assert states <= {s.value for s in TaskState}


@FUZZ
@given(text=st.one_of(hostile_text, command_line), user=st.sampled_from(["111", "666"]))
def test_the_command_layer_answers_anything_in_one_line(fuzz_app: App, text: str, user: str) -> None:
    commands = Commands(fuzz_app.service, fuzz_app.clock)
    inbound = Inbound(chat=ChatRef("telegram", user, True), user_id=user, user_name="@fuzz", text=text, message_id="1")
    _check_answers(commands.handle(inbound))
    _check_store(fuzz_app)


@FUZZ
@given(action=st.sampled_from(ACTIONS) | st.text(max_size=20), task_id=hostile_text, message_id=st.text(max_size=20))
def test_any_button_payload_is_answered_without_raising(
    fuzz_app: App, action: str, task_id: str, message_id: str
) -> None:
    commands = Commands(fuzz_app.service, fuzz_app.clock)
    inbound = Inbound(
        chat=ChatRef("slack", "D1", True), user_id="U1", user_name="@fuzz", tap=Tap(action, task_id, message_id)
    )
    _check_answers(commands.handle(inbound))
    _check_store(fuzz_app)


telegram_user = st.fixed_dictionaries(
    {"id": st.integers(1, 2**40), "is_bot": st.booleans(), "first_name": st.text(max_size=20)}
)
telegram_chat = st.fixed_dictionaries(
    {"id": st.integers(-(2**40), 2**40), "type": st.sampled_from(["private", "group", "supergroup", "channel"])}
)
telegram_message = st.fixed_dictionaries(
    {"message_id": st.integers(1, 2**31), "date": st.just(0), "chat": telegram_chat, "from": telegram_user},
    optional={"text": st.one_of(hostile_text, command_line), "caption": hostile_text},
)
telegram_update = st.one_of(
    st.fixed_dictionaries({"update_id": st.integers(0, 2**31), "message": telegram_message}),
    st.fixed_dictionaries({"update_id": st.integers(0, 2**31), "callback_query": st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=10), "from": telegram_user, "chat_instance": st.just("c"),
         "message": telegram_message, "data": st.text(max_size=64) | st.sampled_from([f"{a}:t1" for a in ACTIONS])},
    )}),
)  # fmt: skip


@FUZZ
@given(payload=telegram_update, username=st.sampled_from(["", "orchestra_bot"]))
def test_telegram_updates_convert_or_are_ignored(fuzz_app: App, payload: dict[str, Any], username: str) -> None:
    inbound = to_inbound(Update.de_json(payload, None), username, 42)
    if inbound is not None:
        assert inbound.chat.platform == "telegram"
        _check_answers(Commands(fuzz_app.service, fuzz_app.clock).handle(inbound))


slack_id = st.text(alphabet="CDGUW0123456789", min_size=0, max_size=12)
text = st.text(max_size=20)
slack_event = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["message", "app_mention", "x"]), "user": slack_id, "channel": slack_id,
        "channel_type": st.sampled_from(["im", "channel", ""]), "text": st.one_of(hostile_text, command_line),
        "ts": text, "thread_ts": text, "bot_id": slack_id, "subtype": st.text(max_size=5),
    },
)  # fmt: skip
slack_button = st.fixed_dictionaries({}, optional={"value": st.text(max_size=80), "action_ts": st.text(max_size=5)})
slack_action = st.fixed_dictionaries(
    {},
    optional={
        "actions": st.lists(slack_button, max_size=2),
        "user": st.fixed_dictionaries({}, optional={"id": slack_id, "username": text}),
        "channel": st.fixed_dictionaries({}, optional={"id": slack_id}),
        "container": st.fixed_dictionaries({}, optional={"message_ts": text, "channel_id": slack_id}),
        "trigger_id": st.text(max_size=10),
    },
)  # fmt: skip
slack_slash = st.fixed_dictionaries(
    {},
    optional={
        "channel_id": slack_id, "user_id": slack_id, "user_name": text, "text": st.one_of(hostile_text, command_line),
        "channel_name": st.sampled_from(["directmessage", "general"]),
    },
)  # fmt: skip


@FUZZ
@given(event=slack_event, action=slack_action, slash=slack_slash)
def test_slack_payloads_convert_or_are_ignored(
    fuzz_app: App, event: dict[str, Any], action: dict[str, Any], slash: dict[str, Any]
) -> None:
    commands = Commands(fuzz_app.service, fuzz_app.clock)
    for inbound in (event_to_inbound({"event": event}, "UBOT"), action_to_inbound(action), slash_to_inbound(slash)):
        if inbound is not None:
            assert inbound.chat.platform == "slack"
            _check_answers(commands.handle(inbound))
    _check_store(fuzz_app)


@settings(max_examples=200, deadline=None)
@given(
    argv=st.lists(
        st.one_of(
            hostile_text,
            st.sampled_from(["delegate", "status", "audit", "--json", "--since", "-a", "--task", "show", "cancel"]),
        ),
        max_size=6,
    )
)
def test_the_cli_parser_accepts_or_exits_with_usage(argv: list[str]) -> None:
    err = io.StringIO()
    code: object = None
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        code = exc.code
    assert code in (None, 0, 2) and "Traceback" not in err.getvalue()
    assert not SENTINEL.exists()


@FUZZ
@given(command=st.sampled_from(["show", "cancel", "approve", "reject", "logs", "retry", "audit"]), arg=hostile_text)
def test_cli_commands_fail_in_one_line(fuzz_app: App, tmp_path: Path, command: str, arg: str) -> None:
    if arg.startswith("-"):
        arg = " " + arg  # an option, not a value: argparse's usage error, covered above
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--config", str(tmp_path / "bots.yaml"), command, arg])
    assert code in (0, 1)
    assert err.getvalue().count("\n") <= 1 and "Traceback" not in err.getvalue(), err.getvalue()
    _check_store(fuzz_app)
