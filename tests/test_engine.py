"""The engine end to end: real tmux on a private socket, real SQLite, the real runner and stand-in."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from core.models import TaskState
from tests.conftest import ROOT, requires_tmux

pytestmark = requires_tmux

STANDIN = "{python} -S {orchestra}/core/agents/standin"


def standin(mode: str = "success", delay: str = "0", **env: str) -> dict[str, Any]:
    return {
        "kind": "claude",
        "command": STANDIN,
        "env": {"ORCHESTRA_STANDIN_MODE": mode, "ORCHESTRA_STANDIN_DELAY": delay, **env},
        "max_concurrent": 4,
    }


async def started(app: App) -> None:
    assert app.engine.acquire()
    await app.engine.start()


async def test_delegate_runs_and_summarises_in_git_repo(make_app: Any, repo: Path) -> None:
    app = make_app()
    await started(app)
    try:
        d = app.service.delegate("Create User model", cwd=str(repo))
        assert d.task.state == TaskState.RUNNING
        assert d.decision.agent == "standin"
        task = await app.engine.wait_finished(d.task.id, timeout=30)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED
    summary = task.summary
    assert summary["agent"] == "standin"
    assert summary["files"] and summary["files"][0]["added"] > 0
    assert summary["files"][0]["path"].endswith(".py")
    assert (repo / summary["files"][0]["path"]).exists()
    assert len(summary["digest"]) == 3
    assert summary["tokens"]["input"] > 0 and task.cost_usd and task.cost_usd > 0
    assert Path(summary["log"]).exists() and Path(summary["log"]).stat().st_size > 0
    notes = app.store.outbox_queue("console", task_id=task.id)
    assert len(notes) == 1 and notes[0].kind == "completion"
    assert len(notes[0].text) <= 1000 and "user_model.py +" in notes[0].text
    # the tmux window is gone once the runner is done
    await asyncio.sleep(0.2)
    assert task.id not in app.tmux.windows()


async def test_cancel_stops_a_running_agent(make_app: Any, tmp_path: Path) -> None:
    app = make_app(agents__hang=standin("hang"), limits__cancel_grace_s=1)
    await started(app)
    try:
        d = app.service.delegate("wait forever", agent="hang", cwd=str(tmp_path))
        await _until(lambda: app.store.get_task(d.task.id).started_at is not None)
        app.service.cancel(d.task.id)
        task = await app.engine.wait_finished(d.task.id, timeout=15)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.CANCELLED
    assert "cancelled" in task.error
    assert [a["action"] for a in app.store.audit_log()][:1] == ["cancel"]


async def test_cancel_queued_task_never_runs(make_app: Any, tmp_path: Path) -> None:
    app = make_app(agents__hang=standin("hang"), limits__max_concurrent=1)
    await started(app)
    try:
        first = app.service.delegate("one", agent="hang", cwd=str(tmp_path))
        second = app.service.delegate("two", agent="hang", cwd=str(tmp_path))
        assert second.task.state == TaskState.QUEUED
        assert app.service.cancel(second.task.id).state == TaskState.CANCELLED
        app.service.cancel(first.task.id)
        await app.engine.wait_finished(first.task.id, timeout=15)
    finally:
        await app.engine.stop()
    assert not (app.home / "tasks" / second.task.id).exists()


async def test_timeout_ends_timed_out(make_app: Any, tmp_path: Path) -> None:
    app = make_app(agents__hang=standin("hang"), limits__task_timeout_s=1, limits__cancel_grace_s=1)
    await started(app)
    try:
        d = app.service.delegate("too slow", agent="hang", cwd=str(tmp_path))
        t0 = time.monotonic()
        task = await app.engine.wait_finished(d.task.id, timeout=15)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.TIMED_OUT
    assert "timed out" in task.error
    assert time.monotonic() - t0 < 6


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("crash", "exited with code 3"), ("api_error", "401")],
)
async def test_crash_and_in_band_error_fail_with_reason(make_app: Any, tmp_path: Path, mode: str, reason: str) -> None:
    app = make_app(agents__bad=standin(mode))
    await started(app)
    try:
        d = app.service.delegate("do it", agent="bad", cwd=str(tmp_path))
        task = await app.engine.wait_finished(d.task.id, timeout=30)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.FAILED
    assert reason in task.error
    if mode == "api_error":
        assert task.exit_code == 0  # exit 0, yet failed: the in-band is_error flag decides
    assert reason in app.store.outbox_queue("console", task_id=task.id)[0].text


async def test_cost_cap_stops_agent_over_budget(make_app: Any, tmp_path: Path) -> None:
    app = make_app(agents__spender=standin("spend", "0.05"), budgets__per_task_usd=0.5)
    await started(app)
    try:
        d = app.service.delegate("spend money", agent="spender", cwd=str(tmp_path))
        task = await app.engine.wait_finished(d.task.id, timeout=60)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.OVER_BUDGET
    assert "crossed the cap" in task.error
    assert task.live_cost_usd is not None and task.live_cost_usd > 0.5
    assert "over budget" in app.store.outbox_queue("console", task_id=task.id)[0].text


async def test_concurrency_limit_and_fifo(make_app: Any, tmp_path: Path) -> None:
    agent = {"kind": "command", "command": "sleep", "args": ["0.6"], "max_concurrent": 4}
    app = make_app(agents__sleeper=agent, limits__max_concurrent=2)
    dispatched: list[str] = []
    app.engine.listeners.append(lambda tid, kind, _data: dispatched.append(tid) if kind == "dispatched" else None)
    await started(app)
    try:
        ids = [app.service.delegate(f"task {i}", agent="sleeper", cwd=str(tmp_path)).task.id for i in range(4)]
        assert [app.store.get_task(i).state for i in ids] == ["running", "running", "queued", "queued"]
        tasks = [await app.engine.wait_finished(i, timeout=30) for i in ids]
    finally:
        await app.engine.stop()
    assert all(t.state == TaskState.SUCCEEDED for t in tasks)
    assert dispatched == ids, "tasks must be dispatched in FIFO order"
    spans = [(t.started_at or 0, t.finished_at or 0) for t in tasks]
    for t, _ in spans:
        overlapping = sum(1 for s, e in spans if s <= t < e)
        assert overlapping <= 2


async def test_per_agent_limit_does_not_block_other_agents(make_app: Any, tmp_path: Path) -> None:
    slow = {"kind": "command", "command": "sleep", "args": ["1"], "max_concurrent": 1}
    app = make_app(agents__slow=slow)
    await started(app)
    try:
        a = app.service.delegate("a", agent="slow", cwd=str(tmp_path)).task
        b = app.service.delegate("b", agent="slow", cwd=str(tmp_path)).task
        c = app.service.delegate("c", agent="echo", cwd=str(tmp_path)).task
        assert app.store.get_task(b.id).state == TaskState.QUEUED
        assert app.store.get_task(c.id).state == TaskState.RUNNING
        for t in (a, b, c):
            await app.engine.wait_finished(t.id, timeout=30)
    finally:
        await app.engine.stop()


HOSTILE = (
    "$(touch {marker}) `touch {marker}` ; rm -rf ~ ; echo pwned > {marker}\n"
    "line two\twith tab \x07\x1b[31mred\x1b[0m \u202eRTL override\u202c עברית 🚀🔥 "
    "'single' \"double\" \\backslash {{braces}} %s %n\n" + "x" * 100_000
)


@pytest.mark.parametrize("size", ["argv", "stdin"])
async def test_hostile_text_reaches_agent_byte_for_byte(make_app: Any, tmp_path: Path, size: str) -> None:
    """Short text travels as one argv element; text over 100 KB on stdin. Neither is ever shell input."""
    marker = tmp_path / "pwned"
    record = tmp_path / "received.bin"
    app = make_app(agents__rec=standin("noop", ORCHESTRA_STANDIN_RECORD=str(record)), limits__max_task_chars=300_000)
    text = HOSTILE.format(marker=marker)
    if size == "argv":
        text = text[:400]
    await started(app)
    try:
        d = app.service.delegate(text, agent="rec", cwd=str(tmp_path))
        task = await app.engine.wait_finished(d.task.id, timeout=30)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    assert record.read_bytes() == text.strip().encode("utf-8")
    assert not marker.exists()
    assert app.store.get_task(task.id).text == text.strip()


async def test_oversized_and_empty_text_are_refused(make_app: Any) -> None:
    app = make_app()
    from core.errors import TaskRejected

    with pytest.raises(TaskRejected, match="limit is 200,000"):
        app.service.delegate("x" * 200_001)
    with pytest.raises(TaskRejected, match="empty"):
        app.service.delegate("   \n ")
    assert app.store.list_tasks() == []


async def test_approval_gate_holds_task_until_approved(make_app: Any, tmp_path: Path) -> None:
    app = make_app(policy__approval_for=["devops"])
    await started(app)
    try:
        d = app.service.delegate("set up the GitHub Actions CI pipeline and Dockerfile", cwd=str(tmp_path))
        assert d.decision.category == "devops"
        assert d.needs_approval and d.task.state == TaskState.AWAITING_APPROVAL
        assert app.store.outbox_queue("console", task_id=d.task.id)[0].kind == "approval"
        app.service.approve(d.task.id)
        task = await app.engine.wait_finished(d.task.id, timeout=30)
        from core.errors import InvalidTransition

        with pytest.raises(InvalidTransition, match="already approved by local"):
            app.service.approve(d.task.id)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED


async def test_review_gate_and_reject_with_retry(make_app: Any, tmp_path: Path) -> None:
    app = make_app(policy__review_for=["backend"])
    await started(app)
    try:
        d = app.service.delegate("add a REST endpoint for orders", cwd=str(tmp_path))
        task = await app.engine.wait_finished(d.task.id, timeout=30)
        assert task.state == TaskState.NEEDS_REVIEW
        rejected = app.service.reject(task.id, reason="use snake_case", retry=True)
        assert rejected.state == TaskState.REJECTED
        retry = app.store.list_tasks(limit=1)[0]
        assert retry.parent_id == task.id and "use snake_case" in retry.text
        assert retry.session_id == task.session_id  # the follow-up resumes the same agent session
        await app.engine.wait_finished(retry.id, timeout=30)
    finally:
        await app.engine.stop()


async def _until(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("finish", ["while_down", "after_restart"])
def test_killed_starter_is_recovered_once(tmp_path: Path, home: Path, config_data: dict[str, Any], finish: str) -> None:
    """SIGKILL the process that started a task mid-run; a restarted engine records the result once.

    ``while_down``: the task ends while no engine runs, so the result comes from the runner's files.
    ``after_restart``: the task is still running when the engine comes back and reports live.
    """
    import yaml

    from core.store import Store

    delay = "0.1" if finish == "while_down" else "0.6"
    config_data["agents"]["standin"]["env"] = {"ORCHESTRA_STANDIN_DELAY": delay}
    config = tmp_path / "bots.yaml"
    config.write_text(yaml.safe_dump(config_data))
    env = {**os.environ, "ORCHESTRA_HOME": str(home)}
    env.pop("TMUX", None)
    command = [sys.executable, "-m", "bot", "--config", str(config)]
    starter = subprocess.Popen(
        [*command, "delegate", "--task", "Create User model", "--wait", "--cwd", str(tmp_path)],
        cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    task_dir = home / "tasks" / "t1"
    deadline = time.monotonic() + 20
    while not ((task_dir / "events.jsonl").exists() and b'"started"' in (task_dir / "events.jsonl").read_bytes()):
        assert time.monotonic() < deadline, "task never started"
        time.sleep(0.02)
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    if finish == "while_down":
        while not (task_dir / "result.json").exists():
            assert time.monotonic() < deadline + 20, "the runner did not finish on its own"
            time.sleep(0.05)
    else:
        assert not (task_dir / "result.json").exists(), "killed before the task ended"
    store = Store(home / "orchestra.db")
    assert store.get_task("t1").state == TaskState.RUNNING  # nobody recorded it yet
    engine = subprocess.Popen([*command, "engine"], cwd=str(ROOT), env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while store.get_task("t1").state == TaskState.RUNNING:
            assert time.monotonic() < deadline, "the restarted engine never recorded the result"
            time.sleep(0.05)
    finally:
        engine.terminate()
        engine.wait(timeout=10)
    task = store.get_task("t1")
    assert task.state == TaskState.SUCCEEDED
    assert (tmp_path / "user_model.py").exists()
    records = [json.loads(x) for x in (task_dir / "events.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records].count("started") == 1, "the agent ran exactly once"
    assert store.db.execute("SELECT COUNT(*) FROM costs WHERE task_id='t1'").fetchone()[0] == 1
    completions = store.db.execute("SELECT COUNT(*) FROM outbox WHERE task_id='t1' AND kind='completion'")
    assert completions.fetchone()[0] == 1
    assert len(store.events("t1")) == len(records), "every event recorded once, none lost"
    store.close()


async def test_cli_approval_request_reaches_chat_with_buttons(make_app: Any, tmp_path: Path) -> None:
    """A task held for approval from the terminal is offered to the chats with Approve / Reject buttons."""
    from core.messages import keyboard_from_json

    app = make_app(policy__approval_for=["docs"], telegram__enabled=True, telegram__notify_chat_ids=[42])
    d = app.service.delegate("write docs for the API", cwd=str(tmp_path))
    assert d.needs_approval
    row = app.store.db.execute(
        "SELECT chat_id, text, markup_json FROM outbox WHERE channel = 'telegram' AND kind = 'approval'"
    ).fetchone()
    assert row is not None, "no approval request queued for Telegram"
    chat_id, text, markup = row
    assert chat_id is None  # fanned out to every notify chat by the delivery loop
    assert f"{d.task.id} needs approval" in text
    actions = [button.action for line in keyboard_from_json(markup) for button in line]
    assert actions == ["approve", "reject", "peek"]


async def test_a_runner_killed_outright_fails_its_task_and_its_agent(make_app: Any, tmp_path: Path) -> None:
    """SIGKILL the runner: the task ends failed with the reason, and its agent does not live on unseen."""
    app = make_app(agents__hang=standin("hang"))
    await started(app)
    try:
        d = app.service.delegate("wait forever", agent="hang", cwd=str(tmp_path))
        await _until(lambda: app.store.get_task(d.task.id).started_at is not None)
        [started_event] = app.store.events(d.task.id, kinds=["started"])
        agent_pid = started_event["data"]["pid"]
        os.kill(started_event["data"]["runner_pid"], signal.SIGKILL)
        task = await app.engine.wait_finished(d.task.id, timeout=15)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.FAILED
    assert "runner vanished" in task.error
    await _until(lambda: not _alive(agent_pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is as good as gone
        return fh.read().split(") ")[1][0] != "Z"


def test_a_crash_while_recording_a_result_keeps_none_of_it_and_the_retry_records_all(
    make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finished state, the cost row and the completion notices commit together. A crash
    between them used to leave a succeeded task whose completion never reached the chat (the
    20-SIGKILL test caught one), since a result is recorded only once."""
    app = make_app(telegram={"enabled": True, "notify_chat_ids": [111]}, notify={"console": True})
    task = app.store.create_task({"text": "x", "agent": "standin", "category": "backend", "state": "running",
                                  "cwd": str(tmp_path), "created_at": 1.0, "started_at": 1.0})  # fmt: skip
    payload = {"status": "succeeded", "exited_at": 2.0, "result": {"status": "succeeded", "final_text": "done"}}

    def crash(*_args: Any) -> None:
        raise KeyboardInterrupt("killed between the state change and the notices")

    monkeypatch.setattr(app.engine.recorder, "_queue_notices", crash)
    with pytest.raises(KeyboardInterrupt):
        app.engine.finalize(task.id, payload)
    assert app.store.get_task(task.id).state == TaskState.RUNNING, "none of it was kept"
    assert app.store.cost_totals()["tasks"] == 0
    monkeypatch.undo()
    assert app.engine.finalize(task.id, payload)
    assert app.store.get_task(task.id).state == TaskState.SUCCEEDED
    assert len(app.store.outbox_queue("console", task_id=task.id)) == 1
    assert [i.kind for i in app.store.outbox_queue("telegram")] == ["completion"]
    assert not app.engine.finalize(task.id, payload), "recorded once"
