"""The engine↔runner contract: the task spec, the runner's records and the socket lines.

The runner is run for real (``python -S``, as tmux starts it) on a task directory written by hand,
with a real Unix socket standing in for the engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core.launch import write_launch
from core.models import TaskState
from core.protocol import (
    ENGINE_SOCKET,
    RUN_STATUSES,
    EventKind,
    TaskSpec,
    cancel_message,
    encode,
    event_message,
    event_record,
    failed_result,
    kick_message,
    message_type,
    read_result,
    result_document,
    result_payload,
    task_dir,
)
from core.tmux import runner_argv


def a_spec(**changes: Any) -> TaskSpec:
    spec = TaskSpec(
        task_id="t7",
        agent="standin",
        argv=("standin", "-p", "{task_file-abc}"),
        task_file_marker="{task_file-abc}",
        env={"STANDIN_MODE": "fast"},
        prompt_mode="file",
        parser='claude {"model": "sonnet"}',
        state_paths=(".cache/",),
        cwd="/work/ü",
        timeout_s=3600.0,
        cost_cap_usd=None,
        cancel_grace_s=5.0,
        socket="/home/o/engine.sock",
        log_max_bytes=50_000_000,
        events_max_bytes=0,
        site_paths=("/usr/lib/python3/site-packages",),
        resumed_from={"cost_usd": 0.5},
        configured_model=None,
        permissions={"cwd": "/work/ü", "layers": [{"name": "permissions", "allow": ["Read"], "ask": [], "deny": []}]},
    )
    return dataclasses.replace(spec, **changes)


# -- the task spec ------------------------------------------------------------------------------
def test_a_spec_survives_its_round_trip_through_spec_json() -> None:
    spec = a_spec()
    assert TaskSpec.from_json(spec.to_json()) == spec
    assert json.loads(spec.to_json())["argv"] == ["standin", "-p", "{task_file-abc}"]


def test_a_redacted_spec_keeps_its_shape_and_loses_the_secret() -> None:
    spec = a_spec(cwd="/work/sk-secret-1234")
    redacted = spec.redacted(lambda value: json.loads(json.dumps(value).replace("sk-secret-1234", "[REDACTED]")))
    assert redacted.cwd == "/work/[REDACTED]" and redacted.argv == spec.argv


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TaskSpec)])
def test_a_spec_missing_any_field_is_one_line_naming_it(name: str) -> None:
    data = json.loads(a_spec().to_json())
    del data[name]
    with pytest.raises(ValueError, match=re.escape(f"spec.json has no '{name}'")) as raised:
        TaskSpec.from_json(json.dumps(data))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("task_id", ""),
        ("argv", "standin -p"),
        ("argv", []),
        ("env", {"A": 1}),
        ("timeout_s", "an hour"),
        ("timeout_s", True),
        ("cost_cap_usd", -1),
        ("log_max_bytes", 1.5),
        ("resumed_from", [1]),
        ("prompt_mode", "shell"),
        ("parser", None),
    ],
)
def test_a_spec_field_of_the_wrong_type_is_one_line_naming_it(name: str, value: Any) -> None:
    data = {**json.loads(a_spec().to_json()), name: value}
    with pytest.raises(ValueError, match=f"'{name}' must be") as raised:
        TaskSpec.from_json(json.dumps(data))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("text", ["{not json", "[]", "null", ""])
def test_a_spec_json_that_is_no_object_is_one_line(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape("spec.json")) as raised:
        TaskSpec.from_json(text)
    assert "\n" not in str(raised.value)


def test_a_missing_spec_json_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("cannot read spec.json")):
        TaskSpec.read(tmp_path)


def test_the_stand_in_for_an_unreadable_spec_names_the_task_and_the_engine_socket(tmp_path: Path) -> None:
    spec = TaskSpec.unreadable(task_dir(tmp_path, "t9"))
    assert (spec.task_id, spec.socket) == ("t9", str(tmp_path / ENGINE_SOCKET))


# -- a runner given a bad spec ------------------------------------------------------------------
class _FakeEngine:
    """A Unix socket at the engine's place in ``home`` that keeps every line a runner sends."""

    def __init__(self, home: Path) -> None:
        self.lines: list[dict[str, Any]] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        (home / ENGINE_SOCKET).parent.mkdir(parents=True, exist_ok=True)
        self.server.bind(str(home / ENGINE_SOCKET))
        self.server.listen()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                self.lines += [json.loads(line) for line in lines]

    def close(self) -> None:
        # Wake the accept() and let the thread end before the fd is closed: a thread still in accept()
        # on a closed fd took the connections of whatever socket was given that number next (a fake
        # GitHub's, in tests/test_pulls.py: "Connection reset by peer" there).
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self.server.close()


