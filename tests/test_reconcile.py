"""Reconcile: what an engine (or a reader while none runs) makes of the runners' files.

Real tmux on a private socket, a real SQLite file, the real runner and stand-in; the task files a
crash or a bug can leave behind are written by hand where a real runner would not write them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import App
from core.models import Task, TaskState
from core.protocol import ENGINE_SOCKET
from core.store import Store
from tests.conftest import ROOT, orchestra, requires_tmux

pytestmark = requires_tmux

RESULT = {
    "task_id": "",
    "status": "succeeded",
    "exited_at": 1000.5,
    "result": {"status": "succeeded", "final_text": "done", "cost_usd": 1.25, "cost_source": "cli",
               "usage": {"input_tokens": 10, "output_tokens": 5}},
}  # fmt: skip


def running_task(app: App, cwd: Path, *, events: list[Any] | None = None, started: bool = True) -> Task:
    """A task the store says is running, with the files its runner would have left."""
    task = app.store.create_task({"text": "x", "agent": "standin", "category": "backend", "state": "running",
                                  "cwd": str(cwd), "created_at": 1000.0, "started_at": 1000.0})  # fmt: skip
    task_dir = app.home / "tasks" / task.id
    task_dir.mkdir(parents=True)
    lines = [{"t": "event", "task": task.id, "seq": 1, "ts": 1000.0, "kind": "started", "text": "", "data": {}}]
    if events is not None or started:
        body = "".join(json.dumps(e) + "\n" for e in lines + (events or []))
        (task_dir / "events.jsonl").write_text(body)
    return task


def write_result(app: App, task: Task, payload: Any = None) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload or {**RESULT, "task_id": task.id})
    (app.home / "tasks" / task.id / "result.json").write_text(text)


def append(app: App, task: Task, text: str) -> None:
    with open(app.home / "tasks" / task.id / "events.jsonl", "a") as fh:
        fh.write(text)


async def start_engine(app: App) -> None:
    assert app.engine.acquire()
    await app.engine.start()


async def until(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


BAD_LINES = [
    "123",
    '{"seq": "x9"}',
    "[]",
    '{"kind": 5}',
    "null",
    '"started"',
    '{"t": "event", "task": "TASK", "seq": 2, "kind": "cost", "data": {"cost_usd": "lots"}}',
    '{"t": "event", "task": "TASK", "seq": 2, "kind": "started", "data": {"runner_pid": "abc"}}',
    '{"t": "event", "task": "TASK", "seq": 2, "kind": "usage", "data": {"usage": {"input_tokens": "many"}}}',
    '{"t": "event", "task": "TASK", "seq": 2, "kind": "text", "data": "x"}',
    '{"t": "event", "task": "TASK", "seq": 2, "kind": "result", "data": {"status": "exploded"}}',
]


@pytest.mark.parametrize("bad", BAD_LINES)
async def test_a_bad_event_line_is_skipped_and_the_engine_still_dispatches(
    make_app: Any, tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One valid-JSON line that is no event used to make every engine start raise, so no task ran."""
    app = make_app()
    broken = running_task(app, tmp_path)
    good = {"t": "event", "task": broken.id, "seq": 3, "ts": 1000.2, "kind": "text", "text": "after", "data": {}}
    append(app, broken, bad.replace("TASK", broken.id) + "\n" + json.dumps(good) + "\n")
    write_result(app, broken)
    queued = app.store.create_task({"text": "Create User model", "agent": "standin", "category": "backend",
                                    "state": "queued", "cwd": str(tmp_path), "created_at": 1001.0})  # fmt: skip
    caplog.set_level(logging.WARNING, logger="core.engine")
    await start_engine(app)
    try:
        await until(lambda: app.store.get_task(queued.id).state.finished)
    finally:
        await app.engine.stop()
    assert app.store.get_task(queued.id).state == TaskState.SUCCEEDED, "the queued task ran"
    task = app.store.get_task(broken.id)
    assert task.state == TaskState.SUCCEEDED and task.cost_usd == 1.25, "its result.json was recorded"
    assert [e["text"] for e in app.store.events(broken.id, kinds=["text"])] == ["after"], "the good lines count"
    assert any("skipped" in r.getMessage() and broken.id in r.getMessage() for r in caplog.records)


