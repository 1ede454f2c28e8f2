"""The web dashboard over real HTTP and WebSockets: sign-in, refusals, the live list, terminals, buttons, metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from bot.web.auth import Refused, check_init_data, role_of
from bot.web.server import COOKIE
from core.commands import Commands
from core.messages import ChatRef as Chat
from core.messages import Inbound
from core.models import TaskState
from core.service.web import token_digest
from tests.web_bot import ALLOWED, BOT_TOKEN, STRANGER, WebBot, sign_init_data


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebBot]:
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("web")
    mp.setenv("ORCHESTRA_HOME", str(root / "home"))
    mp.setenv("WEB_TEST_BOT_TOKEN", BOT_TOKEN)
    mp.delenv("TMUX", raising=False)
    bot = WebBot(root).start()
    yield bot
    bot.stop()
    mp.undo()


@pytest.fixture
async def http(bot: WebBot) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def signed_in(http: aiohttp.ClientSession, bot: WebBot) -> str:
    """Sign in with a fresh one-time link; the session's CSRF token."""
    token = bot.link().split("#", 1)[1]
    async with http.post(f"{bot.url}/api/login", json={"token": token}, headers={"Origin": bot.url}) as r:
        assert r.status == 200
        return str((await r.json())["csrf"])


# -- initData, as Telegram signs it -------------------------------------------------------------
def test_init_data_signed_with_the_bot_token_names_its_user() -> None:
    now = time.time()
    user = check_init_data(sign_init_data(ALLOWED, now - 5), BOT_TOKEN, now, 3600)
    assert (user.user_id, user.name) == (str(ALLOWED), "alice")


def test_init_data_with_a_wrong_hash_another_token_or_a_stale_date_is_refused() -> None:
    now = time.time()
    good = sign_init_data(ALLOWED, now)
    forged = good.replace(f"%22id%22%3A+{ALLOWED}", f"%22id%22%3A+{STRANGER}")
    assert forged != good
    for data, why in [
        (forged, "hash"),
        (sign_init_data(ALLOWED, now, token="654321:OTHER"), "hash"),
        (good.rsplit("hash=", 1)[0] + "hash=" + "0" * 64, "hash"),
        (sign_init_data(ALLOWED, now - 7200), "old"),
        ("user=x", "hash"),
    ]:
        with pytest.raises(Refused, match=why):
            check_init_data(data, BOT_TOKEN, now, 3600)


async def test_mini_app_sign_in_for_an_allowed_user_and_not_for_a_stranger(bot: WebBot, http: Any) -> None:
    now = time.time()
    headers = {"Origin": bot.url}
    async with http.post(
        f"{bot.url}/api/miniapp", json={"init_data": sign_init_data(STRANGER, now)}, headers=headers
    ) as r:
        assert r.status == 403 and "task" not in await r.text()
    async with http.post(f"{bot.url}/api/miniapp", json={"init_data": "auth_date=1&hash=00"}, headers=headers) as r:
        assert r.status == 401
    async with http.post(
        f"{bot.url}/api/miniapp", json={"init_data": sign_init_data(ALLOWED, now)}, headers=headers
    ) as r:
        assert r.status == 200
    async with http.get(f"{bot.url}/api/me") as r:
        me = await r.json()
    assert (me["user"], me["role"]) == (f"telegram:{ALLOWED}", "admin")
    assert role_of(bot.app.config, f"telegram:{STRANGER}") is None


