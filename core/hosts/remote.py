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
from core.files import GITIGNORE, size_text
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


def _tar(members: dict[str, tuple[bytes | None, int]]) -> bytes:
    """An uncompressed tar of (content, mode) by path; None is a folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, (content, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, int(time.time())
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def start_task(host: SshHost, task_id: str, files: dict[str, tuple[bytes | None, int]], workdir: str) -> str:
    """Unpack the task's files (paths relative to the data directory, with their modes), make its working
    directory and open its window running the runner; return the window's id (``@3``).

    What an earlier launch of the same task left there (its window, its folder) is removed first.
    """
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
    stale = f"{tmux} kill-window -t {quote([f'={SESSION}:={task_id}'])} 2>/dev/null;"  # a launch cut off
    line = (  # the window at once while the session runs (one tmux client); else the session first
        f"{stale} umask 077 && rm -rf {quote([remote_task_dir(host, task_id)])}"
        f" && mkdir -p {quote([data + '/tasks', workdir])}"
        f" && tar -xf - -C {quote([data])} && {{ {opened} 2>/dev/null || {{ {ensure} && {opened}; }}; }}"
    )
    archive = _tar(files)
    out = host.run(line, input=archive, timeout=60 + len(archive) / 1e6).stdout.decode().strip()
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


def _signal(directory: str, runner_pid: int | None, sig: str) -> str:
    """The shell words that signal the task's runner there, once its command line shows it is that runner."""
    if not runner_pid:  # not started yet: it reads its folder when it is
        return "true"
    pid = int(runner_pid)
    return f"{{ ! grep -q {quote([directory])} /proc/{pid}/cmdline 2>/dev/null || kill -{sig} {pid}; }}"


def say(host: SshHost, task_id: str, say_id: int, content: bytes, runner_pid: int | None) -> None:
    """Leave what was said in the task's ``say/`` folder there (whole or not at all) and wake its runner,
    which writes it to the agent as it does here (``core.runner_input``)."""
    folder = remote_task_dir(host, task_id) + "/say"
    partial, final = f"{folder}/.{int(say_id)}.tmp", f"{folder}/{int(say_id)}.json"
    line = f"umask 077 && mkdir -p {quote([folder])} && cat > {quote([partial])} && mv {quote([partial, final])}"
    host.run(f"{line} && {_signal(remote_task_dir(host, task_id), runner_pid, 'USR1')}", input=content, timeout=30)


def stop(host: SshHost, task_id: str, runner_pid: int | None) -> None:
    """``/stop`` there: the stop mark, and the runner woken to send its agent the interrupt."""
    directory = remote_task_dir(host, task_id)
    host.run(f"touch {quote([directory + '/stop'])} && {_signal(directory, runner_pid, 'USR1')}", timeout=30)


def put_files(host: SshHost, workdir: str, files: dict[str, bytes]) -> None:
    """Files sent to a running task, into ``<workdir>/.orchestra/inbox/`` there (mode 0600)."""
    host.run(
        f"umask 077 && mkdir -p {quote([workdir])} && tar -xf - -C {quote([workdir])}",
        input=_tar(agent_folder(files)),
        timeout=60 + sum(map(len, files.values())) / 1e6,
    )


def agent_folder(files: dict[str, bytes], prefix: str = "") -> dict[str, tuple[bytes | None, int]]:
    """The ``.orchestra/`` folder a task sent files gets in its working directory (as ``core.files`` makes
    it here): its inbox with the files, an empty outbox, a ``.gitignore`` of everything. Tar members."""
    root = f"{prefix}.orchestra"
    out: dict[str, tuple[bytes | None, int]] = {f"{root}/inbox": (None, 0o700), f"{root}/outbox": (None, 0o700)}
    out[f"{root}/.gitignore"] = (GITIGNORE.encode(), 0o600)
    out.update({f"{root}/inbox/{name}": (content, 0o600) for name, content in files.items()})
    return out


def fetch_outbox(host: SshHost, workdir: str, into: Path, *, max_files: int, max_bytes: int) -> list[str]:
    """Bring what the agent left in ``<workdir>/.orchestra/outbox/`` there into ``into/.orchestra/outbox/``
    here, and remove what came from the host; the lines for files left there (too big, too many, not
    regular files). The host's Python picks them by the same rules as ``core.files.collect_outbox``."""
    source = f"{workdir}/.orchestra/outbox"
    done = host.run([host.config.python, "-S", "-c", _PICK, source, str(max_files), str(max_bytes)], timeout=300)
    target = into / ".orchestra" / "outbox"
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    taken: list[str] = []
    skipped: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(done.stdout), mode="r:") as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member) if member.isfile() else None
            if data is None:
                continue
            content = data.read()
            if member.name == ".skipped":
                lines = content.decode(errors="replace").splitlines()
                skipped = [_skip_line(line, max_files, max_bytes) for line in lines]
                continue
            if not member.name.startswith("f/"):
                continue
            name = os.path.basename(member.name)
            path = target / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.utime(path, (member.mtime, member.mtime))  # oldest first, as they were made there
            taken.append(name)
    if taken:
        host.run(f"cd {quote([source])} && rm -f -- {quote(taken)}", check=False, timeout=30)
    return skipped


def _skip_line(line: str, max_files: int, max_bytes: int) -> str:
    """A file the host left in its outbox, as ``core.files.collect_outbox`` names one here."""
    why, name, *size = line.split("\t")
    if why == "big":
        return f"{name} ({size_text(int(size[0]))}, over the {size_text(max_bytes)} limit)"
    return f"{name} (over {max_files} files)" if why == "many" else f"{name} (not a regular file)"


_PICK = r"""
import io, os, stat, sys, tarfile
folder, most, biggest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def made(name):
    try:
        return os.lstat(os.path.join(folder, name)).st_mtime, name
    except OSError:
        return 0.0, name
try:
    names = [] if os.path.islink(folder) else sorted(os.listdir(folder), key=made)
except OSError:
    names = []
out, skipped, taken = io.BytesIO(), [], 0
with tarfile.open(fileobj=out, mode="w") as tar:
    for name in names:
        try:
            info = os.lstat(os.path.join(folder, name))
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            skipped.append(f"odd\t{name}")
        elif info.st_size > biggest:
            skipped.append(f"big\t{name}\t{info.st_size}")
        elif taken >= most:
            skipped.append(f"many\t{name}")
        else:
            taken += 1
            tar.add(os.path.join(folder, name), arcname="f/" + name, recursive=False)
    note = "\n".join(skipped).encode()
    entry = tarfile.TarInfo(".skipped")
    entry.size = len(note)
    tar.addfile(entry, io.BytesIO(note))
sys.stdout.buffer.write(out.getvalue())
"""


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
