"""Files both ways over Telegram, end to end: a photo with a task lands in the task's worktree and its
path is in the agent's prompt; a file the agent leaves in ``.orchestra/outbox/`` comes back as a
document; an oversized file is one line and no task; hostile names stay inside the inbox.

Real engine, tmux, SQLite and git; the chat is the fake Bot API (tests/fakes/telegram_files.py) and the
agent a small command that records the prompt and the folder it got, and leaves a report.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.bridges import start_telegram
from core.files import collect_outbox, safe_name, unique_name
from core.models import TaskState
from tests.conftest import requires_tmux
from tests.fakes.telegram import ALICE, TOKEN
from tests.fakes.telegram_files import FakeTelegramFiles

pytestmark = requires_tmux

TOKEN_ENV = "ORCH_FILES_TELEGRAM_TOKEN"
CHAT = ALICE["id"]
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # 10 KB of a "screenshot"
AGENT = """\
import json, os, pathlib, sys
prompt = sys.argv[1]
record = pathlib.Path(os.environ["RECORD_TO"])
inbox = pathlib.Path(".orchestra/inbox")
if "wait for the file" in prompt:
    import time
    deadline = time.monotonic() + 30
    while not (inbox / "late.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
seen = {p.name: p.read_bytes().hex() for p in sorted(inbox.iterdir())} if inbox.is_dir() else {}
with record.open("a") as out:
    out.write(json.dumps({"prompt": prompt, "cwd": os.getcwd(), "inbox": seen}) + "\\n")
if "report" in prompt and "Feedback on the previous attempt" not in prompt:
    outbox = pathlib.Path(".orchestra/outbox")
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / "report.txt").write_text("the layout is fixed\\n")
print("done")
"""


async def until(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


class Phone:
    """The app, its Telegram bridge over the fake, and what the agent recorded."""

    def __init__(self, app: App, fake: FakeTelegramFiles, record: Path) -> None:
        self.app, self.fake, self.record = app, fake, record

    def runs(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def said(self, needle: str) -> list[Any]:
        return [m for m in self.fake.sent if m.chat_id == CHAT and needle in m.text]

    async def task(self) -> str:
        tasks = await until(lambda: self.app.store.list_tasks(limit=1), "a task")
        return str(tasks[0].id)


@pytest.fixture
async def phone(
    make_app: Any, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[Phone]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    record = tmp_path / "runs.jsonl"
    fake = FakeTelegramFiles()
    fake.start()
    extra: dict[str, Any] = getattr(request, "param", {})
    agent = {
        "kind": "command", "command": f"{sys.executable} {script}", "args": ["{task}"],
        "env": {"RECORD_TO": str(record)},
    }  # fmt: skip
    telegram = {
        "enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": [CHAT],
        "notify_chat_ids": [CHAT], "poll_timeout_s": 1, "progress_interval_s": 0, "retry_base_s": 0.2,
        "retry_max_s": 1,
    }  # fmt: skip
    app: App = make_app(
        workspace=str(repo), agents__scripted=agent, routing={"default_agent": "scripted"},
        limits__isolation="worktree", notify={"console": False}, digest={"enabled": False}, telegram=telegram,
        **extra,
    )  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    bridge = await start_telegram(app, fatal=lambda reason: None)
    try:
        yield Phone(app, fake, record)
    finally:
        await bridge.stop()
        await app.engine.stop()
        fake.stop()


async def test_a_photo_with_its_task_lands_in_the_worktree_and_its_path_is_in_the_prompt(phone: Phone) -> None:
    phone.fake.send_file("photo", PHOTO, caption="fix the layout shown here and write a report")
    task_id = await phone.task()
    task = await phone.app.engine.wait_finished(task_id, timeout=60)
    assert task.state == TaskState.SUCCEEDED, task.error

    [run] = phone.runs()
    [name] = run["inbox"]
    assert name.startswith("photo_") and name.endswith(".jpg")
    assert f"Attached files (in .orchestra/inbox/): {name}" in run["prompt"]
    assert run["prompt"].startswith("fix the layout shown here and write a report")
    assert run["prompt"].endswith("(Files you write to .orchestra/outbox/ are sent to the person when you finish.)")
    assert "outbox" not in task.text, "the task's text as people read it names the files only"
    assert bytes.fromhex(run["inbox"][name]) == PHOTO, "the largest size of the photo, byte for byte"
    assert task.worktree and Path(run["cwd"]).resolve() == Path(task.worktree).resolve(), "in the task's worktree"
    saved = Path(task.worktree) / ".orchestra" / "inbox" / name
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600, "never executable"
    assert phone.fake.downloads == [f"photos/file_{name.split('_')[1].split('.')[0]}"], "only the largest size"

    # The agent's report comes back as a document, after the summary, and is not sent again.
    documents = await until(lambda: phone.fake.calls_of("sendDocument"), "the report as a document")
    assert [c.files["document"] for c in documents] == [("report.txt", b"the layout is fixed\n")]
    assert f"📎 {task_id} · report.txt" in str(documents[0].params.get("caption"))
    assert not list((Path(task.worktree) / ".orchestra" / "outbox").iterdir()), "moved out of the outbox"
    committed = await asyncio.to_thread(_tree, task.worktree, str(task.branch))
    assert ".orchestra" not in committed, "the inbox and outbox are never committed"
    dump = "\n".join(sqlite3.connect(phone.app.store.path).iterdump())
    assert TOKEN not in dump and "/file/bot" not in dump, "no file URL (it holds the bot token) is stored"


async def test_a_follow_up_in_the_same_worktree_does_not_send_the_report_again(phone: Phone) -> None:
    phone.fake.send_file("document", b"a,b\n1,2\n", name="data.csv", caption="write a report on this")
    task_id = await phone.task()
    await phone.app.engine.wait_finished(task_id, timeout=60)
    await until(lambda: phone.fake.calls_of("sendDocument"), "the report")
    [card] = phone.said(f"{task_id} succeeded")
    phone.fake.send_file("document", b"c,d\n", name="data.csv", caption="and this one too", reply_to=card.message_id)
    follow = await until(lambda: [t for t in phone.app.store.list_tasks(limit=5) if t.id != task_id], "a follow-up")
    done = await phone.app.engine.wait_finished(follow[0].id, timeout=60)
    assert done.state == TaskState.SUCCEEDED and done.parent_id == task_id
    second = phone.runs()[-1]
    assert set(second["inbox"]) == {"data.csv"}, "the newer file of that name replaces the older in the inbox"
    assert bytes.fromhex(second["inbox"]["data.csv"]) == b"c,d\n"
    await asyncio.sleep(1.0)
    assert len(phone.fake.calls_of("sendDocument")) == 1, "the follow-up wrote no report: nothing sent again"


async def test_a_file_sent_in_reply_to_a_running_tasks_card_reaches_its_worktree_at_once(phone: Phone) -> None:
    phone.fake.say("wait for the file, then summarise it")
    task_id = await phone.task()
    [card] = await until(lambda: phone.said(task_id), "the task's card")
    await until(lambda: phone.app.store.get_task(task_id).state == TaskState.RUNNING, "the run")
    phone.fake.send_file("document", b"late news\n", name="late.txt", caption="here it is", reply_to=card.message_id)
    [kept] = await until(lambda: phone.said("Kept for"), "the answer to the reply")
    assert kept.text.startswith(f"💬 Kept for {task_id}")
    task = await phone.app.engine.wait_finished(task_id, timeout=60)
    assert task.state == TaskState.SUCCEEDED
    first = phone.runs()[0]
    assert bytes.fromhex(first["inbox"]["late.txt"]) == b"late news\n", "the running agent found it in its inbox"
    follow = await until(lambda: [t for t in phone.app.store.list_tasks(limit=5) if t.id != task_id], "the follow-up")
    assert "here it is" in follow[0].text and "Attached files (in .orchestra/inbox/): late.txt" in follow[0].text


async def test_an_oversized_file_is_refused_in_one_line_and_starts_nothing(phone: Phone) -> None:
    phone.fake.send_file("document", b"x" * 100, name="big.zip", caption="look at this", declared_size=25 << 20)
    [refusal] = await until(lambda: phone.said("big.zip"), "the refusal")
    assert refusal.text == "📎 big.zip is 25.0 MB; the limit is 20.0 MB (files.max_mb), so nothing was started."
    await asyncio.sleep(0.5)
    assert phone.app.store.list_tasks(limit=5) == []
    assert phone.fake.downloads == [], "refused from the declared size, before any download"


@pytest.mark.parametrize("phone", [{"files": {"max_mb": 0.001}}], indirect=True)
async def test_a_file_larger_than_it_said_is_cut_off_while_it_streams(phone: Phone, home: Path) -> None:
    phone.fake.send_file("document", b"y" * 5000, name="liar.bin", caption="look", declared_size=10)
    [refusal] = await until(lambda: phone.said("liar.bin"), "the refusal")
    assert refusal.text.startswith("📎 liar.bin is over 1 KB; the limit is 1 KB (files.max_mb)")
    assert phone.app.store.list_tasks(limit=5) == []
    assert not any((home / "inbox").rglob("liar.bin")), "the partial download is removed"


async def test_hostile_file_names_stay_inside_the_inbox(phone: Phone) -> None:
    phone.fake.send_file("document", b"root:x:0:0\n", name="../../etc/passwd", caption="parse the passwd file")
    task_id = await phone.task()
    task = await phone.app.engine.wait_finished(task_id, timeout=60)
    [run] = phone.runs()
    assert set(run["inbox"]) == {"passwd"}
    assert "Attached files (in .orchestra/inbox/): passwd" in run["prompt"]
    assert task.worktree and (Path(task.worktree) / ".orchestra" / "inbox" / "passwd").is_file()
    assert not (Path(task.worktree).parent / "etc").exists()


async def test_an_album_is_one_task_with_all_its_photos(phone: Phone) -> None:
    phone.fake.send_file("photo", PHOTO, caption="compare these two layouts", media_group_id="album1")
    phone.fake.send_file("photo", PHOTO[::-1], media_group_id="album1")
    task_id = await phone.task()
    task = await phone.app.engine.wait_finished(task_id, timeout=60)
    [run] = phone.runs()
    assert len(run["inbox"]) == 2 and task.state == TaskState.SUCCEEDED
    assert f"Attached files (in .orchestra/inbox/): {', '.join(sorted(run['inbox']))}" in run["prompt"]
    await asyncio.sleep(0.5)
    assert [t.id for t in phone.app.store.list_tasks(limit=5)] == [task_id]
    assert not phone.said("send the task as its caption"), "the second photo is not a message of its own"


async def test_a_photo_without_a_caption_asks_for_the_task(phone: Phone) -> None:
    phone.fake.send_file("photo", PHOTO)
    [asked] = await until(lambda: phone.said("send the task as its caption"), "the hint")
    assert asked.text.startswith("📎 Got photo_")
    assert phone.app.store.list_tasks(limit=5) == []


def _tree(worktree: str, branch: str) -> str:
    """The files committed on ``branch``."""
    listed = ["git", "-C", worktree, "ls-tree", "-r", "--name-only", branch]
    return subprocess.run(listed, capture_output=True, text=True, check=True).stdout


def test_safe_names() -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name(".bashrc") == "bashrc"
    assert safe_name("..") == "file"
    assert safe_name("a b?.png") == "a_b_.png"
    assert safe_name("C:\\Users\\me\\shot.png") == "shot.png"
    assert safe_name("x..y...z") == "x.y.z"
    assert safe_name("ok\x00\n.txt") == "ok_.txt"
    long = safe_name("a" * 300 + ".jpeg")
    assert len(long) <= 100 and long.endswith(".jpeg")
    assert unique_name("shot.png", ["Shot.png", "shot-2.png"]) == "shot-3.png"
    assert unique_name("README", ["readme"]) == "README-2"


def test_the_outbox_sends_regular_files_within_the_caps_and_nothing_outside(tmp_path: Path) -> None:
    work, folder = tmp_path / "work", tmp_path / "task"
    outbox = work / ".orchestra" / "outbox"
    outbox.mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (outbox / "link.txt").symlink_to(secret)
    (outbox / "sub").mkdir()
    for n, size in enumerate((10, 20, 5000, 30)):
        path = outbox / f"f{n}.txt"
        path.write_bytes(b"x" * size)
        os.utime(path, (1000 + n, 1000 + n))
    got = collect_outbox(work, folder, max_files=2, max_bytes=1024)
    assert [(f.name, f.size) for f in got.files] == [("f0.txt", 10), ("f1.txt", 20)]
    assert set(got.skipped) == {
        "link.txt (not a regular file)", "sub (not a regular file)", "f2.txt (5 KB, over the 1 KB limit)",
        "f3.txt (over 2 files)",
    }  # fmt: skip
    assert sorted(p.name for p in (folder / "sent").iterdir()) == ["f0.txt", "f1.txt"]
    assert secret.read_text() == "not yours" and (outbox / "link.txt").is_symlink(), "a symlink is left alone"
    again = collect_outbox(work, folder, max_files=2, max_bytes=1024)
    assert [f.name for f in again.files][:2] == ["f0.txt", "f1.txt"], "a second pass for the same ending finds them"
