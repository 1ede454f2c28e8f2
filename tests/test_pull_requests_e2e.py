"""Open PR as a person meets it: a task on its own branch finishes, its completion in Telegram carries
Open PR, a tap pushes the branch to the project's remote (a local bare repository) and opens one
pull request on a fake GitHub API on 127.0.0.1, and the link reaches Telegram and Slack. A 401 is
one clear line and loses nothing: the branch and the button still work once the token is right.
Real git, real tmux, the real engine and bridges, the fake Bot API and fake Slack."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.bridges import start_slack, start_telegram
from tests.conftest import free_port, requires_tmux
from tests.fakes.github import REPO, TOKEN, FakeForge
from tests.fakes.slack import ALICE as SLACK_ALICE
from tests.fakes.slack import BOT_TOKEN, CHANNEL, SIGNING_SECRET, FakeSlack
from tests.fakes.telegram import ALICE, FakeTelegram
from tests.fakes.telegram import TOKEN as TELEGRAM_TOKEN
from tests.test_permission_requests import until

pytestmark = requires_tmux

GROUP = -100123
_WRITE = "import sys; open('login.py', 'w').write('def login():\\n    return True\\n'); print('wrote login.py')"
WRITER = {"kind": "command", "command": sys.executable, "args": ["-c", _WRITE, "{task}"]}
ENV = {"ORCH_TEST_TG": TELEGRAM_TOKEN, "ORCH_TEST_SLACK_BOT": BOT_TOKEN, "ORCH_TEST_SLACK_SECRET": SIGNING_SECRET}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def bare(tmp_path: Path, repo: Path) -> Path:
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    git(repo, "remote", "add", "origin", str(path))
    git(repo, "push", "-q", "origin", "HEAD")
    return path


@pytest.fixture
async def bot(
    make_app: Any, repo: Path, bare: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[App, FakeTelegram, FakeSlack, FakeForge]]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ORCH_TEST_GH", "ghp_not_the_right_one_0000000000000000000")
    with FakeForge(bare=bare) as forge:
        telegram = FakeTelegram().start()
        async with FakeSlack() as slack:
            app: App = make_app(
                agents__writer=WRITER, notify={"console": False}, digest={"enabled": False},
                projects={"api": {"path": str(repo), "remote": "origin", "pull_requests": {
                    "repo": REPO, "token_env": "ORCH_TEST_GH", "api_base_url": forge.url}}},
                default_project="api",
                telegram={"enabled": True, "api_base_url": telegram.url, "token_env": "ORCH_TEST_TG",
                          "allowed_user_ids": [ALICE["id"]], "allowed_chat_ids": [GROUP], "notify_chat_ids": [GROUP],
                          "poll_timeout_s": 1, "progress_interval_s": 0, "retry_base_s": 0.2, "retry_max_s": 1},
                slack={"enabled": True, "api_base_url": slack.api_url, "mode": "http",
                       "http": {"listen": "127.0.0.1", "port": free_port()}, "bot_token_env": "ORCH_TEST_SLACK_BOT",
                       "signing_secret_env": "ORCH_TEST_SLACK_SECRET", "progress_interval_s": 0,
                       "allowed_user_ids": [SLACK_ALICE["id"]], "allowed_channel_ids": [CHANNEL],
                       "notify_channel_ids": [CHANNEL]},
            )  # fmt: skip
            assert app.engine.acquire()
            await app.engine.start()
            telegram_bridge = await start_telegram(app, fatal=lambda reason: None)
            slack_bridge = await start_slack(app)
            try:
                yield app, telegram, slack, forge
            finally:
                await telegram_bridge.stop()
                await slack_bridge.stop()
                await app.engine.stop()
                telegram.stop()


def callback_data(message: Any) -> list[str]:
    return [b["callback_data"] for row in (message.markup or {}).get("inline_keyboard", []) for b in row]


async def test_open_pr_pushes_the_branch_opens_one_pull_request_and_the_link_reaches_both_chats(
    bot: tuple[App, FakeTelegram, FakeSlack, FakeForge], repo: Path, bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, telegram, slack, forge = bot
    main = git(repo, "symbolic-ref", "--short", "HEAD")
    task = app.service.delegate("Add the login page\nwith a login() that says yes", agent="writer").task
    done = await app.engine.wait_finished(task.id, timeout=30)
    [completion] = await until(lambda: telegram.find(GROUP, f"{task.id} succeeded"), "the completion in Telegram")
    assert callback_data(completion) == [
        f"merge:{task.id}", f"pr:{task.id}", f"diff:{task.id}", f"discard:{task.id}", f"log:{task.id}",
        f"retry:{task.id}",
    ]  # fmt: skip

    # The token is wrong: GitHub says 401; one line, and nothing is lost.
    telegram.tap(completion, f"pr:{task.id}")
    [refused] = await until(lambda: telegram.find(GROUP, "refused the token"), "the 401 in Telegram")
    assert "GitHub refused the token in ORCH_TEST_GH (401 Bad credentials)" in refused.text
    assert "ghp_" not in refused.text
    assert app.service.get(task.id).pr_url is None and git(repo, "branch", "--list", str(done.branch))
    assert callback_data(telegram.current(completion))[:2] == [f"merge:{task.id}", f"pr:{task.id}"]

    monkeypatch.setenv("ORCH_TEST_GH", TOKEN)
    telegram.tap(completion, f"pr:{task.id}")
    [opened] = await until(lambda: telegram.find(GROUP, "pull request #1 opened"), "the PR link in Telegram")
    url = f"{forge.url}/{REPO}/pull/1"
    assert url in opened.text
    await slack.wait_for(lambda: slack.find(url), what="the PR link in Slack")
    [post] = [c for c in forge.posts() if c.status == 201]
    assert post.path == f"/repos/{REPO}/pulls" and post.headers["authorization"] == f"Bearer {TOKEN}"
    assert (post.body["head"], post.body["base"], post.body["title"]) == (done.branch, main, "Add the login page")
    assert "> with a login() that says yes" in post.body["body"] and "`login.py` +2 −0" in post.body["body"]
    assert git(bare, "rev-parse", str(done.branch)) == git(repo, "rev-parse", str(done.branch))  # pushed
    assert app.service.get(task.id).pr_url == url

    telegram.tap(completion, f"pr:{task.id}")  # again: the same pull request, not a second one
    await until(lambda: telegram.find(GROUP, "pull request #1 was already open"), "the second answer")
    assert len([c for c in forge.posts() if c.status == 201]) == 1
    assert [r["detail"].endswith(url) for r in app.service.audit_log(task.id) if r["action"] == "pr"] == [True, True]


async def test_no_token_no_pr_button_and_one_line_says_why(
    bot: tuple[App, FakeTelegram, FakeSlack, FakeForge], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, telegram, _slack, _forge = bot
    monkeypatch.delenv("ORCH_TEST_GH")
    task = app.service.delegate("Add the login page", agent="writer").task
    await app.engine.wait_finished(task.id, timeout=30)
    [completion] = await until(lambda: telegram.find(GROUP, f"{task.id} succeeded"), "the completion")
    assert f"pr:{task.id}" not in callback_data(completion)
    assert "No Open PR: ORCH_TEST_GH is not set (projects.api.pull_requests.token_env)" in completion.text
