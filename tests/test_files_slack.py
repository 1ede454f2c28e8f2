"""Files both ways over Slack, end to end: a file shared in a DM with a task is downloaded with the bot
token into the task's ``.orchestra/inbox/`` and named in the prompt; what the agent leaves in
``.orchestra/outbox/`` is uploaded back (files.getUploadURLExternal, the POST, completeUploadExternal).

Real Bolt in HTTP mode, engine, tmux, SQLite and git; the fake Slack serves the Web API, the uploads
and the private file downloads (tests/fakes/slack_files.py).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import App
from bot.bridges import start_slack
from core.models import TaskState
from tests.conftest import free_port, requires_tmux
from tests.fakes.slack import ALICE, APP_TOKEN, BOT_TOKEN, CHANNEL, DM, SIGNING_SECRET, block_action, form, sign
from tests.fakes.slack_files import FakeSlackFiles, file_message
from tests.fakes.transcription import FakeTranscriber
from tests.test_files import AGENT, PHOTO, until

pytestmark = requires_tmux

ENV = {"ORCH_FILES_SLACK_BOT": BOT_TOKEN, "ORCH_FILES_SLACK_APP": APP_TOKEN, "ORCH_FILES_SLACK_SECRET": SIGNING_SECRET}


class Workspace:
    def __init__(
        self, app: App, fake: FakeSlackFiles, port: int, record: Path, http: aiohttp.ClientSession,
        transcriber: FakeTranscriber,
    ) -> None:  # fmt: skip
        self.app, self.fake, self.port, self.record, self.http = app, fake, port, record, http
        self.transcriber = transcriber

    async def tap(self, message: Any, value: str) -> int:
        body = form({"payload": json.dumps(block_action(message, value))})
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
        async with self.http.post(f"http://127.0.0.1:{self.port}/slack/events", data=body, headers=headers) as got:
            return got.status

    async def event(self, payload: dict[str, Any]) -> int:
        body = json.dumps(payload)
        headers = {"Content-Type": "application/json", **sign(body)}
        async with self.http.post(f"http://127.0.0.1:{self.port}/slack/events", data=body, headers=headers) as got:
            return got.status

    def runs(self) -> list[dict[str, Any]]:
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        return [json.loads(line) for line in lines]


@pytest.fixture
async def workspace(
    make_app: Any, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Workspace]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    record = tmp_path / "runs.jsonl"
    agent = {
        "kind": "command", "command": f"{sys.executable} {script}", "args": ["{task}"],
        "env": {"RECORD_TO": str(record)},
    }  # fmt: skip
    monkeypatch.setenv("ORCH_FILES_VOICE_KEY", "sk-slack-voice-key-0123")
    async with FakeSlackFiles() as fake, contextlib.AsyncExitStack() as stack:
        transcriber = stack.enter_context(FakeTranscriber(text="add a dark mode toggle"))
        port = free_port()
        slack = {
            "enabled": True, "api_base_url": fake.api_url, "mode": "http",
            "http": {"listen": "127.0.0.1", "port": port},
            "bot_token_env": "ORCH_FILES_SLACK_BOT", "app_token_env": "ORCH_FILES_SLACK_APP",
            "signing_secret_env": "ORCH_FILES_SLACK_SECRET", "allowed_user_ids": [ALICE["id"]],
            "allowed_channel_ids": [CHANNEL], "progress_interval_s": 0, "retry_base_s": 0.2, "retry_max_s": 2,
        }  # fmt: skip
        app: App = make_app(
            workspace=str(repo), agents__scripted=agent, routing={"default_agent": "scripted"},
            limits__isolation="worktree", slack=slack, notify={"console": False}, digest={"enabled": False},
            policy={"approval_for": [], "review_for": []},
            voice={"url": transcriber.base_url, "key_env": "ORCH_FILES_VOICE_KEY"},
        )  # fmt: skip
        assert app.engine.acquire()
        await app.engine.start()
        bridge = await start_slack(app)
        http = aiohttp.ClientSession()
        try:
            yield Workspace(app, fake, port, record, http, transcriber)
        finally:
            await http.close()
            await bridge.stop()
            await app.engine.stop()


async def test_a_file_shared_with_a_task_lands_in_the_worktree_and_the_report_is_uploaded(workspace: Workspace) -> None:
    shot = workspace.fake.share(PHOTO, "screen shot.png", "image/png")
    status = await workspace.event(file_message("fix the layout shown here and write a report", [shot]))
    assert status == 200
    tasks = await until(lambda: workspace.app.store.list_tasks(limit=1), "the task")
    task = await workspace.app.engine.wait_finished(tasks[0].id, timeout=60)
    assert task.state == TaskState.SUCCEEDED, task.error

    [run] = workspace.runs()
    assert set(run["inbox"]) == {"screen_shot.png"}
    assert bytes.fromhex(run["inbox"]["screen_shot.png"]) == PHOTO
    assert "Attached files (in .orchestra/inbox/): screen_shot.png" in run["prompt"]
    assert task.worktree and Path(run["cwd"]).resolve() == Path(task.worktree).resolve()
    assert workspace.fake.downloads == [(shot["id"], "ok")], "fetched once, with the bot token"

    uploaded = await workspace.fake.wait_for(lambda: workspace.fake.files, what="the report uploaded")
    assert [(f["filename"], f["data"], f["channel"]) for f in uploaded] == [
        ("report.txt", b"the layout is fixed\n", DM)
    ]
    assert workspace.fake.calls_of("files.getUploadURLExternal") and workspace.fake.calls_of(
        "files.completeUploadExternal"
    )


async def test_a_file_whose_address_is_not_slacks_is_not_fetched(workspace: Workspace) -> None:
    elsewhere = {
        **workspace.fake.share(b"data", "x.txt", "text/plain"),
        "url_private_download": "https://evil.example/x",
    }
    await workspace.event(file_message("read this", [elsewhere], event_id="EvFile2"))
    [line] = await workspace.fake.wait_for(lambda: workspace.fake.find("Could not fetch"), what="the refusal")
    assert line.text.startswith("📎 Could not fetch x.txt from slack: its download address is not Slack's")
    assert workspace.app.store.list_tasks(limit=5) == []
    assert workspace.fake.downloads == []


async def test_an_oversized_slack_file_is_refused_in_one_line(workspace: Workspace) -> None:
    big = workspace.fake.share(b"z" * 10, "video.mov", "video/quicktime", size=30 << 20)
    await workspace.event(file_message("cut this", [big], event_id="EvFile3"))
    [line] = await workspace.fake.wait_for(lambda: workspace.fake.find("video.mov"), what="the refusal")
    assert "is 30.0 MB; the limit is 20.0 MB (files.max_mb), so nothing was started." in line.text
    assert workspace.app.store.list_tasks(limit=5) == [] and workspace.fake.downloads == []


async def test_a_slack_audio_clip_becomes_a_task_after_run(workspace: Workspace) -> None:
    clip = workspace.fake.share(b"\x1aE\xdf\xa3webm-audio", "audio_message.webm", "audio/webm", subtype="slack_audio")
    await workspace.event(file_message("", [clip], event_id="EvVoice1"))
    [shown] = await workspace.fake.wait_for(lambda: workspace.fake.find("said:"), what="the transcript")
    assert "add a dark mode toggle" in shown.text
    assert shown.buttons() == ["voice_run:v1", "voice_edit:v1"], "Block Kit buttons"
    [heard] = workspace.transcriber.requests
    assert heard.file_bytes == b"\x1aE\xdf\xa3webm-audio" and heard.authorization == "Bearer sk-slack-voice-key-0123"
    assert workspace.app.store.list_tasks(limit=5) == []
    assert await workspace.tap(shown, "voice_run:v1") == 200
    tasks = await until(lambda: workspace.app.store.list_tasks(limit=5), "the task")
    assert tasks[0].text == "add a dark mode toggle"
