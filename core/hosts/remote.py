"""What Orchestra does on a host: install the runner, start a task's window, cancel, peek and attach there.

The host keeps the same layout as the local data directory (``tasks/ID`` with ``spec.json``,
``events.jsonl``, ``result.json``; ``run/engine.sock``, forwarded to the local engine's socket over
the master connection), plus ``runner/core``: the standard-library runner, copied by
``orchestra hosts setup``. A task's files go in one ``tar`` over the connection, and its window
opens in the host's own tmux server in the same round trip.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import HostUnavailable
from core.hosts.ssh import quote

if TYPE_CHECKING:
    from core.hosts.ssh import SshHost

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent  # the folder holding ``core``
SESSION = "orchestra"
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from core.launch import main; sys.exit(main(sys.argv[2:]))"
_HOME_WINDOW = "sh -c \"echo 'Orchestra task windows: Ctrl-b w to list them.'; exec tail -f /dev/null\""


def runner_root(host: SshHost) -> str:
    return f"{host.data_dir()}/runner"


def remote_task_dir(host: SshHost, task_id: str) -> str:
    return f"{host.data_dir()}/tasks/{task_id}"


def runner_archive() -> bytes:
    """The ``core`` package's Python files as a gzipped tar: the runner, its parsers and the hook."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=3) as tar:
        for path in sorted((PACKAGE_ROOT / "core").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".yaml"):
                tar.add(path, arcname=str(path.relative_to(PACKAGE_ROOT)), recursive=False)
    return buffer.getvalue()


def install_runner(host: SshHost) -> str:
    """Copy the runner to ``<data_dir>/runner`` (replacing an older copy); one line saying what was done."""
    archive = runner_archive()
    root = runner_root(host)
    data = host.data_dir()
    line = (
        f"umask 077 && mkdir -p {quote([root, data + '/tasks', data + '/run', data + '/work'])} && "
        f"rm -rf {quote([root + '/core.new'])} && mkdir {quote([root + '/core.new'])} && "
        f"tar -xzf - -C {quote([root + '/core.new'])} && rm -rf {quote([root + '/core'])} && "
        f"mv {quote([root + '/core.new/core'])} {quote([root + '/core'])} && rm -rf {quote([root + '/core.new'])}"
    )
    host.run(line, input=archive, timeout=120)
    return f"runner installed in {root} ({len(archive) // 1024} KB)"


def check_tools(host: SshHost, commands: dict[str, str]) -> list[tuple[bool, str]]:
    """One (ok, line) per check on the host: its Python, tmux, git, and each agent's command."""
    checks = {"python": [host.config.python, "-c", "import sys; assert sys.version_info >= (3, 11)"]}
    checks["tmux"] = ["tmux", "-V"]
    checks["git"] = ["git", "--version"]
    lines: list[tuple[bool, str]] = []
    for name, words in checks.items():
        done = host.run(quote(words) + " 2>&1", check=False)
        out = done.stdout.decode(errors="replace").strip().splitlines()
        if done.returncode == 0:
            lines.append((True, f"{name}: {out[0] if out else 'ok'}"))
        else:
            why = "3.11 or later is needed" if name == "python" and done.returncode == 1 else "not found"
            lines.append((False, f"{name}: {why} on {host.name}"))
    for agent, command in commands.items():
        done = host.run(f"command -v {quote([command])}", check=False)
        found = done.stdout.decode(errors="replace").strip()
        lines.append(
            (done.returncode == 0, f"agent {agent}: {found}" if found else f"agent {agent}: {command} not found")
        )
    return lines


