"""Cursor Agent: recorded streams replayed (``tests/data/cursor/SOURCES.md``), the command line, and
the policy carried into its ``cli-config.json``. The CLI itself has not been run here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.agents import adapter_for, hooked, parser_for
from core.agents.base import AgentEvent, AgentResult, AgentSettings, Usage
from core.agents.cursor import CursorParser, cursor_permissions
from core.config.permissions import DEFAULT_ALLOW, DEFAULT_ASK, DEFAULT_DENY
from core.pricing import price_usd

DATA = Path(__file__).resolve().parent / "data" / "cursor"


def replay(label: str) -> tuple[list[AgentEvent], AgentResult]:
    meta = json.loads((DATA / f"{label}.meta.json").read_text(encoding="utf-8"))
    parser = parser_for("cursor")
    assert isinstance(parser, CursorParser)
    events: list[AgentEvent] = []
    for line in (DATA / f"{label}.jsonl").read_text(encoding="utf-8").split("\n"):
        events += parser.feed(line)
    result = parser.finish(int(meta["exit_code"]), meta["stderr"])
    assert parser.tokens_reported() == (result.usage != Usage())
    return events, result


def settings(tmp_path: Path, **values: object) -> AgentSettings:
    base: dict[str, object] = {"name": "cursor", "kind": "cursor", "command": "cursor-agent"}
    base["config_dir"] = str(tmp_path / "agents" / "cursor")
    return AgentSettings(**(base | values))  # type: ignore[arg-type]


def test_the_documented_write_replays_to_its_file_text_and_session() -> None:
    events, result = replay("docs_write")
    assert result.status == "succeeded", result.errors
    assert result.final_text == "Done! I've created the summary in summary.txt"  # the last segment only
    assert result.session_id == "c6b62c6f-7ead-4fd6-9922-e952131177ff"
    assert result.model == "Claude 4 Sonnet"
    tools = [e.text for e in events if e.kind == "tool_use"]
    assert tools == ["read README.md", "write summary.txt"]
    assert [e.data["is_error"] for e in events if e.kind == "tool_result"] == [False, False]
    assert result.usage == Usage() and result.cost_usd is None and result.cost_source == "unknown"


def test_a_real_shell_run_replays_with_its_commands_and_no_tokens() -> None:
    events, result = replay("shell_success")
    assert result.status == "succeeded", result.errors
    assert result.final_text.startswith("Both commands have finished running")
    assert result.session_id == "d43015b9-0707-43f4-b2df-0bcea7891654"
    assert [e.text for e in events if e.kind == "tool_use"] == ["shell: sleep 5", "shell: sleep 3"]
    assert not [e for e in events if e.kind == "raw"]  # thinking deltas and the prompt echo are dropped
    assert result.usage == Usage() and result.cost_usd is None  # no usage in this version: unknown, never $0


def test_a_real_run_with_usage_gives_tokens_an_edit_and_the_refused_command() -> None:
    events, result = replay("usage_edit")
    assert result.status == "succeeded", result.errors
    assert result.final_text == "It prints `hello world`."
    assert result.usage == Usage(input_tokens=14948, output_tokens=103)
    assert result.model == "Auto"  # Cursor's router: no list price, so the runner tries the configured model
    assert price_usd(result.usage, "Auto") is None
    assert price_usd(result.usage, "gpt-4.1-mini") == pytest.approx((14948 * 0.4 + 103 * 1.6) / 1e6)
    texts = [e.text for e in events if e.kind == "tool_result"]
    assert any("hello.py" in t for t in texts)  # the edit, from its completed call (no started line)
    assert result.permission_denials == ["shell: python3 hello.py (rejected: rejected)"]
    assert next(e for e in events if e.kind == "usage").data["final"] is True


def test_a_rejected_api_key_fails_with_the_cli_reason_and_the_variable() -> None:
    _, result = replay("error_api_key")
    assert result.status == "failed"
    assert result.errors[0].startswith("Warning: The provided API key is invalid.")
    assert "CURSOR_API_KEY" in result.errors[0]
    assert "exited with code 1" in result.errors[1]
    parser = parser_for("cursor")
    assert parser.finish(1, "Error: invalid api key").errors[0] == "Error: invalid api key · check CURSOR_API_KEY"
    assert result.usage == Usage() and result.cost_usd is None


def test_an_error_result_and_garbage_lines_fail_readably_without_raising() -> None:
    parser = parser_for("cursor")
    assert parser.feed("not json")[0].kind == "raw"
    parser.feed('{"type":"tool_call","subtype":"completed","call_id":"x","tool_call":{"shellToolCall":'
                '{"args":{"command":"false"},"result":{"failure":{"exitCode":7,"stderr":"boom"}}}}}')  # fmt: skip
    parser.feed('{"type":"result","subtype":"error","is_error":true,"result":"denied","session_id":"s"}')
    result = parser.finish(1, "")
    assert result.status == "failed" and result.errors == ["denied"]
    assert result.tool_errors == ["shell: false error: boom"]


def test_cache_counts_are_inside_the_input_unless_they_cannot_be() -> None:
    parser = parser_for("cursor")
    usage = {"inputTokens": 23666, "outputTokens": 5, "cacheReadTokens": 23617, "cacheWriteTokens": 47}
    parser.feed(json.dumps({"type": "result", "subtype": "success", "is_error": False, "usage": usage}))
    assert parser.finish(0, "").usage == Usage(23666, 5, 23617, 47)
    parser = parser_for("cursor")
    usage = {"inputTokens": 5, "outputTokens": 2, "cacheReadTokens": 10, "cacheWriteTokens": 3}
    parser.feed(json.dumps({"type": "result", "subtype": "success", "is_error": False, "usage": usage}))
    assert parser.finish(0, "").usage == Usage(18, 2, 10, 3)


def test_the_command_line_config_dir_resume_and_long_tasks(tmp_path: Path) -> None:
    adapter = adapter_for("cursor")
    assert not hooked("cursor")  # no hook Orchestra can answer: nothing is asked on the phone
    inv = adapter.build("fix it", settings(tmp_path, model="gpt-5"), resume="chat-1")
    assert inv.argv == [
        "cursor-agent", "-p", "--output-format", "stream-json", "--trust", "--model", "gpt-5",
        "--resume", "chat-1", "fix it",
    ]  # fmt: skip
    home = str(tmp_path / "agents" / "cursor")
    assert inv.env["CURSOR_CONFIG_DIR"] == home and inv.parser == "cursor" and inv.prompt_mode == "arg"
    config = json.loads(inv.files[f"{home}/cli-config.json"])
    assert config["version"] == 1 and config["permissions"] == {"allow": [], "deny": []}
    assert adapter.build("-rf everything", settings(tmp_path)).prompt_mode == "stdin"
    own = adapter.build("x", settings(tmp_path, env={"CURSOR_CONFIG_DIR": "~/.cursor"}))
    assert own.files == {} and not own.env["CURSOR_CONFIG_DIR"].startswith("~")
    assert adapter.version_argv(settings(tmp_path)) == ["cursor-agent", "--version"]


def test_the_default_policy_becomes_allow_and_deny_tokens_without_force(tmp_path: Path) -> None:
    policy = {"layers": [{"name": "permissions", "allow": DEFAULT_ALLOW, "ask": DEFAULT_ASK, "deny": DEFAULT_DENY}]}
    allow, deny, force = cursor_permissions(policy, home="/home/me")
    assert not force
    assert {"Read(**)", "Write(**)", "Shell(pytest)", "Shell(git:status *)", "Shell(ls)"} <= set(allow)
    assert "Shell(make)" not in allow  # an exact command: Cursor's Shell(make) would allow any arguments
    assert "Shell(pwd)" not in allow
    assert {"Shell(sudo)", "Shell(rm:-rf /)", "Write(/home/me/.ssh/**)", "Read(/home/me/.ssh/**)"} <= set(deny)
    assert {"Shell(curl)", "Shell(git:push *)", "Shell(rm)", "Write(.git/**)", "WebFetch(*)"} <= set(deny)  # asks
    assert not [t for t in allow + deny if "*(" in t or (t.startswith("Shell(*") and t != "Shell(*)")]
    inv = adapter_for("cursor").build("x", settings(tmp_path, policy=policy))
    assert "--force" not in inv.argv
    written = json.loads(next(iter(inv.files.values())))["permissions"]
    assert written == {"allow": allow, "deny": cursor_permissions(policy)[1]}


def test_a_more_specific_allow_lifts_an_ask_and_allowing_every_command_forces(tmp_path: Path) -> None:
    layers = [
        {"name": "agent cursor", "allow": ["Bash(curl *)"], "ask": [], "deny": []},
        {"name": "permissions", "allow": [], "ask": ["Bash(curl *)", "Bash(wget *)"], "deny": []},
    ]
    allow, deny, force = cursor_permissions({"layers": layers})
    assert allow == ["Shell(curl)"] and deny == ["Shell(wget)"] and not force
    everything = {"layers": [{"name": "agent cursor", "allow": ["Bash"], "ask": [], "deny": ["Bash(rm *)"]}]}
    assert cursor_permissions(everything) == ([], ["Shell(rm)"], True)
    assert "--force" in adapter_for("cursor").build("x", settings(tmp_path, policy=everything)).argv
    web = {"layers": [{"name": "g", "allow": ["WebFetch(https://docs.python.org/*)", "WebFetch(https://a.io/x/*)"]}]}
    assert cursor_permissions(web)[0] == ["WebFetch(docs.python.org)"]  # a path-limited allow cannot be said


def test_doctor_says_a_cursor_agent_was_never_run_here() -> None:
    from core.service.doctor import UNTRIED, UNTRIED_KINDS, _unasked

    assert "cursor" in UNTRIED_KINDS and "not run against the real CLI here" in UNTRIED
    assert "nothing is asked" in _unasked("cursor", True, "none")
