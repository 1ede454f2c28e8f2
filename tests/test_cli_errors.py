"""Errors a user can meet at the terminal: one line on stderr, a non-zero exit, and the store untouched.

Every case runs the real ``orchestra`` entry point in a subprocess against a real store that
already holds a change (a budget set), and compares the store's full SQL dump before and after.
The disk-full and read-only cases mount a small tmpfs (root only; skipped elsewhere).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, mount_tmpfs, orchestra, requires_tmux


@dataclass
class Ctx:
    cfg: Path
    home: Path
    tmp: Path
    data: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    stdout_closed: bool = False
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def write_config(self) -> None:
        self.cfg.write_text(yaml.safe_dump(self.data))


def run_raw(ctx: Ctx, *args: str, timeout: float = 90) -> tuple[int, str]:
    """The entry point with bytes on stdin and, when asked, a stdout nobody reads (``| head -0``)."""
    env = {**os.environ, "ORCHESTRA_HOME": str(ctx.home), **ctx.env}
    env.pop("TMUX", None)
    argv = [sys.executable, "-m", "bot", "--config", str(ctx.cfg), *args]
    read_end, write_end = os.pipe()
    if ctx.stdout_closed:
        os.close(read_end)
    try:
        proc = subprocess.run(
            argv, input=ctx.stdin or b"", stdout=write_end, stderr=subprocess.PIPE,
            env=env, cwd=str(ROOT), timeout=timeout, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
        if not ctx.stdout_closed:
            os.close(read_end)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def snapshot(home: Path) -> Any:
    """Everything the store holds (its SQL dump), or its raw bytes when SQLite cannot read it."""
    db = home / "orchestra.db"
    if not db.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return db.read_bytes()


def hold(db: Path, *statements: str) -> Callable[[], None]:
    """Another process with the store open, running ``statements`` and then waiting; returns its stop."""
    code = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('SELECT count(*) FROM tasks').fetchone()\n"
        "for s in sys.argv[2:]:\n    c.execute(s)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), *statements], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def stop() -> None:
        proc.kill()
        proc.wait(timeout=10)

    return stop


def small_disk(ctx: Ctx, size: str) -> Path:
    mnt = ctx.tmp / "mnt"
    ctx.cleanup.append(mount_tmpfs(mnt, size))
    return mnt


def move_home(ctx: Ctx, new_home: Path) -> None:
    """Put the prepared store on another file system (the tmpfs), with its contents."""
    shutil.copytree(ctx.home, new_home)
    ctx.home = new_home


# -- the cases -----------------------------------------------------------------------------------


def non_utf8_config(ctx: Ctx) -> list[str]:
    ctx.cfg.write_bytes(ctx.cfg.read_bytes() + b"\n# caf\xe9\n")
    return ["status"]


def deep_yaml(ctx: Ctx) -> list[str]:
    ctx.cfg.write_text("agents: " + "[" * 5000 + "]" * 5000 + "\n")
    return ["status"]


def unterminated_quote(ctx: Ctx) -> list[str]:
    ctx.data["agents"]["standin"]["command"] = '{python} "unterminated'
    ctx.write_config()
    return ["config", "check"]


def unterminated_quote_at_delegate(ctx: Ctx) -> list[str]:
    unterminated_quote(ctx)
    return ["delegate", "--task", "write docs", "--agent", "standin", "--cwd", str(ctx.tmp)]


def non_utf8_task_argv(ctx: Ctx) -> list[str]:
    return ["delegate", "--task", os.fsdecode(b"fix the \xff bug"), "--cwd", str(ctx.tmp)]


def non_utf8_task_stdin(ctx: Ctx) -> list[str]:
    ctx.stdin = b"fix the \xff bug\n"
    return ["delegate", "--task", "-", "--cwd", str(ctx.tmp)]


def store_locked(ctx: Ctx) -> list[str]:
    ctx.cleanup.append(hold(ctx.home / "orchestra.db", "BEGIN IMMEDIATE"))
    return ["delegate", "--task", "write docs", "--cwd", str(ctx.tmp)]


def corrupt_store(ctx: Ctx) -> list[str]:
    (ctx.home / "orchestra.db").write_bytes(os.urandom(64 * 1024))
    return ["status"]


def read_only_data_dir(ctx: Ctx) -> list[str]:
    mnt = small_disk(ctx, "4m")
    move_home(ctx, mnt / "home")
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    return ["delegate", "--task", "write docs", "--cwd", str(ctx.tmp)]


def home_is_a_file(ctx: Ctx) -> list[str]:
    ctx.home = ctx.tmp / "not-a-dir"
    ctx.home.write_text("a file\n")
    return ["status"]


def huge_recent(ctx: Ctx) -> list[str]:
    return ["status", "--recent", "99999999999999999999999"]


def nan_days(ctx: Ctx) -> list[str]:
    return ["cost", "--days", "nan"]


def disk_full_during_delegate(ctx: Ctx) -> list[str]:
    mnt = small_disk(ctx, "2m")
    move_home(ctx, mnt / "home")
    ctx.cleanup.append(hold(ctx.home / "orchestra.db"))  # the bot has the store open, as it would
    with open(mnt / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 65536)
    return ["delegate", "--task", "write docs for the API", "--cwd", str(ctx.tmp)]


def mention_alone(ctx: Ctx) -> list[str]:
    return ["delegate", "--task", "@standin", "--cwd", str(ctx.tmp)]


def unknown_mention(ctx: Ctx) -> list[str]:
    return ["delegate", "--task", "@nosuchagent fix it", "--cwd", str(ctx.tmp)]


CASES: list[tuple[Callable[[Ctx], list[str]], int | None, str]] = [
    (non_utf8_config, 1, "bots.yaml: not UTF-8 text (byte 0xe9 at offset"),
    (deep_yaml, 1, "bots.yaml: cannot read YAML (nested too deeply)"),
    (unterminated_quote, 1, "agents.standin.command: cannot split"),
    (unterminated_quote_at_delegate, 1, "agents.standin.command: cannot split"),
    (non_utf8_task_argv, 1, "the task text is not valid UTF-8 (byte 0xff at character 8)"),
    (non_utf8_task_stdin, 1, "the task text on stdin is not valid UTF-8 (byte 0xff at offset 8)"),
    (store_locked, 1, "the store is busy (locked by another process"),
    (corrupt_store, 1, "orchestra.db is not a readable Orchestra store"),
    (read_only_data_dir, 1, "read-only"),
    (home_is_a_file, 1, "not-a-dir is a file, not a directory"),
    (huge_recent, 2, "argument --recent: 99999999999999999999999 is out of range"),
    (nan_days, 2, "argument --days: nan is out of range"),
    (disk_full_during_delegate, 1, "the disk is full: cannot write the store"),
    (mention_alone, 1, "nothing to do: say what @standin should do"),
    (unknown_mention, 1, "unknown agent @nosuchagent; agents: aider, claude,"),
]


@pytest.fixture
def ctx(tmp_path: Path, config_data: dict[str, Any], home: Path) -> Iterator[Ctx]:
    cfg = tmp_path / "bots.yaml"
    cfg.write_text(yaml.safe_dump(config_data))
    made = orchestra("budget", "day", "20", config=cfg, env={"ORCHESTRA_HOME": str(home)})
    assert made.returncode == 0, made.stderr  # a store that holds something to lose
    context = Ctx(cfg, home, tmp_path, config_data)
    yield context
    for undo in reversed(context.cleanup):
        undo()


@pytest.mark.parametrize(("prepare", "code", "message"), CASES, ids=[case[0].__name__ for case in CASES])
def test_one_line_and_nothing_changed(ctx: Ctx, prepare: Callable[[Ctx], list[str]], code: int, message: str) -> None:
    args = prepare(ctx)
    before = snapshot(ctx.home)
    returncode, stderr = run_raw(ctx, *args)
    after = snapshot(ctx.home)
    assert "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert message in stderr, stderr
    assert stderr.startswith("orchestra: ")
    assert returncode == code, stderr
    assert after == before, "the store changed"


def test_a_reader_that_goes_away_ends_it_quietly(ctx: Ctx) -> None:
    ctx.stdout_closed = True  # `orchestra status | head -0`
    for args in (["status"], ["status", "--json"], ["route", "write docs"]):
        returncode, stderr = run_raw(ctx, *args)
        assert (returncode, stderr) == (0, ""), stderr


@requires_tmux
def test_without_tmux_the_task_waits_queued_and_runs_once_tmux_is_there(ctx: Ctx) -> None:
    bare = ctx.tmp / "bin-without-tmux"
    bare.mkdir()
    ctx.env = {"PATH": str(bare)}
    for wait in ([], ["--wait"]):
        returncode, stderr = run_raw(ctx, "delegate", "--task", "write docs for the API", "--cwd", str(ctx.tmp), *wait)
        assert returncode == 1 and "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert "is queued but cannot start: tmux is not installed" in stderr
    ctx.env = {}
    status = json.loads(orchestra("status", "--json", config=ctx.cfg, env={"ORCHESTRA_HOME": str(ctx.home)}).stdout)
    assert [(t["id"], t["state"]) for t in status["active"]] == [("t1", "queued"), ("t2", "queued")]
    engine = orchestra("engine", config=ctx.cfg, env={"ORCHESTRA_HOME": str(ctx.home)}, timeout=60)
    assert engine.returncode == 0, engine.stderr
    deadline = time.monotonic() + 30
    while True:
        status = json.loads(orchestra("status", "--json", config=ctx.cfg, env={"ORCHESTRA_HOME": str(ctx.home)}).stdout)
        states = sorted((t["id"], t["state"]) for t in status["active"] + status["recent"])
        if states == [("t1", "succeeded"), ("t2", "succeeded")]:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
