"""Tasks on another host over a real sshd on 127.0.0.1: setup, a run, cancel, a dropped link, attach, a host down.

The "remote" host is this machine reached through its own sshd (its own host key, a throwaway
client key), logged in as a throwaway user where users can be made (root: CI), with its own data
directory and its own tmux server (``tmux -L orchestra-remote-…`` of that user): nothing of the
task runs in the engine's tmux server or under the engine's user.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import App
from core.errors import HostUnavailable
from core.messages import OutKind
from core.models import TaskState
from tests.conftest import ROOT, free_port, requires_tmux
from tests.sshd import Sshd, remove_user, sshd_available, start_sshd, throwaway_user

pytestmark = [
    requires_tmux,
    pytest.mark.skipif(not sshd_available(), reason="openssh-server is not installed (apt-get install openssh-server)"),
]

STANDIN = "{python} -S {orchestra}/core/agents/standin"


def standin(mode: str = "success", delay: str = "0", **env: str) -> dict[str, Any]:
    return {"kind": "claude", "command": STANDIN, "max_concurrent": 4,
            "env": {"ORCHESTRA_STANDIN_MODE": mode, "ORCHESTRA_STANDIN_DELAY": delay, **env}}  # fmt: skip


class Remote:
    """The sshd, the user it logs in as, and the host's data directory and tmux socket."""

    def __init__(self, sshd: Sshd, data: Path, user: str | None, tmux_socket: str) -> None:
        self.sshd, self.data, self.user, self.tmux_socket = sshd, data, user, tmux_socket

    def host(self, **more: Any) -> dict[str, Any]:
        return self.sshd.host_config(self.data, tmux_socket=self.tmux_socket, **more)


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    base = Path(tempfile.mkdtemp(prefix="orch-hosts-"))
    base.chmod(0o755)
    user = throwaway_user(base / "remote")
    if user is None:
        (base / "remote").mkdir()
    try:
        sshd = start_sshd(base / "sshd", user)
    except RuntimeError as exc:
        remove_user(user)
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot run sshd here: {exc}")
    socket = f"orchestra-remote-{uuid.uuid4().hex[:8]}"
    try:
        yield Remote(sshd, base / "remote" / "data", user, socket)
    finally:
        sshd.stop()
        if user is None:
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
        remove_user(user)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def app_on_host(make_app: Any, remote: Remote) -> Iterator[Any]:
    made: list[App] = []

    def make(**overrides: Any) -> App:
        overrides.setdefault("hosts__box", remote.host(agents=["standin", "hang", "slow"]))
        app: App = make_app(agents__hang=standin("hang"), agents__slow=standin("success", "0.25"), **overrides)
        lines = app.service.setup_host("box")
        assert all(ok for ok, _ in lines), lines
        made.append(app)
        return app

    yield make
    for app in made:  # the test's own connection to the host (its control socket is in the test's data dir)
        app.service.hosts.get("box").disconnect()


