"""The stand-in agent, run as a real process and read by the real Claude parser."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.agents.base import AgentResult, AgentSettings, Usage
from core.agents.claude import ClaudeAdapter, ClaudeParser
from core.pricing import price_usd
from core.runner_input import user_message

ROOT = Path(__file__).resolve().parents[1]
STREAM = ["--output-format", "stream-json", "--verbose"]
PER_CALL = {
    "input_tokens": 1000,
    "output_tokens": 200,
    "cache_read_input_tokens": 3000,
    "cache_creation_input_tokens": 500,
}
HOSTILE = (
    "$(touch PWNED) `touch PWNED2`; rm -rf ~ && echo done | cat /etc/passwd > x\n"
    "second line with 'single' \"double\" \\back\\slash {task} {task_file} %s %(x)s\n"
    "emoji 🎉👩‍💻, RTL مرحبا \u202eevil\u202c, bell \x07, escape \x1b[31mred\x1b[0m, tab\t, CR\r end"
)


def standin_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRA_STANDIN_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def run_standin(cwd: Path, *args: str, stdin: bytes | None = None, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "core.agents.standin", *args],
        check=False,
        cwd=cwd,
        env=standin_env(**env),
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=60,
    )


def parse(proc: subprocess.CompletedProcess[bytes]) -> tuple[ClaudeParser, AgentResult]:
    parser = ClaudeParser()
    for line in proc.stdout.decode("utf-8").splitlines():
        parser.feed(line)
    return parser, parser.finish(proc.returncode, proc.stderr.decode("utf-8", "replace"))


def sonnet_list_price(calls: int) -> float:
    dollars = calls * (
        PER_CALL["input_tokens"] * 3.00
        + PER_CALL["output_tokens"] * 15.00
        + PER_CALL["cache_read_input_tokens"] * 0.30
        + PER_CALL["cache_creation_input_tokens"] * 3.75
    )
    return dollars / 1_000_000


def test_default_run_writes_the_file_and_reports_like_claude(tmp_path: Path) -> None:
    proc = run_standin(tmp_path, "-p", "Create User model", *STREAM, ORCHESTRA_STANDIN_USAGE=json.dumps(PER_CALL))
    parser, result = parse(proc)

    assert proc.returncode == 0, proc.stderr
    written = tmp_path / "user_model.py"
    assert written.is_file()
    assert "Create User model" in written.read_text(encoding="utf-8")
    assert result.status == "succeeded"
    assert result.final_text.startswith("Created user_model.py")
    assert result.model == "claude-sonnet-4-5"
    assert result.session_id
    # Two API calls; Usage counts cache reads and writes inside input_tokens.
    expected = Usage(
        input_tokens=2 * (1000 + 3000 + 500),
        output_tokens=2 * 200,
        cache_read_tokens=2 * 3000,
        cache_write_tokens=2 * 500,
    )
    assert result.usage == expected
    assert parser.live_usage()[0] == expected, "repeated usage lines are counted once"
    assert result.cost_source == "cli"
    assert result.cost_usd == pytest.approx(sonnet_list_price(calls=2))
    assert result.cost_usd == pytest.approx(price_usd(expected, "claude-sonnet-4-5"))


def test_events_follow_the_tool_round_trip(tmp_path: Path) -> None:
    proc = run_standin(tmp_path, "-p", "Create User model", *STREAM)
    parser = ClaudeParser()
    events = [event for line in proc.stdout.decode().splitlines() for event in parser.feed(line)]

    kinds: list[str] = [event.kind for event in events]
    assert kinds[0] == "init"
    assert kinds.index("tool_use") < kinds.index("tool_result")
    tool_use = next(event for event in events if event.kind == "tool_use")
    assert tool_use.text == "Write user_model.py"
    assert tool_use.data["input"]["file_path"] == str(tmp_path / "user_model.py")
    assert "raw" not in kinds


def test_api_error_exits_zero_but_fails(tmp_path: Path) -> None:
    proc = run_standin(tmp_path, "-p", "Create User model", *STREAM, ORCHESTRA_STANDIN_MODE="api_error")
    _, result = parse(proc)

    assert proc.returncode == 0
    assert result.status == "failed"
    assert result.errors[0] == "API error 401: invalid x-api-key · check ANTHROPIC_API_KEY"
    assert not (tmp_path / "user_model.py").exists()


def test_crash_fails_with_its_exit_code(tmp_path: Path) -> None:
    proc = run_standin(tmp_path, "-p", "Create User model", *STREAM, ORCHESTRA_STANDIN_MODE="crash")
    _, result = parse(proc)

    assert proc.returncode == 3
    assert result.status == "failed"
    assert result.errors[0] == "agent exited with code 3 before reporting a result"
    assert "crashed on purpose" in result.errors[1]
    assert result.usage.input_tokens > 0


def test_max_turns_fails(tmp_path: Path) -> None:
    proc = run_standin(tmp_path, "-p", "Create User model", *STREAM, ORCHESTRA_STANDIN_MODE="max_turns")
    _, result = parse(proc)
    assert proc.returncode == 1
    assert result.status == "failed"
    assert result.errors[0] == "max turns reached"


def test_permission_denied_succeeds_without_the_file(tmp_path: Path) -> None:
    proc = run_standin(tmp_path, "-p", "Create User model", *STREAM, ORCHESTRA_STANDIN_MODE="permission_denied")
    _, result = parse(proc)
    assert proc.returncode == 0
    assert result.status == "succeeded"
    assert result.permission_denials == [f"Write {tmp_path / 'user_model.py'}"]
    assert not (tmp_path / "user_model.py").exists()


def test_noop_finishes_at_once_without_writing(tmp_path: Path) -> None:
    proc = run_standin(tmp_path, "-p", "Create User model", *STREAM, ORCHESTRA_STANDIN_MODE="noop")
    _, result = parse(proc)
    assert result.status == "succeeded"
    assert list(tmp_path.iterdir()) == []


def test_json_format_prints_only_the_result(tmp_path: Path) -> None:
    proc = run_standin(tmp_path, "-p", "Create User model", "--output-format", "json")
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["type"] == "result"
    assert obj["is_error"] is False
    assert obj["permission_denials"] == []
    assert obj["terminal_reason"] == "completed"


def test_model_and_resume_flags(tmp_path: Path) -> None:
    proc = run_standin(tmp_path, "-p", "x", *STREAM, "--model", "claude-opus-4-5", "--resume", "sess-42")
    _, result = parse(proc)
    assert result.model == "claude-opus-4-5"
    assert result.session_id == "sess-42"


def test_version_and_bad_command_lines(tmp_path: Path) -> None:
    version = run_standin(tmp_path, "--version")
    assert version.stdout.decode().strip() == "2.1.332 (Claude Code stand-in)"
    unknown = run_standin(tmp_path, "-p", "x", "--frobnicate")
    assert unknown.returncode == 1
    assert b"unknown option '--frobnicate'" in unknown.stderr
    no_verbose = run_standin(tmp_path, "-p", "x", "--output-format", "stream-json")
    assert no_verbose.returncode == 1
    assert b"requires --verbose" in no_verbose.stderr
    no_prompt = run_standin(tmp_path, "-p", *STREAM, stdin=b"")
    assert no_prompt.returncode == 1
    assert b"Input must be provided" in no_prompt.stderr


def test_duration_spreads_over_the_steps(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = run_standin(tmp_path, "-p", "x", *STREAM, ORCHESTRA_STANDIN_DURATION="0.5")
    assert proc.returncode == 0
    assert time.monotonic() - started >= 0.5


# -- hostile task text ---------------------------------------------------------------------


def test_hostile_prompt_round_trips_through_argv(tmp_path: Path) -> None:
    record = tmp_path / "prompt.bin"
    proc = run_standin(tmp_path, "-p", HOSTILE, *STREAM, ORCHESTRA_STANDIN_RECORD=str(record))

    assert proc.returncode == 0, proc.stderr
    assert record.read_bytes() == HOSTILE.encode("utf-8")
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "PWNED2").exists()


def test_hostile_prompt_round_trips_through_stdin(tmp_path: Path) -> None:
    record = tmp_path / "prompt.bin"
    raw = HOSTILE.encode("utf-8") + b"\x00nul and \xff\xfe invalid utf-8\n"
    proc = run_standin(tmp_path, "-p", *STREAM, stdin=raw, ORCHESTRA_STANDIN_RECORD=str(record))

    assert proc.returncode == 0, proc.stderr
    assert record.read_bytes() == raw
    assert parse(proc)[1].status == "succeeded"


@pytest.mark.parametrize(
    "task",
    [HOSTILE, "--help; but a task", "x" * 150_000 + " end"],
    ids=["hostile", "leading-dash", "oversized"],
)
def test_adapter_invocation_delivers_the_task_intact(tmp_path: Path, task: str) -> None:
    wrapper = tmp_path / "claude"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m core.agents.standin "$@"\n', encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    settings = AgentSettings(name="standin", kind="claude", command=str(wrapper))
    invocation = ClaudeAdapter().build(task, settings)
    record = tmp_path / "prompt.bin"

    proc = subprocess.run(
        invocation.argv,
        check=False,
        cwd=tmp_path,
        env=standin_env(ORCHESTRA_STANDIN_RECORD=str(record), **invocation.env),
        input=user_message(task) if invocation.prompt_mode == "stream" else b"",
        capture_output=True,
        timeout=60,
    )

    assert proc.returncode == 0, proc.stderr
    assert record.read_bytes() == task.encode("utf-8")
    assert parse(proc)[1].status == "succeeded"


# -- signals and spending ------------------------------------------------------------------


def start(cwd: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "core.agents.standin", "-p", "Create User model", *STREAM],
        cwd=cwd,
        env=standin_env(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_ends_a_hanging_run_promptly_and_silently(tmp_path: Path, signum: signal.Signals, code: int) -> None:
    proc = start(tmp_path, ORCHESTRA_STANDIN_MODE="hang")
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["subtype"] == "init"
        sent = time.monotonic()
        proc.send_signal(signum)
        assert proc.wait(timeout=5) == code
        assert time.monotonic() - sent < 2
        out, err = proc.communicate(timeout=5)
        assert out == b""
        assert err == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_spend_mode_grows_live_usage_until_stopped(tmp_path: Path) -> None:
    proc = start(tmp_path, ORCHESTRA_STANDIN_MODE="spend", ORCHESTRA_STANDIN_DELAY="0.01")
    parser = ClaudeParser()
    seen: list[int] = []
    try:
        assert proc.stdout is not None
        while len(seen) < 4:
            line = proc.stdout.readline()
            assert line, "the stand-in stopped spending on its own"
            if any(event.kind == "usage" for event in parser.feed(line.decode())):
                seen.append(parser.live_usage()[0].input_tokens)
        proc.terminate()
        assert proc.wait(timeout=5) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert seen == [100_000, 200_000, 300_000, 400_000]
    assert parser.live_cost_usd() is None
    assert parser.finish(143, "").status == "failed"


def test_runs_as_a_script_without_site_packages(tmp_path: Path) -> None:
    # bots.yaml starts it as ``{python} -S {orchestra}/core/agents/standin``: stdlib only.
    proc = subprocess.run(
        [sys.executable, "-S", str(ROOT / "core" / "agents" / "standin"), "-p", "Create User model", *STREAM],
        cwd=tmp_path,
        env=standin_env(ORCHESTRA_STANDIN_MODE="noop"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert parse(proc)[1].status == "succeeded"