# -- links, cookies and refusals ----------------------------------------------------------------
async def test_a_link_signs_in_once_with_a_strict_httponly_cookie(bot: WebBot, http: Any) -> None:
    token = bot.link().split("#", 1)[1]
    assert token_digest(token) not in token and bot.link().startswith(f"{bot.url}/login#")
    async with http.post(f"{bot.url}/api/login", json={"token": token}, headers={"Origin": bot.url}) as r:
        assert r.status == 200
        cookie = r.headers["Set-Cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    login, origin = f"{bot.url}/api/login", {"Origin": bot.url}  # the same link again, from anywhere
    async with aiohttp.ClientSession() as other, other.post(login, json={"token": token}, headers=origin) as r:
        assert r.status == 401 and await r.text() == "401: Unauthorized"
    stored = bot.cli.store._conn.execute("SELECT digest FROM web_links").fetchall()
    assert all(token not in row[0] for row in stored)


async def test_an_expired_link_a_missing_cookie_and_a_cross_site_post_are_refused(bot: WebBot, http: Any) -> None:
    bot.cli.store.add_web_link(token_digest("expired-token"), "cli:local", "local", time.time() - 600, time.time() - 1)
    async with http.post(f"{bot.url}/api/login", json={"token": "expired-token"}, headers={"Origin": bot.url}) as r:
        assert r.status == 401
    for path in ("/api/tasks", "/api/me", "/api/costs", "/api/task/t1"):
        async with http.get(bot.url + path) as r:
            assert r.status == 401 and "t1" not in await r.text()
    csrf = await signed_in(http, bot)
    delegated = bot.cli.service.delegate("deploy the docker image to production", cwd=str(bot.root))
    assert delegated.task.state == TaskState.AWAITING_APPROVAL
    url = f"{bot.url}/api/task/{delegated.task.id}/reject"
    for headers in ({"Origin": "https://evil.example", "X-CSRF-Token": csrf}, {"X-CSRF-Token": csrf},
                    {"Origin": bot.url}, {"Origin": bot.url, "X-CSRF-Token": "wrong"}):  # fmt: skip
        async with http.post(url, json={}, headers=headers) as r:
            assert r.status == 403, headers
    assert bot.cli.service.get(delegated.task.id).state == TaskState.AWAITING_APPROVAL
    async with http.post(url, json={}, headers={"Origin": bot.url, "X-CSRF-Token": csrf}) as r:
        assert r.status == 200
    assert bot.cli.service.get(delegated.task.id).state == TaskState.REJECTED
    rows = bot.cli.service.audit_log(delegated.task.id, action="reject")
    assert rows[0]["source"] == "web" and rows[0]["chat"] == "web user cli:local"


async def test_a_websocket_without_a_session_or_from_another_site_is_refused(bot: WebBot, http: Any) -> None:
    async with aiohttp.ClientSession() as stranger:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await stranger.ws_connect(f"{bot.url}/ws", headers={"Origin": bot.url})
        assert refused.value.status == 401
    await signed_in(http, bot)
    with pytest.raises(aiohttp.WSServerHandshakeError) as cross:
        await http.ws_connect(f"{bot.url}/ws", headers={"Origin": "https://evil.example"})
    assert cross.value.status == 403
    async with http.ws_connect(f"{bot.url}/ws?token=anything", headers={"Origin": bot.url}) as ws:
        first = json.loads((await ws.receive(timeout=5)).data)
    assert first["t"] == "tasks"


async def test_revoke_all_signs_every_browser_out(bot: WebBot, http: Any) -> None:
    await signed_in(http, bot)
    async with http.get(f"{bot.url}/api/costs") as r:
        costs = await r.json()
    assert {"today", "this month"} <= set(costs["periods"]) and "by_agent" in costs
    async with http.get(f"{bot.url}/api/me") as r:
        assert r.status == 200
    from core.service import LOCAL

    assert bot.cli.service.revoke_web_sessions(actor=LOCAL) >= 1
    async with http.get(f"{bot.url}/api/me") as r:
        assert r.status == 401


# -- live ---------------------------------------------------------------------------------------
async def test_the_list_is_live_and_a_terminal_streams_what_the_task_writes(bot: WebBot, http: Any) -> None:
    await signed_in(http, bot)
    async with http.ws_connect(f"{bot.url}/ws", headers={"Origin": bot.url}) as ws:
        await ws.receive(timeout=5)
        task = bot.cli.service.delegate("stream some ticks", agent="ticker", cwd=str(bot.root)).task

        async def until(check: Any) -> dict[str, Any]:
            while True:
                message: dict[str, Any] = json.loads((await ws.receive(timeout=10)).data)
                if check(message):
                    return message

        listed = await until(lambda m: m["t"] == "tasks" and any(t["id"] == task.id for t in m["tasks"]))
        assert listed["tasks"][0]["agent"] == "ticker"
        await until(
            lambda m: m["t"] == "tasks" and any(t["id"] == task.id and t["state"] == "running" for t in m["tasks"])
        )
        await ws.send_str(json.dumps({"watch": [task.id]}))
        seen = ""
        while "tick 5" not in seen:
            message = await until(lambda m: m["t"] == "out" and m["task"] == task.id)
            seen += message["d"]
        assert "\x1b[32mtick" in seen  # the colours as the program wrote them
        assert len(bot.server.hub.tails) == 1 if bot.server else False
    await asyncio.sleep(0.3)
    assert bot.server is not None and task.id not in bot.server.hub.tails  # the last viewer left: no tailer
    bot.cli.service.cancel(task.id)


async def test_approve_on_the_dashboard_starts_a_held_task(bot: WebBot, http: Any) -> None:
    csrf = await signed_in(http, bot)
    held = bot.cli.service.delegate("deploy the docker image to staging", cwd=str(bot.root)).task
    assert held.state == TaskState.AWAITING_APPROVAL
    async with http.get(f"{bot.url}/api/task/{held.id}") as r:
        assert "approve" in (await r.json())["buttons"]
    async with http.post(
        f"{bot.url}/api/task/{held.id}/approve", headers={"Origin": bot.url, "X-CSRF-Token": csrf}
    ) as r:
        assert r.status == 200
    bot.wait_for(lambda: bot.cli.service.get(held.id).state != TaskState.AWAITING_APPROVAL)
    async with http.post(
        f"{bot.url}/api/task/{held.id}/approve", headers={"Origin": bot.url, "X-CSRF-Token": csrf}
    ) as r:
        assert r.status == 409 and "already approved" in (await r.json())["error"]


def test_the_web_command_gives_a_link_in_a_private_chat_only(bot: WebBot) -> None:
    commands = Commands(bot.cli.service, bot.cli.clock)
    private = Chat("telegram", str(ALLOWED), private=True)
    [answer] = commands.handle(
        Inbound(chat=private, user_id=str(ALLOWED), user_name="@alice", text="/web", message_id="1")
    )
    assert f"{bot.url}/login#" in answer.text
    token = answer.text.split("#", 1)[1].split()[0]
    assert bot.cli.store.use_web_link(token_digest(token), time.time()) == (f"telegram:{ALLOWED}", "@alice")
    group = Chat("telegram", "-100", private=False)
    [answer] = commands.handle(
        Inbound(chat=group, user_id=str(ALLOWED), user_name="@alice", text="/web", message_id="2")
    )
    assert "/login#" not in answer.text and "private chat" in answer.text


def test_the_metrics_count_viewers_and_frames(bot: WebBot) -> None:
    assert bot.server is not None
    names = {family.name: family.samples[0].value for family in bot.server.hub.families()}
    assert set(names) == {"orchestra_web_viewers", "orchestra_web_tails", "orchestra_web_frames_sent"}
    assert names["orchestra_web_frames_sent"] > 0


def test_the_sessions_migration_is_applied(bot: WebBot) -> None:
    assert "016_web_sessions" in bot.cli.store.applied_migrations()


def test_orchestra_web_prints_a_link_and_revoke_all_ends_the_sessions(bot: WebBot) -> None:
    from tests.conftest import orchestra

    env = {"ORCHESTRA_HOME": str(bot.root / "home")}
    out = orchestra("web", config=bot.config_path, env=env)
    assert out.returncode == 0 and f"{bot.url}/login#" in out.stdout, out.stderr
    out = orchestra("web", "--revoke-all", config=bot.config_path, env=env)
    assert out.returncode == 0 and "session(s) ended" in out.stdout
    assert bot.cli.store._conn.execute("SELECT COUNT(*) FROM web_links").fetchone()[0] == 0
    assert bot.cli.service.audit_log(action="web")[0]["detail"].startswith("revoked all")
