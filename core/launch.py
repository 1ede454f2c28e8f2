"""The first thing a task's tmux window runs: start the agent, then hand over to the runner.

Importing the runner costs tens of milliseconds on a slow machine, so the agent is spawned
first, from ``launch.bin`` (NUL-separated, readable without importing ``json``), and the runner
takes over the running process and its pipes. Only ``os``, ``sys``, ``time`` and ``_ctypes`` (for
the subreaper) are imported before the agent runs.

``launch.bin`` is the secret handoff: mode 600, read once and deleted at once, so the agent's
keys and the task as it was sent never sit on disk or on a command line. It holds: prompt mode,
the task file's path ("" when the task text holds a secret: the agent then reads it from memory),
the marker in argv that stands for that path (unique to the launch, so a ``{task_file}`` typed in
the task stays text), the agent's whole environment (``KEY=VALUE`` entries; nothing else of ours is inherited), the
secret values to redact, the argv, and last the task text. The task text is inside argv, on
stdin or in a file: never shell input.

An on-demand engine gets its own keys the same way (``write_engine_env``, ``take_engine_env``):
its tmux window, like every window, has a clean environment.
"""

from __future__ import annotations

import os
import sys
import time
from _signal import SIGPIPE, SIGXFSZ  # type: ignore[import-not-found]  # loaded already; signal imports enum


class Launch:
    """What ``launch.bin`` carries, as bytes the agent gets unchanged (a plain class: no imports)."""

    def __init__(
        self,
        mode: str,
        task_file: bytes,
        marker: bytes,
        env: dict[bytes, bytes],
        secrets: list[bytes],
        argv: list[bytes],
        text: bytes,
    ) -> None:
        self.mode = mode
        self.task_file = task_file
        self.marker = marker
        self.env = env
        self.secrets = secrets
        self.argv = argv
        self.text = text


def read_launch(task_dir: str) -> Launch:
    """Read ``launch.bin`` and delete it before anything else happens (even if it is malformed)."""
    path = os.path.join(task_dir, "launch.bin")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    finally:
        os.unlink(path)
    pos = 0

    def field() -> bytes:
        nonlocal pos
        end = data.index(b"\0", pos)
        value, pos = data[pos:end], end + 1
        return value

    def fields() -> list[bytes]:
        return [field() for _ in range(int(field()))]

    mode = field().decode()
    task_file = field()
    marker = field()
    env = {}
    for item in fields():
        key, _, value = item.partition(b"=")
        env[key] = value
    secrets = fields()
    argv = fields()
    return Launch(mode, task_file, marker, env, secrets, argv, data[pos:])


def write_launch(
    task_dir: str,
    *,
    mode: str,
    task_file: str,
    marker: str,
    env: dict[str, str],
    secrets: list[str],
    argv: list[str],
    text: str,
) -> None:
    """Engine side: write ``launch.bin`` (mode 600, whole or not at all; no field but the text holds NUL)."""
    parts = [mode, task_file, marker, str(len(env)), *(f"{k}={v}" for k, v in env.items())]
    parts += [str(len(secrets)), *secrets, str(len(argv)), *argv, text]
    data = b"\0".join(part.encode("utf-8", "surrogateescape") for part in parts)
    _write_private(os.path.join(task_dir, "launch.bin"), data)


def _write_private(path: str, data: bytes) -> None:
    """Write ``path`` mode 600, whole or not at all (through ``path.tmp``, removed if the write fails)."""
    tmp = path + ".tmp"
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def discard(path: str) -> None:
    """Delete a handoff file if it is there."""
    try:
        os.unlink(path)
    except OSError:
        pass


ENGINE_ENV = "ORCHESTRA_ENGINE_ENV"  # names the engine's handoff file: the name is no secret, the file is


def write_engine_env(path: str, env: dict[str, str]) -> None:
    """Starter side: the variables an on-demand engine needs (its agents' keys) in a mode-600 file."""
    _write_private(path, b"\0".join(f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in env.items()))


