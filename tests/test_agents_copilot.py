"""GitHub Copilot CLI: the command line, the hook, and real runs replayed (stdout plus the session's
``events.jsonl``, recorded by ``tests/test_real_clis.py`` with ``ORCHESTRA_RECORD_FIXTURES=1``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.agents import adapter_for, hooked, parser_for
from core.agents.base import AgentResult, AgentSettings, Usage, parser_ref
from core.agents.copilot import session_usage
from core.agents.copilot_hooks import hook_call, hook_reply
from core.permissions.call import BASH, EDIT, READ, Decision, ToolCall
from core.pricing import price_usd
from tests.fakes.model_server import FINAL_TEXT

DATA = Path(__file__).resolve().parent / "data" / "copilot"
TWO_CALLS = Usage(input_tokens=2000, output_tokens=100, cache_read_tokens=400)


def settings(tmp_path: Path, **values: object) -> AgentSettings:
    base: dict[str, object] = {"name": "copilot", "kind": "copilot", "command": "copilot"}
    base["config_dir"] = str(tmp_path / "agents" / "copilot")
    return AgentSettings(**(base | values))  # type: ignore[arg-type]


def replay(label: str, tmp_path: Path) -> AgentResult:
    """Feed a recorded stdout to the parser, the session's events file where the CLI left it."""
    stdout = (DATA / f"{label}.jsonl").read_text(encoding="utf-8")
    result_line = json.loads(stdout.strip().splitlines()[-1])
    home = tmp_path / "copilot-home"
    session = home / "session-state" / result_line["sessionId"]
    session.mkdir(parents=True)
    shutil.copyfile(DATA / f"{label}.events.jsonl", session / "events.jsonl")
    meta = json.loads((DATA / f"{label}.meta.json").read_text())
    parser = parser_for(parser_ref("copilot", home=str(home), model="gpt-4.1-mini"))
    for line in stdout.split("\n"):
        parser.feed(line)
    return parser.finish(int(meta["exit_code"]), "")


def test_a_recorded_success_gives_text_session_tokens_and_a_priceable_model(tmp_path: Path) -> None:
    result = replay("success", tmp_path)
    assert result.status == "succeeded", result.errors
    assert result.final_text == FINAL_TEXT
    assert result.session_id == json.loads((DATA / "success.jsonl").read_text().splitlines()[-1])["sessionId"]
    assert result.usage == TWO_CALLS
    assert result.model == "gpt-4.1-mini" and result.cost_source == "unknown"  # the runner prices it
    assert price_usd(result.usage, result.model) == pytest.approx((1600 * 0.4 + 400 * 0.1 + 100 * 1.6) / 1e6)


@pytest.mark.parametrize("label", ["error_401", "error_500"])
def test_a_recorded_api_error_fails_readably(tmp_path: Path, label: str) -> None:
    result = replay(label, tmp_path)
    assert result.status == "failed"
    status = label.removeprefix("error_")
    assert result.errors[0].startswith(f"API error {status}"), result.errors
    if status == "401":
        assert "COPILOT_PROVIDER_API_KEY" in result.errors[0]
    assert result.usage == Usage()


def test_a_resumed_session_counts_only_its_own_run(tmp_path: Path) -> None:
    """Every ``session.shutdown`` holds the session's totals: the run is the last minus the one before."""
    path = tmp_path / "events.jsonl"

    def shutdown(calls: int) -> str:
        usage = {"inputTokens": 1000 * calls, "outputTokens": 50 * calls, "cacheReadTokens": 200 * calls}
        return json.dumps({"type": "session.shutdown", "data": {"modelMetrics": {"gpt-4.1": {"usage": usage}}}})

    path.write_text("\n".join([shutdown(2), '{"type":"session.resume","data":{}}', shutdown(5)]) + "\n")
    assert session_usage(str(path)) == (Usage(3000, 150, 600), "gpt-4.1")
    path.write_text('{"type":"session.start"}\n')
    assert session_usage(str(path)) is None
    assert session_usage(str(tmp_path / "missing.jsonl")) is None


