"""The dashboard's 🖥 Open button on a task's card: a Mini App button in a Telegram private chat, a
link in a group and in Slack, and none without an https ``public_url``. The real Telegram bridge and
the fake Bot API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.bridges import start_telegram
from bot.slack_messages import from_blocks, to_blocks
from core.messages import Button, card_keyboard, keyboard_from_json, keyboard_to_json
from tests.conftest import requires_tmux
from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram
from tests.test_permission_requests import until

pytestmark = requires_tmux
GROUP: dict[str, Any] = {"id": -100123, "type": "group", "title": "ops"}
PUBLIC = "https://orchestra.example.com"


@pytest.fixture
async def telegram(make_app: Any, repo: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[App, Any]]:
    fake = FakeTelegram().start()
    monkeypatch.setenv("ORCH_TEST_TG", TOKEN)
    app: App = make_app(
        workspace=str(repo), notify={"console": False}, digest={"enabled": False},
        web={"enabled": True, "public_url": PUBLIC},
        telegram={"enabled": True, "api_base_url": fake.url, "token_env": "ORCH_TEST_TG",
                  "allowed_user_ids": [ALICE["id"]], "allowed_chat_ids": [GROUP["id"]], "poll_timeout_s": 1,
                  "progress_interval_s": 0, "retry_base_s": 0.2, "retry_max_s": 1},
    )  # fmt: skip
    bridge = await start_telegram(app, fatal=lambda reason: None)
    yield app, fake
    await bridge.stop()
    fake.stop()


def buttons(message: Any) -> list[dict[str, Any]]:
    return [b for row in (message.markup or {}).get("inline_keyboard", []) for b in row]


async def test_the_card_opens_the_task_as_a_mini_app_in_private_and_as_a_link_in_a_group(
    telegram: tuple[App, FakeTelegram],
) -> None:
    _app, fake = telegram
    fake.say("Create User model")  # a private chat: Alice's own
    [card] = await until(lambda: [m for m in fake.sent if m.chat_id == ALICE["id"] and "t1" in m.text], "the card")
    opened = [b for b in buttons(card) if b["text"] == "🖥 Open"]
    assert opened == [{"text": "🖥 Open", "web_app": {"url": f"{PUBLIC}/task/t1"}}]
    fake.say("/delegate Create Team model", chat=GROUP)
    [card] = await until(lambda: [m for m in fake.sent if m.chat_id == GROUP["id"] and "t2" in m.text], "group card")
    assert [b for b in buttons(card) if b["text"] == "🖥 Open"] == [{"text": "🖥 Open", "url": f"{PUBLIC}/task/t2"}]
    assert all(len(b.get("callback_data", "").encode()) <= 64 for b in buttons(card))


def test_no_https_public_url_no_open_button_and_the_button_survives_the_store_and_slack(make_app: Any) -> None:
    from core.progress import open_url

    assert open_url(make_app(web={"enabled": True}).config, "t1") == ""  # http://127.0.0.1: Telegram takes no such link
    assert open_url(make_app(web={"enabled": False, "public_url": PUBLIC}).config, "t1") == ""
    keyboard = card_keyboard("t3", "running", open_url=f"{PUBLIC}/task/t3")
    assert keyboard_from_json(keyboard_to_json(keyboard)) == keyboard
    assert from_blocks(to_blocks("x", "", keyboard)) == keyboard
    assert Button("🖥 Open", "open", "t3", url=f"{PUBLIC}/task/t3") in keyboard[0]
