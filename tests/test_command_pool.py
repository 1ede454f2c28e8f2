"""Chat commands run off the bot's event loop, and a chat's delegate only stores, queues and pokes.

The pool is built as the bot builds it (``bot.bridges.command_pool``): worker threads, each with its
own store connection and a Service that never dispatches itself. A real unix socket stands in
for the engine's socket and records what it is told; tmux is real, made slow where a
test needs slow tmux work.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.bridges import command_pool
from bot.command_pool import CommandPool
from core.messages import ChatRef, Inbound, OutKind, Tap
from core.models import TaskState
from core.protocol import ENGINE_SOCKET
from tests.conftest import requires_tmux

pytestmark = requires_tmux

CHAT = ChatRef("telegram", "111", private=True)


def say(text: str, n: int) -> Inbound:
    return Inbound(chat=CHAT, user_id="111", user_name="@alice", text=text, message_id=str(n), event_id=f"e{n}")


def tap(action: str, task_id: str, n: int) -> Inbound:
    return Inbound(chat=CHAT, user_id="111", user_name="@alice", tap=Tap(action, task_id, str(n), ()), event_id=f"e{n}")


@pytest.fixture
async def pool(make_app: Any, tmp_path: Path) -> AsyncIterator[tuple[App, CommandPool]]:
    app: App = make_app(workspace=str(tmp_path), policy__approval_for=["devops"])
    made = command_pool(app)
    yield app, made
    await asyncio.to_thread(made.close)


class LoopLag:
    """How late a short timer on the loop fires (the progress cards' refresh is such a timer)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.02)
            self.worst = max(self.worst, time.monotonic() - before - 0.02)

    def stop(self) -> float:
        self._task.cancel()
        return self.worst


async def test_delegate_approve_cancel_and_retry_from_a_chat_only_store_queue_and_poke(
    pool: tuple[App, CommandPool],
) -> None:
    app, commands = pool
    pokes: list[dict[str, Any]] = []

    async def engine_socket(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        pokes.extend(json.loads(line) for line in (await reader.read()).splitlines())

    (app.home / ENGINE_SOCKET).parent.mkdir(parents=True, exist_ok=True)
    server = await asyncio.start_unix_server(engine_socket, path=str(app.home / ENGINE_SOCKET))
    try:

        async def poked(count: int) -> None:
            deadline = time.monotonic() + 5
            while len(pokes) < count:
                assert time.monotonic() < deadline, f"the engine was poked {len(pokes)} times, not {count}"
                await asyncio.sleep(0.01)

        [card] = await commands.handle_async(say("Create User model", 1))
        assert card.kind == OutKind.ACK and card.text.startswith("⏳ t1 · standin"), card.text
        await poked(1)
        [ask] = await commands.handle_async(say("set up the GitHub Actions CI pipeline", 2))
        assert ask.kind == OutKind.APPROVAL and len(pokes) == 1, "a task that waits for approval wakes nobody"
        approved = await commands.handle_async(tap("approve", "t2", 3))
        assert approved[0].text == "✅ t2 approved; now queued"
        await poked(2)
        assert (await commands.handle_async(tap("cancel", "t1", 4)))[0].text == "⏹ Stopping t1"
        retried = await commands.handle_async(tap("retry", "t1", 5))
        assert retried[0].text == "🔁 Retrying as t3"
        await poked(3)
    finally:
        server.close()
        await server.wait_closed()
    assert pokes == [{"t": "kick"}] * 3
    states = {t.id: t.state for t in app.store.list_tasks()}
    assert states == {"t1": TaskState.CANCELLED, "t2": TaskState.QUEUED, "t3": TaskState.QUEUED}
    assert app.tmux.windows() == {}, "no command started a window: the engine does that, from its own loop"


async def test_slow_tmux_work_holds_neither_the_loop_nor_the_next_command(
    make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peek and a cancel tap on a running task each wait on a tmux that takes 1.5 s a call: the
    loop's timers stay on time and another message is answered meanwhile."""
    real_tmux = shutil.which("tmux")
    assert real_tmux is not None
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    (slow / "tmux").write_text(f'#!/bin/sh\nsleep 1.5\nexec {real_tmux} "$@"\n')
    (slow / "tmux").chmod(0o755)
    app: App = make_app(workspace=str(tmp_path))
    app.service.autostart_engine = False
    task = app.service.delegate("Create User model").task
    assert app.store.transition(task.id, [TaskState.QUEUED], TaskState.RUNNING, started_at=app.clock.now())
    monkeypatch.setenv("PATH", f"{slow}{os.pathsep}{os.environ['PATH']}")
    commands = command_pool(app)
    lag = LoopLag()
    try:
        peek = asyncio.create_task(commands.handle_async(say("/peek t1", 1)))
        cancel = asyncio.create_task(commands.handle_async(tap("cancel", "t1", 2)))
        await asyncio.sleep(0.3)
        asked = time.monotonic()
        [help_text] = await asyncio.wait_for(commands.handle_async(say("/help", 3)), 1.0)
        answered = time.monotonic() - asked
        assert "commands and buttons" in help_text.text
        assert not peek.done() and not cancel.done(), "the slow ones were still in tmux meanwhile"
        [peeked] = await asyncio.wait_for(peek, 20)
        assert peeked.text.startswith("👀 t1")
        await asyncio.wait_for(cancel, 20)
    finally:
        worst = lag.stop()
        await asyncio.to_thread(commands.close)
    assert answered < 0.5, f"/help took {answered:.2f} s while other commands waited on tmux"
    assert worst < 0.25, f"a 20 ms timer on the loop fired {worst:.2f} s late"
    assert app.store.get_task(task.id).state == TaskState.CANCELLED, "its runner was gone: cancelled"
