"""The generic command adapter: placeholders, plain-text output and in-band cost reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.agents import adapter_for, parser_for
from core.agents.base import AgentEvent, AgentResult, AgentSettings, Usage
from core.agents.command import CommandAdapter, CommandParser, clean_line

ROOT = Path(__file__).resolve().parents[1]


def command_settings(*args: str, command: str = "my-agent") -> AgentSettings:
    return AgentSettings(name="script", kind="command", command=command, args=list(args), env={"K": "v"})


def run(lines: list[str], exit_code: int = 0, stderr: str = "") -> tuple[list[AgentEvent], AgentResult]:
    parser = CommandParser()
    events = [event for line in lines for event in parser.feed(line)]
    return events, parser.finish(exit_code, stderr)


# -- the adapter ---------------------------------------------------------------------------


def test_task_placeholder_is_replaced_inside_one_element() -> None:
    task = "Add a README; rm -rf ~ $(id)\nwith two lines"
    invocation = CommandAdapter().build(task, command_settings("--message={task}", "--yes"))

    assert invocation.argv == ["my-agent", f"--message={task}", "--yes"]
    assert invocation.prompt_mode == "arg"
    assert invocation.parser == "command"
    assert invocation.env == {"K": "v"}


def test_braces_in_the_task_text_stay_as_they_are() -> None:
    task = "fill {name} and {0} and {task} and {task_file} }{ %s"
    invocation = CommandAdapter().build(task, command_settings("{task}"))
    assert invocation.argv == ["my-agent", task]


def test_task_file_placeholder_is_left_for_the_runner() -> None:
    invocation = CommandAdapter().build("anything", command_settings("--input", "{task_file}", "-v"))
    assert invocation.argv == ["my-agent", "--input", "{task_file}", "-v"]
    assert invocation.prompt_mode == "file"


def test_without_placeholder_the_task_goes_to_stdin() -> None:
    invocation = CommandAdapter().build("do it", command_settings("--fast"))
    assert invocation.argv == ["my-agent", "--fast"]
    assert invocation.prompt_mode == "stdin"


def test_resume_is_ignored() -> None:
    invocation = CommandAdapter().build("x", command_settings("{task}"), resume="abc")
    assert invocation.argv == ["my-agent", "x"]


@pytest.mark.parametrize("task", ["a" * 100_001, "nul\0byte"])
def test_task_that_cannot_be_an_argument_is_refused(task: str) -> None:
    with pytest.raises(ValueError, match=r"\{task_file\}"):
        CommandAdapter().build(task, command_settings("{task}"))


def test_long_task_is_fine_through_a_file_or_stdin() -> None:
    assert CommandAdapter().build("a" * 200_000, command_settings("{task_file}")).prompt_mode == "file"
    assert CommandAdapter().build("a" * 200_000, command_settings()).prompt_mode == "stdin"


def test_version_argv_and_registry() -> None:
    adapter = adapter_for("command")
    assert adapter.kind == "command"
    assert adapter.version_argv(command_settings(command="./run.sh")) == ["./run.sh", "--version"]
    assert isinstance(parser_for("command"), CommandParser)


# -- the parser ----------------------------------------------------------------------------


def test_each_line_is_a_text_event_without_escapes() -> None:
    events, _ = run(["\x1b[1;32mPASS\x1b[0m tests/test_x.py", "", "\x1b]0;title\x07plain", "10%\r55%\r100%"])
    assert [event.kind for event in events] == ["text", "text", "text"]
    assert [event.text for event in events] == ["PASS tests/test_x.py", "plain", "100%"]


def test_clean_line_drops_control_characters() -> None:
    assert clean_line("a\x07b\x00c\td") == "abc\td"


def test_success_final_text_is_the_last_lines() -> None:
    lines = [f"line {n}" for n in range(1, 9)]
    _, result = run([*lines, "   "])

    assert result.status == "succeeded"
    assert result.final_text == "line 4\nline 5\nline 6\nline 7\nline 8"
    assert result.cost_usd is None
    assert result.cost_source == "unknown"
    assert result.errors == []


def test_final_text_is_capped() -> None:
    _, result = run(["x" * 5000])
    assert len(result.final_text) == 1000


def test_in_band_report_gives_usage_cost_and_final_text() -> None:
    report = {
        "orchestra": {
            "usage": {"input_tokens": 1200, "output_tokens": 80, "cache_read_tokens": 200},
            "model": "gpt-5",
            "cost_usd": 0.0031,
            "final_text": "Done: 3 files changed",
        }
    }
    parser = CommandParser()
    parser.feed("working...")
    assert parser.live_cost_usd() is None
    events = parser.feed(json.dumps(report))
    parser.feed("bye")

    assert [event.kind for event in events] == ["usage"]
    assert events[0].data["cost_usd"] == 0.0031
    usage, model = parser.live_usage()
    assert usage == Usage(input_tokens=1200, output_tokens=80, cache_read_tokens=200)
    assert model == "gpt-5"
    assert parser.live_cost_usd() == 0.0031

    result = parser.finish(0, "")
    assert result.final_text == "Done: 3 files changed"
    assert result.cost_usd == 0.0031
    assert result.cost_source == "cli"
    assert result.usage.output_tokens == 80
    assert result.model == "gpt-5"


def test_later_reports_replace_earlier_totals() -> None:
    parser = CommandParser()
    parser.feed('{"orchestra": {"cost_usd": 0.01, "usage": {"input_tokens": 10}}}')
    parser.feed('{"orchestra": {"cost_usd": 0.03, "usage": {"input_tokens": 30}}}')
    assert parser.live_cost_usd() == 0.03
    assert parser.live_usage()[0].input_tokens == 30


@pytest.mark.parametrize(
    "line",
    [
        '{"orchestra": "not an object"}',
        '{"orchestra": {"usage": {"input_tokens": "many"}, "cost_usd": "NaN"}',
        '{"other": {"orchestra": 1}}',
    ],
)
def test_malformed_reports_do_not_break_anything(line: str) -> None:
    parser = CommandParser()
    parser.feed(line)
    assert parser.live_cost_usd() is None
    assert parser.finish(0, "").usage == Usage()


def test_failure_names_the_exit_code_and_stderr() -> None:
    _, result = run(["compiling", "oops"], exit_code=2, stderr="warning: x\n\x1b[31merror: it broke\x1b[0m\n")
    assert result.status == "failed"
    assert result.exit_code == 2
    assert result.errors == ["command exited with code 2", "stderr: warning: x\nerror: it broke"]
    assert result.final_text == "compiling\noops"


def test_parser_module_imports_without_site_packages() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import core.agents.command; "
        "print(sorted(m for m in ('pydantic', 'genai_prices', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
