"""Claude Code's and Codex's permission hooks: their real payloads as neutral tool calls, the replies
each CLI reads as allow or deny, and the command lines that install the hook (or, off, change nothing).

The payloads under ``tests/data/hooks/`` were captured from Claude Code 2.1.332 and Codex 0.169.0
driven by the fake model server. At the end, the real CLIs (``.agents/``) run the real hook program
(``core.permissions.hook``) against that server, with a stand-in engine on the task's socket that
answers the questions: an allowed ``pytest`` runs unasked, an asked ``curl`` runs or not as the
person says, ``rm -rf /`` is refused unasked, and a hook that cannot find its task refuses.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.agents import adapter_for, claude, codex, parser_for
from core.agents.base import AgentSettings
from core.agents.claude import ClaudeAdapter
from core.agents.codex import CodexAdapter, CodexParser
from core.agents.codex_hooks import patch_files
from core.agents.codex_transcript import hook_denials, sandbox_denials
from core.config.permissions import PermissionsConfig
from core.permissions.call import Decision, ToolCall
from core.permissions.hook import hook_command
from core.permissions.policy import Layer, Policy
from core.runner_input import user_message
from tests.conftest import ROOT
from tests.fakes.engine_socket import FakeEngineSocket
from tests.fakes.model_server import FakeModelServer

DATA = ROOT / "tests" / "data" / "hooks"
HOOK = "/usr/bin/python3 -S '/opt/orchestra dir/core/permissions/hook.py' claude"


def payloads(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((DATA / name).read_text())
    return data


def by_tool(name: str, tool: str, index: int = 0) -> dict[str, Any]:
    return [p for p in payloads(name) if p["tool_name"] == tool][index]


# -- Claude Code: payload -> ToolCall ---------------------------------------------------------


def test_claude_bash_is_the_command_line() -> None:
    call = claude.hook_call(by_tool("claude_pretooluse.json", "Bash"))
    assert call == ToolCall("Bash", "echo hi", cli_tool="Bash")


def test_claude_write_and_edit_are_edits_of_the_file_with_what_changes() -> None:
    write = claude.hook_call(by_tool("claude_pretooluse.json", "Write"))
    edit = claude.hook_call(by_tool("claude_pretooluse.json", "Edit"))
    cwd = by_tool("claude_pretooluse.json", "Write")["cwd"]

    assert write == ToolCall("Edit", f"{cwd}/new.txt", "new content\n", cli_tool="Write")
    assert edit == ToolCall("Edit", f"{cwd}/f.py", "-x = 1\n+x = 42", cli_tool="Edit")


def test_claude_multi_edit_notebook_and_replace_all() -> None:
    multi = claude.hook_call(
        {
            "hook_event_name": "PreToolUse",
            "tool_name": "MultiEdit",
            "tool_input": {
                "file_path": "/w/a.py",
                "edits": [{"old_string": "a\nb", "new_string": "c"}, {"old_string": "x", "new_string": "y"}],
            },
        }
    )
    notebook = claude.hook_call(
        {"tool_name": "NotebookEdit", "tool_input": {"notebook_path": "n.ipynb", "new_source": "print(1)"}}
    )
    every = claude.hook_call(
        {
            "tool_name": "Edit",
            "tool_input": {"file_path": "a", "old_string": "o", "new_string": "n", "replace_all": True},
        }
    )

    assert multi == ToolCall("Edit", "/w/a.py", "-a\n-b\n+c\n…\n-x\n+y", cli_tool="MultiEdit")
    assert notebook == ToolCall("Edit", "n.ipynb", "print(1)", cli_tool="NotebookEdit")
    assert every is not None and every.detail == "-o\n+n\n(every occurrence)"


def test_claude_reads_name_the_file_or_the_fixed_start_of_the_glob() -> None:
    read = claude.hook_call(by_tool("claude_pretooluse.json", "Read"))
    assert read == ToolCall(
        "Read", by_tool("claude_pretooluse.json", "Read")["tool_input"]["file_path"], cli_tool="Read"
    )

    def subject(tool: str, **tool_input: str) -> str:
        call = claude.hook_call({"tool_name": tool, "tool_input": tool_input})
        assert call is not None and call.tool == "Read"
        return call.subject

    assert subject("Glob", pattern="**/*.py") == "."
    assert subject("Glob", pattern="src/**/*.py") == "src"
    assert subject("Glob", pattern="/etc/*.conf") == "/etc"
    assert subject("Glob", pattern="*.md", path="/home/me") == "/home/me"
    assert subject("Grep", pattern="/etc/passwd") == ".", "a regex is not a path: Grep without path reads the cwd"
    assert subject("Grep", pattern="x", path="/var/log") == "/var/log"
    assert subject("LS", path="/root") == "/root"


def test_claude_web_tools_and_the_rest_keep_what_a_rule_matches() -> None:
    fetch = claude.hook_call(by_tool("claude_pretooluse.json", "WebFetch"))
    search = claude.hook_call(by_tool("claude_pretooluse.json", "WebSearch"))
    agent = claude.hook_call(by_tool("claude_pretooluse.json", "Agent"))
    mcp = claude.hook_call({"tool_name": "mcp__github__create_issue", "tool_input": {"title": "x"}})

    assert fetch == ToolCall("WebFetch", "http://127.0.0.1:9/x", "summarise", cli_tool="WebFetch")
    assert search == ToolCall("WebSearch", "orchestra hooks", cli_tool="WebSearch")
    assert agent is not None and (agent.tool, agent.subject) == ("Agent", "sub")
    assert "do x" in agent.detail, "the person sees the subagent's prompt"
    assert mcp == ToolCall("mcp__github__create_issue", "", '{"title": "x"}', cli_tool="mcp__github__create_issue")


def test_claude_odd_payloads_never_crash_and_an_unnamed_tool_is_still_judged() -> None:
    assert claude.hook_call({"hook_event_name": "Stop"}) is None
    nameless = claude.hook_call({"hook_event_name": "PreToolUse", "tool_input": "not a dict"})
    assert nameless == ToolCall("unknown tool", "", "", cli_tool="unknown tool")
    huge = claude.hook_call({"tool_name": "Write", "tool_input": {"file_path": "a", "content": "x" * 10_000}})
    assert huge is not None and len(huge.detail) == 1500


# -- Claude Code: Decision -> reply -----------------------------------------------------------


def test_claude_reply_allows_with_json_and_denies_with_json_and_exit_2() -> None:
    allow = claude.hook_reply(Decision(True))
    deny = claude.hook_reply(Decision(False, "Orchestra's policy refuses rm -rf /"))

    assert allow.exit_code == 0 and allow.stderr == ""
    assert json.loads(allow.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert deny.exit_code == 2
    assert json.loads(deny.stdout)["hookSpecificOutput"] == {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": "Orchestra's policy refuses rm -rf /",
    }
    assert deny.stderr == "Orchestra's policy refuses rm -rf /\n", "exit 2 alone still tells the model why"


# -- Claude Code: build() ----------------------------------------------------------------------


def claude_settings(**kw: Any) -> AgentSettings:
    return AgentSettings(name="claude", kind="claude", command="claude", **kw)


def test_claude_without_a_hook_is_todays_accept_edits_run() -> None:
    inv = ClaudeAdapter().build("go", claude_settings(args=["--settings", "/nowhere.json"]))
    assert inv.argv == [
        "claude", "-p", "--input-format", "stream-json", "--permission-prompt-tool", "stdio", "--replay-user-messages",
        "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits",
        "--settings", "/nowhere.json",
    ]  # fmt: skip


def test_claude_with_a_hook_runs_dont_ask_with_the_hook_in_the_last_settings() -> None:
    inv = ClaudeAdapter().build(
        "go", claude_settings(hook=HOOK, hook_timeout_s=660, model="claude-haiku-4-5", args=["--max-turns", "9"])
    )

    assert inv.argv[:12] == [
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
        "dontAsk",
    ]
    assert inv.argv[12:-2] == ["--model", "claude-haiku-4-5", "--max-turns", "9"]
    assert inv.argv[-2] == "--settings"
    assert json.loads(inv.argv[-1]) == {
        "disableAllHooks": False,
        "hooks": {"PreToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": HOOK, "timeout": 660}]}]},
    }
    assert shlex.split(HOOK)[2] == "/opt/orchestra dir/core/permissions/hook.py", "the shell line keeps its quoting"


def test_claude_users_own_settings_are_merged_into_the_hooks(tmp_path: Path) -> None:
    theirs = {"env": {"A": "1"}, "disableAllHooks": True, "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": []}]}}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(theirs))

    for args in (["--settings", str(path)], [f"--settings={json.dumps(theirs)}"]):
        inv = ClaudeAdapter().build("go", claude_settings(hook=HOOK, hook_timeout_s=60, args=["-x", *args]))
        assert inv.argv.count("--settings") == 1 and "-x" in inv.argv
        merged = json.loads(inv.argv[-1])
        assert merged["env"] == {"A": "1"} and merged["disableAllHooks"] is False
        assert [group["matcher"] for group in merged["hooks"]["PreToolUse"]] == ["Bash", "*"]

    with pytest.raises(ValueError, match="could not be merged with the permission hook"):
        ClaudeAdapter().build("go", claude_settings(hook=HOOK, args=["--settings", str(tmp_path / "missing.json")]))
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="not a JSON object"):
        ClaudeAdapter().build("go", claude_settings(hook=HOOK, args=["--settings", str(tmp_path / "list.json")]))


# -- Codex: payload -> ToolCall -----------------------------------------------------------------


def test_codex_shell_is_bash_and_a_workdir_elsewhere_is_shown_as_a_cd() -> None:
    here = by_tool("codex_pretooluse.json", "Bash")["cwd"]
    plain = codex.hook_call(by_tool("codex_pretooluse.json", "Bash"), here)
    elsewhere = codex.hook_call(by_tool("codex_pretooluse.json", "Bash", 1), here)

    assert plain == ToolCall("Bash", "echo SHELL-RAN", cli_tool="Bash")
    assert elsewhere == ToolCall("Bash", "cd /root/hooks-cc-x/out && touch wd.txt; pwd", cli_tool="Bash")
    quoted = codex.hook_call({"tool_name": "Bash", "tool_input": {"command": "ls"}, "cwd": "/a b"}, "/w")
    assert quoted is not None and quoted.subject == "cd '/a b' && ls"


def test_codex_apply_patch_is_an_edit_of_its_riskiest_file_with_the_patch_shown() -> None:
    add, update, several = (by_tool("codex_pretooluse.json", "apply_patch", i) for i in range(3))
    here = add["cwd"]

    assert codex.hook_call(add, here) == ToolCall(
        "Edit", "new.txt", add["tool_input"]["command"], cli_tool="apply_patch"
    )
    assert codex.hook_call(update, here) == ToolCall(
        "Edit", "f.py", update["tool_input"]["command"], cli_tool="apply_patch"
    )
    several_call = codex.hook_call(several, here)
    assert several_call is not None and several_call.subject == "denied.txt"
    assert patch_files(several["tool_input"]["command"]) == ["denied.txt", "sub/two.txt", "f.py"]

    escape = "*** Begin Patch\n*** Add File: ok.py\n+1\n*** Update File: ../../home/me/.bashrc\n+x\n*** End Patch"
    call = codex.hook_call({"tool_name": "apply_patch", "tool_input": {"command": escape}, "cwd": "/w/repo"}, "/w/repo")
    assert call is not None and call.subject == "../../home/me/.bashrc", "the file outside the workspace is judged"
    moved = "*** Begin Patch\n*** Update File: a.py\n*** Move to: /etc/a.py\n*** End Patch"
    assert patch_files(moved) == ["a.py", "/etc/a.py"]
    opaque = codex.hook_call({"tool_name": "apply_patch", "tool_input": {"command": "garbage"}}, "/w")
    assert opaque == ToolCall("apply_patch", "", "garbage", cli_tool="apply_patch"), "no file found: asked, not allowed"


def test_codex_view_image_is_a_read_and_other_tools_keep_their_name() -> None:
    image = by_tool("codex_pretooluse.json", "view_image")
    assert codex.hook_call(image, image["cwd"]) == ToolCall("Read", "/etc/hostname", cli_tool="view_image")
    mcp = codex.hook_call({"tool_name": "mcp__fs__read", "tool_input": {"path": "/x"}}, "/w")
    assert mcp == ToolCall("mcp__fs__read", "/x", '{"path": "/x"}', cli_tool="mcp__fs__read")
    assert codex.hook_call({"hook_event_name": "SessionStart"}, "/w") is None


def test_codex_reply_denies_with_exit_2_and_the_reason_on_stderr() -> None:
    allow = codex.hook_reply(Decision(True))
    deny = codex.hook_reply(Decision(False, "a person said no: use the mirror"))

    assert allow.exit_code == 0 and json.loads(allow.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert deny.exit_code == 2 and deny.stderr == "a person said no: use the mirror\n"
    assert json.loads(deny.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


# -- Codex: build() and what the parser reports -----------------------------------------------------


def codex_settings(tmp_path: Path, **kw: Any) -> AgentSettings:
    return AgentSettings(name="codex", kind="codex", command="codex", config_dir=str(tmp_path / "home"), **kw)


def test_codex_without_a_hook_is_todays_workspace_write_run(tmp_path: Path) -> None:
    inv = CodexAdapter().build("go", codex_settings(tmp_path))
    assert inv.argv == ["codex", "exec", "--json", "--skip-git-repo-check", "-s", "workspace-write", "go"]
    assert "hooks" not in next(iter(inv.files.values()))


def test_codex_with_a_hook_runs_unsandboxed_with_every_call_gated(tmp_path: Path) -> None:
    inv = CodexAdapter().build("go", codex_settings(tmp_path, hook=HOOK, hook_timeout_s=660), resume="0199")

    assert inv.argv[:7] == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "-s",
        "danger-full-access",
        "--dangerously-bypass-hook-trust",
    ]
    overrides = inv.argv[7:13]
    assert overrides[::2] == ["-c"] * 3
    assert overrides[1::2][:2] == ["features.hooks=true", "features.unified_exec_tty=false"]
    assert (
        overrides[5]
        == f'hooks.PreToolUse=[{{matcher="*",hooks=[{{type="command",command={json.dumps(HOOK)},timeout=660}}]}}]'
    )
    assert inv.argv[13:] == ["resume", "0199", "go"]
    own = CodexAdapter().build("go", codex_settings(tmp_path, hook=HOOK, args=["-s", "workspace-write"]))
    assert "danger-full-access" not in own.argv and "--dangerously-bypass-hook-trust" in own.argv


def test_codex_lists_the_calls_the_hook_refused(tmp_path: Path) -> None:
    patch_run = str(DATA / "codex_rollout_patch_refused.jsonl")
    shell_run = str(DATA / "codex_rollout_shell_refused.jsonl")

    assert hook_denials(patch_run) == ["patch denied.txt, sub/two.txt, f.py (refused by the permission hook)"]
    assert hook_denials(shell_run) == ["shell touch b.txt && echo B (refused by the permission hook)"]
    assert sandbox_denials(shell_run) == [] and hook_denials(None) == []


def test_codex_parser_hides_the_trust_warning_orchestra_chose() -> None:
    parser = CodexParser()
    line = json.dumps(
        {
            "type": "item.completed",
            "item": {
                "id": "item_0",
                "type": "error",
                "message": "`--dangerously-bypass-hook-trust` is enabled. Enabled hooks may run without review "
                "for this invocation.",
            },
        }
    )
    assert parser.feed(line) == []
    other = json.dumps({"type": "item.completed", "item": {"id": "item_1", "type": "error", "message": "Model gone"}})
    assert parser.feed(other)[0].text == "warning: Model gone"


# -- the real CLIs through the real hook program ----------------------------------------------------

AGENTS = Path(os.environ.get("ORCHESTRA_AGENTS_DIR") or ROOT / ".agents")
CLIS = {"claude": "node_modules/.bin/claude", "codex": "node_modules/.bin/codex"}
REFUSAL = "the curl stays off: use the cached copy"


@dataclass
class Run:
    results: list[str]  # what each tool call gave back to the model, in order
    script: list[str]  # the commands the model ran, the fake server's URL filled in
    denials: list[str]
    server: FakeModelServer
    engine: FakeEngineSocket
    work: Path


def _binary(kind: str) -> Path:
    path = AGENTS / CLIS[kind]
    if not path.exists():
        pytest.skip(f"{kind} is not installed at {path}: run `make agents-ci`")
    return path


def _tool_results(server: FakeModelServer, kind: str) -> list[str]:
    """The tool outputs the CLI sent back, taken from the requests that ended with one."""
    results = []
    for call in server.model_calls("anthropic" if kind == "claude" else "responses"):
        if kind == "claude":
            last = (call.body.get("messages") or [{}])[-1]
            blocks = last.get("content") if isinstance(last.get("content"), list) else []
            contents = [b.get("content") for b in blocks if b.get("type") == "tool_result"]
            results += [c if isinstance(c, str) else json.dumps(c) for c in contents]
        else:
            items = call.body.get("input") or [{}]
            if items[-1].get("type") == "function_call_output":
                results.append(str(items[-1].get("output")))
    return results


def _run(kind: str, tmp_path: Path, script: list[str], *, allow: bool = True, spec: bool = True) -> Run:
    """One real run of ``kind`` with Orchestra's hook on, as the engine would start it."""
    binary = _binary(kind)
    work, task_dir, home = tmp_path / "work", tmp_path / "task", tmp_path / "home"
    for folder in (work, task_dir, home):
        folder.mkdir()
    (work / "test_ok.py").write_text("def test_ok():\n    pass\n")
    # Codex runs commands in a login shell (``bash -lc``), whose PATH is the profile's: keep ours.
    (home / ".bash_profile").write_text(f"export PATH={shlex.quote(os.environ['PATH'])}\n")
    engine = FakeEngineSocket(tmp_path / "engine.sock", allow=allow, reason="" if allow else REFUSAL)
    try:
        with FakeModelServer(workdir=str(work)) as server:
            server.script = [line.replace("{url}", server.url) for line in script]
            base = "ANTHROPIC_BASE_URL" if kind == "claude" else "OPENAI_BASE_URL"
            settings = AgentSettings(
                name=kind, kind=kind, command=str(binary), model="claude-haiku-4-5" if kind == "claude" else "gpt-5",
                env={base: server.url + ("" if kind == "claude" else "/v1"), "ORCHESTRA_MAX_RETRIES": "0"},
                config_dir=str(home / "agent"), hook=hook_command(kind), hook_timeout_s=60,
            )  # fmt: skip
            if spec:
                defaults = PermissionsConfig().model_dump(include={"allow", "ask", "deny"})
                policy = Policy(cwd=str(work), layers=(Layer.of("permissions", defaults),))
                payload = {"task_id": "t1", "socket": str(engine.path), "permissions": policy.to_dict()}
                (task_dir / "spec.json").write_text(json.dumps(payload))
            invocation = adapter_for(kind).build("run the script", settings)
            for path, content in invocation.files.items():
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(content)
            env = {
                "PATH": os.environ["PATH"], "HOME": str(home), "ORCHESTRA_TASK_DIR": str(task_dir),
                "ANTHROPIC_API_KEY": "sk-fake", "OPENAI_API_KEY": "sk-fake",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", **invocation.env,
            }  # fmt: skip
            conversation = user_message("run the script").decode() if invocation.prompt_mode == "stream" else ""
            proc = subprocess.run(
                invocation.argv, cwd=work, env=env, input=conversation, capture_output=True, text=True,
                timeout=240, check=False,
            )  # fmt: skip
            parser = parser_for(invocation.parser)
            for line in proc.stdout.splitlines():
                parser.feed(line)
            result = parser.finish(proc.returncode, proc.stderr[-2000:])
            assert result.status == "succeeded", (result.errors, proc.stderr[-2000:])
            return Run(
                _tool_results(server, kind), list(server.script), result.permission_denials, server, engine, work
            )
    finally:
        engine.close()


