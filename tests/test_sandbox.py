"""``sandbox: bwrap``: a real bubblewrap around a real agent, through the engine and tmux.

Everything a test makes lives under /var/tmp, not /tmp: the sandbox's /tmp is a private tmpfs, so
anything under the real /tmp would be out of the agent's sight for that reason alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from core.models import Task, TaskState
from core.sandbox import SandboxPaths, sandbox_problem, sandboxed
from tests.conftest import orchestra, requires_tmux

_PROBLEM = sandbox_problem()
pytestmark = [requires_tmux, pytest.mark.skipif(_PROBLEM is not None, reason=f"no sandbox here: {_PROBLEM}")]

# Tries what a careless or hostile agent would; one line per attempt, read back from its log.
PROBE = r"""
echo made > made.txt && echo "cwd written"
for target in "$HOME/escaped.txt" "$ELSEWHERE/escaped.txt" "$ORCHESTRA_DATA/escaped.txt"; do
  if (echo x > "$target") 2>/dev/null; then echo "wrote $target"; else echo "refused $target"; fi
done
for target in "$STORE_DB" "$OTHER_TASK" "$HOME/.ssh/id_rsa" "$HOME/.aws/credentials" "$HOME/.netrc"; do
  if cat "$target" >/dev/null 2>&1; then echo "read $target"; else echo "hidden $target"; fi