def _agents_sleeping(seconds: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes() == f"sleep\0{seconds}\0".encode():
                found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    ("spec_text", "reason"),
    [
        (json.dumps({k: v for k, v in json.loads(a_spec().to_json()).items() if k != "parser"}), "has no 'parser'"),
        (a_spec().to_json().replace('"timeout_s": 3600.0', '"timeout_s": "soon"'), "'timeout_s' must be"),
        (a_spec(parser="no-such-parser").to_json(), "parser 'no-such-parser' cannot be made"),
        ("{not json", "spec.json is not JSON"),
    ],
)
def test_a_runner_with_a_bad_spec_stops_the_agent_and_fails_the_task_in_one_line(
    tmp_path: Path, spec_text: str, reason: str
) -> None:
    home = tmp_path / "home"
    directory = task_dir(home, "t3")
    directory.mkdir(parents=True)
    seconds = f"{40 + os.getpid() % 1000}.{time.time_ns() % 1000}"  # names only this test's agent
    write_launch(str(directory), mode="arg", task_file="", marker="", env={"PATH": os.environ["PATH"]},
                 secrets=[], argv=["sleep", seconds], text="wait")  # fmt: skip
    (directory / "cwd").write_bytes(os.fsencode(tmp_path))
    (directory / "spec.json").write_text(spec_text)
    engine = _FakeEngine(home)
    try:
        ran = subprocess.run(runner_argv(directory), capture_output=True, text=True, timeout=30, check=False)
        deadline = time.monotonic() + 5
        while not engine.lines and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        engine.close()
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stdout + ran.stderr
    result = read_result(directory)
    assert result is not None and result["status"] == "failed"
    errors = result["result"]["errors"]
    assert len(errors) == 1 and reason in errors[0] and "\n" not in errors[0]
    assert reason in ran.stdout, "the pane says why"
    assert [line["kind"] for line in engine.lines] == ["result"], "the engine hears it at once"
    assert event_record(engine.lines[0]) is not None
    assert _agents_sleeping(seconds) == [], "the agent was stopped"


# -- the runner's records -----------------------------------------------------------------------
BAD_EVENTS = [
    123,
    {"seq": "x9"},
    [],
    {"kind": 5},
    None,
    "started",
    {"t": "event", "task": "t1", "seq": 0, "kind": "text"},
    {"t": "event", "task": "t1", "seq": True, "kind": "text"},
    {"t": "event", "task": "", "seq": 2, "kind": "text"},
    {"t": "event", "task": "t1", "seq": 2, "kind": "text", "ts": float("nan")},
    {"t": "event", "task": "t1", "seq": 2, "kind": "text", "text": 5},
    {"t": "event", "task": "t1", "seq": 2, "kind": "cost", "data": {"cost_usd": "lots"}},
    {"t": "event", "task": "t1", "seq": 2, "kind": "cost", "data": {}},
    {"t": "event", "task": "t1", "seq": 2, "kind": "started", "data": {"runner_pid": "abc"}},
    {"t": "event", "task": "t1", "seq": 2, "kind": "started", "data": {"runner_pid": 1.5}},
    {"t": "event", "task": "t1", "seq": 2, "kind": "usage", "data": {"usage": {"input_tokens": "many"}}},
    {"t": "event", "task": "t1", "seq": 2, "kind": "text", "data": "x"},
    {"t": "event", "task": "t1", "seq": 2, "kind": "result", "data": {"status": "exploded"}},
]


@pytest.mark.parametrize("bad", BAD_EVENTS, ids=[json.dumps(b)[:50] for b in BAD_EVENTS])
def test_what_is_no_event_is_refused_without_raising(bad: Any) -> None:
    assert event_record(bad) is None


def test_an_event_the_runner_sends_is_one_the_engine_takes() -> None:
    line = encode(event_message("t1", 3, 1000.5, EventKind.USAGE, "tokens", {"usage": {"input_tokens": 9}}))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    record = event_record(json.loads(line))
    assert record == {"task": "t1", "seq": 3, "kind": "usage", "ts": 1000.5, "text": "tokens",
                      "data": {"usage": {"input_tokens": 9}}}  # fmt: skip


def test_the_engine_tells_socket_lines_apart() -> None:
    assert message_type(json.loads(encode(kick_message()))) == "kick"
    assert json.loads(encode(cancel_message("t4"))) == {"t": "cancel", "task": "t4"}
    assert message_type(event_message("t1", 1, 1.0, EventKind.TEXT, "", {})) == "event"
    assert message_type([1]) is None and message_type({"t": 5}) is None


def a_result(**result: Any) -> dict[str, Any]:
    body = {"status": "succeeded", "final_text": "done", "cost_usd": 1.25, "usage": {"input_tokens": 10}, **result}
    return result_document("t1", "succeeded", body, exited_at=1000.5, written_at=1000.6, live_cost_usd=None,
                           log_bytes=10, events_dropped=0)  # fmt: skip


def test_a_result_the_runner_writes_is_one_the_engine_records(tmp_path: Path) -> None:
    assert result_payload(a_result()) == a_result()
    (tmp_path / "result.json").write_text(json.dumps(a_result()))
    assert read_result(tmp_path) == a_result()
    assert result_payload(failed_result("failed", "the runner vanished")) is not None
    assert read_result(tmp_path / "nothing-yet") is None


@pytest.mark.parametrize(
    "bad",
    [
        {**a_result(), "status": 7},
        {**a_result(), "status": "exploded"},
        {**a_result(), "exited_at": "later"},
        a_result(cost_usd="a lot"),
        a_result(usage={"input_tokens": "many"}),
        a_result(errors="one"),
        a_result(session_id=5),
        a_result(exit_code=1.5),
        a_result(final_text=None),
        [],
    ],
)
def test_a_broken_result_is_refused_and_read_as_one_line(tmp_path: Path, bad: Any) -> None:
    assert result_payload(bad) is None
    (tmp_path / "result.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="is not a result"):
        read_result(tmp_path)


def test_a_truncated_result_json_is_read_as_broken(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps(a_result())[:40])
    with pytest.raises(ValueError, match="is not a result"):
        read_result(tmp_path)


def test_every_status_a_run_may_end_with_is_a_task_state() -> None:
    assert {TaskState(status) for status in RUN_STATUSES} == {
        TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.TIMED_OUT, TaskState.OVER_BUDGET
    }  # fmt: skip
