"""The Slack transport's pure parts and its sender, without tmux: words to commands, mrkdwn, Block Kit,
the ``slack:`` config section, and how Web API failures become the outbox's typed errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.slack_messages import SlackSender, command_text, escape, event_to_inbound, from_blocks, to_blocks, web_client
from core.config import SlackConfig, parse_config
from core.errors import ConfigError, DeliveryFailed, RetryLater
from core.messages import Button, OutboxItem
from core.store import Store
from tests.conftest import base_config
from tests.fakes.slack import BOT_TOKEN, BOT_USER, CHANNEL, FakeSlack, mention


@pytest.mark.parametrize(
    ("typed", "explicit", "command"),
    [
        ("status", True, "/status"),
        ("", True, "/help"),
        ("fix the login bug", True, "fix the login bug"),
        ("reject t3 too slow", False, "/reject t3 too slow"),
        ("status", False, "/status"),
        ("log t4", False, "/log t4"),
        ("log errors in the parser", False, "log errors in the parser"),
        ("retry the flaky test", False, "retry the flaky test"),
        ("delegate write docs", False, "/delegate write docs"),
        ("kill", False, "/kill"),
        ("kill 3 zombie processes", False, "kill 3 zombie processes"),
        ("log errors", True, "/log errors"),
        ("budget day 25", False, "/budget day 25"),
        ("budget the sprint for the team", False, "budget the sprint for the team"),
    ],
)
def test_words_become_commands_only_where_they_mean_one(typed: str, explicit: bool, command: str) -> None:
    assert command_text(typed, explicit=explicit) == command


def test_mrkdwn_control_characters_are_escaped_and_typed_ones_unescaped() -> None:
    assert escape("a<b && c>d <@U1>") == "a&lt;b &amp;&amp; c&gt;d &lt;@U1&gt;"
    payload = mention("fix a&lt;b &amp;&amp; c&gt;d")
    inbound = event_to_inbound(payload, BOT_USER)
    assert inbound is not None and inbound.text == "fix a<b && c>d", "the mention is stripped, the text unescaped"
    assert event_to_inbound({"event": {**payload["event"], "bot_id": "B2"}}, BOT_USER) is None


def test_block_kit_buttons_come_back_as_the_same_keyboard() -> None:
    keyboard = ((Button("✅ Approve", "approve", "t1"), Button("✖ Reject", "reject", "t1")), (Button("k", "kill"),))
    blocks = to_blocks("t1 <needs> approval", "log & tail", keyboard)
    assert blocks[0]["text"]["text"] == "t1 &lt;needs&gt; approval"
    assert blocks[1]["text"]["text"] == "```log &amp; tail```"
    assert from_blocks(blocks) == keyboard


def test_the_slack_section_is_off_by_default_and_a_missing_secret_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = base_config("orch-unused")
    config = parse_config(data)
    assert not config.slack.enabled and config.slack.mode == "socket" and "slack" not in config.channels()
    data["slack"] = {"enabled": True, "mode": "http", "signing_secret_env": "ORCH_NO_SUCH_SECRET"}
    config = parse_config(data)
    assert "slack" in config.channels() and config.slack.http.listen == "127.0.0.1"
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.delenv("ORCH_NO_SUCH_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"^slack.signing_secret_env: the environment variable ORCH_NO_SUCH_SECRET"):
        config.slack.check_secrets()
    data["slack"] = {"mode": "webhook"}
    with pytest.raises(ConfigError, match=r"slack.mode: must be one of"):
        parse_config(data)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


async def test_the_sender_maps_429_5xx_and_refusals_to_the_outbox_errors(fake: FakeSlack, tmp_path: Path) -> None:
    store = Store(tmp_path / "o.db")
    sender = SlackSender(web_client(SlackConfig(api_base_url=fake.api_url), BOT_TOKEN, retry_rate_limits=False), store)
    item = OutboxItem(id=1, channel="slack", kind="reply", chat_id=CHANNEL, text="hi", dedupe_key="k")
    try:
        fake.fail_next("chat.postMessage", 429, retry_after=7)
        with pytest.raises(RetryLater) as later:
            await sender.deliver(item)
        assert later.value.after_s == 7
        fake.fail_next("chat.postMessage", 500)
        with pytest.raises(DeliveryFailed) as failed:
            await sender.deliver(item)
        assert not failed.value.permanent
        edit = OutboxItem(id=2, channel="slack", kind="edit", chat_id=CHANNEL, text="x", dedupe_key="e",
                          edit_message_id="1.0")  # fmt: skip
        with pytest.raises(DeliveryFailed, match="message_not_found") as refused:
            await sender.deliver(edit)
        assert refused.value.permanent
        assert await sender.deliver(item) == fake.messages[0].ts
    finally:
        store.close()
