"""A full disk under the data directory: the run goes on, its result is kept, the user gets one line.

For real: a small tmpfs mounted as the data directory (CI runs as root) and filled with a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import TmuxError
from core.models import TaskState
from tests.conftest import mount_tmpfs, orchestra, requires_tmux

pytestmark = requires_tmux


@pytest.fixture
def small_disk(home: Path) -> Iterator[Path]:
    """The data directory on its own 8 MB tmpfs; skipped where mounting is not allowed."""
    unmount = mount_tmpfs(home, "8m")
    yield home
    unmount()


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    with pytest.raises(OSError, match="No space left"):
        (disk / "probe").write_bytes(b"x" * 8192)
    return filler


async def until(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_full_disk_keeps_the_result_and_delegate_says_so_in_one_line(
    make_app: Any, small_disk: Path, tmp_path: Path
) -> None:
    slow = {"kind": "claude", "command": "{python} -S {orchestra}/core/agents/standin", "max_concurrent": 2,
            "env": {"ORCHESTRA_STANDIN_DURATION": "3"}}  # fmt: skip
    app = make_app(agents__slow=slow)
    assert app.engine.acquire()
    await app.engine.start()
    try:
        task = app.service.delegate("Create User model", agent="slow", cwd=str(tmp_path)).task
        await until(lambda: app.store.get_task(task.id).started_at is not None, "the task never started")
        filler = fill(small_disk)
        refused = await asyncio.to_thread(
            orchestra, "delegate", "--task", "another one", "--cwd", str(tmp_path), config=app.config_path
        )
        task_dir = app.home / "tasks" / task.id
        await until(lambda: "result.json is kept in memory" in _pane(app, task.id), "no word of the full disk")
        await asyncio.sleep(1.0)  # the disk stays full a while after the agent ended
        assert not (task_dir / "result.json").exists(), "the disk was full when the result came"
        filler.unlink()
        await until(lambda: app.store.get_task(task.id).state.finished, "the result was never recorded")
        await until(lambda: (task_dir / "result.json").exists(), "result.json was never written")
    finally:
        await app.engine.stop()
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.count("\n") == 1 and "disk is full" in refused.stderr, refused.stderr
    done = app.store.get_task(task.id)
    assert done.state == TaskState.SUCCEEDED, done.error
    assert done.cost_usd and done.cost_usd > 0
    assert app.store.db.execute("SELECT COUNT(*) FROM costs WHERE task_id = ?", [task.id]).fetchone()[0] == 1
    assert json.loads((task_dir / "result.json").read_text())["status"] == "succeeded"
    kinds = [json.loads(line)["kind"] for line in (task_dir / "events.jsonl").read_text().splitlines()]
    assert kinds.count("result") == 1, "events.jsonl caught up once there was space"


def _pane(app: Any, task_id: str) -> str:
    try:
        return str(app.tmux.capture(task_id, 20))
    except TmuxError:
        return ""  # the window is gone: its runner died


async def test_a_full_disk_at_the_end_leaves_no_unredacted_stderr_and_no_lost_run(
    make_app: Any, small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stderr.log is redacted as it is written; a full disk at the end must not kill the run or leak the key."""
    secret = "sk-test-KNOWN-secret-value-0042"
    monkeypatch.setenv("ORCH_TEST_AGENT_KEY", secret)
    leaky = {"kind": "command", "command": "sh", "env_from": {"API_KEY": "ORCH_TEST_AGENT_KEY"},
             "args": ["-c", 'echo "401 $API_KEY" >&2; sleep 2; echo done']}  # fmt: skip
    app = make_app(agents__leaky=leaky)
    assert app.engine.acquire()
    await app.engine.start()
    try:
        task = app.service.delegate("leak the key", agent="leaky", cwd=str(tmp_path)).task
        task_dir = app.home / "tasks" / task.id
        await until(lambda: b"401 " in _read(task_dir / "stderr.log"), "the agent never wrote stderr")
        assert secret.encode() not in _read(task_dir / "stderr.log"), "stderr.log held the key while it ran"
        filler = fill(small_disk)
        # The agent exits while the disk is full: the runner waits with its result, or (before) died.
        await until(lambda: "kept in memory" in _pane(app, task.id) or task.id not in app.tmux.windows(),
                    "the agent never ended")  # fmt: skip
        filler.unlink()
        await until(lambda: app.store.get_task(task.id).state.finished, "the result was never recorded")
    finally:
        await app.engine.stop()
    done = app.store.get_task(task.id)
    assert done.state == TaskState.SUCCEEDED, done.error
    assert secret.encode() not in _read(task_dir / "stderr.log")
    assert all(secret.encode() not in path.read_bytes() for path in task_dir.iterdir())


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