SCRIPT = ["pytest -q", "curl -s {url}/x", "rm -rf /"]


def _safe_rm() -> None:
    probe = subprocess.run(["rm", "--help"], capture_output=True, text=True, check=False)
    if "--no-preserve-root" not in probe.stdout:  # GNU rm refuses "/" even if a hook let it through
        pytest.skip("needs GNU rm, which refuses to remove / by itself")


@pytest.mark.real_cli
@pytest.mark.parametrize("kind", ["claude", "codex"])
def test_real_cli_runs_what_the_policy_and_the_person_allow(kind: str, tmp_path: Path) -> None:
    _safe_rm()
    run = _run(kind, tmp_path, SCRIPT, allow=True)

    assert len(run.results) == 3, run.results
    assert "1 passed" in run.results[0], "pytest is allowed by the policy: it ran, unasked"
    assert [ask["call"]["subject"] for ask in run.engine.asks] == [run.script[1]], "only the curl was asked"
    assert run.engine.asks[0]["call"]["tool"] == "Bash"
    assert '{"error":{"message":"not found"}}' in run.results[1], "the curl's output reached the model"
    assert [c.path for c in run.server.calls if c.method == "GET"] == ["/x"], "the allowed curl reached the network"
    assert "Orchestra's permission policy refuses Bash(rm -rf /)" in run.results[2]
    assert [d["call"]["subject"] for d in run.engine.denied] == ["rm -rf /"], "refused by the policy, never asked"


@pytest.mark.real_cli
@pytest.mark.parametrize("kind", ["claude", "codex"])
def test_real_cli_gets_the_persons_refusal_and_lists_it(kind: str, tmp_path: Path) -> None:
    _safe_rm()
    run = _run(kind, tmp_path, SCRIPT, allow=False)

    assert len(run.engine.asks) == 1
    assert REFUSAL in run.results[1], "the model reads the person's reason"
    assert not [c for c in run.server.calls if c.method == "GET"], "the refused curl never ran"
    curl = run.script[1]
    assert any(curl in denial for denial in run.denials), run.denials
    assert any("rm -rf /" in denial for denial in run.denials), run.denials


@pytest.mark.real_cli
@pytest.mark.parametrize("kind", ["claude", "codex"])
def test_real_cli_hook_that_cannot_find_its_task_refuses(kind: str, tmp_path: Path) -> None:
    run = _run(kind, tmp_path, ["touch made-it.txt"], spec=False)

    assert not (run.work / "made-it.txt").exists()
    assert "Orchestra's permission hook failed" in run.results[0], run.results[0]