async def test_one_broken_task_never_blocks_the_others(make_app: Any, tmp_path: Path) -> None:
    """Bad result.json, truncated result.json, bad spec.json, truncated events: each ends with a reason."""
    app = make_app()
    bad_result = running_task(app, tmp_path)
    write_result(app, bad_result, {**RESULT, "status": 7})
    truncated_result = running_task(app, tmp_path)
    write_result(app, truncated_result, json.dumps(RESULT)[:40])
    not_a_result = running_task(app, tmp_path)
    write_result(app, not_a_result, {**RESULT, "result": {"status": "succeeded", "cost_usd": "a lot"}})
    bad_spec = running_task(app, tmp_path)
    (app.home / "tasks" / bad_spec.id / "spec.json").write_text("{not json")
    truncated_events = running_task(app, tmp_path)
    append(app, truncated_events, '{"t": "event", "task": "' + truncated_events.id + '", "seq": 2, "kind": "te')
    unreadable_events = running_task(app, tmp_path, started=False)
    (app.home / "tasks" / unreadable_events.id / "events.jsonl").mkdir()  # a directory: reading fails
    fine = running_task(app, tmp_path)
    write_result(app, fine)
    queued = app.store.create_task({"text": "Create User model", "agent": "standin", "category": "backend",
                                    "state": "queued", "cwd": str(tmp_path), "created_at": 1001.0})  # fmt: skip
    await start_engine(app)
    try:
        await until(lambda: app.store.get_task(queued.id).state.finished)
    finally:
        await app.engine.stop()
    assert app.store.get_task(queued.id).state == TaskState.SUCCEEDED
    assert app.store.get_task(fine.id).state == TaskState.SUCCEEDED
    for task in (bad_result, truncated_result, not_a_result):
        ended = app.store.get_task(task.id)
        assert (ended.state, ended.error) == (TaskState.FAILED, "its result.json could not be read"), task.id
    for task in (bad_spec, truncated_events, unreadable_events):
        ended = app.store.get_task(task.id)
        assert ended.state == TaskState.FAILED, task.id  # no tmux server ran: that is what it says
        assert ended.error in ("the runner vanished without a result", "its tmux server stopped"), task.id
    assert not app.store.active_tasks()


def _cli_setup(
    tmp_path: Path, home: Path, config_data: dict[str, Any], **agent_env: str
) -> tuple[Path, dict[str, str]]:
    config_data["agents"]["standin"]["env"] = {"ORCHESTRA_STANDIN_DELAY": "0", **agent_env}
    config_data["limits"]["engine_idle_exit_s"] = 120  # a loaded machine must not see it exit before the task
    config = tmp_path / "bots.yaml"
    config.write_text(yaml.safe_dump(config_data))
    return config, {"ORCHESTRA_HOME": str(home)}


def _wait_file(path: Path, needle: bytes = b"", timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and (not needle or needle in path.read_bytes())):
        assert time.monotonic() < deadline, f"{path.name} never showed {needle!r}"
        time.sleep(0.02)


def _wait_until(check: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _task_field(home: Path, task_id: str, name: str) -> Any:
    store = Store(home / "orchestra.db")
    try:
        return store.task_field(task_id, name)
    finally:
        store.close()


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b") ", 1)[1][:1] in (b"Z", b"X")
    except FileNotFoundError:
        return True


def _start_engine_process(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **env}
    full_env.pop("TMUX", None)
    command = [sys.executable, "-m", "bot", "--config", str(config), "engine"]
    engine = subprocess.Popen(command, cwd=str(ROOT), env=full_env, stdout=subprocess.DEVNULL)
    _wait_file(Path(env["ORCHESTRA_HOME"]) / ENGINE_SOCKET)
    return engine


def test_cancel_after_the_engine_died_records_the_finished_result(
    tmp_path: Path, home: Path, config_data: dict[str, Any]
) -> None:
    """Engine SIGKILLed, the agent finishes, then `cancel`: the result on disk wins, cost and all."""
    config, env = _cli_setup(tmp_path, home, config_data, ORCHESTRA_STANDIN_DURATION="2")
    engine = _start_engine_process(config, env)
    task_dir = home / "tasks" / "t1"
    try:
        delegated = orchestra("delegate", "--task", "Create User model", "--cwd", str(tmp_path), config=config, env=env)
        assert delegated.returncode == 0, delegated.stderr
        assert engine.poll() is None, "the engine we are about to kill is the one that runs the task"
        _wait_until(lambda: _task_field(home, "t1", "runner_pid"), "the engine never heard the runner start")
    finally:
        engine.send_signal(signal.SIGKILL)
        engine.wait()
    assert not (task_dir / "result.json").exists(), "the engine died before the agent finished"
    _wait_file(task_dir / "result.json")
    reported = json.loads((task_dir / "result.json").read_text())["result"]["cost_usd"]
    assert reported and reported > 0
    runner_pid = int(_task_field(home, "t1", "runner_pid"))
    _wait_until(lambda: _gone(runner_pid), "the runner did not exit")
    cancel = orchestra("cancel", "t1", config=config, env=env)
    assert "Traceback" not in cancel.stderr
    assert "t1 had already finished before the cancel: succeeded" in cancel.stderr
    store = Store(home / "orchestra.db")
    try:
        task = store.get_task("t1")
        assert task.state == TaskState.SUCCEEDED and task.cost_usd == reported
        costs = store.db.execute("SELECT cost_usd FROM costs WHERE task_id = 't1'").fetchall()
        assert costs == [(reported,)], "its cost is recorded once"
        completions = store.db.execute("SELECT COUNT(*) FROM outbox WHERE task_id = 't1' AND kind = 'completion'")
        assert completions.fetchone()[0] == 1, "the user is told it finished"
        assert not [a for a in store.audit_log() if a["action"] == "cancel"], "nothing was cancelled"
    finally:
        store.close()