async def _until(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def _owner(path: Path) -> int:
    return path.stat().st_uid


async def test_setup_copies_the_runner_and_checks_the_tools(app_on_host: Any, remote: Remote) -> None:
    app = app_on_host()
    lines = {line.split(":")[0]: ok for ok, line in app.service.setup_host("box")}
    assert lines["python"] and lines["tmux"] and lines["git"] and lines["agent standin"]
    assert (remote.data / "runner" / "core" / "runner.py").exists()
    if remote.user:
        assert _owner(remote.data / "runner" / "core" / "runner.py") != os.getuid()  # written by the host's user


async def test_a_task_runs_on_the_host_and_its_events_and_result_come_back(
    app_on_host: Any, remote: Remote, tmp_path: Path
) -> None:
    app = app_on_host()
    assert app.engine.acquire()
    await app.engine.start()
    try:
        d = app.service.delegate("@host:box Create User model", cwd=str(tmp_path))
        assert d.task.host == "box" and d.task.text == "Create User model"
        task = await app.engine.wait_finished(d.task.id, timeout=30)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    assert task.cost_usd and task.cost_usd > 0 and task.input_tokens > 0
    remote_dir = remote.data / "tasks" / task.id
    assert (remote_dir / "result.json").exists()
    made = list((remote.data / "work" / task.id).glob("*.py"))
    assert made, "the agent worked in its directory on the host"
    assert not list(tmp_path.glob("*.py")), "nothing was made here"
    if remote.user:
        assert _owner(made[0]) != os.getuid()
    lines = (remote_dir / "events.jsonl").read_bytes().splitlines()
    seqs = [e["seq"] for e in app.store.events(task.id)]
    assert seqs == list(range(1, len(lines) + 1))  # every event once, in order
    assert (app.home / "tasks" / task.id / "events.jsonl").read_bytes().splitlines() == lines  # the local copy
    assert len(app.store.outbox_queue("console", task_id=task.id)) == 1
    assert not (remote_dir / "launch.bin").exists() and not (app.home / "tasks" / task.id / "launch.bin").exists()
    from tests.conftest import orchestra

    logs = await asyncio.to_thread(orchestra, "logs", task.id, config=app.config_path)
    assert logs.returncode == 0 and '"type":"result"' in logs.stdout.replace(" ", "")  # output.log, read there
    shown = await asyncio.to_thread(orchestra, "show", task.id, config=app.config_path)
    assert "on host box" in shown.stdout
    status = await asyncio.to_thread(orchestra, "status", config=app.config_path)
    assert "@host:box Create User model" in status.stdout  # where it ran, in its line


async def test_a_host_runs_at_most_its_limit(app_on_host: Any, remote: Remote, tmp_path: Path) -> None:
    app = app_on_host(hosts__box=remote.host(agents=["standin", "hang", "slow"], max_concurrent=1))
    assert app.engine.acquire()
    await app.engine.start()
    try:
        first = app.service.delegate("one", agent="hang", cwd=str(tmp_path), host="box").task
        second = app.service.delegate("two", agent="hang", cwd=str(tmp_path), host="box").task
        here = app.service.delegate("three", agent="hang", cwd=str(tmp_path)).task
        await _until(lambda: app.store.get_task(first.id).started_at is not None)
        assert app.store.get_task(second.id).state == TaskState.QUEUED  # the host is full
        assert app.store.get_task(here.id).state == TaskState.RUNNING  # this machine is not
        for task in (first, here):
            app.service.cancel(task.id)
        await _until(lambda: app.store.get_task(second.id).state == TaskState.RUNNING)  # its turn came
        app.service.cancel(second.id)
        await app.engine.wait_finished(second.id, timeout=20)
    finally:
        await app.engine.stop()


def _git_out(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


async def test_a_worktree_is_made_there_and_its_branch_comes_back(app_on_host: Any, remote: Remote, repo: Path) -> None:
    app = app_on_host(limits__isolation="worktree")
    base = _git_out(repo, "branch", "--show-current")
    assert app.engine.acquire()
    await app.engine.start()
    try:
        d = app.service.delegate("Create User model", cwd=str(repo), host="box")
        task = await app.engine.wait_finished(d.task.id, timeout=40)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    assert task.branch and task.branch.startswith("orchestra/") and (task.worktree or "").startswith("box:")
    there = Path(task.worktree.split(":", 1)[1])
    assert there.is_dir() and str(there).startswith(str(remote.data)) and list(there.glob("*.py"))
    assert not list(repo.glob("*.py")), "the agent worked on the host, not in the checkout here"
    shown = _git_out(repo, "show", "--stat", "--format=%s", task.branch)
    assert shown.startswith(f"{task.id}: Create User model") and ".py" in shown  # the branch came back
    diff = app.service.branch_diff(task.id)
    assert diff.diff.files >= 1 and b"+" in diff.diff.patch
    merged = app.service.merge_branch(task.id)[1]
    assert merged.base == base.strip() and merged.files >= 1
    assert list(repo.glob("*.py")), "merged into the base here"


async def test_the_permission_hook_asks_across_the_link(app_on_host: Any, remote: Remote, tmp_path: Path) -> None:
    asked = "curl -s http://127.0.0.1:9/ ; touch asked-and-allowed"  # curl: the shipped policy asks a person
    commands = json.dumps([asked])
    app = app_on_host(agents__standin__env={"ORCHESTRA_STANDIN_DELAY": "0", "ORCHESTRA_STANDIN_COMMANDS": commands})
    assert app.engine.acquire()
    await app.engine.start()
    try:
        d = app.service.delegate("make the marker", agent="standin", cwd=str(tmp_path), host="box")
        await _until(lambda: app.store.open_permissions(d.task.id), timeout=30)
        [request] = app.store.open_permissions(d.task.id)
        assert "curl" in request.subject + request.detail
        assert not (remote.data / "work" / d.task.id / "asked-and-allowed").exists()  # it waits for the answer
        app.service.answer_permission(request.ref, "allow", actor="alice", source="cli")
        task = await app.engine.wait_finished(d.task.id, timeout=40)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    assert (remote.data / "work" / task.id / "asked-and-allowed").exists(), "the command ran there once allowed"


async def test_cancel_reaches_the_runner_on_the_host(app_on_host: Any, tmp_path: Path, remote: Remote) -> None:
    app = app_on_host(limits__cancel_grace_s=1)
    assert app.engine.acquire()
    await app.engine.start()
    try:
        d = app.service.delegate("wait forever", agent="hang", cwd=str(tmp_path), host="box")
        await _until(lambda: app.store.get_task(d.task.id).started_at is not None)
        assert d.task.id not in app.tmux.windows()  # not in the engine's tmux server
        assert f"orchestra {d.task.id}: hang running" in app.service.peek(d.task.id)  # the pane there
        assert "hang running" in (app.service.screen(d.task.id) or "")  # with its colours, for /screen
        assert "Sent to" in app.service.say(d.task.id, "use the v2 API")  # it reads stream-json there too
        app.service.cancel(d.task.id)
        task = await app.engine.wait_finished(d.task.id, timeout=20)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.CANCELLED
    assert "cancelled" in task.error


async def test_a_cancel_as_the_task_starts_leaves_nothing_running_there(
    app_on_host: Any, tmp_path: Path, remote: Remote
) -> None:
    app = app_on_host()
    box = app.service.hosts.get("box")

    def windows() -> list[str]:
        listed = f"tmux -L {remote.tmux_socket} list-windows -a -F '#{{window_name}}'"
        return [w for w in box.run(listed, check=False).stdout.decode().split() if w != "orchestra"]

    assert app.engine.acquire()
    await app.engine.start()
    try:
        ids = []
        for _ in range(3):  # the cancel lands while its window is being opened there, or just after
            task_id = app.service.delegate("wait forever", agent="hang", cwd=str(tmp_path), host="box").task.id
            await _until(partial(lambda t: app.store.task_field(t, "state") == TaskState.RUNNING, task_id), 10)
            app.service.cancel(task_id)
            ids.append(task_id)
        for task_id in ids:
            assert (await app.engine.wait_finished(task_id, timeout=20)).state == TaskState.CANCELLED
        try:
            await _until(lambda: not windows(), timeout=20)  # no agent goes on there for a task cancelled here
        except AssertionError:
            raise AssertionError(f"still running there: {windows()}") from None
    finally:
        await app.engine.stop()


FILES_AGENT = """\
import pathlib, sys
inbox, out = pathlib.Path('.orchestra/inbox'), pathlib.Path('.orchestra/outbox')
if 'wait for' in sys.argv[1]:
    import time
    deadline = time.monotonic() + 20
    while not (inbox / 'late.txt').exists() and time.monotonic() < deadline:
        time.sleep(0.05)
seen = sorted(p.name + '=' + p.read_text() for p in inbox.iterdir()) if inbox.is_dir() else []
out.mkdir(parents=True, exist_ok=True)
(out / 'huge.bin').write_bytes(b'x' * 2_000_000)
(out / 'report.txt').write_text('seen: ' + ','.join(seen) + chr(10) + 'prompt: ' + sys.argv[1])
print('done')
"""


async def test_files_go_to_the_host_and_its_outbox_comes_back(app_on_host: Any, tmp_path: Path, remote: Remote) -> None:
    agent = {"kind": "command", "command": "{python}", "args": ["-S", "-c", FILES_AGENT, "{task}"]}
    app = app_on_host(
        hosts__box=remote.host(agents=["standin", "hang", "slow", "filer"]), agents__filer=agent,
        files__outbox_max_mb=1,
    )  # fmt: skip
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "notes.txt").write_text("hello from the phone")
    assert app.engine.acquire()
    await app.engine.start()
    try:
        d = app.service.delegate("summarise the notes", agent="filer", host="box", cwd=str(tmp_path),
                                 files=[staged / "notes.txt"])  # fmt: skip
        task = await app.engine.wait_finished(d.task.id, timeout=30)
        waiting = app.service.delegate("wait for the late file", agent="filer", host="box", cwd=str(tmp_path)).task
        await _until(lambda: app.store.get_task(waiting.id).started_at is not None)
        (staged / "late.txt").write_text("late news")
        line = app.service.say(waiting.id, "here it is", files=[staged / "late.txt"])
        late = await app.engine.wait_finished(waiting.id, timeout=30)
        await _until(lambda: len(app.store.list_tasks()) == 3)  # the words' follow-up: not needed here
        follow = [t for t in app.store.list_tasks() if t.parent_id == waiting.id]
        app.service.cancel(follow[0].id)
        await app.engine.wait_finished(follow[0].id, timeout=30)
    finally:
        await app.engine.stop()
    assert line.startswith(f"💬 Kept for {waiting.id}"), line  # the words: a follow-up; the file: there at once
    assert "seen: late.txt=late news" in Path(late.summary["outbox"]["files"][0]["path"]).read_text()
    assert task.state == TaskState.SUCCEEDED, task.error
    outbox = task.summary["outbox"]
    [sent] = outbox["files"]
    report = Path(sent["path"]).read_text()
    assert sent["name"] == "report.txt" and Path(sent["path"]).is_relative_to(app.home)  # here, not there
    assert "seen: notes.txt=hello from the phone" in report  # the file reached the agent's inbox there
    assert "Attached files (in .orchestra/inbox/): notes.txt" in report
    assert "(Files you write to .orchestra/outbox/ are sent to the person when you finish.)" in report
    assert outbox["skipped"] == ["huge.bin (1.9 MB, over the 1.0 MB limit)"]
    there = remote.data / "work" / task.id / ".orchestra" / "outbox"
    assert sorted(p.name for p in there.iterdir()) == ["huge.bin"]  # what came here left the host
    files = [i.text for i in app.store.outbox_queue("console", task_id=task.id) if i.kind == OutKind.FILE]
    assert [text for text in files if "report.txt" in text] == [f"📎 {task.id} · report.txt · {sent['size']} B"]
    assert any("huge.bin" in text for text in files)  # the one left there is named


async def test_a_message_and_a_stop_reach_the_agent_on_the_host(
    app_on_host: Any, tmp_path: Path, remote: Remote
) -> None:
    app = app_on_host(
        hosts__box=remote.host(agents=["standin", "hang", "slow", "steady", "long"]),
        agents__steady=standin("success", "0.6"), agents__long=standin("success", "1.5"),
    )  # fmt: skip
    assert app.engine.acquire()
    await app.engine.start()
    try:
        said = app.service.delegate("add the login form", agent="steady", host="box", cwd=str(tmp_path)).task.id
        stopped = app.service.delegate("add the signup form", agent="long", host="box", cwd=str(tmp_path)).task.id
        await _until(lambda: all(app.store.get_task(t).started_at for t in (said, stopped)))
        line = app.service.say(said, "use the v2 API instead")
        assert line.startswith(f"💬 Sent to {said}'s running agent (steady)"), line
        assert app.service.stop(stopped).startswith(f"⏹ {stopped} stops after its current step; its session is kept")
        done = await app.engine.wait_finished(said, timeout=40)
        ended = await app.engine.wait_finished(stopped, timeout=40)
        await asyncio.sleep(0.5)  # a dispatch pass settles what was said
    finally:
        await app.engine.stop()
    assert done.state == TaskState.SUCCEEDED, done.error
    [taken] = [line for line in (done.final_text or "").splitlines() if "Taken into account while working" in line]
    assert "use the v2 API instead" in taken  # the agent on the host read it mid-run
    assert [(s.how, s.state) for s in app.store.task_says(said)] == [("live", "delivered")]
    assert ended.state == TaskState.CANCELLED and "session is kept" in (ended.error or ""), ended.error
    assert ended.session_id
    assert len(app.store.list_tasks()) == 2, "delivered live: no follow-up"


async def test_a_killed_connection_loses_nothing(app_on_host: Any, tmp_path: Path, remote: Remote) -> None:
    app = app_on_host()
    assert app.engine.acquire()
    await app.engine.start()
    try:
        d = app.service.delegate("Create User model", agent="slow", cwd=str(tmp_path), host="box")
        await _until(lambda: app.store.get_task(d.task.id).started_at is not None)
        host = app.engine.remote.hosts.get("box")
        pid = host.master_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # the one connection to the host, mid-task
        killed_at_seq = int(app.store.task_field(d.task.id, "last_seq") or 0)
        task = await app.engine.wait_finished(d.task.id, timeout=40)
        assert host.master_pid() not in (None, pid)  # a new connection came up
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    lines = (remote.data / "tasks" / task.id / "events.jsonl").read_bytes().splitlines()
    seqs = [e["seq"] for e in app.store.events(task.id)]
    assert len(lines) > killed_at_seq
    assert seqs == list(range(1, len(lines) + 1))  # the events written while the link was down were replayed
    assert len(app.store.outbox_queue("console", task_id=task.id)) == 1  # the result recorded once
    assert len([r for r in app.store.db.execute("SELECT 1 FROM costs WHERE task_id = ?", [task.id])]) == 1


def _read_pty_until(argv: list[str], env: dict[str, str], wanted: bytes, timeout: float = 15) -> bytes:
    """Run ``argv`` on a new pseudo-terminal (as a person's terminal) until ``wanted`` shows; what it showed."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI, on the terminal
        os.chdir(ROOT)
        os.execvpe(argv[0], argv, env)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while wanted not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    return seen


async def test_an_engine_restart_mid_task_replays_it_once(app_on_host: Any, tmp_path: Path, remote: Remote) -> None:
    from bot.app import open_app

    app = app_on_host()
    assert app.engine.acquire()
    await app.engine.start()
    d = app.service.delegate("Create User model", agent="slow", cwd=str(tmp_path), host="box")
    await _until(lambda: app.store.get_task(d.task.id).started_at is not None)
    await app.engine.stop()  # the engine goes away; the task goes on there
    await _until(lambda: (remote.data / "tasks" / d.task.id / "result.json").exists(), timeout=30)
    again = open_app(app.config_path)
    try:
        assert again.engine.acquire()
        await again.engine.start()  # reconcile: the local copy replayed, the follower goes on from its end
        task = await again.engine.wait_finished(d.task.id, timeout=30)
        seqs = [e["seq"] for e in again.store.events(task.id)]
        completions = len(again.store.outbox_queue("console", task_id=task.id))
    finally:
        await again.engine.stop()
        again.close()
    assert task.state == TaskState.SUCCEEDED, task.error
    lines = (remote.data / "tasks" / task.id / "events.jsonl").read_bytes().splitlines()
    assert seqs == list(range(1, len(lines) + 1)) and completions == 1  # every event and the result once


async def test_a_runner_that_vanished_there_fails_its_task_once(app_on_host: Any, tmp_path: Path) -> None:
    app = app_on_host()
    assert app.engine.acquire()
    await app.engine.start()
    try:
        d = app.service.delegate("wait forever", agent="hang", cwd=str(tmp_path), host="box")
        await _until(lambda: app.store.get_task(d.task.id).started_at is not None)
        host = app.service.hosts.get("box")
        agent = app.store.events(d.task.id, kinds=["started"], limit=1)[0]["data"]["pid"]
        host.run(f"kill -KILL {int(app.store.task_field(d.task.id, 'runner_pid'))}")  # no result, no window
        app.engine.sweep()
        task = await app.engine.wait_finished(d.task.id, timeout=20)
        state = host.run(f"sed -n 's/^State:\\s*//p' /proc/{int(agent)}/status 2>/dev/null", check=False).stdout
        assert state[:1] in (b"", b"Z"), state  # its agent was stopped there too (a zombie is dead: PID 1 reaps it)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.FAILED
    assert task.error == "its runner on host box vanished without a result"


async def test_attach_opens_the_remote_window(app_on_host: Any, tmp_path: Path, remote: Remote) -> None:
    app = app_on_host(limits__cancel_grace_s=1)
    config = tmp_path / "bots.yaml"
    assert app.engine.acquire()
    await app.engine.start()
    try:
        d = app.service.delegate("wait forever", agent="hang", cwd=str(tmp_path), host="box")
        await _until(lambda: app.store.get_task(d.task.id).started_at is not None)
        env = {**os.environ, "TERM": "xterm"}
        env.pop("TMUX", None)
        argv = [sys.executable, "-m", "bot", "--config", str(config), "attach", d.task.id]
        wanted = f"1:{d.task.id}*".encode()  # the host's tmux status line: the task's window is the current one
        seen = await asyncio.to_thread(_read_pty_until, argv, env, wanted)
        assert wanted in seen, seen[-500:]
        assert b"\x1b[?1049h" in seen  # a full-screen tmux client drew on the terminal
        app.service.cancel(d.task.id)
        await app.engine.wait_finished(d.task.id, timeout=20)
    finally:
        await app.engine.stop()
    from core.hosts import remote as remote_ops

    shown = remote_ops.attach_argv(app.service.hosts.get("box"), d.task.id)
    assert shown[0] == "ssh" and "-t" in shown and shown[-1].startswith(f"tmux -L {remote.tmux_socket} attach-session")


async def test_a_host_that_refuses_connections_is_skipped_in_one_line(make_app: Any, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    down = {"ssh": "nobody@127.0.0.1", "port": port, "data_dir": str(tmp_path / "never"), "connect_timeout_s": 2}
    app = make_app(hosts__down=down, routing__hosts={"backend": "down", "database": "down"})
    before = len(app.store.list_tasks(limit=1000))
    with pytest.raises(HostUnavailable, match=r"^host down is down: .*refused") as named:
        app.service.delegate("@host:down Create User model", cwd=str(tmp_path))
    assert "\n" not in str(named.value)
    with pytest.raises(HostUnavailable, match="unknown host 'nope'"):
        app.service.delegate("Create User model", cwd=str(tmp_path), host="nope")
    assert len(app.store.list_tasks(limit=1000)) == before  # nothing stored
    routed = app.service.delegate("Create User model", cwd=str(tmp_path))
    assert routed.task.host is None  # ran here, like a missing CLI is skipped
    assert "host down is down" in routed.decision.reason and "skipped, ran here" in routed.decision.reason
    states = {s.name: s for s in app.service.host_states()}
    assert not states["down"].up and "refused" in states["down"].detail


class Gate:
    """A TCP forwarder to the sshd that can be shut (the host is down: connections refused, the open
    ones cut) and opened again (the host is back). Its threads end before their sockets are closed, so
    none of them touches a later socket given the same fd number."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self.conns: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.listener: socket.socket | None = None

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self._thread(self._accept, self.listener)

    def shut(self) -> None:
        assert self.listener is not None
        for sock in (self.listener, *self.conns):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() and the recv()s
        for thread in self.threads:
            thread.join(timeout=5)
        for sock in (self.listener, *self.conns):
            sock.close()
        self.conns.clear()
        self.threads.clear()

    def _thread(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            self._thread(self._pipe, client, upstream)
            self._thread(self._pipe, upstream, client)

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)


async def test_a_queued_task_waits_while_its_host_is_down(app_on_host: Any, remote: Remote, tmp_path: Path) -> None:
    gate = Gate(remote.sshd.port)
    gate.open()
    known = tmp_path / "known_hosts"  # the same host key, at the gate's port
    known.write_text(f"[127.0.0.1]:{gate.port} {remote.sshd.known_hosts.read_text().split(' ', 1)[1]}")
    app = app_on_host(hosts__box=remote.host(agents=["standin"], port=gate.port, known_hosts_file=str(known),
                                             connect_timeout_s=3))  # fmt: skip
    app.service.autostart_engine = False  # it is queued, for the engine started below
    d = app.service.delegate("@host:box Create User model", cwd=str(tmp_path))  # chosen while it is up
    box = app.service.hosts.get("box")
    gate.shut()
    box.disconnect()
    from core.engine import dispatch

    def waits() -> list[str]:
        return [i.text for i in app.store.outbox_queue("console", task_id=d.task.id) if "waits for host" in i.text]

    assert app.engine.acquire()
    await app.engine.start()
    try:
        await _until(lambda: waits() and app.store.task_field(d.task.id, "state") == TaskState.QUEUED)
        [told] = waits()
        assert told.startswith(f"⏳ {d.task.id} waits for host box: host box is down") and "\n" not in told
        app.engine.dispatch()  # within the wait: not tried again
        assert app.store.task_field(d.task.id, "state") == TaskState.QUEUED
        app.engine.dispatcher.host_waits["box"] = time.monotonic() - 1
        app.engine.dispatch()  # still down: back to the queue, told once
        await _until(lambda: app.store.task_field(d.task.id, "state") == TaskState.QUEUED
                     and app.engine.dispatcher.host_waits["box"] > time.monotonic())  # fmt: skip
        assert len(waits()) == 1
        gate.open()
        app.engine.dispatcher.host_waits["box"] = time.monotonic() - 1
        app.engine.dispatch()  # as the sweep does: the host is back
        task = await app.engine.wait_finished(d.task.id, timeout=30)
    finally:
        await app.engine.stop()
        gate.shut()
    assert task.state == TaskState.SUCCEEDED and task.host == "box", task.error
    assert dispatch.HOST_RETRY_S <= 30  # the sweep's period: a task waits at most about that long


def test_orchestra_hosts_shows_each_host(app_on_host: Any, tmp_path: Path) -> None:
    from tests.conftest import orchestra

    app_on_host(hosts__off={"ssh": "x@127.0.0.1", "port": free_port(), "data_dir": "/nonexistent"})
    done = orchestra("hosts", config=tmp_path / "bots.yaml")
    assert done.returncode == 0, done.stderr
    assert "box: up" in done.stdout and "load" in done.stdout
    assert "off: down" in done.stdout and "refused" in done.stdout
    listed = {h["name"]: h for h in json.loads(orchestra("hosts", "--json", config=tmp_path / "bots.yaml").stdout)}
    assert listed["box"]["up"] and listed["box"]["cores"] >= 1 and not listed["off"]["up"]
    bad = orchestra("hosts", "setup", "nope", config=tmp_path / "bots.yaml")
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "unknown host 'nope'" in bad.stderr
    checks = orchestra("doctor", config=tmp_path / "bots.yaml")
    assert "host box" in checks.stdout and "host off" in checks.stdout


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"hosts": {"gpu": {"ssh": "me@gpu", "bogus": 1}}}, "hosts.gpu.bogus"),
        ({"hosts": {"gpu": {"ssh": "-oProxyCommand=x"}}}, "hosts.gpu.ssh"),
        ({"hosts": {"gpu": {"ssh": "me@gpu", "agents": ["nope"]}}}, "hosts.gpu.agents"),
        ({"hosts": {"local": {"ssh": "me@gpu"}}}, "hosts.local"),
        ({"routing": {"hosts": {"backend": "gpu"}}}, "routing.hosts.backend"),
    ],
)
def test_hosts_config_errors_name_the_key(
    tmp_path: Path, config_data: dict[str, Any], edit: dict[str, Any], message: str
) -> None:
    from core.config import load_config
    from core.errors import ConfigError

    data = dict(config_data)
    for key, value in edit.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(data.get(key), dict) else value
    path = tmp_path / "bots.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(path)