def test_build_never_allows_every_tool_and_isolates_its_home(tmp_path: Path) -> None:
    adapter = adapter_for("copilot")
    hooked_run = adapter.build("-fix it", settings(tmp_path, hook="HOOK", model="gpt-4.1"), resume="abc-123")
    assert hooked_run.argv[:2] == ["copilot", "--prompt=-fix it"]
    assert "--allow-all-tools" not in hooked_run.argv and "--allow-tool" not in hooked_run.argv
    assert {"--model=gpt-4.1", "--resume=abc-123", "--no-ask-user", "--no-auto-update"} <= set(hooked_run.argv)
    home = str(tmp_path / "agents" / "copilot")
    assert hooked_run.env["COPILOT_HOME"] == home
    written = json.loads(hooked_run.files[f"{home}/settings.json"])
    [hook] = written["hooks"]["preToolUse"]
    assert "HOOK" in hook["bash"] and hook["timeoutSec"] > 600
    assert json.loads(hooked_run.parser.split(" ", 1)[1])["home"] == home

    unattended = adapter.build("fix it", settings(tmp_path, hook=""))
    assert unattended.argv[unattended.argv.index("--allow-tool") + 1] == "write"
    assert "hooks" not in json.loads(unattended.files[f"{home}/settings.json"])
    own = adapter.build("fix it", settings(tmp_path, hook="", args=["--allow-tool=shell(git:*)"]))
    assert own.argv.count("--allow-tool") == 0 and own.argv[-1] == "--allow-tool=shell(git:*)"
    long = adapter.build("x" * 200_000, settings(tmp_path))
    assert long.prompt_mode == "stdin" and not any(a.startswith("--prompt") for a in long.argv)


def test_a_users_own_copilot_home_is_used_as_is_but_not_with_the_hook(tmp_path: Path) -> None:
    adapter = adapter_for("copilot")
    mine = adapter.build("fix it", settings(tmp_path, hook="", env={"COPILOT_HOME": "~/.copilot"}))
    assert mine.files == {} and mine.env["COPILOT_HOME"] == str(Path.home() / ".copilot")
    with pytest.raises(ValueError, match="COPILOT_HOME"):
        adapter.build("fix it", settings(tmp_path, hook="HOOK", env={"COPILOT_HOME": "~/.copilot"}))


def test_hook_payloads_become_neutral_calls() -> None:
    assert hooked("copilot")
    cwd = "/work/repo"
    bash = {"cwd": cwd, "toolName": "bash", "toolArgs": {"command": "pytest -q", "description": "tests"}}
    assert hook_call(bash) == ToolCall(BASH, "pytest -q", "", "bash")
    create = {"cwd": cwd, "toolName": "create", "toolArgs": json.dumps({"path": "a.txt", "file_text": "hi"})}
    assert hook_call(create) == ToolCall(EDIT, "/work/repo/a.txt", "hi", "create")
    edit = {"cwd": cwd, "toolName": "edit", "toolArgs": {"path": "/work/repo/a.txt", "old_str": "a", "new_str": "b"}}
    assert hook_call(edit) == ToolCall(EDIT, "/work/repo/a.txt", "- a\n+ b", "edit")
    view = hook_call({"cwd": cwd, "toolName": "view", "toolArgs": {"path": "/etc/passwd"}})
    assert view is not None and (view.tool, view.subject) == (READ, "/etc/passwd")
    assert hook_call({"cwd": cwd, "toolName": "task", "toolArgs": {}}) == ToolCall("task", "", "{}", "task")
    assert hook_call("garbage") == ToolCall("unknown")


def test_hook_replies_are_copilots_bare_permission_decision() -> None:
    assert json.loads(hook_reply(Decision(True)).stdout) == {"permissionDecision": "allow"}
    denied = hook_reply(Decision(False, "no network"))
    assert denied.exit_code == 0
    assert json.loads(denied.stdout) == {"permissionDecision": "deny", "permissionDecisionReason": "no network"}
    assert json.loads(hook_reply(Decision(False)).stdout)["permissionDecisionReason"]
