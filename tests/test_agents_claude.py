"""Claude Code adapter and stream-json parser, over recorded fixtures shaped like the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.agents import adapter_for, parser_for
from core.agents.base import AgentEvent, AgentResult, AgentSettings, Usage
from core.agents.claude import ClaudeAdapter, ClaudeParser, anthropic_usage

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "claude"
CWD = "/tmp/orchestra-task-7"


def parse(name: str, exit_code: int = 0, stderr: str = "") -> tuple[list[AgentEvent], AgentResult, ClaudeParser]:
    parser = ClaudeParser()
    events: list[AgentEvent] = []
    # split("\n") rather than splitlines(): a crash leaves a last line without its newline.
    for line in (FIXTURES / name).read_text(encoding="utf-8").split("\n"):
        events += parser.feed(line)
    return events, parser.finish(exit_code, stderr), parser


def kinds(events: list[AgentEvent], kind: str) -> list[AgentEvent]:
    return [event for event in events if event.kind == kind]


def claude_settings(**overrides: object) -> AgentSettings:
    values: dict[str, object] = {"name": "claude", "kind": "claude", "command": "claude"}
    values.update(overrides)
    return AgentSettings(**values)  # type: ignore[arg-type]


# -- the parser over recorded runs ---------------------------------------------------------


def test_success_reports_the_write_and_the_final_text() -> None:
    events, result, _ = parse("success_write.jsonl")

    init = kinds(events, "init")[0]
    assert init.data["session_id"] == "5c1f2a9e-8d7b-4c3e-9f10-2b6d4e8a7c31"
    assert init.data["model"] == "claude-haiku-4-5-20251001"
    assert init.data["cwd"] == CWD
    assert init.data["tools"] == 15
    assert [e.text for e in kinds(events, "text")] == [
        "I'll create hello.txt with a greeting.",
        "DONE: created hello.txt",
    ]
    tool_use = kinds(events, "tool_use")[0]
    assert tool_use.text == "Write hello.txt"
    assert tool_use.data["input"]["file_path"] == f"{CWD}/hello.txt"
    tool_result = kinds(events, "tool_result")[0]
    assert tool_result.data["is_error"] is False
    assert "File created successfully" in tool_result.text

    assert result.status == "succeeded"
    assert result.final_text == "DONE: created hello.txt"
    assert result.cost_usd == pytest.approx(0.00254)
    assert result.cost_source == "cli"
    assert result.session_id == "5c1f2a9e-8d7b-4c3e-9f10-2b6d4e8a7c31"
    assert result.model == "claude-haiku-4-5-20251001"
    assert result.errors == []
    assert result.exit_code == 0


def test_usage_is_counted_once_per_message_and_converted_to_total_input() -> None:
    events, result, parser = parse("success_write.jsonl")

    # Two API calls of 1000 fresh + 200 cache-read input; the first repeats its usage on two lines.
    live, model = parser.live_usage()
    assert live == Usage(input_tokens=2400, output_tokens=100, cache_read_tokens=400, cache_write_tokens=0)
    assert model == "claude-haiku-4-5-20251001"
    counted = [e for e in kinds(events, "usage") if not e.data.get("final")]
    assert len(counted) == 2
    assert counted[-1].data["usage"] == live.to_dict()
    assert result.usage == live


def test_anthropic_usage_adds_cache_to_input() -> None:
    raw = {
        "input_tokens": 504,
        "cache_creation_input_tokens": 123,
        "cache_read_input_tokens": 1000,
        "output_tokens": 7,
    }
    assert anthropic_usage(raw) == Usage(
        input_tokens=1627, output_tokens=7, cache_read_tokens=1000, cache_write_tokens=123
    )
    assert anthropic_usage({"input_tokens": "lots", "output_tokens": None}) == Usage()
    assert anthropic_usage(None) == Usage()


def test_api_error_with_exit_zero_fails_with_a_readable_reason() -> None:
    events, result, _ = parse("api_error_401.jsonl", exit_code=0)

    assert result.status == "failed"
    assert result.errors[0] == "API error 401: invalid x-api-key · check ANTHROPIC_API_KEY"
    assert result.exit_code == 0
    assert result.cost_usd == 0.0
    assert kinds(events, "error"), "the failure shows up live, before the process exits"
    # The "<synthetic>" message is not an API call and names no model.
    assert result.model == "claude-sonnet-4-5-20250929"


def test_api_error_with_exit_one_fails_too() -> None:
    _, result, _ = parse("api_error_401.jsonl", exit_code=1, stderr="")
    assert result.status == "failed"
    assert result.errors == ["API error 401: invalid x-api-key · check ANTHROPIC_API_KEY"]


def test_max_turns_fails_and_says_why() -> None:
    events, result, _ = parse("max_turns.jsonl", exit_code=1)

    assert kinds(events, "tool_use")[0].text == "Bash: npm test"
    assert result.status == "failed"
    assert result.errors[0] == "max turns reached"
    assert "Reached maximum number of turns (1)" in result.errors
    assert result.cost_usd == pytest.approx(0.0100941)
    assert result.usage.input_tokens == 3 + 11842 + 1374


def test_permission_denial_is_surfaced_on_a_successful_run() -> None:
    events, result, _ = parse("permission_denied.jsonl")

    denied = kinds(events, "tool_result")[0]
    assert denied.data["is_error"] is True
    assert denied.text.startswith("Write error: Claude requested permissions")
    assert result.status == "succeeded"
    assert result.permission_denials == [f"Write {CWD}/hello.txt"]


def test_two_result_lines_the_last_one_wins() -> None:
    parser = ClaudeParser()
    costs: list[float | None] = []
    for line in (FIXTURES / "two_results.jsonl").read_text(encoding="utf-8").splitlines():
        parser.feed(line)
        if json.loads(line)["type"] == "result":
            costs.append(parser.live_cost_usd())
    result = parser.finish(0, "")

    assert costs == [pytest.approx(0.0101), pytest.approx(0.0168)]
    assert result.status == "succeeded"
    assert result.final_text == "The background check finished: all 12 tests pass."
    assert result.cost_usd == pytest.approx(0.0168)
    assert result.usage.input_tokens == 2515 + 28320 + 1020
    # The subagent's own API call (parent_tool_use_id set) counts in the live usage too.
    assert parser.live_usage()[0].input_tokens == result.usage.input_tokens


def test_no_live_cost_before_a_result() -> None:
    parser = ClaudeParser()
    lines = (FIXTURES / "success_write.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines[:-1]:
        parser.feed(line)
    assert parser.live_cost_usd() is None
    parser.feed(lines[-1])
    assert parser.live_cost_usd() == pytest.approx(0.00254)


def test_crash_without_result_fails_with_the_exit_code() -> None:
    events, result, _ = parse("crash_truncated.jsonl", exit_code=137, stderr="some warning\nKilled\n")

    assert events[-1].kind == "raw", "the half-written last line is shown, not parsed"
    assert result.status == "failed"
    assert result.errors[0] == "agent exited with code 137 before reporting a result"
    assert result.errors[1] == "stderr: some warning | Killed"
    assert result.cost_usd is None
    assert result.cost_source == "unknown"
    assert result.usage.input_tokens == 3 + 10120 + 980, "live usage stands in for the missing result"
    assert result.session_id == "5c1f2a9e-8d7b-4c3e-9f10-2b6d4e8a7c31"
    assert result.final_text == "I'll refactor the parser into smaller functions."


def test_crash_by_signal_and_silent_exit() -> None:
    _, killed, _ = parse("crash_truncated.jsonl", exit_code=-9)
    assert killed.errors[0] == "agent was killed by SIGKILL before reporting a result"
    _, silent, _ = parse("crash_truncated.jsonl", exit_code=0)
    assert silent.status == "failed"
    assert silent.errors[0] == "agent exited with code 0 without reporting a result"


def test_success_result_with_nonzero_exit_fails() -> None:
    _, result, _ = parse("success_write.jsonl", exit_code=2, stderr="Error: something broke")
    assert result.status == "failed"
    assert result.errors == ["agent exited with code 2", "stderr: Error: something broke"]
    assert result.final_text == "DONE: created hello.txt"


def test_budget_exhausted_reason() -> None:
    parser = ClaudeParser()
    parser.feed(
        json.dumps(
            {
                "type": "result",
                "subtype": "error_max_budget_usd",
                "is_error": True,
                "total_cost_usd": 0.51,
                "terminal_reason": "budget_exhausted",
                "errors": ["Reached maximum budget ($0.5)"],
            }
        )
    )
    result = parser.finish(1, "")
    assert result.status == "failed"
    assert result.errors[0].startswith("budget exhausted")
    assert "Reached maximum budget ($0.5)" in result.errors


GARBAGE = [
    "",
    "   ",
    "not json at all",
    '{"type":"assistant","message":{"model":"claude-son',
    "[1, 2, 3]",
    "42",
    "null",
    '"a string"',
    '{"type":"assistant","message":"oops"}',
    '{"type":"assistant","message":{"content":"not a list","usage":{"input_tokens":"many"}}}',
    '{"type":"assistant","message":{"content":[null,1,{"type":"tool_use","input":[]}],"usage":[]}}',
    '{"type":"user","message":{"content":[{"type":"tool_result","content":[{"type":"text","text":5}]}]}}',
    '{"type":"user","message":{"content":[{"type":"tool_result","content":""}]}}',
    '{"type":"system","subtype":"init","tools":"all","model":7}',
    '{"type":"result","usage":[],"total_cost_usd":"free","permission_denials":[1,{"tool_input":3}]}',
    '{"type":"mystery","payload":{}}',
    "\x1b[31mred\x1b[0m \x00 \ufffd",
    "[" * 100_000,
    "x" * 2_000_000,
    json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "y" * 500_000}]}}),
]


def test_garbage_never_crashes_the_parser() -> None:
    parser = ClaudeParser()
    for line in GARBAGE:
        for event in parser.feed(line):
            assert len(event.text) <= 200
    parser.live_usage()
    parser.live_cost_usd()
    result = parser.finish(0, "")
    assert result.cost_usd is None, "a cost that is not a number is no cost"
    assert result.cost_source == "unknown"


_KEYS = st.sampled_from(
    "type subtype message content usage id text result is_error input_tokens tool_use_id "  # noqa: SIM905
    "total_cost_usd permission_denials tool_input name input model".split()
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(["assistant", "user", "result", "system", "init", "text", "tool_use", "tool_result"])
    | st.text(max_size=20)
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=6),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=200) | _JSON.map(json.dumps), max_size=20))
def test_any_input_yields_events_and_a_result(lines: list[str]) -> None:
    parser = ClaudeParser()
    for line in lines:
        parser.feed(line)
    parser.live_usage()
    result = parser.finish(1, "tail")
    assert result.status in ("succeeded", "failed")


# -- the adapter ---------------------------------------------------------------------------


def test_build_sends_the_task_as_the_first_message_of_a_conversation_on_stdin() -> None:
    task = "Fix the bug; rm -rf ~ $(whoami) `id`\nsecond line"
    invocation = ClaudeAdapter().build(task, claude_settings(args=["--max-turns", "30"], env={"A": "1"}))

    assert invocation.argv == [
        "claude",
        "-p",
        "--input-format",
        "stream-json",
        "--permission-prompt-tool",
        "stdio",
        "--replay-user-messages",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
        "--max-turns",
        "30",
    ]
    assert invocation.prompt_mode == "stream"
    assert invocation.parser == "claude"
    assert invocation.env == {"A": "1"}


def test_build_with_model_and_resume() -> None:
    invocation = ClaudeAdapter().build("go on", claude_settings(model="claude-opus-4-5"), resume="sess-1")
    assert "go on" not in invocation.argv
    assert invocation.argv[-4:] == ["--model", "claude-opus-4-5", "--resume", "sess-1"]


@pytest.mark.parametrize(
    "task",
    ["a" * 100_001, "é" * 50_001, "before\0after", "--help me with this"],
    ids=["long", "long-utf8", "nul", "dash"],
)
def test_no_task_text_is_ever_in_argv(task: str) -> None:
    invocation = ClaudeAdapter().build(task, claude_settings())
    assert invocation.prompt_mode == "stream"
    assert not any(task in arg for arg in invocation.argv)
    assert invocation.argv[:2] == ["claude", "-p"]


def test_version_argv_and_registry() -> None:
    adapter = adapter_for("claude")
    assert adapter.kind == "claude"
    assert adapter.version_argv(claude_settings(command="/opt/claude")) == ["/opt/claude", "--version"]
    assert isinstance(parser_for("claude"), ClaudeParser)


def test_parser_module_imports_without_site_packages() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import core.agents.claude; "
        "print(sorted(m for m in ('pydantic', 'genai_prices', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
