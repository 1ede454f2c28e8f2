"""core/tmux.py on a real, private tmux server (``tmux -L <socket>``, killed at teardown)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.errors import TmuxError
from core.tmux import TmuxManager
from tests.conftest import requires_tmux

pytestmark = requires_tmux

# Writes its argv (after the output path) and its working directory to the output path, then waits.
RECORD = (
    "import json, os, sys, time\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    json.dump({'argv': sys.argv[2:], 'cwd': os.getcwd(), 'env': dict(os.environ)}, out)\n"
    "print('recorded', flush=True)\n"
    "time.sleep(60)\n"
)


def until(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def tmux(socket_name: str) -> TmuxManager:
    return TmuxManager(socket_name, "test", config_file="/dev/null")


def recorded(path: Path) -> dict[str, Any]:
    until(lambda: path.exists() and path.stat().st_size > 0, f"{path.name} to be written")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_a_window_runs_its_argv_without_a_shell(tmux: TmuxManager, tmp_path: Path) -> None:
    hostile = ["$(touch PWNED)", "`touch PWNED2`; rm -rf x", "#(touch PWNED3)", "*", "a b", ""]
    work = tmp_path / "dir #(touch PWNED4) $(touch PWNED5)"
    work.mkdir()
    out = tmp_path / "argv.json"

    window_id = tmux.start_window("t1", [sys.executable, "-c", RECORD, str(out), *hostile], cwd=str(work))

    assert re.fullmatch(r"@[0-9]+", window_id)
    seen = recorded(out)
    assert seen["argv"] == hostile, "every argument arrives as it was given"
    assert seen["cwd"] == str(work), "the window starts in the task's directory, whatever its name holds"
    made = [p.name for p in [*tmp_path.rglob("PWNED*"), *Path("/").glob("PWNED*"), *Path.cwd().glob("PWNED*")]]
    assert made == [], "no shell and no tmux format ran any of it"


def test_windows_lists_task_windows_by_name_and_kill_closes_one(tmux: TmuxManager, tmp_path: Path) -> None:
    assert tmux.windows() == {}, "no server yet: no windows, and no error"
    first = tmux.start_window("t1", ["sleep", "60"])
    second = tmux.start_window("t2", ["sleep", "60"])

    found = tmux.windows()
    assert sorted(found) == ["t1", "t2"], "the session's home window is not a task window"
    assert (found["t1"].window_id, found["t2"].window_id) == (first, second)
    assert not found["t1"].dead
    os.kill(found["t1"].pane_pid, 0)  # the pane's process is really running

    tmux.kill("t1")
    assert sorted(tmux.windows()) == ["t2"]
    tmux.kill(second)  # a window id is a target too
    assert tmux.windows() == {}


def test_capture_shows_what_the_pane_printed(tmux: TmuxManager, tmp_path: Path) -> None:
    out = tmp_path / "argv.json"
    tmux.start_window("t7", [sys.executable, "-c", RECORD, str(out), "x"])
    recorded(out)
    text = until(lambda: "recorded" in tmux.capture("t7") and tmux.capture("t7"), "the pane to show its output")
    assert text.rstrip().endswith("recorded")


@pytest.mark.parametrize("name", ["t1#(touch PWNED)", "#{pane_pid}", "t1;kill-server", "a:b", "x.y", "", "x" * 65])
def test_a_name_or_target_tmux_could_expand_is_refused(
    tmux: TmuxManager, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TmuxError, match="is not a window name"):
        tmux.start_window(name, ["sleep", "60"])
    tmux.start_window("t1", ["sleep", "60"])
    for call in (tmux.capture, tmux.kill, tmux.attach_argv):
        with pytest.raises(TmuxError, match="is not a window name"):
            call(name)
    assert sorted(tmux.windows()) == ["t1"], "nothing was opened or closed"
    assert list(tmp_path.iterdir()) == []


def test_the_server_starts_with_a_clean_environment(
    tmux: TmuxManager, socket_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-do-not-leak-1234567890"
    monkeypatch.setenv("ORCH_TEST_SECRET_TOKEN", secret)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    out = tmp_path / "argv.json"

    tmux.start_window("t1", [sys.executable, "-c", RECORD, str(out)], env={"ORCH_WINDOW_ONLY": "given"})

    env = recorded(out)["env"]
    assert secret not in "".join(env.values()), "a window inherits none of the starting process's secrets"
    assert env["ORCH_WINDOW_ONLY"] == "given", "what the caller passes for the window does arrive"
    assert env.get("LC_ALL") == "C.UTF-8", "the locale is kept"
    server = subprocess.run(
        ["tmux", "-L", socket_name, "show-environment", "-g"], capture_output=True, text=True, check=True
    ).stdout
    assert secret not in server and "ORCH_TEST_SECRET_TOKEN" not in server
    assert "ORCH_WINDOW_ONLY" not in server, "a window's variables stay the window's"


def test_attach_argv_names_the_private_server_and_the_window(tmux: TmuxManager, socket_name: str) -> None:
    assert tmux.attach_argv("t3") == ["tmux", "-L", socket_name, "-f", "/dev/null", "attach-session", "-t", "test:=t3"]


def test_a_missing_tmux_is_one_clear_error(tmux: TmuxManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no tmux on PATH
    with pytest.raises(TmuxError, match="tmux is not installed"):
        tmux.start_window("t1", ["sleep", "60"])
    assert not TmuxManager.available()
