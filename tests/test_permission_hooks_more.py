"""Gemini, Qwen, Droid and opencode under Orchestra's permission hook, and aider without one.

The payloads under ``tests/data/hooks/`` were captured from the real CLIs (Gemini 0.61, Qwen Code
0.24.4, Droid 0.225.2, opencode 1.18.34 through Orchestra's plugin). The last tests drive the real
CLIs, as their adapters build them, through the real ``core/permissions/hook.py`` against the fake
model and a fake engine socket: ``pytest -q`` runs unasked, ``curl`` is asked (Allow runs it, Deny
gives the model the person's reason), ``rm -rf /`` is refused by the policy and never asked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from core.agents import adapter_for
from core.agents import droid as droid_module
from core.agents import gemini as gemini_module
from core.agents import opencode as opencode_module
from core.agents import qwen as qwen_module
from core.agents.base import AgentSettings
from core.agents.hooks import FAILED, GRACE_S, guarded_command, tool_call
from core.config.permissions import PermissionsConfig
from core.engine import write_agent_files
from core.permissions.call import Decision, ToolCall
from core.permissions.hook import hook_command
from core.permissions.policy import Layer, Policy
from tests.fakes.engine_socket import FakeEngineSocket
from tests.fakes.model_server import FakeModelServer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "hooks"
AGENTS = Path(os.environ.get("ORCHESTRA_AGENTS_DIR") or ROOT / ".agents")
RUN = "/tmp/orchestra-run/repo"  # the captured payloads' working directory
HOOK = "/usr/bin/python3 -S /opt/orchestra/core/permissions/hook.py"
MODULES = {"gemini": gemini_module, "qwen": qwen_module, "droid": droid_module, "opencode": opencode_module}


def payloads(kind: str) -> list[dict[str, Any]]:
    return list(json.loads((DATA / f"{kind}.json").read_text()))


def agent(kind: str, tmp_path: Path, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {"name": kind, "kind": kind, "command": kind, "config_dir": str(tmp_path / kind)}
    values.update(overrides)
    return AgentSettings(**values)


# -- payloads -> neutral calls ------------------------------------------------------------------

EXPECTED = {
    "gemini": [
        ("Bash", "pytest -q"), ("Bash", "curl -s http://127.0.0.1:9/x"), ("Bash", "rm -rf /"),
        ("Edit", f"{RUN}/hello.txt"), ("Edit", f"{RUN}/hello.txt"), ("Read", f"{RUN}/hello.txt"), ("Read", RUN),
        ("Read", RUN), ("Read", RUN), ("WebFetch", "http://127.0.0.1:9/page"), ("WebSearch", "orchestra hooks"),
        ("write_todos", ""),
    ],
    "qwen": [
        ("Bash", "pytest -q"), ("Bash", "curl -s http://127.0.0.1:9/x"), ("Bash", "rm -rf /"),
        ("Edit", f"{RUN}/hello.txt"), ("Edit", f"{RUN}/hello.txt"), ("Read", f"{RUN}/hello.txt"), ("Read", RUN),
        ("Read", RUN), ("tool_search", "select:web_fetch"), ("WebFetch", "http://127.0.0.1:9/page"),
        ("WebFetch", "http://127.0.0.1:9/direct"),
    ],
    "droid": [
        ("Bash", "pytest -q"), ("Bash", "curl -s http://127.0.0.1:9/x"), ("Bash", "rm -rf /"),
        ("Read", f"{RUN}/hello.txt"), ("Read", RUN), ("Read", RUN), ("Read", RUN),
        ("WebFetch", "http://127.0.0.1:9/page"), ("WebSearch", "orchestra hooks"), ("Edit", f"{RUN}/hello.txt"),
        ("Edit", f"{RUN}/hello.txt"), ("Bash", "cat hello.txt"),
    ],
    "opencode": [
        ("Bash", "pytest -q"), ("Bash", "curl -s http://127.0.0.1:9/x"), ("Bash", "rm -rf /"),
        ("Edit", f"{RUN}/hello.txt"), ("Read", f"{RUN}/hello.txt"), ("Edit", f"{RUN}/hello.txt"), ("Read", RUN),
        ("Read", RUN), ("WebFetch", "http://127.0.0.1:9/page"), ("Bash", "cd /tmp && ls"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_captured_payloads_become_the_neutral_calls_a_rule_names(kind: str) -> None:
    calls = [MODULES[kind].hook_call(payload) for payload in payloads(kind)]
    assert [(c.tool, c.subject) if c else None for c in calls] == EXPECTED[kind]
    assert all(c and c.cli_tool == p["tool_name"] for c, p in zip(calls, payloads(kind), strict=True))


def test_an_edit_shows_its_content_or_diff_and_a_search_its_pattern() -> None:
    by_tool = {p["tool_name"]: gemini_module.hook_call(p) for p in payloads("gemini")}
    assert by_tool["write_file"] == ToolCall("Edit", f"{RUN}/hello.txt", "hello\n", "write_file")
    assert by_tool["replace"] is not None and by_tool["replace"].detail == "- hello\n+ bye"
    assert by_tool["grep_search"] == ToolCall("Read", RUN, "bye", "grep_search")
    droid_edit = next(p for p in payloads("droid") if p["tool_name"] == "Edit")
    assert droid_module.hook_call(droid_edit) == ToolCall("Edit", f"{RUN}/hello.txt", "- hello\n+ bye", "Edit")


def test_other_events_are_not_tool_calls_but_a_nameless_call_still_is() -> None:
    assert gemini_module.hook_call({"hook_event_name": "AfterAgent", "prompt_response": "done"}) is None
    assert qwen_module.hook_call({"hook_event_name": "Stop"}) is None
    nameless = droid_module.hook_call({"hook_event_name": "PreToolUse", "tool_input": {"command": "id"}})
    assert nameless is not None and nameless.tool == "unknown"


def test_what_one_rule_cannot_judge_alone_is_never_judged_by_its_harmless_part() -> None:
    patch = "*** Begin Patch\n*** Update File: src/a.py\n@@\n-a\n+b\n*** Add File: /root/.ssh/k\n+x\n*** End Patch"
    assert tool_call("ApplyPatch", {"input": patch}, RUN).subject == "/root/.ssh/k"  # the outside path stands
    assert tool_call("ApplyPatch", {"input": "no files named"}, RUN).tool == "ApplyPatch"  # not an Edit(./**)
    assert tool_call("write_file", {"content": "x"}, RUN).tool == "write_file"
    fetch = tool_call("web_fetch", {"prompt": "compare https://docs.python.org/3/ and https://evil.test/?q=1"})
    assert fetch.tool == "WebFetch" and fetch.subject == "" and "evil.test" in fetch.detail
    moved = tool_call("run_shell_command", {"command": "touch x", "dir_path": "/etc"}, RUN)
    assert moved.subject == "cd /etc && touch x"  # judged where it runs: outside, so asked
    policy = Policy(cwd=RUN, layers=(Layer.of("permissions", PermissionsConfig().model_dump()),), home="/root")
    assert [policy.judge(c).verdict for c in (moved, fetch)] == ["ask", "ask"]
    assert policy.judge(tool_call("ApplyPatch", {"input": patch}, RUN)).verdict == "deny"


# -- decisions -> the CLI's answer ----------------------------------------------------------------


def test_replies_exit_zero_with_the_decision_in_each_clis_json() -> None:
    for kind in ("gemini", "opencode"):
        allow, deny = MODULES[kind].hook_reply(Decision(True)), MODULES[kind].hook_reply(Decision(False, "no net"))
        assert json.loads(allow.stdout) == {"decision": "allow"} and allow.exit_code == 0
        assert json.loads(deny.stdout) == {"decision": "deny", "reason": "no net"} and deny.exit_code == 0
    for kind in ("qwen", "droid"):
        allow, deny = MODULES[kind].hook_reply(Decision(True)), MODULES[kind].hook_reply(Decision(False, "no net"))
        assert json.loads(allow.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"
        said = json.loads(deny.stdout)["hookSpecificOutput"]
        assert said == {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": "no net",
        }
        assert (allow.exit_code, deny.exit_code, deny.stderr) == (0, 0, "")
    assert "policy" in json.loads(gemini_module.hook_reply(Decision(False)).stdout)["reason"]  # never reasonless


# -- the guard: a broken hook is a deny ---------------------------------------------------------------


def _guarded(tmp_path: Path, script: str, timeout_s: int = 30) -> subprocess.CompletedProcess[str]:
    hook = tmp_path / "hook.sh"
    hook.write_text(script)
    line = guarded_command(f"/bin/sh {hook}", timeout_s)
    payload = '{"tool_name": "x"}'
    return subprocess.run(
        ["/bin/sh", "-c", line], input=payload, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize(
    "script",
    [
        "echo crashed >&2; exit 1",
        "exit 2",
        "exit 0",
        "echo Traceback; exit 0",
        'echo \'{"decision": "allow"}\'; exit 3',
    ],
    ids=["crash", "silent-exit-2", "nothing", "plain-text", "json-but-failed"],
)
def test_a_hook_that_fails_in_any_way_denies_in_both_forms(tmp_path: Path, script: str) -> None:
    done = _guarded(tmp_path, script)
    assert done.returncode == 2
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"decision": "deny", "reason": FAILED}
    assert FAILED in done.stderr


def test_a_working_hook_passes_through_and_reads_the_payload(tmp_path: Path) -> None:
    done = _guarded(tmp_path, 'read -r line; printf \'{"decision": "allow", "seen": %s}\\n\' "$line"')
    assert done.returncode == 0 and json.loads(done.stdout) == {"decision": "allow", "seen": {"tool_name": "x"}}


def test_a_hook_that_hangs_is_killed_at_its_deadline_and_denies(tmp_path: Path) -> None:
    started = time.monotonic()
    done = _guarded(tmp_path, "sleep 60", timeout_s=1)
    assert done.returncode == 2 and FAILED in done.stderr
    assert time.monotonic() - started < 10


# -- build(): the hook written into each CLI's own config -----------------------------------------------


def test_without_a_hook_nothing_changes(tmp_path: Path) -> None:
    for kind in MODULES:
        inv = adapter_for(kind).build("go", agent(kind, tmp_path, model="m", env={"OPENAI_BASE_URL": "http://h/v1"}))
        assert not any("hook" in content or "plugin" in content for content in inv.files.values()), kind
    assert "medium" in adapter_for("droid").build("go", agent("droid", tmp_path)).argv


def test_gemini_runs_yolo_with_a_before_tool_hook_in_milliseconds(tmp_path: Path) -> None:
    inv = adapter_for("gemini").build("go", agent("gemini", tmp_path, hook=HOOK, hook_timeout_s=620))
    assert "--yolo" in inv.argv
    settings = json.loads(inv.files[str(tmp_path / "gemini" / ".gemini" / "settings.json")])
    [entry] = settings["hooks"]["BeforeTool"]
    assert entry["matcher"] == "*" and entry["hooks"][0]["timeout"] == (620 + GRACE_S) * 1000
    assert entry["hooks"][0]["command"] == guarded_command(HOOK, 620)
    assert settings["security"]["environmentVariableRedaction"] == {"allowed": ["ORCHESTRA_TASK_DIR"]}
    assert settings["security"]["auth"] == {"selectedType": "gemini-api-key"}  # what was there stays
    with pytest.raises(ValueError, match="GEMINI_CLI_HOME"):
        adapter_for("gemini").build("go", agent("gemini", tmp_path, hook=HOOK, env={"GEMINI_CLI_HOME": "/home/me"}))


def test_qwen_hook_timeout_is_seconds_below_1000_and_its_own_home_gets_a_system_file(tmp_path: Path) -> None:
    inv = adapter_for("qwen").build("go", agent("qwen", tmp_path, hook=HOOK, hook_timeout_s=600))
    assert "--yolo" in inv.argv
    settings = json.loads(inv.files[str(tmp_path / "qwen" / "settings.json")])
    [hook] = settings["hooks"]["PreToolUse"][0]["hooks"]
    assert hook["timeout"] == 600 + GRACE_S and hook["command"] == guarded_command(HOOK, 600)
    assert settings["privacy"] == {"usageStatisticsEnabled": False} and settings["disableAllHooks"] is False
    long = adapter_for("qwen").build("go", agent("qwen", tmp_path, hook=HOOK, hook_timeout_s=3600))
    assert json.loads(next(iter(long.files.values())))["hooks"]["PreToolUse"][0]["hooks"][0]["timeout"] == 3615000
    mine = adapter_for("qwen").build("go", agent("qwen", tmp_path, hook=HOOK, env={"QWEN_HOME": "/home/me/.qwen"}))
    system = str(tmp_path / "qwen" / "system-settings.json")
    assert mine.env["QWEN_CODE_SYSTEM_SETTINGS_PATH"] == system and mine.env["QWEN_HOME"] == "/home/me/.qwen"
    assert list(json.loads(mine.files[system])["hooks"]) == ["PreToolUse"]


def test_droid_runs_auto_low_with_the_hook_in_its_runtime_settings(tmp_path: Path) -> None:
    inv = adapter_for("droid").build("go", agent("droid", tmp_path, hook=HOOK))  # no custom model: still a file
    path = str(tmp_path / "droid" / "settings.json")
    assert inv.argv[inv.argv.index("--auto") + 1] == "low" and inv.argv[inv.argv.index("--settings") + 1] == path
    assert json.loads(inv.files[path]) == {
        "hooks": {"PreToolUse": [{"matcher": "*", "hooks": [
            {"type": "command", "command": guarded_command(HOOK, 0), "timeout": 660 + GRACE_S},
        ]}]},
    }  # fmt: skip
    byok = adapter_for("droid").build(
        "go", agent("droid", tmp_path, hook=HOOK, model="gpt-4.1-mini", env={"OPENAI_BASE_URL": "http://h/v1"})
    )
    assert set(json.loads(byok.files[path])) == {"customModels", "hooks"} and "custom:gpt-4.1-mini" in byok.argv
    with pytest.raises(ValueError, match="--settings"):
        adapter_for("droid").build("go", agent("droid", tmp_path, hook=HOOK, args=["--settings", "/x.json"]))


def test_opencode_gets_the_plugin_and_a_config_that_denies_without_it(tmp_path: Path) -> None:
    inv = adapter_for("opencode").build("go", agent("opencode", tmp_path, hook=HOOK, hook_timeout_s=600))
    plugin = tmp_path / "opencode" / "orchestra-permissions.js"
    config = json.loads(inv.files[str(tmp_path / "opencode" / "opencode.json")])
    assert config["plugin"] == [plugin.as_uri()] and config["permission"] == {"*": "deny"}
    source = inv.files[str(plugin)]
    assert json.dumps(guarded_command(HOOK, 600)) in source and f"= {(600 + GRACE_S) * 1000}\n" in source
    if shutil.which("node"):
        plugin.parent.mkdir(parents=True)
        plugin.write_text(source)
        assert subprocess.run(["node", "--check", str(plugin)], capture_output=True, check=False).returncode == 0
    with pytest.raises(ValueError, match="OPENCODE_CONFIG"):
        adapter_for("opencode").build("go", agent("opencode", tmp_path, hook=HOOK, env={"OPENCODE_CONFIG": "/x"}))


def test_aider_never_runs_a_shell_command_and_a_slash_task_stays_a_message(tmp_path: Path) -> None:
    plain = adapter_for("aider").build("fix it", agent("aider", tmp_path))
    assert "--no-suggest-shell-commands" in plain.argv and "--yes-always" in plain.argv
    assert plain.argv[1:3] == ["--message-file", "{task_file}"] and plain.prompt_mode == "file"
    for text in ("/run touch /tmp/x", "!touch /tmp/x"):
        inv = adapter_for("aider").build(text, agent("aider", tmp_path))
        assert inv.argv[1:3] == ["--message", " " + text] and inv.prompt_mode == "arg"
    with pytest.raises(ValueError, match="cannot start with /"):
        adapter_for("aider").build("/run " + "x" * 200_000, agent("aider", tmp_path))


# -- the real CLIs through the real hook --------------------------------------------------------------


REAL = {
    "gemini": ("gemini-2.0-flash", {"GOOGLE_GEMINI_BASE_URL": "{url}"}, "GEMINI_API_KEY"),
    "qwen": ("gpt-4.1-mini", {"OPENAI_BASE_URL": "{url}/v1"}, "OPENAI_API_KEY"),
    "droid": ("gpt-4.1-mini", {"OPENAI_BASE_URL": "{url}/v1"}, "OPENAI_API_KEY"),
    "opencode": ("gpt-4.1-mini", {"OPENAI_BASE_URL": "{url}/v1", "OPENCODE_DISABLE_MODELS_FETCH": "1"},
                 "OPENAI_API_KEY"),
}  # fmt: skip


def _tool_results(bodies: list[dict[str, Any]]) -> list[str]:
    """What each tool call gave the model, in order, read from the requests that followed."""
    seen: list[str] = []
    for body in bodies:
        if "contents" in body:
            parts = [p for c in body["contents"] for p in c.get("parts") or [] if "functionResponse" in p]
            found = [json.dumps(p["functionResponse"]["response"]) for p in parts]
        else:
            found = [json.dumps(m.get("content")) for m in body.get("messages") or [] if m.get("role") == "tool"]
        seen = found if len(found) > len(seen) else seen
    return seen


@pytest.mark.real_cli
@pytest.mark.parametrize("allow", [True, False], ids=["allow", "deny"])
@pytest.mark.parametrize("kind", sorted(REAL))
def test_real_cli_runs_the_allowed_asks_the_network_and_never_runs_the_denied(
    kind: str, allow: bool, tmp_path: Path
) -> None:
    binary = AGENTS / "node_modules" / ".bin" / kind
    if not binary.exists():
        pytest.skip(f"{kind} is not installed at {binary}: run `make agents`")
    repo, home, task_dir = tmp_path / "repo", tmp_path / "home", tmp_path / "task"
    for folder in (repo, home, task_dir):
        folder.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    engine = FakeEngineSocket(tmp_path / "engine.sock", allow=allow, reason="not from this machine")
    model, env_template, key = REAL[kind]
    try:
        with FakeModelServer(workdir=str(repo), script=[]) as server:
            server.script = ["pytest -q", f"curl -s {server.url}/v1/models", "rm -rf /"]
            policy = Policy(cwd=str(repo), layers=(Layer.of("permissions", PermissionsConfig().model_dump()),))
            spec = {"task_id": "t7", "socket": str(engine.path), "permissions": policy.to_dict()}
            (task_dir / "spec.json").write_text(json.dumps(spec))
            env = {k: v.replace("{url}", server.url) for k, v in env_template.items()} | {"ORCHESTRA_MAX_RETRIES": "0"}
            settings = agent(kind, tmp_path, command=str(binary), model=model, env=env, hook=hook_command(kind))
            inv = adapter_for(kind).build("Run the three steps", settings)
            write_agent_files(inv.files)
            run_env = {
                "PATH": os.environ["PATH"],
                "HOME": str(home),
                key: "sk-fake",
                "ORCHESTRA_TASK_DIR": str(task_dir),
            }
            done = subprocess.run(inv.argv, cwd=repo, env=run_env | inv.env, capture_output=True, text=True,
                                  timeout=240, stdin=subprocess.DEVNULL, check=False)  # fmt: skip
            results = _tool_results([call.body for call in server.model_calls()])
            fetched = [c for c in server.calls if c.method == "GET"]
    finally:
        engine.close()
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(results) == 3, results
    assert "no tests ran" in results[0]  # allowed by policy: ran, nobody asked
    asked = [line for line in engine.lines if line["t"] == "ask"]
    assert [line["call"]["subject"] for line in asked] == [f"curl -s {server.url}/v1/models"]
    if allow:
        assert fetched and "fake-model" in results[1]  # it ran, and the model read what it printed
    else:
        assert not fetched and "not from this machine" in results[1]
    denied = [line for line in engine.lines if line["t"] == "denied"]
    assert [line["call"]["subject"] for line in denied] == ["rm -rf /"]
    assert "refuses" in results[2] and "rm -rf /" in results[2]