def start_task(host: SshHost, task_id: str, files: dict[str, tuple[bytes, int]], workdir: str) -> str:
    """Unpack the task's files (paths relative to the data directory, with their modes), make its working
    directory and open its window running the runner; return the window's id (``@3``).

    What an earlier launch of the same task left there (a window that never came up) is removed first.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, (content, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), mode, int(time.time())
            tar.addfile(info, io.BytesIO(content))
    data = host.data_dir()
    tmux = quote(host.tmux_words())
    session = quote([f"={SESSION}"])
    ensure = (
        f"{{ {tmux} has-session -t {session} 2>/dev/null || "
        f"{tmux} new-session -d -s {SESSION} -n orchestra -x 200 -y 50 {_HOME_WINDOW} 2>/dev/null || "
        f"{tmux} has-session -t {session}; }}"
    )
    argv = [host.config.python, "-S", "-c", _BOOT, runner_root(host), remote_task_dir(host, task_id)]
    window = ["new-window", "-d", "-P", "-F", "#{window_id}", "-t", f"{SESSION}:", "-n", task_id, "-c", "/", "--"]
    opened = f"{tmux} {quote([*window, *argv])}"
    line = (  # the window at once while the session runs (one tmux client); else the session first
        f"umask 077 && rm -rf {quote([remote_task_dir(host, task_id)])} && mkdir -p {quote([data + '/tasks', workdir])}"
        f" && tar -xf - -C {quote([data])} && {{ {opened} 2>/dev/null || {{ {ensure} && {opened}; }}; }}"
    )
    out = host.run(line, input=buffer.getvalue(), timeout=60).stdout.decode().strip()
    if not out.startswith("@"):
        raise HostUnavailable(f"host {host.name}: tmux did not open a window for {task_id} ({out[:80]!r})")
    return out.splitlines()[0]


def cancel(host: SshHost, task_id: str, runner_pid: int | None) -> bool:
    """Leave the cancel mark and signal the runner there (as a local cancel does); False if it is gone."""
    directory = remote_task_dir(host, task_id)
    line = f"touch {quote([directory + '/cancel'])}"
    if runner_pid:
        # The pid is checked to be this task's runner (its command line names the task dir) before the signal.
        line += (
            f" && if grep -q {quote([directory])} /proc/{int(runner_pid)}/cmdline 2>/dev/null; "
            f"then kill -TERM {int(runner_pid)}; else test -e {quote([directory + '/result.json'])}; fi"
        )
    else:
        listed = f"{quote(host.tmux_words())} list-windows -t {quote([SESSION + ':'])} -F '#{{window_name}}'"
        line += f" && {listed} | grep -qx {quote([task_id])}"
    return host.run(line, check=False, timeout=30).returncode == 0


def windows(host: SshHost) -> set[str]:
    """The names of the task windows on the host (empty when its tmux server is not running)."""
    line = (
        f"{quote(host.tmux_words())} list-windows -t {quote([SESSION + ':'])} -F '#{{window_name}}' 2>/dev/null || true"
    )
    names = host.run(line, timeout=30).stdout.decode(errors="replace").split()
    return {name for name in names if name != SESSION}


def kill_group(host: SshHost, pid: object) -> None:
    """SIGKILL the process group of a task's agent there (its runner started it in a session of its own)."""
    if isinstance(pid, int) and pid > 1:
        host.run(f"kill -KILL -{pid} 2>/dev/null || true", timeout=30)  # dash takes no "--" here


def has_result(host: SshHost, task_id: str) -> bool:
    """Whether the task's runner there wrote its result.json."""
    path = remote_task_dir(host, task_id) + "/result.json"
    return host.run(f"test -e {quote([path])}", check=False, timeout=30).returncode == 0


def capture(host: SshHost, task_id: str, lines: int = 40, *, escapes: bool = False) -> str:
    """A remote window's pane text (``tmux capture-pane`` there), for peek and screen."""
    words = [*host.tmux_words(), "capture-pane", "-p", "-t", f"{SESSION}:={task_id}"]
    words += ["-e"] if escapes else ["-J", "-S", f"-{lines}"]
    return host.run(words, timeout=30).stdout.decode(errors="replace").rstrip()


def attach_argv(host: SshHost, task_id: str) -> list[str]:
    """``ssh -t`` into the host's tmux, attached to the task's window (the CLI execs it)."""
    words = [*host.tmux_words(), "attach-session", "-t", f"{SESSION}:={task_id}"]
    return host.argv(quote(words), tty=True)


def follow_line(host: SshHost, task_id: str, offset: int) -> str:
    """The remote command that streams a task's ``events.jsonl`` from byte ``offset`` and keeps following it."""
    path = remote_task_dir(host, task_id) + "/events.jsonl"
    return f"touch {quote([path])} && exec tail -c +{offset + 1} -F {quote([path])} 2>/dev/null"


def localize(text: str, host: SshHost, home: Path) -> str:
    """A path or argument of a local launch as the host sees it: our Python, package and data dir there."""
    return (
        text.replace(sys.executable, host.config.python)
        .replace(str(PACKAGE_ROOT), runner_root(host))
        .replace(str(home), host.data_dir())
    )


def remote_env(env: dict[str, str], host: SshHost, home: Path) -> dict[str, str]:
    """The agent's environment for the host: its own HOME and PATH, every path of ours made the host's."""
    facts = host.facts()
    moved = {key: localize(value, host, home) for key, value in env.items()}
    moved.update({"HOME": facts.home, "PATH": facts.path or os.defpath})
    return moved
