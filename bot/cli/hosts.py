"""The CLI's hosts commands: ``orchestra hosts`` (state, load, tasks), ``hosts setup NAME``; remote attach and logs."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from bot.cli.output import as_json
from core.errors import HostUnavailable

if TYPE_CHECKING:
    import argparse

    from bot.app import App
    from core.models import Task


def hosts(app: App, args: argparse.Namespace) -> int:
    if args.action == "setup":
        if not args.name:
            raise HostUnavailable("say which host to set up: `orchestra hosts setup NAME`")
        lines = app.service.setup_host(args.name)
        for ok, line in lines:
            print(f"{'✓' if ok else '✗'} {line}")
        return 0 if all(ok for ok, _ in lines) else 1
    states = app.service.host_states()
    if args.json:
        print(as_json([dataclasses.asdict(s) for s in states]))
        return 0
    print("local: up · this machine (the default host)")
    if not states:
        print("no other hosts in bots.yaml (`hosts:`; README Hosts)")
    for state in states:
        running = ", ".join(state.running) or "none"
        if state.up:
            load = f"load {state.load:.2f} on {state.cores} cores"
            print(f"{state.name}: up · {state.destination} · {load} · running {running} ({state.windows} windows, "
                  f"at most {state.max_concurrent})")  # fmt: skip
        else:
            print(f"{state.name}: down · {state.detail} · running {running}")
    return 0


def attach_remote(app: App, task: Task) -> int:
    """Attach this terminal to the task's window on its host: ``ssh -t`` into that host's tmux."""
    from core.hosts import remote

    host = app.service.hosts.of(task)
    if task.id not in remote.windows(host):
        print(f"orchestra: {task.id} is {task.state.value} and has no tmux window on {host.name}; "
              f"try `orchestra logs {task.id}`", file=sys.stderr)  # fmt: skip
        return 1
    argv = remote.attach_argv(host, task.id)
    os.execvpe(argv[0], argv, {k: v for k, v in os.environ.items() if k != "TMUX"})


def remote_logs(app: App, task: Task, *, follow: bool) -> int:
    """The task's output.log on its host; with ``follow``, until its runner there ends."""
    import subprocess

    from core.hosts import remote
    from core.hosts.ssh import quote

    host = app.service.hosts.of(task)
    path = remote.remote_task_dir(host, task.id) + "/output.log"
    pid = app.store.task_field(task.id, "runner_pid")
    if follow and pid and not task.state.finished:
        line = f"exec tail -c +1 --pid={int(pid)} -F {quote([path])} 2>/dev/null"
    else:
        line = f"cat {quote([path])} 2>/dev/null || echo {quote([f'{task.id} has no output yet'])}"
    host.connect()
    return subprocess.run(host.argv(line), check=False).returncode