HANG = {"kind": "claude", "command": "{python} -S {orchestra}/core/agents/standin", "max_concurrent": 4,
        "env": {"ORCHESTRA_STANDIN_MODE": "hang"}}  # fmt: skip


def _status_line(config: Path, env: dict[str, str], task_id: str) -> str:
    status = orchestra("status", config=config, env=env)
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    return next((line for line in status.stdout.splitlines() if line.split()[:1] == [task_id]), "")


def test_status_and_show_tell_the_truth_after_the_engine_was_killed(
    tmp_path: Path, home: Path, config_data: dict[str, Any]
) -> None:
    """SIGKILL the on-demand engine: a task that then finishes, and one whose runner dies, are not "running"."""
    config_data["agents"]["hang"] = HANG
    config, env = _cli_setup(tmp_path, home, config_data, ORCHESTRA_STANDIN_DURATION="8")
    engine = _start_engine_process(config, env)
    try:
        for args in (["--task", "Create User model"], ["--task", "wait", "--agent", "hang"]):
            assert orchestra("delegate", *args, "--cwd", str(tmp_path), config=config, env=env).returncode == 0
        assert engine.poll() is None, "the engine we are about to kill is the one that runs the tasks"
        for task_id in ("t1", "t2"):
            _wait_until(lambda t=task_id: _task_field(home, t, "runner_pid"), f"{task_id} never started")
    finally:
        engine.send_signal(signal.SIGKILL)
        engine.wait()
    assert not (home / "tasks" / "t1" / "result.json").exists(), "the engine died before t1 finished"
    hung_runner = int(_task_field(home, "t2", "runner_pid"))
    os.kill(hung_runner, signal.SIGKILL)
    _wait_file(home / "tasks" / "t1" / "result.json")
    runner = int(_task_field(home, "t1", "runner_pid"))
    _wait_until(lambda: _gone(runner) and _gone(hung_runner), "runners lived on")
    assert " succeeded " in _status_line(config, env, "t1")
    assert " failed " in _status_line(config, env, "t2")
    shown = orchestra("show", "t2", config=config, env=env)
    assert "error: the runner vanished without a result" in shown.stdout, shown.stdout + shown.stderr
    assert "succeeded" in orchestra("show", "t1", config=config, env=env).stdout
    store = Store(home / "orchestra.db")
    try:
        assert store.db.execute("SELECT COUNT(*) FROM costs WHERE task_id = 't1'").fetchone()[0] == 1
        assert store.get_task("t1").cost_usd
    finally:
        store.close()


def test_a_task_whose_tmux_server_stopped_ends_failed_with_that_reason(
    tmp_path: Path, home: Path, config_data: dict[str, Any]
) -> None:
    """`tmux kill-server` takes the on-demand engine and the task's pane: the task fails, saying why."""
    config_data["agents"]["hang"] = HANG
    config, env = _cli_setup(tmp_path, home, config_data)
    delegated = orchestra("delegate", "--task", "wait", "--agent", "hang", "--cwd", str(tmp_path), config=config,
                          env=env)  # fmt: skip
    assert delegated.returncode == 0, delegated.stderr
    _wait_until(lambda: _task_field(home, "t1", "runner_pid"), "t1 never started")
    runner = int(_task_field(home, "t1", "runner_pid"))
    subprocess.run(["tmux", "-L", config_data["tmux"]["socket_name"], "kill-server"], check=True)
    _wait_until(lambda: _gone(runner), "the runner lived on", timeout=30)
    assert " failed " in _status_line(config, env, "t1")
    shown = orchestra("show", "t1", config=config, env=env).stdout
    assert "error: its tmux server stopped" in shown, shown
    assert "cancelled" not in shown


async def test_a_runner_gone_with_its_tmux_server_is_reported_as_such(make_app: Any, tmp_path: Path) -> None:
    """No engine, no runner, no tmux server: `status` ends the task failed, naming the server."""
    app = make_app(agents__hang=HANG)
    await start_engine(app)
    try:
        task = app.service.delegate("wait", agent="hang", cwd=str(tmp_path)).task
        await until(lambda: app.store.get_task(task.id).started_at is not None)
    finally:
        await app.engine.stop()
    runner = int(app.store.task_field(task.id, "runner_pid"))
    os.kill(runner, signal.SIGKILL)
    app.tmux.server.kill()  # the whole private server, as when tmux dies
    await until(lambda: _gone(runner))
    active, done = app.service.status()
    assert not active
    assert [(t.id, t.state, t.error) for t in done] == [(task.id, TaskState.FAILED, "its tmux server stopped")]
