"""A question an agent is waiting on survives what happens around it: an engine restart, a cancel, no engine.

The stand-in agent (kind ``claude``) runs its ``PreToolUse`` hook as Claude Code does, so these runs go
through the real hook program, the real engine and its socket, real tmux and SQLite, fast.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, open_app
from core.models import TaskState
from core.permissions.hook import decide
from core.permissions.policy import Policy
from core.protocol import ENGINE_SOCKET
from tests.conftest import requires_tmux

pytestmark = requires_tmux
ASKED = "curl -s http://127.0.0.1:9/ ; touch asked-and-allowed"  # curl: the shipped policy asks a person


def standin(commands: list[str], **extra: Any) -> dict[str, Any]:
    env = {"ORCHESTRA_STANDIN_DELAY": "0", "ORCHESTRA_STANDIN_COMMANDS": json.dumps(commands)}
    return {"agents__standin__env": env, "notify": {"console": False}, **extra}


async def until(probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


def permission_rows(app: App) -> list[tuple[str, int]]:
    rows = app.store._conn.execute("SELECT dedupe_key, id FROM outbox WHERE kind = 'permission'").fetchall()
    return [(str(key), int(i)) for key, i in rows]


async def test_an_engine_restart_while_the_agent_waits_asks_once_and_the_answer_still_arrives(
    make_app: Any, repo: Path
) -> None:
    app: App = make_app(**standin([ASKED]))
    assert app.engine.acquire()
    await app.engine.start()
    task_id = app.service.delegate("make the marker", agent="standin", cwd=str(repo)).task.id
    [request] = await until(lambda: app.store.open_permissions(task_id), "the question")
    queued = permission_rows(app)
    await app.engine.stop()  # the bot restarts: its engine goes away while the hook waits

    again = open_app(app.config_path)
    try:
        assert again.engine.acquire()
        await again.engine.start()
        await asyncio.sleep(1.5)  # the hook reconnects and asks again under the same key
        assert [r.id for r in again.store.open_permissions(task_id)] == [request.id]
        assert permission_rows(again) == queued, "asked again under the same key: no second message"
        line = again.service.answer_permission(request.ref, "allow", actor="alice", source="cli")
        assert "allowed" in line.lower()
        task = await again.engine.wait_finished(task_id, timeout=60)
        assert task.state == TaskState.SUCCEEDED
        assert (repo / "asked-and-allowed").exists(), "the command ran once allowed"
    finally:
        await again.engine.stop()
        again.close()


async def test_a_cancel_ends_the_wait_and_the_request(make_app: Any, repo: Path) -> None:
    app: App = make_app(**standin([ASKED]))
    assert app.engine.acquire()
    await app.engine.start()
    try:
        task_id = app.service.delegate("make the marker", agent="standin", cwd=str(repo)).task.id
        [request] = await until(lambda: app.store.open_permissions(task_id), "the question")
        app.service.cancel(task_id)
        task = await app.engine.wait_finished(task_id, timeout=60)
        assert task.state == TaskState.CANCELLED
        closed = app.store.permission(request.id)
        assert closed is not None and closed.state == "cancelled"
        assert not (repo / "asked-and-allowed").exists()
    finally:
        await app.engine.stop()


def test_with_no_engine_an_asked_call_is_denied_after_the_timeout_and_an_allowed_one_runs(tmp_path: Path) -> None:
    """The hook alone: an engine that is down never means allow for a question; the policy's own
    allow needs no engine."""
    folder = tmp_path / "t1"
    folder.mkdir()
    policy = Policy(cwd=str(tmp_path), ask_timeout_s=1).to_dict()
    from core.config.permissions import PermissionsConfig

    policy["layers"] = [{"name": "permissions", **PermissionsConfig().model_dump(include={"allow", "ask", "deny"})}]
    socket_path = tmp_path / ENGINE_SOCKET  # nobody listens
    (folder / "spec.json").write_text(json.dumps({"task_id": "t1", "socket": str(socket_path), "permissions": policy}))
    env = {"ORCHESTRA_TASK_DIR": str(folder)}

    def payload(command: str) -> dict[str, Any]:
        return {
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": command},
            "cwd": str(tmp_path),
        }

    started = time.monotonic()
    asked = decide(payload("curl -s http://127.0.0.1:9/"), "claude", env)
    waited = time.monotonic() - started
    assert not asked.allow and "did not reply" in asked.reason
    assert 1.0 <= waited < 10, waited
    assert decide(payload("pytest -q"), "claude", env).allow
    refused = decide(payload("rm -rf /"), "claude", env)
    assert not refused.allow and "refuses" in refused.reason
    assert not decide([1, 2], "claude", env).allow  # a payload that is no object is not a pass


@pytest.mark.parametrize("spec", ["", "{not json", json.dumps({"task_id": "t1"})])
def test_a_hook_that_cannot_read_its_task_denies(tmp_path: Path, spec: str) -> None:
    import subprocess
    import sys

    from core.permissions import hook

    folder = tmp_path / "t1"
    folder.mkdir()
    if spec:
        (folder / "spec.json").write_text(spec)
    call = {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}, "cwd": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-S", hook.__file__, "claude"], input=json.dumps(call), capture_output=True, text=True,
        env={"ORCHESTRA_TASK_DIR": str(folder), "PATH": "/usr/bin:/bin"}, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done
    if spec == json.dumps({"task_id": "t1"}):
        assert "no permission policy" in done.stderr
    else:
        assert "permission hook failed" in done.stderr