def take_engine_env() -> str | None:
    """Engine side, first thing: read the handoff ``$ORCHESTRA_ENGINE_ENV`` names, delete it, and put
    its variables into ``os.environ``; a warning to show when it is gone (its starter gave up), else None.

    Handoffs left by starters or engines killed before they were read (older than a minute) are
    deleted too: an agent runs as the same user and could read them.
    """
    path = os.environ.pop(ENGINE_ENV, None)
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return f"the engine's environment handoff is gone ({exc.strerror}): agents get no env_from keys"
    finally:
        discard(path)
        _discard_stale_handoffs(os.path.dirname(path))
    for item in data.split(b"\0") if data else []:
        key, _, value = item.partition(b"=")
        os.environ[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return None


def _discard_stale_handoffs(directory: str, age_s: float = 60.0) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("engine-env-"):
            try:
                if time.time() - entry.stat().st_mtime > age_s:
                    discard(entry.path)
            except OSError:
                pass


def discard_launch(task_dir: str) -> None:
    """Delete a ``launch.bin`` no launcher read (the window never started): it holds secrets."""
    for name in ("launch.bin", "launch.bin.tmp"):
        discard(os.path.join(task_dir, name))


def _task_file(launch: Launch) -> bytes:
    """The path the agent reads the task from: ``task.md``, or a memory file when the text holds a secret.

    The memory file stays open in this process (the runner) for the whole run; the agent, and any
    process it starts, opens it through ``/proc``.
    """
    if launch.task_file:
        return launch.task_file
    fd = os.memfd_create("task.md")
    os.write(fd, launch.text)
    return f"/proc/{os.getpid()}/fd/{fd}".encode()


def _read_cwd(task_dir: str) -> bytes:
    """The task's working directory, from the ``cwd`` file the engine wrote (tmux never sees it)."""
    with open(os.path.join(task_dir, "cwd"), "rb") as fh:
        return fh.read()


def become_subreaper() -> None:
    """Make this process the reaper of every orphan below it (Linux ``PR_SET_CHILD_SUBREAPER``).

    Done before the agent starts, so nothing it starts, ``setsid`` or double-forked, can escape
    the runner, which finds and kills them through ``/proc``. ``_ctypes`` directly: importing
    ``ctypes`` would cost ~10 ms of dispatch latency; ``ctypes`` is the fallback.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import _ctypes

        _ctypes.call_function(_ctypes.dlsym(_ctypes.dlopen(None), "prctl"), (36, 1, 0, 0, 0))  # type: ignore[arg-type]
    except (ImportError, AttributeError, OSError):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
        except (ImportError, AttributeError, OSError):
            pass  # no subreaper: the process group is still killed


def main(argv: list[str]) -> int:
    task_dir = argv[0]
    become_subreaper()
    launch = read_launch(task_dir)
    agent_argv = launch.argv
    task_fd = -1
    if launch.marker and any(launch.marker in arg for arg in agent_argv):
        path = _task_file(launch)
        fd_word = b"fd:" + launch.marker  # a sandbox copies the task file in from fd 3 (core.sandbox.TASK_FD)
        if fd_word in agent_argv:
            task_fd = os.open(path, os.O_RDONLY)
            agent_argv = [b"3" if arg == fd_word else arg for arg in agent_argv]
        agent_argv = [arg.replace(launch.marker, path) for arg in agent_argv]
    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe() if launch.mode in ("stdin", "stream") else (os.open(os.devnull, os.O_RDONLY), -1)
    err_r, err_w = os.pipe()  # the runner writes stderr.log, redacted as it arrives
    actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    if task_fd >= 0:
        actions.append((os.POSIX_SPAWN_DUP2, task_fd, 3))  # dup2 clears close-on-exec: bwrap inherits it
    pid: int | None = None
    failure: OSError | None = None
    command = agent_argv[0].decode(errors="replace")
    try:
        cwd = _read_cwd(task_dir)
        try:
            os.chdir(cwd)  # the runner's parsers read it too
        except OSError:
            command = f"{command} in {cwd.decode(errors='replace')}"
            raise
        # Python ignores SIGPIPE and SIGXFSZ; the agent must not inherit that (`yes | head` would
        # end in "Broken pipe" errors instead of a quiet exit), as subprocess's restore_signals does.
        pid = os.posix_spawnp(
            agent_argv[0], agent_argv, launch.env, file_actions=actions, setsid=True, setsigdef=(SIGPIPE, SIGXFSZ)
        )
    except OSError as exc:
        failure = exc
    started = time.time()
    for fd in (in_r, out_w, err_w, task_fd):
        if fd >= 0:
            os.close(fd)
    from core.runner import Runner

    stdin_text = launch.text if launch.mode in ("stdin", "stream") else None
    runner = Runner(task_dir, secrets=launch.secrets, stdin_text=stdin_text, stderr_fd=err_r)
    if pid is None:
        assert failure is not None
        return runner.failed_to_start(command, failure)
    return runner.run(pid, out_r, in_w if in_w >= 0 else None, started)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
