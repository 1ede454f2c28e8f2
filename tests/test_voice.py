"""Voice notes as tasks, end to end: a Telegram voice note goes to a fake OpenAI-compatible transcription
endpoint (it records the multipart request), the transcript comes back with Run / Edit, and Run makes
the task, once. Without an endpoint the note gets one line saying how to set it up.

Real engine, tmux and SQLite; the fake Bot API (tests/fakes/telegram_files.py) and the fake endpoint
(tests/fakes/transcription.py); the agent records the prompt it got.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import App
from bot.bridges import start_telegram
from core.commands import Commands
from core.config import load_config
from core.config.files import VoiceConfig
from core.errors import ConfigError
from core.messages import ChatRef, Inbound, Tap
from core.models import TaskState
from core.voice import TranscriptionFailed, transcribe
from tests.conftest import base_config, free_port, requires_tmux
from tests.fakes.telegram import ALICE, MALLORY, TOKEN, buttons_of
from tests.fakes.telegram_files import FakeTelegramFiles
from tests.fakes.transcription import FakeTranscriber
from tests.test_files import AGENT, CHAT, Phone, until

pytestmark = requires_tmux

TOKEN_ENV = "ORCH_VOICE_TELEGRAM_TOKEN"
KEY_ENV = "ORCH_VOICE_KEY"
KEY = "sk-voice-test-key-0123456789"
OGG = b"OggS\x00\x02" + bytes(range(200)) * 20
HEARD = "fix the login bug on the settings page"


@pytest.fixture
async def voice(
    make_app: Any, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Phone, FakeTranscriber]]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(KEY_ENV, KEY)
    configured = getattr(request, "param", True)
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    record = tmp_path / "runs.jsonl"
    fake = FakeTelegramFiles()
    fake.start()
    with FakeTranscriber(text=f"  {HEARD}  ") as transcriber:
        agent = {
            "kind": "command", "command": f"{sys.executable} {script}", "args": ["{task}"],
            "env": {"RECORD_TO": str(record)},
        }  # fmt: skip
        telegram = {
            "enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": [CHAT],
            "notify_chat_ids": [CHAT], "poll_timeout_s": 1, "progress_interval_s": 0, "retry_base_s": 0.2,
            "retry_max_s": 1,
        }  # fmt: skip
        settings = {"url": transcriber.base_url, "key_env": KEY_ENV, "model": "whisper-large-v3"} if configured else {}
        app: App = make_app(
            workspace=str(repo), agents__scripted=agent, routing={"default_agent": "scripted"}, voice=settings,
            notify={"console": False}, digest={"enabled": False}, telegram=telegram,
        )  # fmt: skip
        assert app.engine.acquire()
        await app.engine.start()
        bridge = await start_telegram(app, fatal=lambda reason: None)
        try:
            yield Phone(app, fake, record), transcriber
        finally:
            await bridge.stop()
            await app.engine.stop()
            fake.stop()


async def test_a_voice_note_becomes_a_confirmed_task(voice: tuple[Phone, FakeTranscriber]) -> None:
    phone, transcriber = voice
    phone.fake.send_file("voice", OGG)
    [shown] = await until(lambda: phone.said("said:"), "the transcript")
    assert shown.text.startswith(f"🎙 v1 · @alice said:\n{HEARD}\n")
    assert buttons_of(shown) == ["voice_run:v1", "voice_edit:v1"]
    assert phone.app.store.list_tasks(limit=5) == [], "nothing runs before it is confirmed"

    [heard] = transcriber.requests
    assert heard.path == "/v1/audio/transcriptions"
    assert heard.authorization == f"Bearer {KEY}"
    assert heard.fields == {"model": "whisper-large-v3", "response_format": "json"}
    assert (heard.file_name.endswith(".ogg"), heard.file_type, heard.file_bytes) == (True, "audio/ogg", OGG)

    phone.fake.tap(shown, "voice_run:v1")
    tasks = await until(lambda: phone.app.store.list_tasks(limit=5), "the task")
    task = await phone.app.engine.wait_finished(tasks[0].id, timeout=60)
    assert task.state == TaskState.SUCCEEDED, task.error
    assert task.text == HEARD and task.requester == "@alice"
    assert phone.runs()[0]["prompt"] == HEARD
    await until(lambda: "Run as t1 by @alice" in phone.fake.current(shown).text, "the transcript marked as run")
    assert buttons_of(phone.fake.current(shown)) == []

    phone.fake.tap(shown, "voice_run:v1")  # a second tap (a stale button) does nothing twice
    await until(lambda: len(phone.fake.callback_answers) >= 2, "the second tap's answer")
    assert "v1 already runs as t1" in str(phone.fake.callback_answers[-1].get("text"))
    await asyncio.sleep(0.3)
    assert len(phone.app.store.list_tasks(limit=5)) == 1
    assert len(transcriber.requests) == 1
    dump = "\n".join(sqlite3.connect(phone.app.store.path).iterdump())
    assert KEY not in dump and TOKEN not in dump, "neither the key nor the bot token (in file URLs) is stored"


async def test_edit_makes_the_next_message_the_task(voice: tuple[Phone, FakeTranscriber]) -> None:
    phone, _ = voice
    phone.fake.send_file("voice", OGG)
    [shown] = await until(lambda: phone.said("said:"), "the transcript")
    phone.fake.tap(shown, "voice_edit:v1")
    await until(lambda: "Send the corrected text" in phone.fake.current(shown).text, "the request for the text")
    assert buttons_of(phone.fake.current(shown)) == ["voice_run:v1"]
    phone.fake.say("fix the logout bug on the settings page")
    tasks = await until(lambda: phone.app.store.list_tasks(limit=5), "the task")
    assert tasks[0].text == "fix the logout bug on the settings page"
    transcript = phone.app.store.transcript(1)
    assert transcript is not None and (transcript.state, transcript.task_id) == ("run", tasks[0].id)
    phone.fake.tap(shown, "voice_run:v1")  # Run after the corrected text made the task: nothing more
    await until(lambda: phone.fake.callback_answers, "the tap's answer")
    await asyncio.sleep(0.3)
    assert len(phone.app.store.list_tasks(limit=5)) == 1


async def test_a_pending_transcript_survives_a_restart_of_the_bridge(voice: tuple[Phone, FakeTranscriber]) -> None:
    phone, _ = voice
    phone.fake.send_file("voice", OGG)
    [shown] = await until(lambda: phone.said("said:"), "the transcript")
    second = await start_telegram(phone.app, fatal=lambda reason: None)  # a second bridge reads the same store
    await second.stop()
    phone.fake.tap(shown, "voice_run:v1")
    tasks = await until(lambda: phone.app.store.list_tasks(limit=5), "the task")
    assert tasks[0].text == HEARD


async def test_strangers_voice_notes_are_not_transcribed(voice: tuple[Phone, FakeTranscriber]) -> None:
    phone, transcriber = voice
    phone.fake.send_file("voice", OGG, user=MALLORY)
    await until(lambda: [m for m in phone.fake.sent if m.chat_id == MALLORY["id"]], "the refusal")
    assert transcriber.requests == [] and phone.fake.downloads == []
    assert phone.app.store.transcript(1) is None


@pytest.mark.parametrize("voice", [False], indirect=True)
async def test_without_an_endpoint_a_voice_note_gets_one_line_on_how_to_set_it_up(
    voice: tuple[Phone, FakeTranscriber],
) -> None:
    phone, transcriber = voice
    phone.fake.send_file("voice", OGG, user=ALICE)
    [hint] = await until(lambda: phone.said("transcription endpoint"), "the hint")
    assert hint.text == (
        "🎙 Voice notes need a transcription endpoint: set voice.url and voice.key_env in bots.yaml (README: Voice)."
    )
    assert phone.fake.downloads == [] and transcriber.requests == []
    assert phone.app.store.list_tasks(limit=5) == []


def _voice_config(**settings: Any) -> VoiceConfig:
    return VoiceConfig(**{"key_env": KEY_ENV, **settings})


@pytest.mark.parametrize(
    ("status", "env", "text", "line"),
    [
        (401, {KEY_ENV: KEY}, HEARD, f"the transcription endpoint refused the key in ${KEY_ENV} (401)"),
        (500, {KEY_ENV: KEY}, HEARD, "the transcription endpoint answered 500: Incorrect API key provided"),
        (200, {}, HEARD, f"${KEY_ENV} is not set, so the transcription endpoint cannot be asked"),
        (200, {KEY_ENV: KEY}, "   ", "nothing was heard in the voice note"),
    ],
)
def test_an_endpoint_that_fails_is_one_line_without_the_key(
    tmp_path: Path, status: int, env: dict[str, str], text: str, line: str
) -> None:
    audio = tmp_path / "voice.ogg"
    audio.write_bytes(OGG)
    with FakeTranscriber(text=text, status=status) as server, pytest.raises(TranscriptionFailed) as failed:
        transcribe(_voice_config(url=server.base_url), audio, mime="audio/ogg", env=env)
    assert str(failed.value) == line and KEY not in str(failed.value)


def test_a_language_hint_is_sent_and_the_transcript_is_one_line(tmp_path: Path) -> None:
    audio = tmp_path / "voice.ogg"
    audio.write_bytes(OGG)
    with FakeTranscriber(text="erste Zeile\nzweite  Zeile") as server:
        heard = transcribe(_voice_config(url=server.base_url, language="de"), audio, env={KEY_ENV: KEY})
        assert server.requests[0].fields["language"] == "de"
    assert heard == "erste Zeile zweite Zeile"


def test_an_endpoint_nobody_listens_on_is_one_line(tmp_path: Path) -> None:
    audio = tmp_path / "voice.ogg"
    audio.write_bytes(OGG)
    with pytest.raises(TranscriptionFailed, match=r"cannot reach the transcription endpoint \(ConnectError\)"):
        transcribe(_voice_config(url=f"http://127.0.0.1:{free_port()}/v1"), audio, env={KEY_ENV: KEY})


def test_voice_settings_are_checked_with_their_key_path(tmp_path: Path) -> None:
    data = base_config("orch-unused")
    data["voice"] = {"url": "ftp://example.com", "key_env": "OPENAI API KEY", "modle": "x"}
    path = tmp_path / "bots.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as failed:
        load_config(path)
    message = str(failed.value)
    assert "voice.url" in message and "voice.key_env" in message and "voice.modle" in message


async def test_only_the_sender_runs_their_voice_note_and_its_buttons_stay(voice: tuple[Phone, FakeTranscriber]) -> None:
    phone, _ = voice
    phone.fake.send_file("voice", OGG)
    [shown] = await until(lambda: phone.said("said:"), "the transcript")
    commands = Commands(phone.app.service, phone.app.clock)
    tap = Inbound(
        chat=ChatRef("telegram", str(CHAT)), user_id="222", user_name="@bob", event_id="telegram:tap-bob",
        tap=Tap("voice_run", "v1", str(shown.message_id)),
    )  # fmt: skip
    answers = commands.handle(tap)
    assert [a.text for a in answers] == ["⚠️ v1 is @alice's voice note; only they can run or edit it"]
    assert phone.app.store.list_tasks(limit=5) == [] and buttons_of(phone.fake.current(shown)) == [
        "voice_run:v1",
        "voice_edit:v1",
    ]


async def test_a_voice_note_in_reply_to_a_tasks_card_is_said_to_that_task(voice: tuple[Phone, FakeTranscriber]) -> None:
    phone, _ = voice
    phone.fake.say("write the summary")
    first = await phone.task()
    await phone.app.engine.wait_finished(first, timeout=60)
    [done] = await until(lambda: phone.said(f"{first} succeeded"), "the completion")
    phone.fake.send_file("voice", OGG, reply_to=done.message_id)
    [shown] = await until(lambda: phone.said("said (to t1):"), "the transcript, about t1")
    assert "Run sends it to t1 as a reply would" in shown.text
    phone.fake.tap(shown, "voice_run:v1")
    follow = await until(lambda: [t for t in phone.app.store.list_tasks(limit=5) if t.id != first], "the follow-up")
    assert follow[0].parent_id == first and HEARD in follow[0].text, "a follow-up in the same session"
    await until(lambda: "Sent to t1 by @alice" in phone.fake.current(shown).text, "the transcript marked")
    transcript = phone.app.store.transcript(1)
    assert transcript is not None and (transcript.state, transcript.task_id) == ("run", first)