done
echo "processes $(ls /proc | grep -c '^[0-9]')"
"""


@pytest.fixture
def outside(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A user's world outside /tmp: a HOME with secrets, a data dir, a work dir and another dir."""
    root = Path(tempfile.mkdtemp(prefix="orchestra-sandbox-", dir="/var/tmp"))
    user = root / "user"
    (user / ".ssh").mkdir(parents=True)
    (user / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (user / ".aws").mkdir()
    (user / ".aws" / "credentials").write_text("[default]\n")
    (user / ".netrc").write_text("machine example.com password hunter2\n")
    for name in ("work", "elsewhere"):
        (root / name).mkdir()
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("ORCHESTRA_HOME", str(root / "data"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def probe_agent(root: Path, other_task: Path, sandbox: str = "bwrap") -> dict[str, Any]:
    return {
        "kind": "command",
        "command": "sh",
        "args": ["-c", PROBE],
        "sandbox": sandbox,
        "env": {
            "ELSEWHERE": str(root / "elsewhere"),
            "ORCHESTRA_DATA": str(root / "data"),
            "STORE_DB": str(root / "data" / "orchestra.db"),
            "OTHER_TASK": str(other_task),
        },
    }


async def run_task(app: App, text: str, agent: str, cwd: Path, timeout: float = 30) -> Task:
    assert app.engine.acquire()
    await app.engine.start()
    try:
        delegated = app.service.delegate(text, agent=agent, cwd=str(cwd))
        return await app.engine.wait_finished(delegated.task.id, timeout=timeout)
    finally:
        await app.engine.stop()


def output(app: App, task: Task) -> str:
    """What the agent printed; a failed task's error and stderr too, to say why."""
    directory = app.home / "tasks" / task.id
    out = (directory / "output.log").read_text() if (directory / "output.log").exists() else ""
    if task.state == TaskState.FAILED:
        stderr = directory / "stderr.log"
        out += f"\n{task.error}\n" + (stderr.read_text() if stderr.exists() else "")
    return out


async def test_a_sandboxed_agent_writes_its_cwd_and_nothing_else(make_app: Any, outside: Path) -> None:
    other_task = outside / "data" / "tasks" / "t-other" / "task.md"
    other_task.parent.mkdir(parents=True)
    other_task.write_text("another user's task")
    app = make_app(agents__probe=probe_agent(outside, other_task))
    assert app.store.path.is_relative_to(outside / "data")
    task = await run_task(app, "probe", "probe", outside / "work")
    log = output(app, task)
    assert task.state == TaskState.SUCCEEDED, log
    assert "cwd written" in log and (outside / "work" / "made.txt").read_text() == "made\n"
    for target in ("user/escaped.txt", "elsewhere/escaped.txt", "data/escaped.txt"):
        assert f"refused {outside / target}" in log
        assert not (outside / target).exists()
    assert f"hidden {app.store.path}" in log
    assert f"hidden {other_task}" in log
    for secret in (".ssh/id_rsa", ".aws/credentials", ".netrc"):
        assert f"hidden {outside / 'user' / secret}" in log
    # Its own pid namespace: the agent sees its shell, ls and grep, not the bot or the engine.
    assert int(log.split("processes ")[1].split()[0]) < 10


async def test_without_the_sandbox_the_same_probe_reaches_everything(make_app: Any, outside: Path) -> None:
    """The control: what the sandbox stops is really there to be reached."""
    app = make_app(agents__probe=probe_agent(outside, outside / "none", sandbox="none"))
    log = output(app, await run_task(app, "probe", "probe", outside / "work"))
    assert f"wrote {outside / 'user' / 'escaped.txt'}" in log and (outside / "user" / "escaped.txt").exists()
    assert f"read {app.store.path}" in log
    assert f"read {outside / 'user' / '.ssh' / 'id_rsa'}" in log


async def test_a_cwd_that_is_the_home_folder_keeps_the_secrets_hidden(make_app: Any, outside: Path) -> None:
    """The deeper mount wins: ~/.ssh stays hidden inside a writable ~."""
    app = make_app(agents__probe=probe_agent(outside, outside / "none"))
    task = await run_task(app, "probe", "probe", outside / "user")
    log = output(app, task)
    assert f"wrote {outside / 'user' / 'escaped.txt'}" in log  # ~ is the task's folder here
    assert f"hidden {outside / 'user' / '.ssh' / 'id_rsa'}" in log
    assert (outside / "user" / ".ssh" / "id_rsa").read_text().startswith("-----BEGIN")


async def test_the_task_reaches_a_sandboxed_agent_as_a_file(make_app: Any, outside: Path) -> None:
    """``{task_file}`` inside the sandbox: task.md, copied in by bwrap (the data dir is hidden)."""
    agent = {"kind": "command", "command": "cat", "args": ["{task_file}"], "sandbox": "bwrap"}
    app = make_app(agents__reader=agent)
    task = await run_task(app, "refactor the parser, keep {braces}", "reader", outside / "work")
    assert task.state == TaskState.SUCCEEDED, output(app, task)
    assert "refactor the parser, keep {braces}" in output(app, task)


async def test_a_task_holding_a_secret_reaches_the_sandbox_from_memory(
    make_app: Any, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task with a known secret in it is never on disk: the launcher's memory file goes in by fd."""
    monkeypatch.setenv("SANDBOX_TEST_TOKEN", "sk-sandbox-0123456789abcdef")
    script = 'grep -c sk-sandbox-0123456789abcdef "$1"'
    agent: dict[str, Any] = {"kind": "command", "command": "sh", "args": ["-c", script, "sh", "{task_file}"]}
    agent |= {"sandbox": "bwrap", "env_from": {"SANDBOX_TEST_TOKEN": "SANDBOX_TEST_TOKEN"}}
    app = make_app(agents__reader=agent)
    task = await run_task(app, "use sk-sandbox-0123456789abcdef", "reader", outside / "work")
    assert task.state == TaskState.SUCCEEDED, output(app, task)
    assert output(app, task).strip() == "1"  # the file held the text as sent
    assert "sk-sandbox" not in (app.home / "tasks" / task.id / "task.md").read_text()


def _running(marker: str) -> list[list[bytes]]:
    """The argv of every process whose command line holds ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0") if name.isdigit() else []
        except OSError:
            continue
        if any(marker.encode() in word for word in argv):
            found.append(argv)
    return found


async def _until(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("stop", ["cancel", "timeout"])
async def test_cancel_and_timeout_end_everything_inside_the_sandbox(make_app: Any, outside: Path, stop: str) -> None:
    """A sandboxed agent that outlives SIGTERM and leaves children behind: nothing survives the stop."""
    marker = f"{301 + (stop == 'timeout')}.{os.getpid()}"
    script = f'trap "echo cleaning up; exit 0" TERM; sleep {marker} & (trap "" TERM; sleep {marker}) &'
    script += " while :; do sleep 0.1; done"  # a trap runs between commands: none is missed
    agent = {"kind": "command", "command": "sh", "args": ["-c", script], "sandbox": "bwrap"}
    limits = {"limits__task_timeout_s": 2} if stop == "timeout" else {}
    app = make_app(agents__stubborn=agent, limits__cancel_grace_s=1, **limits)
    assert app.engine.acquire()
    await app.engine.start()
    try:
        delegated = app.service.delegate("wait", agent="stubborn", cwd=str(outside / "work"))
        await _until(lambda: [argv[0] for argv in _running(marker)].count(b"sleep") == 2)
        t0 = time.monotonic()
        if stop == "cancel":
            app.service.cancel(delegated.task.id)
        task = await app.engine.wait_finished(delegated.task.id, timeout=20)
    finally:
        await app.engine.stop()
    assert task.state == (TaskState.CANCELLED if stop == "cancel" else TaskState.TIMED_OUT)
    assert time.monotonic() - t0 < 10
    assert _running(marker) == []  # the sleeps, the shells, bwrap and its pid 1
    if stop == "cancel":  # SIGTERM reached the agent first: its grace is kept (after a timeout the
        assert "cleaning up" in output(app, task)  # runner stops reading at the deadline, sandbox or not)


def test_a_hooked_agent_reaches_the_engine_socket_and_its_own_task_only(outside: Path) -> None:
    """With a hook, the task's own dir (read-only) and the engine's socket are bound in; nothing else."""
    data = outside / "data"
    mine, other = data / "tasks" / "t-mine", data / "tasks" / "t-other"
    for directory in (mine, other):
        directory.mkdir(parents=True)
        (directory / "spec.json").write_text(json.dumps({"task_id": directory.name}))
    sock_path = data / "run" / "engine.sock"
    sock_path.parent.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    server.settimeout(10)
    script = (
        "import socket, sys\n"
        "task = sys.argv[1]\n"
        "print(open(task + '/spec.json').read())\n"
        "try:\n    open(task + '/spec.json', 'a')\nexcept OSError as exc:\n    print('append', exc.strerror)\n"
        "try:\n    open(sys.argv[2] + '/spec.json')\nexcept OSError as exc:\n    print('other', exc.strerror)\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[3]); s.sendall(b'hello from inside')\n"
    )
    paths = SandboxPaths(
        cwd=str(outside / "work"), data_dir=str(data), task_dir=str(mine), socket=str(sock_path), hook=True
    )
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "ORCHESTRA_TASK_DIR": str(mine)}
    argv = sandboxed(
        ["python3", "-S", "-c", script, str(mine), str(other), str(sock_path)], paths, kind="command", env=env
    )
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        conn, _ = server.accept()
        with conn:
            assert conn.recv(100) == b"hello from inside"
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        server.close()
    assert proc.returncode == 0, err
    assert '"task_id": "t-mine"' in out
    assert "append Read-only file system" in out
    assert "other No such file or directory" in out


def test_an_agent_installed_under_tmp_still_starts_and_tmp_stays_private(outside: Path) -> None:
    """A private /tmp would hide a CLI (or Orchestra itself) installed there (a checkout in /tmp):
    that one folder is bound back, read-only; the rest of /tmp stays the sandbox's own."""
    install = Path(tempfile.mkdtemp(prefix="orch-sbx-bin-", dir="/tmp"))
    try:
        program = install / "bin" / "agent"
        program.parent.mkdir()
        program.write_text('#!/bin/sh\necho started; ls /tmp; touch "$0.written" 2>/dev/null || echo read-only\n')
        program.chmod(0o755)
        (Path("/tmp") / f"{install.name}-neighbour").write_text("not for the agent")
        paths = SandboxPaths(
            cwd=str(outside / "work"), data_dir=str(outside / "data"), task_dir=str(outside / "data" / "tasks" / "t1"),
            socket=str(outside / "data" / "run" / "engine.sock"),
        )  # fmt: skip
        (outside / "work").mkdir(exist_ok=True)
        env = {"PATH": f"{program.parent}:/usr/bin:/bin", "HOME": str(outside / "user")}
        done = subprocess.run(sandboxed(["agent"], paths, kind="command", env=env), env=env, capture_output=True,
                              text=True, timeout=30, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = done.stdout.split()
        assert lines[0] == "started" and lines[-1] == "read-only"
        assert f"{install.name}-neighbour" not in lines and install.name in lines
    finally:
        shutil.rmtree(install, ignore_errors=True)
        (Path("/tmp") / f"{install.name}-neighbour").unlink(missing_ok=True)


def test_argv_is_wrapped_without_a_shell_and_hides_in_depth_order(outside: Path) -> None:
    data = outside / "data"
    paths = SandboxPaths(
        cwd=str(outside / "user"),
        data_dir=str(data),
        task_dir=str(data / "tasks" / "t1"),
        socket=str(data / "run" / "engine.sock"),
        config_dirs=(str(data / "agents" / "a"),),
    )
    task = "rm -rf ~; $(id) `whoami`"
    argv = sandboxed(["my-agent", task], paths, kind="command", env={"HOME": str(outside / "user")})
    assert argv[0] == "bwrap" and argv[-2:] == ["my-agent", task]
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--die-with-parent" not in argv  # it would SIGKILL everything on the runner's SIGTERM: no grace
    order = [
        argv[i + 1] if argv[i] == "--tmpfs" else argv[i + 2]
        for i in range(len(argv))
        if argv[i] in ("--tmpfs", "--bind")
    ]
    assert order.index(str(outside / "user")) < order.index(str(outside / "user" / ".ssh"))
    assert order.index(str(data)) < order.index(str(data / "agents" / "a"))
    assert (data / "agents" / "a").is_dir()  # made: a bind needs its source
    assert argv[argv.index("--remount-ro") + 1] == str(data)  # hidden and read-only: a write fails
    inside = sandboxed(["a"], replace(paths, cwd=str(data)), kind="command", env={"HOME": str(outside / "user")})
    assert str(data) not in [inside[i + 1] for i, word in enumerate(inside) if word == "--remount-ro"]


def test_config_check_and_doctor_name_a_missing_bubblewrap(tmp_path: Path, home: Path) -> None:
    """Where bwrap cannot be found, `config check` fails in one line and `doctor` says why."""
    import yaml

    from tests.conftest import base_config

    data = base_config("orch-test-sandbox")
    data["agents"]["boxed"] = {"kind": "command", "command": "/bin/echo", "sandbox": "bwrap"}
    config = tmp_path / "bots.yaml"
    config.write_text(yaml.safe_dump(data))
    assert orchestra("config", "check", config=config).returncode == 0
    no_bwrap = {"PATH": "/nonexistent"}
    checked = orchestra("config", "check", config=config, env=no_bwrap)
    assert checked.returncode == 1
    assert checked.stderr.strip().splitlines() == [
        (
            f"orchestra: {config}: agents.boxed.sandbox is bwrap, but bubblewrap is not installed "
            "(apt-get install bubblewrap, or dnf install bubblewrap)"
        )
    ]
    doctor = orchestra("doctor", config=config, env=no_bwrap)
    line = next(line for line in doctor.stdout.splitlines() if "agent boxed sandbox" in line)
    assert "bubblewrap is not installed" in line and "warning only" in line  # routing does not use it


# -- real CLIs ------------------------------------------------------------------------------------
def _real_cases() -> list[Any]:
    from tests.test_real_clis import CASES

    return CASES


@pytest.fixture
def work_repo(outside: Path) -> Path:
    """The task's folder as a git repository (what the summary diffs against)."""
    repo = outside / "work"
    for cmd in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True)
    (repo / "README.md").write_text("# project\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True)
    return repo


@pytest.mark.real_cli
@pytest.mark.parametrize("case", _real_cases(), ids=[c.name for c in _real_cases()])
async def test_a_real_cli_does_its_task_inside_the_sandbox(
    make_app: Any, outside: Path, work_repo: Path, monkeypatch: pytest.MonkeyPatch, case: Any
) -> None:
    """Each CLI, sandboxed, against the fake model: the file is written, and only in the task's folder."""
    from tests.fakes.model_server import FakeModelServer
    from tests.test_real_clis import AIDER_META, KEY_VAR, TASK, _agent, _binary

    _binary(case)
    user = outside / "user"
    prices = user / ".aider" / "caches" / "model_prices_and_context_window.json"  # aider stays offline
    prices.parent.mkdir(parents=True)
    prices.write_text('{"orchestra-offline-placeholder": {}}')
    monkeypatch.setenv(KEY_VAR, "sk-orchestra-fake-key")
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(var, raising=False)
    (outside / "meta").mkdir()
    (outside / "meta" / "aider-models.json").write_text(json.dumps(AIDER_META))
    repo = work_repo
    with FakeModelServer(workdir=str(repo), mode="ok") as server:
        agent = _agent(case, server, outside / "meta") | {"sandbox": "bwrap"}
        if case.kind == "codex":  # its own bubblewrap cannot nest in ours ("setting up uid map"): ours contains it
            agent["args"] = ["-s", "danger-full-access"]
        app = make_app(**{f"agents__{case.name}": agent})
        task = await run_task(app, TASK, case.name, repo, timeout=240)
    assert task.state == TaskState.SUCCEEDED, output(app, task)
    assert (repo / "hello.txt").exists(), output(app, task) + json.dumps(task.summary)[:3000]
    assert (repo / "hello.txt").read_text() == "hello\n"
    assert [f["path"] for f in task.summary["files"]] == ["hello.txt"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


async def test_in_its_worktree_a_sandboxed_agent_commits_but_cannot_touch_the_repository_config(
    make_app: Any, outside: Path
) -> None:
    work = outside / "work"
    for cmd in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        _git(work, *cmd)
    (work / "README.md").write_text("hello\n")
    _git(work, "add", ".")
    _git(work, "commit", "-qm", "init")
    script = (
        "echo new > agent.txt && git add agent.txt && git commit -qm 'the agent commits' && echo committed; "
        f"if (echo '[core]' >> {work}/.git/config) 2>/dev/null; then echo 'wrote config'; "
        "else echo 'config refused'; fi"
    )
    agent = {"kind": "command", "command": "sh", "args": ["-c", script], "sandbox": "bwrap"}
    app = make_app(agents__committer=agent, limits__isolation="worktree")
    task = await run_task(app, "commit something", "committer", work)
    log = output(app, task)
    assert task.state == TaskState.SUCCEEDED, log
    assert "committed" in log and "config refused" in log
    assert _git(work, "log", "-1", "--format=%s", str(task.branch)) == "the agent commits"  # kept on its branch
