"""The runner with real agents: real tmux, real processes, real files and the real CLI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.app import App
from core.models import TaskState
from tests.conftest import orchestra, requires_tmux

pytestmark = requires_tmux


def shell_agent(script: str) -> dict[str, Any]:
    """An agent that is a shell script (the task text arrives on its stdin, unread)."""
    return {"kind": "command", "command": "sh", "args": ["-c", script], "max_concurrent": 4}


async def started(app: App) -> None:
    assert app.engine.acquire()
    await app.engine.start()


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_logs_show_output_while_the_agent_runs(make_app: Any, tmp_path: Path) -> None:
    app = make_app(agents__talker=shell_agent("echo 'first line of work'; sleep 30"), limits__cancel_grace_s=1)
    await started(app)
    try:
        task = app.service.delegate("talk, then think", agent="talker", cwd=str(tmp_path)).task
        await until(lambda: any("first line" in e["text"] for e in app.store.events(task.id)))
        shown = await asyncio.to_thread(orchestra, "logs", task.id, config=tmp_path / "bots.yaml")
        assert app.store.get_task(task.id).state == TaskState.RUNNING
        app.service.cancel(task.id)
        await app.engine.wait_finished(task.id, timeout=15)
    finally:
        await app.engine.stop()
    assert shown.returncode == 0, shown.stderr
    assert "first line of work" in shown.stdout
    assert "no output yet" not in shown.stdout
