"""The first thing a task's tmux window runs: start the agent, then hand over to the runner.

Importing the runner costs tens of milliseconds on a slow machine, so the agent is spawned
first, from ``launch.bin`` (NUL-separated, readable without importing ``json``), and the runner
takes over the running process and its pipes. Only ``os``, ``sys``, ``time`` and ``_ctypes`` (for
the subreaper) are imported before the agent runs.

``launch.bin`` holds: prompt mode, the number of environment entries, ``KEY=VALUE`` entries,
then the argv. The task text is inside argv, on stdin or in ``task.md``: never shell input.
"""

from __future__ import annotations

import os
import sys
import time
from _signal import SIGPIPE, SIGXFSZ  # type: ignore[import-not-found]  # loaded already; signal imports enum


def read_launch(task_dir: str) -> tuple[str, dict[bytes, bytes], list[bytes]]:
    with open(os.path.join(task_dir, "launch.bin"), "rb") as fh:
        fields = fh.read().split(b"\0")
    mode = fields[0].decode()
    count = int(fields[1])
    extra = {}
    for item in fields[2 : 2 + count]:
        key, _, value = item.partition(b"=")
        extra[key] = value
    return mode, extra, fields[2 + count :]


def write_launch(task_dir: str, mode: str, env: dict[str, str], argv: list[str]) -> None:
    """Engine side: write ``launch.bin`` for a task (argv elements cannot hold NUL bytes anyway)."""
    fields = [mode, str(len(env)), *(f"{k}={v}" for k, v in env.items()), *argv]
    data = b"\0".join(f.encode("utf-8", "surrogateescape") for f in fields)
    with open(os.path.join(task_dir, "launch.bin"), "wb") as fh:
        fh.write(data)


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
    mode, extra, agent_argv = read_launch(task_dir)
    env = dict(os.environb)
    env.update(extra)
    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe() if mode == "stdin" else (os.open(os.devnull, os.O_RDONLY), -1)
    err = os.open(os.path.join(task_dir, "stderr.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err, 2)]
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
            agent_argv[0], agent_argv, env, file_actions=actions, setsid=True, setsigdef=(SIGPIPE, SIGXFSZ)
        )
    except OSError as exc:
        failure = exc
    started = time.time()
    for fd in (in_r, out_w, err):
        os.close(fd)
    from core.runner import Runner

    runner = Runner(task_dir)
    if pid is None:
        assert failure is not None
        return runner.failed_to_start(command, failure)
    return runner.run(pid, out_r, in_w if in_w >= 0 else None, started)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
