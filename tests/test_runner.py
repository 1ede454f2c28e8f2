"""The runner with real agents: real tmux, real processes, real files and the real CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import App
from core.errors import TmuxError
from core.models import TaskState
from core.tmux import TmuxManager
from tests.conftest import ROOT, orchestra, requires_tmux

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


# -- the process tree ------------------------------------------------------------------------
# Each script leaves a plain background child and one that left the session (setsid -f forks,
# so its parent exits at once and it is orphaned); both write their pid where the test reads it.
BACKGROUND = "sleep 4444 & echo $! > bg.pid; setsid -f sh -c 'echo $$ > setsid.pid; exec sleep 4444'; "


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, from /proc (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def pids_in(work: Path, *names: str) -> list[int]:
    await until(lambda: all((work / n).exists() and (work / n).read_text().strip() for n in names))
    return [int((work / n).read_text()) for n in names]


async def run_watching_cpu(app: App, task_id: str, timeout: float) -> tuple[Any, float]:
    """Wait for a task to end while sampling its runner's CPU time; the task and the last sample."""
    await until(lambda: app.store.task_field(task_id, "runner_pid"))
    runner = int(app.store.task_field(task_id, "runner_pid"))
    used = 0.0
    deadline = time.monotonic() + timeout
    while app.store.get_task(task_id).state == TaskState.RUNNING and time.monotonic() < deadline:
        used = cpu_seconds(runner) or used
        await asyncio.sleep(0.1)
    return app.store.get_task(task_id), used


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """The agents' working directory; whatever pid they left there is killed at teardown."""
    path = tmp_path / "work"
    path.mkdir()
    yield path
    for pid_file in path.glob("*.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_background_child_holding_the_output_does_not_keep_the_run_alive(make_app: Any, work: Path) -> None:
    app = make_app(agents__bg=shell_agent(BACKGROUND + "echo done"), limits__task_timeout_s=8, limits__cancel_grace_s=1)
    await started(app)
    try:
        task = app.service.delegate("leave things running", agent="bg", cwd=str(work)).task
        bg, orphan = await pids_in(work, "bg.pid", "setsid.pid")
        t0 = time.monotonic()
        task, cpu = await run_watching_cpu(app, task.id, timeout=15)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    assert time.monotonic() - t0 < 7, "the run ends soon after the agent itself exits, not at the timeout"
    assert not alive(bg) and not alive(orphan), "what the agent left running is stopped with the run"
    assert cpu < 1.0, f"the runner used {cpu:.2f} s of CPU waiting"
    assert "done" in app.service.log_path(task.id).read_text()


async def test_timeout_kills_background_and_setsid_children(make_app: Any, work: Path) -> None:
    app = make_app(
        agents__bg=shell_agent(BACKGROUND + "exec sleep 4444"), limits__task_timeout_s=2, limits__cancel_grace_s=1
    )
    await started(app)
    try:
        task = app.service.delegate("never ends", agent="bg", cwd=str(work)).task
        bg, orphan = await pids_in(work, "bg.pid", "setsid.pid")
        task, cpu = await run_watching_cpu(app, task.id, timeout=15)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.TIMED_OUT
    assert not alive(bg) and not alive(orphan)
    assert cpu < 1.0, f"the runner used {cpu:.2f} s of CPU waiting"


async def test_cancel_kills_background_and_setsid_children(make_app: Any, tmp_path: Path, work: Path) -> None:
    app = make_app(agents__bg=shell_agent(BACKGROUND + "wait"), limits__cancel_grace_s=1)
    await started(app)
    try:
        task = app.service.delegate("wait for them", agent="bg", cwd=str(work)).task
        bg, orphan = await pids_in(work, "bg.pid", "setsid.pid")
        await until(lambda: app.store.task_field(task.id, "runner_pid"))
        cancelled = await asyncio.to_thread(orchestra, "cancel", task.id, config=tmp_path / "bots.yaml")
        assert cancelled.returncode == 0, cancelled.stderr
        task = await app.engine.wait_finished(task.id, timeout=15)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.CANCELLED
    assert not alive(bg) and not alive(orphan)


# -- no path reaches a tmux format -------------------------------------------------------------
def hostile_dir(base: Path) -> tuple[Path, Path]:
    """A directory whose name is a tmux format that runs a command; and the file it would create."""
    marker = base / "pwned"
    path = base / f"#(touch {marker})"
    path.mkdir(parents=True)
    return path, marker


PWD_AGENT = shell_agent("pwd > where.txt")


async def test_a_tmux_format_in_the_working_directory_is_just_a_name(make_app: Any, tmp_path: Path) -> None:
    cwd, marker = hostile_dir(tmp_path / "w")
    app = make_app(agents__pwd=PWD_AGENT)
    await started(app)
    try:
        task = app.service.delegate("where am I", agent="pwd", cwd=str(cwd)).task
        task = await app.engine.wait_finished(task.id, timeout=30)
    finally:
        await app.engine.stop()
    await asyncio.sleep(0.5)  # tmux runs #() jobs in the background
    assert task.state == TaskState.SUCCEEDED, task.error
    assert (cwd / "where.txt").read_text().strip() == str(cwd), "the agent runs exactly where it was asked to"
    assert not marker.exists(), "tmux ran a command from the directory name"


def test_delegate_from_inside_such_a_directory(make_app: Any, tmp_path: Path) -> None:
    """The CLI's background engine starts in the user's directory: that too never reaches tmux."""
    cwd, marker = hostile_dir(tmp_path / "w")
    make_app(agents__pwd=PWD_AGENT)  # writes bots.yaml
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TMUX", None)
    argv = [sys.executable, "-m", "bot", "--config", str(tmp_path / "bots.yaml")]
    done = subprocess.run(
        [*argv, "delegate", "--agent", "pwd", "--task", "where am I", "--wait"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    time.sleep(0.5)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (cwd / "where.txt").read_text().strip() == str(cwd)
    assert not marker.exists(), "tmux ran a command from the directory name"


async def test_a_missing_working_directory_fails_the_task_in_one_line(make_app: Any, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    app = make_app(agents__pwd=PWD_AGENT, agents__slow=shell_agent("sleep 1"), limits__max_concurrent=1)
    await started(app)
    try:
        blocker = app.service.delegate("hold the slot", agent="slow", cwd=str(tmp_path)).task
        task = app.service.delegate("where am I", agent="pwd", cwd=str(gone)).task
        gone.rmdir()  # removed while the task waited in the queue
        await app.engine.wait_finished(blocker.id, timeout=30)
        task = await app.engine.wait_finished(task.id, timeout=30)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.FAILED
    assert task.error == f"could not start sh in {gone}: No such file or directory"


def test_window_names_and_targets_never_reach_tmux_as_formats(socket_name: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    tmux = TmuxManager(socket_name, "test", config_file="/dev/null")
    for name in (f"#(touch {marker})", "a:b", ""):
        with pytest.raises(TmuxError, match="is not a window name"):
            tmux.start_window(name, ["sleep", "5"], cwd=str(tmp_path))
        with pytest.raises(TmuxError, match="is not a window name"):
            tmux.capture(name)
    time.sleep(0.3)
    assert not marker.exists()
    assert tmux.windows() == {}


# -- durations -----------------------------------------------------------------------------------
async def test_a_thirty_day_timeout_and_grace_run_a_task(make_app: Any, tmp_path: Path) -> None:
    """Above ~24.8 days select() overflowed: the runner crashed before the agent's first line."""
    app = make_app(limits__task_timeout_s=2_592_000, limits__cancel_grace_s=2_592_000)
    await started(app)
    try:
        task = app.service.delegate("say hello", agent="echo", cwd=str(tmp_path)).task
        task = await app.engine.wait_finished(task.id, timeout=30)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("limits", "task_timeout_s", 2_592_001),
        ("limits", "task_timeout_s", float("inf")),
        ("limits", "cancel_grace_s", 1e12),
        ("limits", "engine_idle_exit_s", 1e12),
        ("watchdog", "check_every_s", 1e12),
        ("budgets", "check_every_s", float("inf")),
    ],
)
def test_a_duration_past_thirty_days_is_refused_in_one_line(
    make_app: Any, tmp_path: Path, section: str, key: str, value: float
) -> None:
    make_app()
    path = tmp_path / "bots.yaml"
    data = yaml.safe_load(path.read_text())
    data[section][key] = value
    path.write_text(yaml.safe_dump(data))
    checked = orchestra("config", "check", config=path)
    assert checked.returncode != 0
    output = (checked.stdout + checked.stderr).strip()
    assert f"{section}.{key}: must be at most 2592000 (30 days)" in output
    assert "Traceback" not in output and len(output.splitlines()) == 1, output


# -- bounded events ------------------------------------------------------------------------------
# Claude Code's stream-json, very chatty: every line a message with text and its own usage.
NOISY = """
import json, sys
out = sys.stdout
for i in range(LINES):
    message = {"id": f"m{i}", "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": f"thinking {i}"}],
               "usage": {"input_tokens": 10, "output_tokens": 1}}
    out.write(json.dumps({"type": "assistant", "message": message}) + "\\n")
out.write(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "all done",
                      "total_cost_usd": 0.5, "num_turns": LINES,
                      "usage": {"input_tokens": 10 * LINES, "output_tokens": LINES}}) + "\\n")
"""


async def test_a_noisy_agent_leaves_events_and_store_bounded(make_app: Any, tmp_path: Path) -> None:
    lines, cap = 1500, 25_000  # (the Claude parser is quadratic in messages: more lines, much slower)
    script = NOISY.replace("LINES", str(lines))
    noisy = {"kind": "claude", "command": f"{{python}} -c {shlex.quote(script)}", "max_concurrent": 1}
    app = make_app(agents__noisy=noisy, limits__events_max_bytes=cap, budgets__per_task_usd=None)
    await started(app)
    try:
        task = app.service.delegate("think out loud", agent="noisy", cwd=str(tmp_path)).task
        task = await app.engine.wait_finished(task.id, timeout=120)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    events_file = app.home / "tasks" / task.id / "events.jsonl"
    assert events_file.stat().st_size < 2 * cap, "events.jsonl grows past its cap"
    rows = app.store.events(task.id, limit=1_000_000)
    assert len(rows) < 600, f"{len(rows)} event rows for one task"
    # control events survive: the final usage, the cost and the result
    assert task.input_tokens == 10 * lines and task.output_tokens == lines
    assert task.cost_usd == 0.5
    assert rows[-1]["kind"] == "result"
    notice = [r for r in rows if r["kind"] == "notice"]
    assert len(notice) == 1 and "events dropped" in notice[0]["text"]
    dropped = int(notice[0]["text"].split()[0])
    assert dropped > lines // 2
    assert app.service.log_path(task.id).read_text().count("thinking") == lines, "the log keeps every line"


async def test_the_agent_gets_default_sigpipe(make_app: Any, work: Path) -> None:
    """Python ignores SIGPIPE; an agent inheriting that turns every `cmd | head` into errors."""
    app = make_app(agents__piper=shell_agent("(yes; echo $? > yes.status) | head -n 1"))
    await started(app)
    try:
        task = app.service.delegate("pipe into head", agent="piper", cwd=str(work)).task
        task = await app.engine.wait_finished(task.id, timeout=30)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    assert (work / "yes.status").read_text().strip() == "141", "yes ends by SIGPIPE, as in a terminal"
    assert "Broken pipe" not in (app.home / "tasks" / task.id / "stderr.log").read_text()
