"""The permission path end to end with the real Claude Code and Codex, as a person meets it.

The fake model (tests/fakes/model_server.py, ``script``) asks for three commands in turn: the
tests (allowed by the policy: they run, nobody is asked), a ``curl`` to a server on 127.0.0.1
(asked: the request reaches the fake Telegram or Slack with its buttons, or waits for
``orchestra allow``), and ``rm -rf /`` (refused by the policy, never asked). Allow: the command runs
and what it printed is in the model's next request. Deny: the model reads the person's reason and
the completion lists the refusal. No answer within ``ask_timeout_s``: denied. Real engine, real tmux,
real hook program, real SQLite; the chats are the loopback fakes.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.bridges import start_slack, start_telegram
from core.models import TaskState
from tests.conftest import free_port, orchestra, requires_tmux
from tests.fakes.model_server import FakeModelServer
from tests.fakes.slack import ALICE as SLACK_ALICE
from tests.fakes.slack import BOT_TOKEN, CHANNEL, SIGNING_SECRET, FakeSlack, block_action, form, sign
from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram
from tests.test_real_clis import CASES, Case, _agent, _binary, cli_home  # noqa: F401 - cli_home: a fixture

pytestmark = [pytest.mark.real_cli, requires_tmux, pytest.mark.usefixtures("cli_home")]

CLIS = {c.name: c for c in CASES if c.name in ("claude", "codex")}
GROUP: dict[str, Any] = {"id": -100777, "type": "group", "title": "ops"}
TOKEN_ENV = "ORCH_E2E_TELEGRAM_TOKEN"
SLACK_ENV = {"ORCH_E2E_SLACK_BOT": BOT_TOKEN, "ORCH_E2E_SLACK_SECRET": SIGNING_SECRET}
TESTS = "pytest -q test_ok.py"
REFUSED = "rm -rf /"


class Pong:
    """The server the asked ``curl`` reaches: it answers a fresh token, so its output is recognisable."""

    def __init__(self) -> None:
        self.token = f"pong-{secrets.token_hex(6)}"
        self.hits = 0
        token, pong = self.token.encode(), self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                pong.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(token)))
                self.end_headers()
                self.wfile.write(token)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ping"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Run:
    app: App
    case: Case
    server: FakeModelServer
    pong: Pong
    task_id: str = ""

    def later_bodies(self) -> str:
        """Everything the CLI sent the model (the tool outputs it read among it)."""
        return "\n".join(json.dumps(call.body) for call in self.server.model_calls(self.case.protocol))

    def requests(self) -> list[Any]:
        return self.app.store.task_permissions(self.task_id)


async def until(probe: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


@pytest.fixture
def project(repo: Path, cli_home: Path) -> Path:  # noqa: F811 - the fixture imported above
    """The repository with one test; ``pytest`` on the PATH of a login shell too (Codex runs
    ``bash -lc``, and /etc/profile resets PATH to the system's, which may have no pytest)."""
    (repo / "test_ok.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    found = shutil.which("pytest") or str(Path(sys.executable).with_name("pytest"))
    bindir = str(Path(os.path.realpath(found)).parent)
    (cli_home / ".bash_profile").write_text(f'export PATH="{bindir}:$PATH"\n')
    return repo


@pytest.fixture
async def started(make_app: Any, project: Path) -> AsyncIterator[Callable[..., Any]]:
    """``start(case, **config)``: the fake model scripted, the engine running; stopped afterwards."""
    stack: list[Callable[[], Any]] = []

    async def start(case: Case, **config: Any) -> Run:
        _binary(case)
        pong = Pong()
        server = FakeModelServer(workdir=str(project), script=[TESTS, f"curl -s {pong.url}", REFUSED]).__enter__()
        stack.append(pong.close)
        stack.append(lambda: server.__exit__(None, None, None))
        agent = _agent(case, server, project.parent)
        app: App = make_app(workspace=str(project), **{f"agents__{case.name}": agent}, **config)
        assert app.engine.acquire()
        await app.engine.start()
        stack.append(app.engine.stop)
        run = Run(app, case, server, pong)
        run.task_id = app.service.delegate(
            "run the checks and fetch the status", agent=case.name, cwd=str(project)
        ).task.id
        return run

    yield start
    for undo in reversed(stack):
        result = undo()
        if asyncio.iscoroutine(result):
            await result


def _assert_policy_parts(run: Run) -> None:
    """The tests ran unasked; rm -rf / was refused by the policy and never asked; one question, the curl."""
    bodies = run.later_bodies()
    assert "1 passed" in bodies, "the allowed test run's output reached the model"
    rows = run.requests()
    asked = [r for r in rows if r.decided_by not in ("policy", "grant")]
    refused = [r for r in rows if r.decided_by == "policy"]
    assert [r.subject for r in asked] == [f"curl -s {run.pong.url}"]
    assert [(r.subject, r.state) for r in refused] == [(REFUSED, "denied")]


def _telegram(fake: FakeTelegram) -> dict[str, Any]:
    return {
        "enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": [ALICE["id"]],
        "allowed_chat_ids": [GROUP["id"]], "notify_chat_ids": [GROUP["id"]], "poll_timeout_s": 1,
        "progress_interval_s": 0, "retry_base_s": 0.2, "retry_max_s": 1,
    }  # fmt: skip


def _request_messages(fake: FakeTelegram) -> list[Any]:
    return [m for m in fake.sent if m.chat_id == GROUP["id"] and "perm_allow:" in json.dumps(m.markup)]


@pytest.mark.parametrize(
    ("cli", "answer"), [("claude", "allow"), ("codex", "allow"), ("claude", "deny"), ("codex", "deny")]
)
async def test_telegram_allow_runs_the_command_and_deny_tells_the_model_why(
    started: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, cli: str, answer: str
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    fake = FakeTelegram().start()
    try:
        run = await started(CLIS[cli], notify={"console": False}, digest={"enabled": False}, telegram=_telegram(fake))
        bridge = await start_telegram(run.app, fatal=lambda reason: None)
        try:
            [message] = await until(lambda: _request_messages(fake), "the permission request in Telegram")
            assert message.text.startswith(f"🔐 {run.task_id} · {cli} wants to run: curl -s {run.pong.url}")
            buttons = [b["callback_data"] for row in message.markup["inline_keyboard"] for b in row]
            assert buttons == ["perm_allow:p1", "perm_deny:p1", "perm_task:p1"]
            if answer == "allow":
                fake.tap(message, "perm_allow:p1", user=ALICE)
            else:
                fake.say("no, use the cached status", user=ALICE, chat=GROUP, reply_to=message.message_id)
            task = await run.app.engine.wait_finished(run.task_id, timeout=240)
            completion = await until(
                lambda: [m for m in fake.sent if m.chat_id == GROUP["id"] and "Denied:" in m.text], "the completion"
            )
        finally:
            await bridge.stop()
    finally:
        fake.stop()
    assert task.state == TaskState.SUCCEEDED
    _assert_policy_parts(run)
    bodies = run.later_bodies()
    if answer == "allow":
        assert run.pong.hits == 1 and run.pong.token in bodies, "the allowed curl ran and the model read its output"
        assert "✅ Allowed by @alice (telegram)" in fake.current(message).text
    else:
        assert run.pong.hits == 0 and run.pong.token not in bodies
        assert "use the cached status" in bodies, "the model read the person's reason"
        assert "⛔ Denied by @alice (telegram): use the cached status" in fake.current(message).text
        assert "curl" in completion[-1].text
    assert REFUSED in completion[-1].text and "by policy" in completion[-1].text


async def test_slack_allow_through_the_button(started: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohttp

    for key, value in SLACK_ENV.items():
        monkeypatch.setenv(key, value)
    async with FakeSlack() as fake:
        port = free_port()
        run = await started(
            CLIS["claude"], notify={"console": False}, digest={"enabled": False},
            slack={"enabled": True, "api_base_url": fake.api_url, "mode": "http",
                   "http": {"listen": "127.0.0.1", "port": port}, "bot_token_env": "ORCH_E2E_SLACK_BOT",
                   "signing_secret_env": "ORCH_E2E_SLACK_SECRET", "progress_interval_s": 0,
                   "allowed_user_ids": [SLACK_ALICE["id"]], "allowed_channel_ids": [CHANNEL],
                   "notify_channel_ids": [CHANNEL]},
        )  # fmt: skip
        bridge = await start_slack(run.app)
        try:
            [message] = await fake.wait_for(lambda: fake.find("wants to run"), what="the request in Slack", timeout=120)
            assert message.buttons() == ["perm_allow:p1", "perm_deny:p1", "perm_task:p1"]
            body = form({"payload": json.dumps(block_action(message, "perm_allow:p1", user=SLACK_ALICE))})
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"http://127.0.0.1:{port}/slack/events", data=body.encode(), headers=headers) as response,
            ):
                assert response.status == 200
            task = await run.app.engine.wait_finished(run.task_id, timeout=240)
            await fake.wait_for(lambda: "✅ Allowed by @" in message.text, what="the edit to the outcome")
        finally:
            await bridge.stop()
    assert task.state == TaskState.SUCCEEDED
    _assert_policy_parts(run)
    assert run.pong.hits == 1 and run.pong.token in run.later_bodies()


@pytest.mark.parametrize("cli", ["codex", "claude"])
async def test_the_cli_answers_and_a_timeout_denies(started: Callable[..., Any], cli: str) -> None:
    """``orchestra pending`` lists the question and ``orchestra allow`` answers it; then, with a short
    ``ask_timeout_s``, the same question unanswered is denied and the model is told so."""
    run = await started(CLIS[cli], notify={"console": False}, digest={"enabled": False})
    env = {"ORCHESTRA_HOME": str(run.app.home)}
    config = run.app.config_path
    await until(lambda: run.app.store.open_permissions(run.task_id), "the question")
    pending = await asyncio.to_thread(orchestra, "pending", config=config, env=env)
    assert f"curl -s {run.pong.url}" in pending.stdout and run.task_id in pending.stdout
    allowed = await asyncio.to_thread(orchestra, "allow", run.task_id, config=config, env=env)
    assert allowed.returncode == 0, allowed.stderr
    task = await run.app.engine.wait_finished(run.task_id, timeout=240)
    assert task.state == TaskState.SUCCEEDED
    _assert_policy_parts(run)
    assert run.pong.hits == 1 and run.pong.token in run.later_bodies()
    [asked] = [r for r in run.requests() if r.decided_by not in ("policy", "grant")]
    assert (asked.state, asked.via) == ("allowed", "cli")


@pytest.mark.parametrize("cli", ["claude", "codex"])
async def test_a_question_nobody_answers_is_denied_at_its_timeout(started: Callable[..., Any], cli: str) -> None:
    run = await started(CLIS[cli], notify={"console": False}, digest={"enabled": False}, permissions__ask_timeout_s=2)
    task = await run.app.engine.wait_finished(run.task_id, timeout=240)
    assert task.state == TaskState.SUCCEEDED
    _assert_policy_parts(run)
    [asked] = [r for r in run.requests() if r.decided_by not in ("policy", "grant")]
    assert (asked.state, asked.decided_by) == ("timed_out", "timeout")
    assert run.pong.hits == 0 and "No one answered the permission request" in run.later_bodies()
    assert os.path.exists(run.app.home)
