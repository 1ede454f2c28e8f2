"""Output recorded from the real CLIs (``tests/test_real_clis.py``), replayed through the parsers.

Each fixture is a real run's stdout against the fake model server (two model calls of 1000
input tokens, 200 of them cached, and 50 output tokens; aider makes one call). Re-record with
``ORCHESTRA_RECORD_FIXTURES=1 make real-clis``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.agents import parser_for
from core.agents.base import AgentEvent, AgentResult, Usage, parser_ref
from tests.fakes.model_server import FINAL_TEXT

DATA = Path(__file__).resolve().parent / "data"
CLIS = ["claude", "codex", "gemini", "qwen", "opencode", "droid", "aider"]
TWO_CALLS = Usage(input_tokens=2000, output_tokens=100, cache_read_tokens=400)
USAGE = {cli: TWO_CALLS for cli in CLIS} | {"aider": Usage(input_tokens=1000, output_tokens=50)}
CLI_COST = {"claude": 0.00214, "aider": 0.0024}  # the CLI's own USD; the others leave pricing to us
ERROR_500 = {"codex": "high demand"}


def fixtures(label: str) -> list[tuple[str, Path]]:
    suffix = {"aider": ".txt"}
    found = [(cli, DATA / cli / f"{label}{suffix.get(cli, '.jsonl')}") for cli in CLIS]
    return [(cli, path) for cli, path in found if path.exists()]


def replay(cli: str, path: Path) -> tuple[list[AgentEvent], AgentResult]:
    meta = json.loads(path.with_name(path.name.split(".")[0] + ".meta.json").read_text())
    options: dict[str, str | None] = {}
    if cli == "aider":
        options = {"model": "openai/fake-coder", "analytics": str(path.with_suffix(".analytics.jsonl"))}
    parser = parser_for(parser_ref(meta["parser"], **options))
    events: list[AgentEvent] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        events += parser.feed(line)
    return events, parser.finish(int(meta["exit_code"]), "")


def test_every_cli_has_a_recorded_success() -> None:
    assert [cli for cli, _ in fixtures("success")] == CLIS


@pytest.mark.parametrize(("cli", "path"), fixtures("success"), ids=[c for c, _ in fixtures("success")])
def test_recorded_success_replays_to_the_same_summary(cli: str, path: Path) -> None:
    events, result = replay(cli, path)

    assert result.status == "succeeded", result.errors
    assert result.final_text.strip().endswith(FINAL_TEXT)
    assert result.usage == USAGE[cli]
    assert result.errors == [] and result.permission_denials == []
    if cli in CLI_COST:
        assert result.cost_usd == pytest.approx(CLI_COST[cli]) and result.cost_source == "cli"
    else:
        assert result.cost_usd is None and result.cost_source == "unknown"
    if cli != "aider":  # aider has no sessions
        assert result.session_id
    kinds: list[str] = [event.kind for event in events]
    assert "tool_use" in kinds and "usage" in kinds
    if cli != "aider":  # aider reports the call's tokens first, then applies the edit
        assert kinds.index("tool_use") < max(i for i, kind in enumerate(kinds) if kind == "usage")
    tool = next(event for event in events if event.kind == "tool_use")
    assert "hello" in tool.text


@pytest.mark.parametrize("label", ["error_401", "error_500"])
def test_recorded_api_errors_fail_with_a_readable_reason(label: str) -> None:
    found = fixtures(label)
    assert found, f"no {label} fixtures recorded"
    for cli, path in found:
        events, result = replay(cli, path)
        expected = "401" if label == "error_401" else ERROR_500.get(cli, "500")
        assert result.status == "failed", cli
        assert expected in " ".join(result.errors), (cli, result.errors)
        assert len(result.errors[0]) < 200, "one readable line, not a dump"
        assert any(event.kind == "error" for event in events), f"{cli}: the failure shows up live"
        assert result.usage == Usage()


def test_exit_code_zero_does_not_hide_an_aider_failure() -> None:
    _, result = replay("aider", DATA / "aider" / "error_401.txt")
    assert result.exit_code == 0 and result.status == "failed"
    assert result.errors[0] == "API error 401: invalid api key (fake server)"


def test_gemini_exit_code_is_the_http_status() -> None:
    _, result = replay("gemini", DATA / "gemini" / "error_401.jsonl")
    assert result.exit_code == 145  # 401 mod 256
    assert result.errors == ["API error 401: invalid api key (fake server) · check GEMINI_API_KEY"]


def test_codex_sandbox_failure_with_exit_zero_is_a_denial() -> None:
    parser = parser_for("codex")
    lines = [
        {"type": "thread.started", "thread_id": "t-1"},
        {
            "type": "item.completed",
            "item": {
                "id": "item_1",
                "type": "command_execution",
                "command": "/bin/bash -lc 'touch /etc/x'",
                "aggregated_output": "touch: cannot touch '/etc/x': Read-only file system\n",
                "exit_code": 1,
                "status": "failed",
            },
        },
        {"type": "item.completed", "item": {"id": "item_2", "type": "agent_message", "text": "I could not write it."}},
        {"type": "turn.completed", "usage": {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 5}},
    ]
    events = [event for line in lines for event in parser.feed(json.dumps(line))]
    result = parser.finish(0, "")
    assert [e.kind for e in events] == ["init", "tool_use", "tool_result", "text", "usage"]
    assert events[1].text == "shell: touch /etc/x"
    assert result.status == "succeeded"
    assert result.permission_denials == ["shell touch /etc/x (blocked by the sandbox)"]


def test_codex_exec_command_blocked_by_the_sandbox_is_found_in_the_transcript(tmp_path: Path) -> None:
    """Codex 0.169 reports its ``exec_command`` tool in no ``--json`` event: the stream of a run whose
    shell command the sandbox refused shows only the final text. The rollout file has the call."""
    stdout = (DATA / "codex" / "sandbox_denied.stdout.jsonl").read_text().splitlines()
    thread = json.loads(stdout[0])["thread_id"]
    sessions = tmp_path / "sessions" / "2026" / "11" / "26"
    sessions.mkdir(parents=True)
    rollout = (DATA / "codex" / "sandbox_denied.rollout.jsonl").read_text()
    (sessions / f"rollout-2026-11-26T00-01-09-{thread}.jsonl").write_text(rollout)
    parser = parser_for(parser_ref("codex", model="gpt-5", home=str(tmp_path)))
    events = [event for line in stdout for event in parser.feed(line)]
    assert "tool_use" not in [e.kind for e in events], "nothing in the stream says a command ran"
    result = parser.finish(0, "")
    assert result.status == "succeeded"
    assert result.permission_denials == ["shell touch /srv/outside/escaped (blocked by the sandbox)"]


def test_opencode_auto_rejected_permission_is_reported() -> None:
    parser = parser_for(parser_ref("opencode", model="anthropic/claude-sonnet-4-5"))
    state = {"status": "error", "input": {"filePath": "/r/a.txt"}, "error": "The user rejected permission to use this"}
    parser.feed(json.dumps({"type": "tool_use", "sessionID": "ses_1", "part": {"tool": "write", "state": state}}))
    tokens = {"input": 800, "output": 40, "reasoning": 10, "cache": {"read": 200, "write": 0}}
    parser.feed(
        json.dumps(
            {"type": "step_finish", "sessionID": "ses_1", "part": {"reason": "stop", "tokens": tokens, "cost": 0.0032}}
        )
    )
    stderr = "! permission requested: edit (/r/a.txt); auto-rejecting\n"
    result = parser.finish(0, stderr)
    assert result.status == "succeeded" and result.cost_usd == pytest.approx(0.0032)
    assert result.permission_denials == ["write /r/a.txt", "edit (/r/a.txt) (auto-rejected)"]
    assert result.usage == Usage(input_tokens=1000, output_tokens=50, cache_read_tokens=200)
    assert result.model == "claude-sonnet-4-5"


def _replay_resumed(cli: str, resumed_from: dict[str, Any] | None) -> AgentResult:
    """The recorded second run of a session (``retry``: two model calls of its own)."""
    parser = parser_for(cli, resumed_from=resumed_from)
    for line in (DATA / cli / "resumed.jsonl").read_text(encoding="utf-8").split("\n"):
        parser.feed(line)
    return parser.finish(0, "")


def test_a_resumed_claude_run_costs_only_its_own_calls() -> None:
    """Claude's ``total_cost_usd`` covers the whole session: the first run's $0.00214 is not this run's."""
    fresh = _replay_resumed("claude", None)
    assert fresh.session_cost_usd == pytest.approx(2 * CLI_COST["claude"])

    result = _replay_resumed("claude", {"usage": None, "cost_usd": CLI_COST["claude"]})
    assert result.cost_usd == pytest.approx(CLI_COST["claude"]) and result.cost_source == "cli"
    assert result.usage == TWO_CALLS
    assert result.session_cost_usd == pytest.approx(2 * CLI_COST["claude"])  # what the next retry subtracts

    unknown = _replay_resumed("claude", {})  # no earlier run recorded the session's total
    assert unknown.cost_usd is None and unknown.cost_source == "unknown"  # the runner prices the tokens


def test_a_resumed_qwen_run_counts_the_calls_its_stream_does_not_show() -> None:
    """Qwen's result ``usage`` is the session's: 4,000 in after two runs of two calls. What the run
    used is that total minus the previous run's, side calls (memory extraction) included."""
    after_two_calls = {"usage": TWO_CALLS.to_dict(), "cost_usd": None}
    assert _replay_resumed("qwen", after_two_calls).usage == TWO_CALLS

    after_one_call = {"usage": Usage(input_tokens=1000, output_tokens=50, cache_read_tokens=200).to_dict()}
    result = _replay_resumed("qwen", after_one_call)  # a call of this run never appeared as a message
    assert result.usage == Usage(input_tokens=3000, output_tokens=150, cache_read_tokens=600)
    assert result.session_usage == Usage(input_tokens=4000, output_tokens=200, cache_read_tokens=800)
